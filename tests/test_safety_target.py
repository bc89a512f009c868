"""Issue #10 items 1 and 6: the subscription in a full resource ID is honoured; a mixed batch reports every VM.

armsim holds a second subscription (built here through the simulator's Python API) with a VM of the
same name, group and NSG as the demo's vm-nsg-blocked, so acting on the wrong subscription shows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import mutating
from support.runs import ROOT, cli, runbooks

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.compute import VM
from armsim.network import NIC, NSG, Subnet
from armsim.scenarios import _deny_internet_443, _snapshot_ext, _ubuntu

SUB_B = "bbbbbbbb-0000-4000-8000-00000000000b"
RG = "rg-demo"


def vm_id(sub: str, name: str = "vm-nsg-blocked", rg: str = RG) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def add_twin(server: Server, sub: str = SUB_B) -> None:
    """vm-nsg-blocked again, in subscription `sub`: same group, names and failed backup job."""
    from armsim.backup import Vault

    sim = server.sim
    with sim.lock:
        nsg = sim.network.add(NSG("nsg-blocked", RG, sub, "eastus", rules={"deny-internet-443": _deny_internet_443()}))
        other = sim.network.add(NSG("nsg-app", RG, sub, "eastus"))
        sn = sim.network.add(Subnet("vnet-demo", "default", RG, sub, "10.0.0.0/24", other.id))
        nic = sim.network.add(NIC("vm-nsg-blocked-nic", RG, sub, "eastus", "10.0.0.11", sn.id, nsg.id))
        vm = sim.compute.add(VM("vm-nsg-blocked", RG, sub, "eastus", _ubuntu(), [nic.id]))
        nic.vm_id = vm.id
        vm.extensions["vmsnapshotlinux"] = _snapshot_ext(True)
        vault = sim.backup.add_vault(Vault("rsv-demo", RG, sub, "eastus"))
        item = sim.backup.protect(vault, vm)
        assert sim.backup.start_job(vault, item, user=False, finished=True).error == "ExtensionSnapshotFailedNoNetwork"


def rules(server: Server, sub: str) -> set[str]:
    nsg = next(n for n in server.sim.network.nsgs.values() if n.name == "nsg-blocked" and n.subscription == sub)
    return set(nsg.rules)


def test_a_full_id_acts_on_its_own_subscription_not_the_default(armsim: Server, tmp_path: Path) -> None:
    add_twin(armsim)
    r = cli(armsim, "fix", vm_id(SUB_B), "--yes", "-o", "json", tmp=tmp_path)  # AZURE_SUBSCRIPTION_ID is the demo's
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["vms"][0]["subscription"] == SUB_B
    assert "allow-azure-backup-443" in rules(armsim, SUB_B)
    assert rules(armsim, DEMO_SUBSCRIPTION) == {"deny-internet-443"}  # subscription A untouched
    writes = mutating(armsim)
    assert writes and all(e["path"].startswith(f"/subscriptions/{SUB_B}/") for e in writes), writes


def test_a_full_id_alone_needs_no_default_subscription(armsim: Server, tmp_path: Path) -> None:
    add_twin(armsim)
    env = {k: v for k, v in os.environ.items() if k != "AZURE_SUBSCRIPTION_ID"}
    r = _cli_env(armsim, env, "diagnose", vm_id(SUB_B), "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["vms"][0]["subscription"] == SUB_B
    assert {e["path"].split("/")[2] for e in armsim.sim.requests()} == {SUB_B}


def test_one_run_spans_two_subscriptions(armsim: Server, tmp_path: Path) -> None:
    add_twin(armsim)
    r = cli(armsim, "fix", vm_id(SUB_B), vm_id(DEMO_SUBSCRIPTION), "--yes", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [v["subscription"] for v in json.loads(r.stdout)["vms"]] == [SUB_B, DEMO_SUBSCRIPTION]
    assert "allow-azure-backup-443" in rules(armsim, SUB_B) and "allow-azure-backup-443" in rules(armsim,
                                                                                                 DEMO_SUBSCRIPTION)


def test_apply_of_a_plan_naming_subscription_b_acts_on_b(armsim: Server, tmp_path: Path) -> None:
    add_twin(armsim)
    plan = tmp_path / "plan.json"
    assert cli(armsim, "fix", vm_id(SUB_B), "--plan-out", str(plan)).returncode == 0
    assert json.loads(plan.read_text())["vms"][0]["target"]["subscription"] == SUB_B
    r = cli(armsim, "apply", str(plan), "--yes", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "allow-azure-backup-443" in rules(armsim, SUB_B)
    assert rules(armsim, DEMO_SUBSCRIPTION) == {"deny-internet-443"}
    assert all(e["path"].startswith(f"/subscriptions/{SUB_B}/") for e in mutating(armsim))


def _cli_env(server: Server, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    import subprocess

    env = {**env, "RUNBOOKS_ARM_ENDPOINT": server.endpoint, "RUNBOOKS_CA_BUNDLE": server.ca_bundle,
           "PYTHONPATH": str(ROOT)}
    return subprocess.run(runbooks(*args), capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


# --- item 6: mixed batches ------------------------------------------------------------------
@pytest.mark.parametrize("missing", [
    vm_id(DEMO_SUBSCRIPTION, "vm-x", "rg-nope"),  # resource group does not exist
    vm_id("cccccccc-0000-4000-8000-00000000000c", "vm-x"),  # subscription does not exist
])
def test_a_vm_whose_place_does_not_exist_is_that_vms_failure(armsim: Server, tmp_path: Path, missing: str) -> None:
    r = cli(armsim, "fix", vm_id(DEMO_SUBSCRIPTION, "vm-ext-failed"), missing, "--yes", "--no-backup", tmp=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "vm-ext-failed (rg-demo)" in out and "Applied" in out  # the other VM's report
    assert "NotFound" in out and "vm-x" in out
    assert "VM " in out and "RESULT" in out  # the summary table
    assert [e["operation"] for e in mutating(armsim)] == ["VirtualMachineExtensions_Delete"]
