"""restart-guest-agent, and what the in-guest actions share: the Run Command gate, script steps, the Ready wait.

Run Command runs inside the guest through the guest agent, so every in-guest step needs a running VM
whose agent reports Ready. When the agent does not answer, the only remedy from outside is a restart
of the VM through the platform (disruptive, needs consent), or an offline repair through a repair VM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

from pydantic import Field

from ..action import Action, ActionParams, Executed, Progress, RunSettings
from ..azure import Azure
from ..backupjobs import parse_time
from ..errors import ArmCallError, OperationTimedOut
from ..model import Change, Plan
from ..polling import poll_until
from ..reads import ScriptFailed, VmView, read_vm, run_script
from ..target import Target

__all__ = ["AgentFacts", "GuestFacts", "RestartGuestAgent", "RestartParams", "WaitParams", "agent_status_time",
           "guest_gate", "restart_time", "script_step", "wait_agent", "wait_agent_ready"]

_W = TypeVar("_W", bound="WaitParams")
_SETTLING = {"updating", "transitioning", "creating"}
_BROKEN = {"failed", "deleting"}


class WaitParams(ActionParams):
    """Common parameters plus how long to wait for the guest agent to report Ready after a restart."""

    wait_ready_seconds: float = Field(300.0, ge=0, le=3600,
                                      description="how long to wait for the agent to report Ready after a restart")
    poll_seconds: float = Field(5.0, gt=0, le=60, description="seconds between instance-view reads while waiting")

    @classmethod
    def for_run(cls: type[_W], target: Target, settings: RunSettings, **values: Any) -> _W:
        """A run's Ready wait."""
        return cls.model_validate({"target": target, "wait_ready_seconds": settings.wait_ready_seconds, **values})


class RestartParams(WaitParams):
    """restart-guest-agent parameters: the Ready wait, and since when a restart counts as done."""

    restarted_after: datetime | None = Field(
        None, description="a restart counts as done once the agent reports Ready after this time (apply's "
                          "verification sets it to the restart's own time)")


@dataclass(frozen=True)
class GuestFacts:
    """The VM view and, when the gate let it run, the result of the action's read-only script."""

    vm: VmView
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class AgentFacts:
    """The VM view with its instance view (power state, agent status and the time of its last report)."""

    vm: VmView


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


