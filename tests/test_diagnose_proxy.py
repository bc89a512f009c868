"""C1.proxy: the guest's proxy, its reachability and the proxy VM's own egress; C1 judges the way to the proxy."""

from __future__ import annotations

from typing import Any

import pytest
from support.demo import RG, sim_vm
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION
from remediations.actions.proxy import ProxyProbe, ProxyVm, parse_proxy
from remediations.facts import Facts
from remediations.netrules import NsgView, Rule
from remediations.reads import vm_view
from remediations.target import Target
from runbooks.diagnose import check

T = Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name="vm-x")
LOCKED = Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name="vm-proxy-locked")
DENY_INTERNET = NsgView("/x/nsg-x", "nsg-x", (Rule("deny-internet", 200, "Outbound", "Deny", "*",
                                                   dest_prefixes=("Internet",)),))
DENY_STORAGE = NsgView("/x/nsg-proxy-locked", "nsg-proxy-locked", (
    Rule("deny-storage-443", 300, "Outbound", "Deny", "Tcp", dest_prefixes=("Internet",), dest_ports=("443",)),))
DENY_3128 = NsgView("/x/nsg-y", "nsg-y", (Rule("deny-proxy", 150, "Outbound", "Deny", "Tcp",
                                              dest_prefixes=("10.0.0.0/8",), dest_ports=("3128",)),))


def facts(nsgs: tuple[NsgView, ...], probe: ProxyProbe | None, ready: bool = True) -> Facts:
    agent = {"vmAgentVersion": "2.9", "statuses": [{"displayStatus": "Ready" if ready else "Not Ready"}]}
    vm = vm_view({"id": T.id, "name": "vm-x", "location": "eastus",
                  "properties": {"storageProfile": {"osDisk": {"osType": "Linux"}},
                                 "instanceView": {"statuses": [{"code": "PowerState/running"}], "vmAgent": agent}}})
    return Facts(T, vm, nsgs, None, None, None, (), probe)


def probe(proxy: str | None, reachable: bool | None, detail: str = "", vm: ProxyVm | None = None) -> ProxyProbe:
    return ProxyProbe(parse_proxy({"proxy": proxy, "source": "waagent.conf" if proxy else None,
                                   "reachable": reachable, "detail": detail}), vm)


def test_no_proxy_is_absent_and_c1_judges_the_direct_way() -> None:
    f = facts((DENY_INTERNET,), probe(None, None))
    assert check("C1.proxy", f).verdict == "absent"
    c1 = check("C1", f)
    assert c1.verdict == "present" and "deny-internet" in c1.evidence


def test_an_unreachable_proxy_is_present_with_the_connect_failure() -> None:
    found = check("C1.proxy", facts((), probe("http://10.0.2.99:3128", False, "connect to 10.0.2.99:3128: refused")))
    assert found.verdict == "present"
    assert "10.0.2.99:3128" in found.evidence and "/etc/waagent.conf" in found.evidence and "refused" in found.evidence


def test_a_proxy_vm_whose_nsg_denies_storage_is_present_and_fixed_on_the_proxy_vm() -> None:
    pvm = ProxyVm("vm-proxy-locked", LOCKED, "/nic", "10.0.3.4", "eastus", (DENY_STORAGE,))
    found = check("C1.proxy", facts((DENY_INTERNET,), probe("10.0.3.4:3128", True, vm=pvm)))
    assert found.verdict == "present" and found.on == LOCKED and found.fixes == ("allow-backup-egress",)
    assert "vm-proxy-locked" in found.evidence and "nsg-proxy-locked" in found.evidence
    assert "deny-storage-443" in found.evidence
    ok = ProxyVm("vm-proxy", None, "/nic", "10.0.2.4", "eastus", ())
    assert check("C1.proxy", facts((), probe("http://10.0.2.4:3128", True, vm=ok))).verdict == "absent"


def test_with_a_proxy_c1_judges_the_way_to_the_proxy_not_to_storage() -> None:
    f = facts((DENY_INTERNET,), probe("10.0.3.4:3128", True))
    c1 = check("C1", f)
    assert c1.verdict == "absent" and "10.0.3.4" in c1.evidence  # Internet denied, but the proxy is in the VNet
    blocked = check("C1", facts((DENY_3128,), probe("http://10.0.2.4:3128", False)))
    assert blocked.verdict == "present" and "deny-proxy" in blocked.evidence and blocked.fixes == ()
    assert any("allow outbound TCP 3128 to the proxy 10.0.2.4 in NSG nsg-y" in m for m in blocked.manual)


def test_unknown_when_the_guest_cannot_be_asked() -> None:
    assert check("C1.proxy", facts((), None, ready=False)).verdict == "unknown"
    assert check("C1.proxy", facts((), ProxyProbe(None, error="linux-proxy-get: no-result"))).verdict == "unknown"
    skipped = check("C1.proxy", facts((), ProxyProbe(None, skipped="no failed backup to explain")))
    assert skipped.verdict == "unknown" and "no failed backup to explain" in skipped.evidence
    assert check("C1.proxy", facts((), probe("http://10.9.9.9:3128", True))).verdict == "unknown"  # not an Azure VM
    denied = ProxyProbe(parse_proxy({"proxy": "http://10.0.3.4:3128", "reachable": True}),
                        error="the proxy's VM could not be looked up (AuthorizationFailed)")
    found = check("C1.proxy", facts((), denied))
    assert found.verdict == "unknown" and "AuthorizationFailed" in found.evidence


# --- on armsim --------------------------------------------------------------------------------------------


def diagnose(armsim: Any, tmp: Any, vm: str) -> dict[str, Any]:
    import json

    r = cli(armsim, "diagnose", vm, "-g", RG, "-o", "json", tmp=tmp)
    assert r.returncode in (0, 3), r.stderr
    doc = json.loads(r.stdout)
    [report] = doc["vms"]
    return {f["cause"]: f for f in report["findings"]}


@pytest.mark.parametrize("vm", ["vm-proxy-dead", "vm-proxy-egress", "vm-nsg-blocked"])
def test_diagnosis_on_armsim(armsim: Any, tmp_path: Any, vm: str) -> None:
    found = diagnose(armsim, tmp_path, vm)["C1.proxy"]
    if vm == "vm-proxy-dead":
        assert found["verdict"] == "present" and "10.0.2.99:3128" in found["evidence"], found
    elif vm == "vm-proxy-egress":
        assert found["verdict"] == "present" and "vm-proxy-locked" in found["evidence"], found
        assert "nsg-proxy-locked" in found["evidence"], found
    else:
        assert found["verdict"] == "absent", found
    assert sim_vm(armsim, vm) is not None
