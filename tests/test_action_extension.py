"""remove-backup-extension: pure plans, then the real SDK against armsim (apply, idempotence, faults)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DEMO_VMS, TRANSIENT_FAULTS, mutating

from armsim import DEMO_SUBSCRIPTION
from remediations.actions.backup import TriggerBackup
from remediations.actions.extension import RemoveBackupExtension
from remediations.azure import Azure, AzureConfig
from remediations.reads import BACKUP_PUBLISHER, ExtensionView, VmView
from remediations.target import Target

ACTION = RemoveBackupExtension()


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name)


def params(name: str, **kw: Any) -> Any:
    return ACTION.params(target=target(name), **kw)


def view(*, os_type: str = "Linux", power: str = "running", exts: tuple[ExtensionView, ...] = ()) -> VmView:
    return VmView(target("vm-x").id, "vm-x", "eastus", os_type, power, "Ready", "2.9.1.1", None, exts, (), {})


def snap(state: str = "Succeeded", handler: str | None = "Ready", *, name: str = "snap-ext",
         etype: str = "VMSnapshotLinux") -> ExtensionView:
    return ExtensionView(name, BACKUP_PUBLISHER, etype, "1.0.9", state, handler)


def ext_state(armsim: Any, vm: str) -> str | None:
    e = armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", vm)].backup_extension()
    return None if e is None else e.state


# --- pure plans ------------------------------------------------------------------------------
def test_plan_absent_names_the_type_for_the_os() -> None:
    assert ACTION.plan(view(), params("vm-x")).reason == "VMSnapshotLinux is not installed on vm-x"
    p = ACTION.plan(view(os_type="Windows"), params("vm-x"))
    assert p.empty and p.reason == "VMSnapshot is not installed on vm-x"


def test_plan_matches_publisher_and_type_never_the_name() -> None:
    other = ExtensionView("VMSnapshotLinux", "Contoso.Tools", "VMSnapshotLinux", "1.0", "Failed", "Not Ready")
    assert ACTION.plan(view(exts=(other,)), params("vm-x")).empty
    p = ACTION.plan(view(exts=(other, snap("Failed", "Not Ready", name="custom"))), params("vm-x"))
    (c,) = p.changes
    assert (c.kind, c.resource, c.data) == ("remove", "vm-x/extensions/custom", {"extension": "custom"})
    assert c.before == {"state": "Failed", "version": "1.0.9"}
    assert c.reason == "VMSnapshotLinux is in provisioning state Failed; the next backup reinstalls it"
    assert not c.disruptive


@pytest.mark.parametrize("state", ["Updating", "Creating", "Deleting", "Transitioning"])
def test_plan_removes_a_stuck_extension(state: str) -> None:
    (c,) = ACTION.plan(view(exts=(snap(state),)), params("vm-x")).changes
    assert f"stuck in provisioning state {state}" in c.reason


def test_plan_removes_when_the_handler_is_not_ready() -> None:
    (c,) = ACTION.plan(view(exts=(snap("Succeeded", "Not Ready"),)), params("vm-x")).changes
    assert "handler Not Ready" in c.reason


def test_plan_healthy_or_unknown_handler_is_left_alone_unless_forced() -> None:
    for handler in ("Ready", None):
        p = ACTION.plan(view(exts=(snap("Succeeded", handler),)), params("vm-x"))
        assert p.empty and "is healthy: provisioning state Succeeded" in p.reason
    (c,) = ACTION.plan(view(exts=(snap(),)), params("vm-x", force=True)).changes
    assert c.reason.startswith("forced:")


def test_plan_stopped_vm_cannot_change_extensions() -> None:
    p = ACTION.plan(view(power="stopped", exts=(snap("Failed"),)), params("vm-x", force=True))
    assert p.empty and p.reason == "extensions cannot be changed while vm-x is stopped"
    assert p.manual and "start vm-x" in p.manual[0]


# --- against armsim --------------------------------------------------------------------------
def test_remove_on_vm_ext_failed_then_backup_reinstalls(armsim: Any, azure: Azure) -> None:
    vm = armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", "vm-ext-failed")]
    assert armsim.sim.backup.verdict(vm) == "ExtensionOperationFailedForManagedDisks"
    plan = ACTION.preview(azure, params("vm-ext-failed"))
    (c,) = plan.changes
    assert (c.kind, c.resource) == ("remove", "vm-ext-failed/extensions/VMSnapshotLinux")
    assert mutating(armsim) == []

    out = ACTION.apply(azure, params("vm-ext-failed"))
    assert out.status == "changed", out
    assert out.reason == "VMSnapshotLinux is not installed on vm-ext-failed"
    assert out.evidence == ["deleted extension VMSnapshotLinux from vm-ext-failed"] and out.correlation_ids
    assert ext_state(armsim, "vm-ext-failed") is None
    assert armsim.sim.backup.verdict(vm) is None
    assert [e["operation"] for e in mutating(armsim)] == ["VirtualMachineExtensions_Delete"]

    again = ACTION.preview(azure, params("vm-ext-failed"))
    assert again.empty and again.reason == "VMSnapshotLinux is not installed on vm-ext-failed"
    armsim.sim.clear_requests()
    second = ACTION.apply(azure, params("vm-ext-failed"))
    assert second.status == "unchanged" and mutating(armsim) == []

    backup = TriggerBackup()
    done = backup.apply(azure, backup.params(target=target("vm-ext-failed"), wait=True, poll_seconds=0.01))
    assert done.status == "changed", done
    assert done.evidence[0] == f"job {done.result['job_id']} Completed"
    assert ext_state(armsim, "vm-ext-failed") == "Succeeded"  # the backup reinstalled it


def test_vm_healthy_is_left_alone(armsim: Any, azure: Azure) -> None:
    plan = ACTION.preview(azure, params("vm-healthy"))
    assert plan.empty
    assert plan.reason == "VMSnapshotLinux on vm-healthy is healthy: provisioning state Succeeded, handler status Ready"
    out = ACTION.apply(azure, params("vm-healthy"))
    assert out.status == "unchanged" and out.reason == plan.reason
    assert mutating(armsim) == []


def test_stopped_vm_gets_an_empty_plan(armsim: Any, azure: Azure) -> None:
    armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", "vm-ext-failed")].power = "stopped"
    out = ACTION.apply(azure, params("vm-ext-failed"))
    assert out.status == "unchanged"
    assert out.reason == "extensions cannot be changed while vm-ext-failed is stopped"
    assert mutating(armsim) == [] and ext_state(armsim, "vm-ext-failed") == "Failed"


def test_read_only_preview_of_every_demo_vm(armsim: Any) -> None:
    ro = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                           ca_bundle=armsim.ca_bundle, read_only=True))
    plans = {vm: ACTION.preview(ro, params(vm)) for vm in DEMO_VMS}
    # E3's failed extension, and issue #14's: stuck Deleting (E9), Failed with the VM Failed (E10)
    assert sorted(vm for vm, p in plans.items() if not p.empty) == ["vm-ext-deleting", "vm-ext-failed",
                                                                     "vm-provisioning-failed"]
    assert all(p.reason for p in plans.values() if p.empty)
    assert mutating(armsim) == []


@pytest.mark.parametrize("fault", [
    *TRANSIENT_FAULTS,
    {"kind": "status", "status": 409, "code": "OperationNotAllowed",
     "message": "Operation 'deleteExtension' is not allowed on VM 'vm-ext-failed' since another operation "
                "('powerOff') is in progress."},
])
def test_transient_faults_on_delete_end_in_success(armsim: Any, azure: Azure, fault: dict[str, Any]) -> None:
    f = armsim.sim.faults.add(operation="VirtualMachineExtensions_Delete", **fault)
    out = ACTION.apply(azure, params("vm-ext-failed"))
    assert out.status == "changed", out
    assert f.hits >= 2  # the faulted attempt, then the retry
    assert ext_state(armsim, "vm-ext-failed") is None


def test_lro_failed_delete_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="lro_failed", operation="VirtualMachineExtensions_Delete")
    out = ACTION.apply(azure, params("vm-ext-failed"))
    assert out.status == "failed" and out.error_code == "InternalOperationError", out
    assert ext_state(armsim, "vm-ext-failed") == "Failed"  # not half-applied: as it was


def test_non_transient_409_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="status", status=409, code="OperationNotAllowed", operation="VirtualMachineExtensions_Delete",
                          message="Cannot modify extensions in the VM when the VM is not running.")
    out = ACTION.apply(azure, params("vm-ext-failed"))
    assert out.status == "failed" and out.error_code == "OperationNotAllowed" and out.error_status == 409
    assert ext_state(armsim, "vm-ext-failed") == "Failed"


def test_412_precondition_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="precondition", operation="VirtualMachineExtensions_Delete")
    out = ACTION.apply(azure, params("vm-ext-failed"))
    assert out.status == "failed" and out.error_code == "PreconditionFailedEtagMismatch" and out.error_status == 412
    assert ext_state(armsim, "vm-ext-failed") == "Failed"


def test_registry_builds_a_fresh_instance_of_every_action() -> None:
    from remediations.action import Action
    from remediations.actions import ACTION_NAMES, get_action

    for name in ACTION_NAMES:
        first, second = get_action(name), get_action(name)
        assert isinstance(first, Action) and first.name == name, name
        assert first is not second and type(first) is type(second), name  # fresh: no state shared between runs
    assert [type(get_action(n)).__name__ for n in ("remove-backup-extension", "power-off", "trigger-backup")] == \
        ["RemoveBackupExtension", "PowerOff", "TriggerBackup"]
    with pytest.raises(KeyError, match="unknown action 'no-such-action'; known: remove-backup-extension"):
        get_action("no-such-action")
