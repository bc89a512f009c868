"""restart-guest-agent, and what the in-guest actions share: the Run Command gate, script steps, the Ready wait.

Run Command runs inside the guest through the guest agent, so every in-guest step needs a running VM
whose agent reports Ready. When the agent does not answer, the only remedy from outside is a restart
of the VM through the platform (disruptive, needs consent), or an offline repair through a repair VM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import Field

from ..action import Action, ActionParams
from ..azure import Azure, is_transient, poll_pause
from ..backupjobs import parse_time
from ..errors import ArmCallError
from ..model import Change, Plan
from ..reads import ScriptFailed, VmView, read_vm, run_script
from ..target import Target

__all__ = ["AgentFacts", "GuestFacts", "RestartGuestAgent", "WaitParams", "agent_status_time", "guest_gate",
           "restart_time", "script_step", "wait_agent", "wait_agent_ready"]

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
    """The VM view, and whether we restarted already."""

    vm: VmView
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
                            "through the platform when the agent is hung), then retry this action"])
    return None


def script_step(azure: Azure, target: Target, script_id: str) -> dict[str, Any]:
    """Run a fixed script; a script that reports an error ends as an ArmCallError carrying the script's code."""
    try:
        return run_script(azure, target, script_id)
    except ScriptFailed as e:
        raise ArmCallError(None, e.code, str(e)) from None


def agent_status_time(vm: VmView) -> datetime | None:
    """The time of the agent's last status report in the instance view (UTC), None when absent or unreadable."""
    iv = (vm.raw.get("properties") or {}).get("instanceView") or {}
    statuses = (iv.get("vmAgent") or {}).get("statuses") or []
    return parse_time(statuses[0].get("time")) if statuses else None


def wait_agent(azure: Azure, target: Target, seconds: float, poll: float, *,
               after: datetime | None = None) -> tuple[bool, str]:
    """Poll the instance view until the agent reports Ready, with a status time later than `after` when given
    (a restart scheduled for then has happened), bounded by `seconds`; (whether it did, the evidence line)."""
    start = time.monotonic()
    deadline = start + seconds
    since = f" since {after.strftime('%H:%M:%SZ')}" if after else ""
    while True:
        try:
            vm = read_vm(azure, target)
            reported = agent_status_time(vm)
            if vm.running and vm.agent_ready and (after is None or (reported is not None and reported > after)):
                return True, (f"guest agent on {target.name} Ready{since} (version {vm.agent_version or 'unknown'}) "
                              f"after {time.monotonic() - start:.0f} s")
            pause = poll
        except Exception as e:  # a transient read failure while the VM comes back: keep polling
            if not is_transient(e):
                raise
            pause = poll_pause(e, poll)
        now = time.monotonic()
        if now >= deadline:
            return False, f"guest agent on {target.name} not Ready{since} after {seconds:.0f} s"
        time.sleep(min(pause, deadline - now))


def wait_agent_ready(azure: Azure, target: Target, seconds: float, poll: float, *,
                     after: datetime | None = None) -> str:
    """The evidence line of `wait_agent`."""
    return wait_agent(azure, target, seconds, poll, after=after)[1]


def restart_time(out: dict[str, Any]) -> datetime:
    """When a detached restart is due: the script's `restart_at`, else now plus its `delay` (10 s by default)."""
    due = parse_time(out.get("restart_at"))
    if due is not None:
        return due
    delay = out.get("delay")
    return datetime.now(timezone.utc) + timedelta(seconds=float(delay) if isinstance(delay, (int, float)) else 10.0)


class RestartGuestAgent(Action[WaitParams, AgentFacts]):
    """Restart the guest agent through Run Command, or the VM through the platform when the agent is silent."""

    name = "restart-guest-agent"
    summary = "restart the VM guest agent (walinuxagent/waagent, or RdAgent and WindowsAzureGuestAgent)"
    Params = WaitParams
    disruptive = True  # only the platform restart, planned when the agent does not answer

    def __init__(self) -> None:
        self._restarted: set[str] = set()

    def read(self, azure: Azure, params: WaitParams) -> AgentFacts:
        """The VM with its instance view (a silent agent on a running VM is hung: a guest shut down from
        inside shows PowerState/stopped, states-billing.md, so no Resource Health read is needed)."""
        return AgentFacts(read_vm(azure, params.target), params.target.id.lower() in self._restarted)

    def plan(self, facts: AgentFacts, params: WaitParams) -> Plan:
        """Platform restart when the agent is silent; Run Command restart when it answers but is stuck, or forced."""
        vm, t = facts.vm, params.target
        name = vm.name or t.name
        linux = (vm.os_type or "").lower() == "linux"
        empty = Plan(action=self.name, target=str(t))
        if not vm.running:
            return empty.model_copy(update={"reason": _stopped(vm, name)})
        if not vm.agent_ready:
            return empty.model_copy(update={"changes": [self._platform(vm, t, name, linux)],
                                            "manual": [_repair(t, linux)]})
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
        services = what if linux else "RdAgent and WindowsAzureGuestAgent"
        change = Change(action=self.name, kind="run", resource=f"{name}/guest-agent/{what}", resource_id=vm.id,
                        summary=f"restart {services} on {name} through Run Command (detached)",
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
        """Restart (the VM via the platform, or the agent via a detached Run Command restart), then wait for the
        agent to report Ready (after a detached restart: with a status time later than the restart)."""
        t = params.target
        if change.data.get("how") == "platform":
            azure.call(lambda: azure.compute.virtual_machines.begin_restart(t.resource_group, t.name).result())
            self._restarted.add(t.id.lower())
            return f"restarted {t.name} through the platform; " \
                   f"{wait_agent_ready(azure, t, params.wait_ready_seconds, params.poll_seconds)}"
        out = script_step(azure, t, change.data["script"])
        self._restarted.add(t.id.lower())
        what = out.get("unit") or " and ".join(out.get("services") or []) or "the agent"
        due = restart_time(out)
        done = (f"scheduled a restart of {what} on {t.name} through Run Command ({out.get('how') or 'detached'}, "
                f"at {due.strftime('%H:%M:%SZ')})")
        back, line = wait_agent(azure, t, params.wait_ready_seconds, params.poll_seconds, after=due)
        if not back:
            line += ("; the restart runs detached in the guest: if the agent does not come back, run "
                     f"restart-guest-agent on {t.name} again (it restarts the VM when the agent is silent)")
        return f"{done}; {line}"


def _repair(t: Target, linux: bool) -> str:
    g, n = t.resource_group, t.name
    if linux:
        return (f"if the agent still does not answer after the restart, repair it offline: az vm repair create -g {g} "
                f"-n {n} --verbose; on the repair VM, chroot into the attached OS disk and reinstall or update "
                "walinuxagent/WALinuxAgent from the distribution repository (never from source), set "
                f"auto-update on (AutoUpdate.UpdateToLatestVersion=y, AutoUpdate.Enabled=y where set) and enable the unit; "
                f"az vm repair restore -g {g} -n {n} --verbose")
    return (f"if the agent still does not answer after the restart, repair it offline: az vm repair create -g {g} "
            f"-n {n} --verbose; az vm repair run -g {g} -n {n} --run-id win-GA-fix --verbose --run-on-repair; "
            f"az vm repair restore -g {g} -n {n} --verbose")
