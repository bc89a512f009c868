"""armsim's Windows guest for issue #14 (armsim/winfix.py): the scripts' effects and refusals through a real
Run Command over the SDK, the request log's mutating flag, and the causal links in the order documented."""

from __future__ import annotations

from typing import Any

from conftest import mutating
from support.demo import sim_vm, target

from armsim.guest import run_script
from armsim.winfix import NETWORK_SERVICE, com_failure, network_failure
from remediations.azure import Azure
from remediations.reads import run_script as run_remote
from remediations.scripts import script


def test_get_scripts_are_read_only_in_the_request_log(armsim: Any, azure: Azure) -> None:
    out = run_remote(azure, target("vm-tls-legacy"), "windows-crypto-get")
    assert out["legacy_tls_disabled"] is True and out["view"] == "Registry64"
    assert [k["exists"] for k in out["keys"]] == [True, True, False, False]
    assert out["tls"]["TLS 1.0"] == {"Enabled": 0, "DisabledByDefault": 1}
    com = run_remote(azure, target("vm-com-msdtc"), "windows-com-get")["services"]
    assert com["COMSysApp"]["status"] == "Stopped" and com["MSDTC"]["account"] == "LocalSystem"
    keys = run_remote(azure, target("vm-snapshot-timeout"), "windows-bcdr-keys-get")
    assert keys["exists"] is False and keys["values"]["SnapshotMethod"] == {"value": None, "type": None}
    assert mutating(armsim) == []
    run_remote(azure, target("vm-snapshot-timeout"), "windows-bcdr-keys-set")
    assert [e["path"].endswith("/runCommand") for e in mutating(armsim)] == [True]


def test_a_script_without_its_effect_is_refused(armsim: Any) -> None:
    g = sim_vm(armsim, "vm-com-msdtc").guest
    text = script("windows-msdtc-repair").text.replace("msdtc.exe -install", "Write-Output skipped")
    run = run_script(g, text)
    assert run.code == 127 and "msdtc.exe -install" in run.err
    assert g.winfix.accounts["msdtc"] != NETWORK_SERVICE
    linux = sim_vm(armsim, "vm-proxy-dead").guest
    assert run_script(linux, script("windows-crypto-get").text).code == 127


def test_com_start_refuses_an_msdtc_that_will_not_start(armsim: Any) -> None:
    g = sim_vm(armsim, "vm-com-msdtc").guest
    g.services["msdtc"].running = False
    g.winfix.msdtc_broken = True
    run = run_script(g, script("windows-com-start").text)
    assert run.code == 1 and '"error": "start-failed"' in run.out
    assert not g.services["msdtc"].running


def test_the_links_in_order(armsim: Any) -> None:
    vm = sim_vm(armsim, "vm-com-msdtc")
    g = vm.guest
    assert com_failure(vm) == "ExtensionSnapshotFailedCOM"  # COM+ first, while MSDTC is wrong too
    g.services["comsysapp"].running = True
    assert com_failure(vm) == "ExtensionInstallationFailedMDTC"
    g.winfix.accounts["msdtc"] = "NT AUTHORITY\\Network Service"  # the spelling with a space is the same account
    assert com_failure(vm) is None and network_failure(g) is None
    g.winfix.slow_network = True
    assert armsim.sim.backup.verdict(vm) == "ExtensionFailedTimeoutVMNetworkUnresponsive"
    tls = sim_vm(armsim, "vm-tls-legacy").guest
    g.registry.update({k: v for k, v in tls.registry.items()})  # legacy TLS off here too: crypto comes first
    assert network_failure(g) == "ExtensionSnapshotFailedNoSecureNetwork"
    assert armsim.sim.backup.verdict(vm) == "ExtensionSnapshotFailedNoSecureNetwork"
