"""power-off: pure plans, then the real SDK against armsim (a guest shut down inside is already stopped; consent)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DEMO_VMS, TRANSIENT_FAULTS, mutating

from armsim import DEMO_SUBSCRIPTION
from remediations.actions.backup import TriggerBackup
from remediations.actions.power import PowerFacts, PowerOff
from remediations.azure import Azure, AzureConfig
from remediations.reads import VmView
from remediations.target import Target

ACTION = PowerOff()
# Resource Health's status for a VM its guest shut down: the VirtualMachineStoppedInternally annotation's
# description (resource-health-vm-annotation.md), and for a stop through the platform.
INSIDE = {"availabilityState": "Unavailable", "reasonType": "Customer Initiated", "context": "Customer Initiated",
          "summary": "The Virtual Machine is stopping as requested by an authorized user or process, or due to a guest "
                     "activity from within the Virtual Machine. No other action is required at this time."}
PLATFORM = {**INSIDE, "summary": "The Virtual Machine is stopping as requested by an authorized user or process. "
                                 "No other action is required at this time."}
# What the old armsim invented: "running" plus a made-up summary. It is no signal any more.
INVENTED = {"availabilityState": "Unavailable", "reasonType": "Customer Initiated",
            "summary": "We're sorry, your virtual machine isn't available because the guest operating system was "
                       "shut down from inside the virtual machine."}


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name)


def params(name: str, **kw: Any) -> Any:
    return ACTION.params(target=target(name), **kw)


def facts(power: str, health: dict[str, Any] | None) -> PowerFacts:
    return PowerFacts(VmView(target("vm-x").id, "vm-x", "eastus", "Windows", power, None, None, None, (), (), {}),
                      health)


def power(armsim: Any, vm: str) -> str:
    return armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", vm)].power


# --- pure plans ------------------------------------------------------------------------------
def test_a_guest_shut_down_inside_is_already_stopped_and_left_to_a_person() -> None:
    p = ACTION.plan(facts("stopped", INSIDE), params("vm-x", force=True))
    assert p.empty and p.reason == ("vm-x is stopped (PowerState/stopped), its guest was shut down from inside "
                                    "(Resource Health: VirtualMachineStoppedInternally); nothing to power off, so "
                                    "nothing disruptive is done")
    assert "az vm start -g rg-demo -n vm-x" in p.manual[0] and "az vm deallocate -g rg-demo -n vm-x" in p.manual[0]
    assert "crash-consistent" in p.notes[0]


@pytest.mark.parametrize(("state", "health"), [("stopped", PLATFORM), ("deallocated", None), ("stopped", None)])
def test_a_vm_stopped_through_the_platform_needs_nothing(state: str, health: dict[str, Any] | None) -> None:
    p = ACTION.plan(facts(state, health), params("vm-x", force=True))
    assert p.empty and p.manual == []
    assert p.reason == (f"vm-x is stopped (PowerState/{state}), stopped through the platform; nothing to power off, "
                        "so nothing disruptive is done")


def test_a_running_vm_is_powered_off_only_when_forced_and_always_disruptive() -> None:
    assert PowerOff.disruptive is True
    for health in (INVENTED, None):  # the invented summary on a running VM is no shutdown any more
        p = ACTION.plan(facts("running", health), params("vm-x"))
        assert p.empty and "only with --force" in p.reason
    (c,) = ACTION.plan(facts("running", None), params("vm-x", force=True)).changes
    assert (c.kind, c.resource, c.disruptive) == ("run", "vm-x", True) and c.reason.startswith("forced:")


def test_a_settling_vm_is_left_to_settle() -> None:
    p = ACTION.plan(facts("stopping", None), params("vm-x", force=True))
    assert p.empty and p.reason == "vm-x is in PowerState/stopping; run power-off again once it settles"


# --- against armsim --------------------------------------------------------------------------
def test_vm_rdp_shutdown_needs_no_power_off_and_backs_up_crash_consistently(armsim: Any, azure: Azure) -> None:
    out = ACTION.apply(azure, params("vm-rdp-shutdown", force=True))
    assert out.status == "unchanged", out
    assert "its guest was shut down from inside (Resource Health: VirtualMachineStoppedInternally)" in out.reason
    assert "az vm start -g rg-demo -n vm-rdp-shutdown" in out.manual[0]
    assert mutating(armsim) == [] and power(armsim, "vm-rdp-shutdown") == "stopped"

    backup = TriggerBackup()
    preview = backup.preview(azure, backup.params(target=target("vm-rdp-shutdown")))
    assert "crash-consistent" in preview.notes[0]
    done = backup.apply(azure, backup.params(target=target("vm-rdp-shutdown"), wait=True, poll_seconds=0.01))
    assert done.status == "changed", done
    job = done.result["job_id"]
    assert done.evidence[0] == f"job {job} Completed (crash-consistent: vm-rdp-shutdown is stopped)"


def test_a_vm_powered_off_through_the_platform_reads_as_such(armsim: Any, azure: Azure) -> None:
    azure.compute.virtual_machines.begin_power_off("rg-demo", "vm-healthy").result()
    armsim.sim.clear_requests()
    out = ACTION.apply(azure, params("vm-healthy"))
    assert out.status == "unchanged" and "stopped through the platform" in out.reason and out.manual == []
    assert mutating(armsim) == []


def test_vm_healthy_is_left_alone(armsim: Any, azure: Azure) -> None:
    out = ACTION.apply(azure, params("vm-healthy"))
    assert out.status == "unchanged"
    assert out.reason == ("vm-healthy is running (guest agent Ready); powering it off stops its workload, so it is "
                          "done only with --force")
    assert mutating(armsim) == []


def test_forced_power_off_of_a_healthy_vm_is_withheld_without_consent(armsim: Any, azure: Azure) -> None:
    out = ACTION.apply(azure, params("vm-healthy", force=True))
    assert out.status == "withheld" and out.changes[0].disruptive
    assert "consent" in out.reason
    assert mutating(armsim) == [] and power(armsim, "vm-healthy") == "running"
    done = ACTION.apply(azure, params("vm-healthy", force=True), consent=True)
    assert done.status == "changed" and power(armsim, "vm-healthy") == "stopped"
    assert [e["operation"] for e in mutating(armsim)] == ["VirtualMachines_PowerOff"]  # not deallocate
    armsim.sim.clear_requests()
    assert ACTION.apply(azure, params("vm-healthy", force=True), consent=True).status == "unchanged"
    assert mutating(armsim) == []


def test_read_only_preview_of_every_demo_vm(armsim: Any) -> None:
    ro = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                           ca_bundle=armsim.ca_bundle, read_only=True))
    plans = {vm: ACTION.preview(ro, params(vm)) for vm in DEMO_VMS}
    assert all(p.empty and p.reason for p in plans.values())
    assert [vm for vm, p in plans.items() if p.manual] == ["vm-rdp-shutdown"]
    assert mutating(armsim) == []


@pytest.mark.parametrize("fault", [
    *TRANSIENT_FAULTS,
    {"kind": "status", "status": 409, "code": "OperationNotAllowed",
     "message": "Operation 'powerOff' is not allowed on VM 'vm-healthy' since another operation "
                "('start') is in progress."},
])
def test_transient_faults_on_power_off_end_in_success(armsim: Any, azure: Azure, fault: dict[str, Any]) -> None:
    f = armsim.sim.faults.add(operation="VirtualMachines_PowerOff", **fault)
    out = ACTION.apply(azure, params("vm-healthy", force=True), consent=True)
    assert out.status == "changed", out
    assert f.hits >= 2 and power(armsim, "vm-healthy") == "stopped"


def test_409_operation_not_allowed_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="status", status=409, code="OperationNotAllowed", operation="VirtualMachines_PowerOff",
                          message="Operation 'powerOff' is not allowed on VM 'vm-healthy' since the VM is "
                                  "either deallocated or marked to be deallocated.")
    out = ACTION.apply(azure, params("vm-healthy", force=True), consent=True)
    assert out.status == "failed" and out.error_code == "OperationNotAllowed" and out.error_status == 409, out
    assert power(armsim, "vm-healthy") == "running"


def test_lro_failed_power_off_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="lro_failed", operation="VirtualMachines_PowerOff")
    out = ACTION.apply(azure, params("vm-healthy", force=True), consent=True)
    assert out.status == "failed" and out.error_code == "InternalOperationError", out
    assert power(armsim, "vm-healthy") == "running"
