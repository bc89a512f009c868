"""restart-guest-agent, and what the in-guest actions share: the Run Command gate, script steps, the Ready wait.

Run Command runs inside the guest through the guest agent, so every in-guest step needs a running VM
whose agent reports Ready. When the agent does not answer, the only remedy from outside is a restart
of the VM through the platform (disruptive, needs consent), or an offline repair through a repair VM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ..action import Action, ActionParams
from ..azure import Azure, is_transient, poll_pause
from ..errors import ArmCallError, arm_error
from ..model import Change, Plan
from ..reads import ScriptFailed, VmView, read_vm, run_script, shut_down_inside
from ..target import Target

__all__ = ["AgentFacts", "GuestFacts", "RestartGuestAgent", "WaitParams", "guest_gate", "script_step",
           "wait_agent_ready"]

_SETTLING = {"updating", "transitioning", "creating"}
_BROKEN = {"failed", "deleting"}


class WaitParams(ActionParams):
    """Common parameters plus how long to wait for the guest agent to report Ready after a restart."""

    wait_ready_seconds: float = Field(300.0, ge=0, le=3600,
                                      description="how long to wait for the agent to report Ready after a restart")
    poll_seconds: float = Field(5.0, gt=0, le=60, description="seconds between instance-view reads while waiting")


@dataclass(frozen=True)
class GuestFacts:
    """The VM view and, when the gate let it run, the result of the action's read-only script."""

    vm: VmView
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class AgentFacts:
    """The VM view, Resource Health (read only when the agent is silent), and whether we restarted already."""

    vm: VmView
    health: dict[str, Any] | None = None
    restarted: bool = False


def _stopped(vm: VmView, name: str) -> str:
    state = vm.power_state if vm.power_state and vm.power_state not in ("running", "stopped") else "stopped"
    return f"{name} is {state}; start it first"


def _silent(vm: VmView, name: str) -> str:
    detail = vm.agent_message or "no status reported"
    return f"the guest agent on {name} is not responsive ({vm.agent_status or 'no status'}: {detail})"


def guest_gate(action: str, target: Target, vm: VmView, os_type: str, what: str) -> Plan | None:
    """An empty Plan saying why a Run Command action cannot run here (wrong OS, stopped, agent silent), or None."""
    name = vm.name or target.name
    if (vm.os_type or "").lower() != os_type.lower():
        return Plan(action=action, target=str(target),
                    reason=f"{name} runs {vm.os_type or 'an unknown OS'}; {what} applies to {os_type}")
    if not vm.running:
        return Plan(action=action, target=str(target), reason=_stopped(vm, name))
    if not vm.agent_ready:
        return Plan(action=action, target=str(target),
                    reason=_silent(vm, name) + "; Run Command needs a responsive agent",
                    manual=[f"make the agent answer first: run restart-guest-agent on {name} (it restarts {name} "
                            "through the platform when the agent is hung; a guest shut down from inside needs "
                            "power-off and start instead), then retry this action"])
    return None


def script_step(azure: Azure, target: Target, script_id: str) -> dict[str, Any]:
    """Run a fixed script; a script that reports an error ends as an ArmCallError carrying the script's code."""
    try:
        return run_script(azure, target, script_id)
    except ScriptFailed as e:
        raise ArmCallError(None, e.code, str(e)) from None


def wait_agent_ready(azure: Azure, target: Target, seconds: float, poll: float) -> str:
    """Poll the instance view until the agent reports Ready (bounded); returns the evidence line."""
    start = time.monotonic()
    deadline = start + seconds
    while True:
        try:
            vm = read_vm(azure, target)
            if vm.running and vm.agent_ready:
                return (f"guest agent on {target.name} Ready (version {vm.agent_version or 'unknown'}) after "
                        f"{time.monotonic() - start:.0f} s")
            pause = poll
        except Exception as e:  # a transient read failure while the VM comes back: keep polling
            if not is_transient(e):
                raise
            pause = poll_pause(e, poll)
        now = time.monotonic()
        if now >= deadline:
            return f"guest agent on {target.name} not Ready after {seconds:.0f} s"
        time.sleep(min(pause, deadline - now))


