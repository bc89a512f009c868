"""E6 UserErrorRpCollectionLimitReached and E8 UserErrorResourceIsInLockedState end to end: diagnosis names the lock,
remove-vm-lock / remove-restore-point-lock / delete-restore-point-collection plan, apply (with consent only), converge,
write nothing in a dry run and nothing the second time; the demo VMs end fixed, proven by a backup."""

from __future__ import annotations

import pytest
from conftest import FAST_RETRY, mutating

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.locks import Lock
from remediations.action import ActionParams
from remediations.actions import get_action
from remediations.azure import Azure, AzureConfig
from remediations.target import Target
from runbooks.engine import Options, investigate, run

SUB = f"/subscriptions/{DEMO_SUBSCRIPTION}"
FAST = Options(allow_disruptive=True, backup_poll_seconds=0.05)


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name)


def read_only(server: Server) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint, ca_bundle=server.ca_bundle,
                             retry=FAST_RETRY, read_only=True))


def lock_names(server: Server) -> set[str]:
    return {lk.name for lk in server.sim.locks.locks.values()}


@pytest.mark.parametrize(("vm", "cause", "named"), [
    ("vm-locked", "C8.lock", "ReadOnly lock 'freeze-for-audit' on resource vm-locked"),
    ("vm-rp-locked", "C6.lock", "CanNotDelete lock 'backup-rg-nodelete' on resource group AzureBackupRG_eastus_1"),
    ("vm-rp-full", "C6.collection", "AzureBackup_vm-rp-full_1 holds 18 of 18 restore points"),
])
def test_diagnosis_names_the_lock_or_collection_and_writes_nothing(armsim: Server, vm: str, cause: str,
                                                                   named: str) -> None:
    inv = investigate(read_only(armsim), target(vm), Options())
    found = {f.cause: f for f in inv.present}
    assert list(found) == [cause]
    assert named in found[cause].evidence
    if cause != "C6.collection":
        assert "owners (who set it): 3c1f5b6e" in found[cause].evidence
    assert mutating(armsim) == []


def test_remove_vm_lock_needs_consent_then_converges_once(armsim: Server, azure: Azure) -> None:
    action, p = get_action("remove-vm-lock"), ActionParams(target=target("vm-locked"))
    held = action.apply(azure, p)
    assert held.status == "withheld" and "freeze-for-audit" in lock_names(armsim) and mutating(armsim) == []
    plan = action.preview(azure, p)
    (change,) = plan.changes
    assert change.disruptive and change.before == {"level": "ReadOnly", "scope": f"{SUB}/resourceGroups/rg-demo/"
                                                   "providers/Microsoft.Compute/virtualMachines/vm-locked",
                                                   "notes": "Frozen for the quarterly audit",
                                                   "owners": ["3c1f5b6e-8e0a-4b8f-9d2a-0d5e6f7a8b9c"]}
    done = action.apply(azure, p, consent=True)
    assert done.status == "changed" and "freeze-for-audit" not in lock_names(armsim)
    assert [e["method"] for e in mutating(armsim)] == ["DELETE"]
    armsim.sim.clear_requests()
    again = action.apply(azure, p, consent=True)
    assert again.status == "unchanged" and mutating(armsim) == []


def test_a_subscription_lock_is_a_manual_step_never_removed(armsim: Server, azure: Azure) -> None:
    armsim.sim.locks.add(Lock("sub-freeze", SUB, "ReadOnly", "Change freeze", ["app-1"]))
    plan = get_action("remove-vm-lock").preview(azure, ActionParams(target=target("vm-healthy")))
    assert not plan.changes and "sub-freeze" in plan.manual[0] and "never removes" in plan.manual[0]
    armsim.sim.locks.add(Lock("sub-nodelete", SUB, "CanNotDelete"))
    del armsim.sim.locks.locks[f"{SUB}/providers/Microsoft.Authorization/locks/sub-freeze".lower()]
    armsim.sim.locks.locks.pop(f"{SUB}/resourceGroups/AzureBackupRG_eastus_1/providers/Microsoft.Authorization/"
                               "locks/backup-rg-nodelete".lower())
    rp = get_action("remove-restore-point-lock").preview(azure, ActionParams(target=target("vm-rp-locked")))
    assert not rp.changes and "sub-nodelete" in rp.manual[0]
    fallback = get_action("delete-restore-point-collection").preview(azure, ActionParams(target=target("vm-rp-locked")))
    assert not fallback.changes and "sub-nodelete" in fallback.reason


def test_remove_restore_point_lock_then_the_cleanup_backup(armsim: Server, azure: Azure) -> None:
    action, p = get_action("remove-restore-point-lock"), ActionParams(target=target("vm-rp-locked"))
    assert action.apply(azure, p).status == "withheld" and mutating(armsim) == []
    assert [c.kind for c in action.preview(azure, p).changes] == ["remove", "run"]
    done = action.apply(azure, p, consent=True)
    assert done.status == "changed", done.reason
    assert any("as the guide expects of the first run" in e for e in done.evidence)
    assert "backup-rg-nodelete" not in lock_names(armsim) and "holds 2 of 18" in done.reason
    armsim.sim.clear_requests()
    assert action.apply(azure, p, consent=True).status == "unchanged" and mutating(armsim) == []


def test_delete_restore_point_collection_only_when_nothing_blocks(armsim: Server, azure: Azure) -> None:
    action = get_action("delete-restore-point-collection")
    assert not action.preview(azure, ActionParams(target=target("vm-rp-locked"))).changes  # a lock blocks it
    p = ActionParams(target=target("vm-rp-full"))
    assert action.apply(azure, p).status == "withheld"
    done = action.apply(azure, p, consent=True)
    assert done.status == "changed" and not armsim.sim.restore_points.collections.get(
        f"{SUB}/resourceGroups/AzureBackupRG_eastus_2/providers/Microsoft.Compute/restorePointCollections/"
        "AzureBackup_vm-rp-full_1".lower())
    armsim.sim.clear_requests()
    assert action.apply(azure, p, consent=True).status == "unchanged" and mutating(armsim) == []


def test_dry_run_writes_nothing(armsim: Server) -> None:
    for vm in ("vm-locked", "vm-rp-locked", "vm-rp-full"):
        report = run(read_only(armsim), target(vm), Options(dry_run=True, allow_disruptive=True))
        assert report.status == "planned" and report.changes()
    assert mutating(armsim) == []


def test_without_consent_the_engine_withholds(armsim: Server, azure: Azure) -> None:
    report = run(azure, target("vm-locked"), Options(backup_poll_seconds=0.05))
    assert report.status == "withheld" and mutating(armsim) == []


@pytest.mark.parametrize("vm", ["vm-locked", "vm-rp-locked", "vm-rp-full"])
def test_the_demo_vm_is_fixed_and_proven_by_a_backup(armsim: Server, azure: Azure, vm: str) -> None:
    report = run(azure, target(vm), FAST)
    assert report.status == "fixed", report.message
    assert report.backup is not None and report.backup.result.get("job_id")
    assert armsim.sim.backup.verdict(next(v for v in armsim.sim.compute.vms.values() if v.name == vm)) is None