def script_step(azure: Azure, target: Target, script_id: str,
                parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a fixed script; a script that reports an error ends as an ArmCallError carrying the script's code."""
    try:
        return run_script(azure, target, script_id, parameters)
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
    since = f" since {after.strftime('%H:%M:%SZ')}" if after else ""

    def back(vm: VmView) -> bool:
        reported = agent_status_time(vm)
        return vm.running and vm.agent_ready and (after is None or (reported is not None and reported > after))

    try:  # a transient read failure while the VM comes back is one missed poll
        vm = poll_until(lambda: read_vm(azure, target), back, name=f"the guest agent on {target.name}",
                        interval=poll, seconds=seconds, cap=azure.config.retry.retry_after_cap,
                        status=lambda v: v.agent_status or "no status")
    except OperationTimedOut:
        return False, f"guest agent on {target.name} not Ready{since} after {seconds:.0f} s"
    return True, (f"guest agent on {target.name} Ready{since} (version {vm.agent_version or 'unknown'}) "
                  f"after {time.monotonic() - start:.0f} s")


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


class RestartGuestAgent(Action[RestartParams, AgentFacts]):
    """Restart the guest agent through Run Command, or the VM through the platform when the agent is silent."""

    name = "restart-guest-agent"
    summary = "restart the VM guest agent (walinuxagent/waagent, or RdAgent and WindowsAzureGuestAgent)"
    Params = RestartParams
    disruptive = True  # only the platform restart, planned when the agent does not answer
    # Not idempotent: a forced run restarts the agent again each time; only a re-plan told the restart's own time
    # (verify_params) can see it done, from the agent's report after that time.
    idempotent: ClassVar[bool] = False
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/runCommand/action",
        "Microsoft.Compute/virtualMachines/restart/action", "Microsoft.Compute/locations/operations/read")

    def read(self, azure: Azure, params: RestartParams) -> AgentFacts:
        """The VM with its instance view (a silent agent on a running VM is hung: a guest shut down from
        inside shows PowerState/stopped, states-billing.md, so no Resource Health read is needed)."""
        return AgentFacts(read_vm(azure, params.target))

    def plan(self, facts: AgentFacts, params: RestartParams) -> Plan:
        """Platform restart when the agent is silent; Run Command restart when it answers but is stuck, or forced
        (unless it reported Ready after `restarted_after`)."""
        vm, t = facts.vm, params.target
        name = vm.name or t.name
        linux = (vm.os_type or "").lower() == "linux"
        empty = Plan(action=self.name, target=str(t))
        if not vm.running:
            return empty.model_copy(update={"reason": _stopped(vm, name)})
        if not vm.agent_ready:
            return empty.model_copy(update={"changes": [self._platform(vm, t, name, linux)],
                                            "manual": [_repair(t, linux)]})
        problems, notes = _stuck(vm, name)
        restarted = _reported_after(vm, params.restarted_after)
        if not problems and params.force and not restarted:
            problems.append(f"forced: the guest agent on {name} is Ready and would not be restarted otherwise")
        if not problems:
            return empty.model_copy(update={"reason": _nothing(vm, name, notes, restarted), "notes": notes})
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

    def execute(self, azure: Azure, params: RestartParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Restart (the VM via the platform, or the agent via a detached Run Command restart), then wait for the
        agent to report Ready (after a detached restart: with a status time later than the restart); the result
        names when the restart was due (`restart_at`)."""
        t = params.target
        if change.data.get("how") == "platform":
            sent = datetime.now(timezone.utc)
            azure.call(lambda: azure.compute.virtual_machines.begin_restart(t.resource_group, t.name).result())
            return Executed(f"restarted {t.name} through the platform; "
                            f"{wait_agent_ready(azure, t, params.wait_ready_seconds, params.poll_seconds)}",
                            {"how": "platform", "restart_at": sent.isoformat()})
        out = script_step(azure, t, change.data["script"])
        what = out.get("unit") or " and ".join(out.get("services") or []) or "the agent"
        due = restart_time(out)
        done = (f"scheduled a restart of {what} on {t.name} through Run Command ({out.get('how') or 'detached'}, "
                f"at {due.strftime('%H:%M:%SZ')})")
        back, line = wait_agent(azure, t, params.wait_ready_seconds, params.poll_seconds, after=due)
        if not back:
            line += ("; the restart runs detached in the guest: if the agent does not come back, run "
                     f"restart-guest-agent on {t.name} again (it restarts the VM when the agent is silent)")
        return Executed(f"{done}; {line}", {"how": "run-command", "restart_at": due.isoformat()})

    def verify_params(self, params: RestartParams, result: dict[str, Any]) -> RestartParams:
        """The restart counts as done once the agent reports Ready after the time it was due."""
        due = parse_time(result.get("restart_at"))
        return params if due is None else params.model_copy(update={"restarted_after": due})


def _stuck(vm: VmView, name: str) -> tuple[list[str], list[str]]:
    """(what an agent restart would fix, notes) from the backup extension's state while the agent answers."""
    ext = vm.backup_extension()
    if ext is None:
        return [], []
    if ext.state.lower() in _BROKEN:
        return [], [f"the backup extension {ext.name} on {name} is {ext.state}: restarting the agent does not "
                    "repair it; remove-backup-extension does"]
    if ext.state.lower() in _SETTLING:
        return [f"the backup extension {ext.name} is stuck in {ext.state} while the agent answers"], []
    if ext.handler_status and ext.handler_status.lower() != "ready":
        return [f"the handler of {ext.name} reports {ext.handler_status} while the agent answers"], []
    return [], []


def _reported_after(vm: VmView, when: datetime | None) -> bool:
    """Whether the agent reports Ready with a status time later than `when` (a restart due then has happened)."""
    if when is None or not vm.agent_ready:
        return False
    reported = agent_status_time(vm)
    return reported is not None and reported > (when if when.tzinfo else when.replace(tzinfo=timezone.utc))


def _nothing(vm: VmView, name: str, notes: list[str], restarted: bool) -> str:
    """Why no restart is planned for an agent that answers."""
    agent = f"the guest agent on {name} is Ready (version {vm.agent_version or 'unknown'})"
    ext = vm.backup_extension()
    if restarted:
        return f"{agent} after the restart"
    if ext is None:
        return f"{agent} and no backup extension is installed; nothing to restart"
    if notes:
        return f"{agent}; nothing an agent restart would fix"
    return f"{agent} and the backup extension {ext.name} is healthy; nothing to restart"


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
