"""power-off: stop a running VM through the platform (POST powerOff, not deallocate); always disruptive.

The 2017 playbook's C4 fix was "power the VM off through the platform" because a guest shut down
from inside left the platform reporting running. Azure no longer does: such a VM shows
PowerState/stopped ("shutdown from within the guest OS", azure-docs states-billing.md) and Resource
Health annotates it VirtualMachineStoppedInternally (resource-health-vm-annotation.md). So for C4
there is nothing to power off: the platform already counts the VM stopped, and a backup of it is
crash-consistent (backup-support-matrix-iaas.md). What is left is a person's decision, which this
action states as manual steps: start the VM through the platform if it should run (application-
consistent backups need it running), or deallocate it if it should stay off (a stopped VM is still
billed). Powering off a running VM stops its workload, so a change is planned only with `force`
and always needs consent; for a VM that is down there is nothing to power off, and the plan says that
it is not disruptive then (`--help` lists power-off as disruptive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from ..action import Action, ActionParams, Executed, Progress
from ..azure import Azure
from ..model import Change, Plan
from ..reads import STOPPED_INTERNALLY, VmView, read_health, read_vm, shut_down_inside

__all__ = ["PowerFacts", "PowerOff", "PowerParams", "stop_steps"]

_STOPPED = ("stopped", "deallocated")
_SETTLING = ("stopping", "deallocating", "starting")


class PowerParams(ActionParams):
    """The VM and `force`; `powered_off_at` is set only by verify_params (the re-plan after this run's power-off)."""

    powered_off_at: datetime | None = None


@dataclass(frozen=True)
class PowerFacts:
    """What the plan needs: the VM (power state) and, when it is stopped, its Resource Health status."""

    vm: VmView
    health: dict[str, Any] | None


def stop_steps(group: str, name: str) -> list[str]:
    """A person's choice for a VM its guest shut down: start it through the platform, or deallocate it."""
    return [f"{name} was shut down from inside its guest and is stopped but still allocated (billed). If it should "
            f"run, start it through the platform: az vm start -g {group} -n {name} (application-consistent backups "
            "need it running). If it should stay off, deallocate it to stop compute billing: "
            f"az vm deallocate -g {group} -n {name}. Shut it down through the platform next time, not from inside."]


class PowerOff(Action[PowerParams, PowerFacts]):
    """Power a running VM off through the platform, only when forced; a stopped VM is left as it is."""

    name = "power-off"
    summary = "stop a running VM through the platform (power off, not deallocate); only with --force"
    Params = PowerParams
    disruptive: ClassVar[bool] = True  # for a running VM; a VM that is down has nothing to power off
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.ResourceHealth/availabilityStatuses/read",
        "Microsoft.Compute/virtualMachines/powerOff/action", "Microsoft.Compute/locations/operations/read")

    def read(self, azure: Azure, params: PowerParams) -> PowerFacts:
        """The VM with its instance view; Resource Health only when it is stopped (who stopped it)."""
        vm = read_vm(azure, params.target)
        health = read_health(azure, vm.id or params.target.id) if vm.power_state == "stopped" else None
        return PowerFacts(vm, health)

    def plan(self, facts: PowerFacts, params: PowerParams) -> Plan:
        """Nothing for a stopped VM (not disruptive; manual steps when its guest shut it down); a `run` power-off
        only when forced."""
        vm, t = facts.vm, params.target
        name = t.name
        plan = Plan(action=self.name, target=str(t))
        power = vm.power_state or "unknown"
        if power in _STOPPED:
            inside = shut_down_inside(facts.health)
            who = (f"its guest was shut down from inside (Resource Health: {STOPPED_INTERNALLY})" if inside
                   else "stopped through the platform")
            plan.reason = (f"{name} is stopped (PowerState/{power}) after the power-off"
                           if params.powered_off_at is not None and not inside else
                           f"{name} is stopped (PowerState/{power}), {who}; nothing to power off, so nothing "
                           "disruptive is done")
            if inside:
                plan.notes.append(f"a backup of {name} while it is stopped is crash-consistent")
                plan.manual.extend(stop_steps(t.resource_group, name))
            return plan
        if power in _SETTLING or not vm.running:
            plan.reason = f"{name} is in PowerState/{power}; run {self.name} again once it settles"
            return plan
        if not params.force:
            plan.reason = (f"{name} is running (guest agent {vm.agent_status or 'status missing'}); powering it off "
                           "stops its workload, so it is done only with --force")
            return plan
        plan.changes.append(Change(
            action=self.name, kind="run", resource=name, resource_id=vm.id or t.id,
            summary=f"power off {name} through the platform (not deallocate)",
            reason=f"forced: {name} is running; powering off stops its workload",
            before={"power": power}, after={"power": "stopped"}, disruptive=True))
        plan.notes.append(f"{name} stays stopped and billed until deallocated; start it with "
                          f"az vm start -g {t.resource_group} -n {name}")
        return plan

    def execute(self, azure: Azure, params: PowerParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """POST powerOff and wait for the long-running operation."""
        t = params.target
        azure.call(lambda: azure.compute.virtual_machines.begin_power_off(t.resource_group, t.name).result())
        return Executed(f"powered off {t.name} through the platform",
                        {"powered_off_at": datetime.now(timezone.utc).isoformat()})

    def verify_params(self, params: PowerParams, result: dict[str, Any]) -> PowerParams:
        """The re-plan after a power-off of this run states the VM stopped by it (not "nothing to power off")."""
        when = result.get("powered_off_at")
        return params if not when else params.model_copy(update={"powered_off_at": datetime.fromisoformat(when)})