class RestartGuestAgent(Action[WaitParams, AgentFacts]):
    """Restart the guest agent through Run Command, or the VM through the platform when the agent is silent."""

    name = "restart-guest-agent"
    summary = "restart the VM guest agent (walinuxagent/waagent or WindowsAzureGuestAgent)"
    Params = WaitParams
    disruptive = True  # only the platform restart, planned when the agent does not answer

    def __init__(self) -> None:
        self._restarted: set[str] = set()

    def read(self, azure: Azure, params: WaitParams) -> AgentFacts:
        """The VM with its instance view; Resource Health only when the VM runs and the agent is silent."""
        vm = read_vm(azure, params.target)
        health = None
        if vm.running and not vm.agent_ready:
            from azure.core.exceptions import HttpResponseError

            try:
                status = azure.call(azure.health.availability_statuses.get_by_resource, vm.id.lstrip("/"))
                health = (status.as_dict() if hasattr(status, "as_dict") else dict(status)).get("properties") or {}
            except HttpResponseError as e:  # advisory only: without it, a silent agent is taken as hung
                if is_transient(e):
                    raise
                health = {"error": arm_error(e).code}
        return AgentFacts(vm, health, params.target.id.lower() in self._restarted)

    def plan(self, facts: AgentFacts, params: WaitParams) -> Plan:
        """Platform restart when the agent is silent; Run Command restart when it answers but is stuck, or forced."""
        vm, t = facts.vm, params.target
        name = vm.name or t.name
        linux = (vm.os_type or "").lower() == "linux"
        empty = Plan(action=self.name, target=str(t))
        if not vm.running:
            return empty.model_copy(update={"reason": _stopped(vm, name)})
        if not vm.agent_ready:
            if shut_down_inside(facts.health):
                summary = str((facts.health or {}).get("summary") or "Unavailable, customer initiated")
                return empty.model_copy(update={
                    "reason": f"the guest OS of {name} was shut down from inside ({summary}); the agent is not hung",
                    "manual": [f"shut {name} down through the platform (power-off), then start it; do not shut it "
                               "down from inside the guest"]})
            unread = [f"Resource Health of {name} could not be read ({facts.health['error']}); the silent agent "
                      "is taken as hung"] if facts.health and facts.health.get("error") else []
            return empty.model_copy(update={"changes": [self._platform(vm, t, name, linux)],
                                            "manual": [_repair(t, linux)], "notes": unread})
        ext = vm.backup_extension()
        problems: list[str] = []
        notes: list[str] = []
        if ext is not None and ext.state.lower() in _BROKEN:
            notes.append(f"the backup extension {ext.name} on {name} is {ext.state}: restarting the agent does not "
                         "repair it; remove-backup-extension does")
        elif ext is not None and ext.state.lower() in _SETTLING:
            problems.append(f"the backup extension {ext.name} is stuck in {ext.state} while the agent answers")
        elif ext is not None and ext.handler_status and ext.handler_status.lower() != "ready":
            problems.append(f"the handler of {ext.name} reports {ext.handler_status} while the agent answers")
        if not problems and params.force and not facts.restarted:
            problems.append(f"forced: the guest agent on {name} is Ready and would not be restarted otherwise")
        if not problems:
            agent = f"the guest agent on {name} is Ready (version {vm.agent_version or 'unknown'})"
            if facts.restarted:
                reason = f"{agent} after the restart"
            elif ext is None:
                reason = f"{agent} and no backup extension is installed; nothing to restart"
            elif notes:
                reason = f"{agent}; nothing an agent restart would fix"
            else:
                reason = f"{agent} and the backup extension {ext.name} is healthy; nothing to restart"
            return empty.model_copy(update={"reason": reason, "notes": notes})
        what = "walinuxagent/waagent" if linux else "WindowsAzureGuestAgent"
        change = Change(action=self.name, kind="run", resource=f"{name}/guest-agent/{what}", resource_id=vm.id,
                        summary=f"restart {what} on {name} through Run Command",
                        reason="; ".join(problems),
                        data={"how": "run-command",
                              "script": "linux-agent-restart" if linux else "windows-agent-restart"})
        return empty.model_copy(update={"changes": [change], "notes": notes})

    def _platform(self, vm: VmView, t: Target, name: str, linux: bool) -> Change:
        return Change(action=self.name, kind="run", resource=name, resource_id=vm.id,
                      summary=f"restart {name} through the platform",
                      reason=_silent(vm, name) + " while the VM runs; Run Command cannot reach it, a reboot "
                                                 "restarts the agent",
                      before={"power": vm.power_state, "agent": vm.agent_status},
                      after={"power": "running", "agent": "Ready"},
                      disruptive=True, data={"how": "platform", "os": "Linux" if linux else "Windows"})

    def execute(self, azure: Azure, params: WaitParams, change: Change) -> str | None:
        """Restart (the agent via Run Command, or the VM via the platform), then wait for the agent to be Ready."""
        t = params.target
        if change.data.get("how") == "platform":
            azure.call(lambda: azure.compute.virtual_machines.begin_restart(t.resource_group, t.name).result())
            done = f"restarted {t.name} through the platform"
        else:
            out = script_step(azure, t, change.data["script"])
            unit = out.get("unit") or out.get("service") or "the agent"
            done = f"restarted {unit} on {t.name} through Run Command"
        self._restarted.add(t.id.lower())
        return f"{done}; {wait_agent_ready(azure, t, params.wait_ready_seconds, params.poll_seconds)}"


def _repair(t: Target, linux: bool) -> str:
    g, n = t.resource_group, t.name
    if linux:
        return (f"if the agent still does not answer after the restart, repair it offline: az vm repair create -g {g} "
                f"-n {n} --verbose; on the repair VM, chroot into the attached OS disk and reinstall or update "
                "walinuxagent/WALinuxAgent from the distribution repository (never from source), set "
                f"AutoUpdate.Enabled=y and enable the unit; az vm repair restore -g {g} -n {n} --verbose")
    return (f"if the agent still does not answer after the restart, repair it offline: az vm repair create -g {g} "
            f"-n {n} --verbose; az vm repair run -g {g} -n {n} --run-id win-GA-fix --verbose --run-on-repair; "
            f"az vm repair restore -g {g} -n {n} --verbose")
