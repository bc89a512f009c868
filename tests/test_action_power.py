"""power-off: pure plans, then the real SDK against armsim (C4 guest shut down inside, consent, faults)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import mutating

from armsim import DEMO_SUBSCRIPTION
from remediations.actions.backup import TriggerBackup
from remediations.actions.power import Health, PowerFacts, PowerOff, guest_shut_down
from remediations.azure import Azure, AzureConfig
from remediations.reads import VmView
from remediations.target import Target

DEMO_VMS = ["vm-healthy", "vm-nsg-blocked", "vm-subnet-blocked", "vm-win-agent-hung", "vm-linux-agent-old",
            "vm-sql-vss", "vm-rdp-shutdown", "vm-ext-failed", "vm-win-provider-disabled"]
ACTION = PowerOff()
DOWN = Health("Unavailable", "Customer Initiated",
              "We're sorry, your virtual machine isn't available because the guest operating system was shut down "
              "from inside the virtual machine.")
UP = Health("Available", "", "There aren't any known Azure platform problems affecting this virtual machine.")


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name)


def params(name: str, **kw: Any) -> Any:
    return ACTION.params(target=target(name), **kw)


def facts(power: str, health: Health) -> PowerFacts:
    return PowerFacts(VmView(target("vm-x").id, "vm-x", "eastus", "Windows", power, None, None, None, (), (), {}),
                      health)


def power(armsim: Any, vm: str) -> str:
    return armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", vm)].power


# --- pure plans ------------------------------------------------------------------------------
def test_class_is_disruptive_unless_the_guest_is_known_down() -> None:
    assert PowerOff.disruptive is True
    (c,) = ACTION.plan(facts("running", DOWN), params("vm-x")).changes
    assert (c.kind, c.resource, c.disruptive) == ("run", "vm-x", False)
    assert "shut down from inside the virtual machine" in c.reason  # quotes Resource Health's summary
    (forced,) = ACTION.plan(facts("running", UP), params("vm-x", force=True)).changes
    assert forced.disruptive and forced.reason.startswith("forced:")


def test_plan_guest_up_is_nothing_to_do() -> None:
    p = ACTION.plan(facts("running", UP), params("vm-x"))
    assert p.empty and p.reason == "vm-x is running and its guest is up (Resource Health: Available); nothing to power off"


@pytest.mark.parametrize("state", ["stopped", "deallocated"])
def test_plan_already_stopped(state: str) -> None:
    p = ACTION.plan(facts(state, DOWN), params("vm-x", force=True))
    assert p.empty and p.reason == f"vm-x is already stopped (PowerState/{state})"


def test_plan_unavailable_for_a_platform_reason_is_not_c4() -> None:
    platform = Health("Unavailable", "Unplanned", "The host of this virtual machine is being repaired.")
    assert not guest_shut_down(platform) and guest_shut_down(DOWN)
    p = ACTION.plan(facts("running", platform), params("vm-x"))
    assert p.empty and "another reason (Unplanned" in p.reason


# --- against armsim --------------------------------------------------------------------------
def test_power_off_vm_rdp_shutdown_then_backup_succeeds(armsim: Any, azure: Azure) -> None:
    plan = ACTION.preview(azure, params("vm-rdp-shutdown"))
    (c,) = plan.changes
    assert not c.disruptive and c.before == {"power": "running", "availability": "Unavailable"}
    out = ACTION.apply(azure, params("vm-rdp-shutdown"))  # no consent needed: the guest is already down
    assert out.status == "changed", out
    assert out.reason == "vm-rdp-shutdown is already stopped (PowerState/stopped)"
    assert power(armsim, "vm-rdp-shutdown") == "stopped"
    assert [e["operation"] for e in mutating(armsim)] == ["VirtualMachines_PowerOff"]  # not deallocate

    armsim.sim.clear_requests()
    assert ACTION.apply(azure, params("vm-rdp-shutdown")).status == "unchanged"
    assert mutating(armsim) == []

    backup = TriggerBackup()
    preview = backup.preview(azure, backup.params(target=target("vm-rdp-shutdown")))
    assert "crash-consistent" in preview.notes[0]
    done = backup.apply(azure, backup.params(target=target("vm-rdp-shutdown"), wait=True, poll_seconds=0.01))
    assert done.status == "changed", done
    job = done.result["job_id"]
    assert done.evidence[0] == f"job {job} Completed (crash-consistent: vm-rdp-shutdown is stopped)"


def test_vm_healthy_is_left_alone(armsim: Any, azure: Azure) -> None:
    out = ACTION.apply(azure, params("vm-healthy"))
    assert out.status == "unchanged"
    assert out.reason == "vm-healthy is running and its guest is up (Resource Health: Available); nothing to power off"
    assert mutating(armsim) == []


def test_forced_power_off_of_a_healthy_vm_is_withheld_without_consent(armsim: Any, azure: Azure) -> None:
    out = ACTION.apply(azure, params("vm-healthy", force=True))
    assert out.status == "withheld" and out.changes[0].disruptive
    assert "consent" in out.reason
    assert mutating(armsim) == [] and power(armsim, "vm-healthy") == "running"
    done = ACTION.apply(azure, params("vm-healthy", force=True), consent=True)
    assert done.status == "changed" and power(armsim, "vm-healthy") == "stopped"


def test_read_only_preview_of_every_demo_vm(armsim: Any) -> None:
    ro = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                           ca_bundle=armsim.ca_bundle, read_only=True))
    plans = {vm: ACTION.preview(ro, params(vm)) for vm in DEMO_VMS}
    assert [vm for vm, p in plans.items() if not p.empty] == ["vm-rdp-shutdown"]
    assert all(p.reason for p in plans.values() if p.empty)
    assert mutating(armsim) == []


@pytest.mark.parametrize("fault", [
    {"kind": "throttle", "retry_after": 1},
    {"kind": "server_error"},
    {"kind": "unavailable", "retry_after": 1},
    {"kind": "reset"},
    {"kind": "conflict"},
    {"kind": "status", "status": 409, "code": "OperationNotAllowed",
     "message": "Operation 'powerOff' is not allowed on VM 'vm-rdp-shutdown' since another operation "
                "('start') is in progress."},
])
def test_transient_faults_on_power_off_end_in_success(armsim: Any, azure: Azure, fault: dict[str, Any]) -> None:
    f = armsim.sim.faults.add(operation="VirtualMachines_PowerOff", **fault)
    out = ACTION.apply(azure, params("vm-rdp-shutdown"))
    assert out.status == "changed", out
    assert f.hits >= 2 and power(armsim, "vm-rdp-shutdown") == "stopped"


def test_409_operation_not_allowed_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="status", status=409, code="OperationNotAllowed", operation="VirtualMachines_PowerOff",
                          message="Operation 'powerOff' is not allowed on VM 'vm-rdp-shutdown' since the VM is "
                                  "either deallocated or marked to be deallocated.")
    out = ACTION.apply(azure, params("vm-rdp-shutdown"))
    assert out.status == "failed" and out.error_code == "OperationNotAllowed" and out.error_status == 409, out
    assert power(armsim, "vm-rdp-shutdown") == "running"


def test_lro_failed_power_off_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="lro_failed", operation="VirtualMachines_PowerOff")
    out = ACTION.apply(azure, params("vm-rdp-shutdown"))
    assert out.status == "failed" and out.error_code == "InternalOperationError", out
    assert power(armsim, "vm-rdp-shutdown") == "running"
