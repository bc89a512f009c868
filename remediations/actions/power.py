"""power-off: stop a VM through the platform when its guest was shut down from inside (playbook C4).

Symptom: the platform reports PowerState/running while the guest OS is down (someone shut it down
over RDP/SSH); backups then fail with UserErrorGuestAgentStatusUnavailable. Resource Health tells
this apart from a hung agent: it reports the VM Unavailable, "Customer Initiated". Powering the VM
off through the platform (POST powerOff, not deallocate) makes the states agree, and a backup of a
platform-stopped VM succeeds (crash-consistent).

Disruption: the action is disruptive by default (`disruptive = True`): powering off a VM whose
guest is up stops its workload. Only when Resource Health says the guest is already down is the
change planned with `disruptive=False`, because nothing running is interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..action import Action, ActionParams
from ..azure import Azure
from ..model import Change, Plan
from ..reads import VmView, read_vm, shut_down_inside

__all__ = ["Health", "PowerFacts", "PowerOff", "guest_shut_down", "read_health"]

_STOPPED = ("stopped", "stopping", "deallocated", "deallocating")


@dataclass(frozen=True)
class Health:
    """The VM's Resource Health availability status: state, reason type and summary."""

    state: str
    reason_type: str
    summary: str


@dataclass(frozen=True)
class PowerFacts:
    """What the plan needs: the VM (power state) and what Resource Health says about it."""

    vm: VmView
    health: Health


def read_health(azure: Azure, vm_id: str) -> Health:
    """GET the VM's current availability status (Microsoft.ResourceHealth)."""
    status = azure.call(azure.health.availability_statuses.get_by_resource, resource_uri=vm_id.lstrip("/"))
    props: dict[str, Any] = (status.as_dict() if hasattr(status, "as_dict") else dict(status)).get("properties") or {}
    return Health(str(props.get("availabilityState") or "Unknown"), str(props.get("reasonType") or ""),
                  str(props.get("summary") or ""))


def guest_shut_down(health: Health) -> bool:
    """Whether Resource Health says the guest was shut down by its user (Unavailable, customer initiated)."""
    return shut_down_inside({"availabilityState": health.state, "reasonType": health.reason_type,
                             "summary": health.summary})


class PowerOff(Action[ActionParams, PowerFacts]):
    """Power a VM off through the platform; not disruptive only when its guest is already known down."""

    name = "power-off"
    summary = "stop a VM through the platform (power off, not deallocate) when the guest was shut down inside"
    Params = ActionParams
    # Disruptive unless the guest is known down (then the planned change says disruptive=False).
    disruptive: ClassVar[bool] = True

    def read(self, azure: Azure, params: ActionParams) -> PowerFacts:
        """The VM with its instance view, and its Resource Health availability status."""
        vm = read_vm(azure, params.target)
        return PowerFacts(vm, read_health(azure, vm.id or params.target.id))

    def plan(self, facts: PowerFacts, params: ActionParams) -> Plan:
        """A `run` power-off when the platform says running but the guest is down (or forced)."""
        vm, health = facts.vm, facts.health
        name = params.target.name
        plan = Plan(action=self.name, target=str(params.target))
        power = vm.power_state or "unknown"
        if power in _STOPPED:
            plan.reason = f"{name} is already stopped (PowerState/{power})"
            return plan
        if not vm.running:
            plan.reason = f"{name} is in PowerState/{power}; run {self.name} again once it settles"
            return plan
        down = guest_shut_down(health)
        if not down and not params.force:
            if health.state.lower() == "unavailable":
                plan.reason = (f"{name} is running and Resource Health reports it Unavailable for another "
                               f"reason ({health.reason_type or 'no reason given'}: {health.summary}); "
                               "powering it off would not help")
            else:
                plan.reason = (f"{name} is running and its guest is up (Resource Health: {health.state}); "
                               "nothing to power off")
            return plan
        if down:
            reason = (f"the platform reports PowerState/running but Resource Health says {health.state} "
                      f"({health.reason_type}): {health.summary}")
            plan.notes.append(f"a backup of {name} after the power-off is crash-consistent")
            plan.notes.append(f"{name} stays stopped (compute is still billed until deallocated); start it when "
                              f"you want it back: az vm start -g {params.target.resource_group} -n {name}")
        else:
            reason = (f"forced: {name} is running and its guest is up (Resource Health: {health.state}); "
                      "powering off stops its workload")
        plan.changes.append(Change(
            action=self.name, kind="run", resource=name, resource_id=vm.id or params.target.id,
            summary=f"power off {name} through the platform (not deallocate)", reason=reason,
            before={"power": power, "availability": health.state}, after={"power": "stopped"},
            disruptive=not down))
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change) -> str | None:
        """POST powerOff and wait for the long-running operation."""
        t = params.target
        azure.call(lambda: azure.compute.virtual_machines.begin_power_off(t.resource_group, t.name).result())
        return f"powered off {t.name} through the platform"
