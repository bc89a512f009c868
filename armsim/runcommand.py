"""Run Command (`POST …/virtualMachines/{vm}/runCommand`) and the guest agent it runs through.

Run Command waits for the agent to report the script's end. A script that restarts, stops or upgrades
the agent inline leaves it Transitioning until it times out (MicrosoftDocs/azure-compute-docs
articles/virtual-machines/{linux,windows}/run-command.md: "The maximum time a script can run is 90
minutes"; Azure/azure-cli issue #14642: restarting walinuxagent during a Run Command hangs it, and
further Run Commands get 409 Conflict meanwhile). The timeout's error code is assumed. A detached
restart lets the Run Command end; the agent restarts `agent_restart_seconds` later (assumed: the
scripts' 10 s delay plus a few seconds to start; `agent_restart_polls` instance-view reads hurry it,
as status polls hurry an operation) and reports no new status until then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, iso
from .guest import SCRIPT_MUTATES, restart_mode, run_script, script_id
from .proxy import probe

if TYPE_CHECKING:
    from .compute import VM
    from .guest import Guest
    from .sim import Simulator

__all__ = ["AGENT_RESTART_POLLS", "AGENT_RESTART_SECONDS", "RUN_COMMAND_TIMEOUT", "agent_time", "run_command",
           "run_command_mutates", "settle_agent"]


def _now() -> str:
    return iso(datetime.now(timezone.utc))


def run_command_mutates(sim: Simulator, r: Request) -> bool:
    """Whether a Run Command POST changes the guest: the script's own flag (unknown scripts count as changing)."""
    body = r.body if isinstance(r.body, dict) else {}
    sid = script_id("\n".join(body.get("script") or []))
    return SCRIPT_MUTATES.get(sid or "", True)


RUN_COMMAND_TIMEOUT = 5400.0  # Settings.extra["run_command_timeout"], simulated seconds
AGENT_RESTART_SECONDS = 15.0  # Settings.extra["agent_restart_seconds"], simulated seconds
AGENT_RESTART_POLLS = 1  # Settings.extra["agent_restart_polls"]: instance-view reads that hurry it
_NEVER = 1 << 30  # status polls: such an operation ends on time only


def settle_agent(vm: VM) -> Guest:
    """The VM's guest, once an instance-view read has counted towards its pending restart (reads hurry it, as
    status polls hurry an operation: `agent_restart_polls`)."""
    g = vm.guest
    if g.pending_restart is not None:
        g.pending_reads -= 1
        if g.pending_reads <= 0:
            g.pending_restart()
    return g


def agent_time(vm: VM) -> str:
    """When the agent last reported: frozen while a detached restart is pending, else now (never before the
    restarted agent's first report, should reads have hurried the restart)."""
    g = vm.guest
    return g.agent_report_time or max(_now(), g.agent_started_at or "")


def _setting(sim: Simulator, name: str, default: float) -> float:
    value = sim.settings.extra.get(name, default)
    return float(value) if isinstance(value, (int, float)) and value >= 0 else default


def _unreachable(vm: VM) -> ArmError:
    return ArmError(409, "VMAgentStatusCommunicationError",
                    f"VM '{vm.name}' has not reported status for VM agent or extensions. Verify that the OS "
                    "is up and healthy, the VM has a running VM agent, and that it can establish outbound "
                    "connections to Azure storage.")


def _hang(sim: Simulator, r: Request, vm: VM, text: str) -> Response:
    """An inline agent restart: the script runs (the agent restarts) but the Run Command never hears back."""
    run_script(vm.guest, text)

    def timed_out() -> None:
        ext = "RunCommandLinux" if vm.guest.os_type == "Linux" else "RunCommandWindows"
        raise ArmError(500, "VMExtensionProvisioningTimeout",
                       f"Provisioning of VM extension {ext} has timed out. Extension provisioning has taken too "
                       "long to complete. The extension did not report a message.")

    def release() -> None:
        vm.run_command_busy = False

    op = sim.start_operation(r, polls=_NEVER, seconds=_setting(sim, "run_command_timeout", RUN_COMMAND_TIMEOUT),
                             apply=timed_out, release=release, own_time=True)  # its timeout, not --op-seconds
    return sim.accepted(r, op, "Microsoft.Compute")


def _schedule_restart(sim: Simulator, vm: VM, restart: Callable[[], None], due: datetime) -> None:
    """The detached restart lands `agent_restart_seconds` later on the simulated clock, or after
    `agent_restart_polls` instance-view reads, whichever comes first; until then the agent's status time stands
    still (it keeps showing its last report)."""
    g = vm.guest
    g.agent_report_time = _now()

    def fire() -> None:
        if g.pending_restart is not fire:  # landed already (by reads or by time), or superseded
            return
        g.pending_restart = None
        if vm.power == "running":
            restart()
        g.agent_report_time = None
        g.agent_started_at = iso(due + timedelta(seconds=1))  # its first report, a second after the restart

    g.pending_restart = fire
    g.pending_reads = int(_setting(sim, "agent_restart_polls", AGENT_RESTART_POLLS))
    sim.ops.start(polls=_NEVER, seconds=max(_setting(sim, "agent_restart_seconds", AGENT_RESTART_SECONDS), 1e-6),
                  apply=fire)


def _parameters(raw: Any) -> dict[str, str]:
    """RunCommandInput `parameters` ([{name, value}], compute.json RunCommandInputParameter: both required
    strings) as name -> value; Linux passes them as environment variables, Windows as script parameters."""
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                            and isinstance(p.get("value"), str) for p in raw):
        raise ArmError(400, "InvalidParameter", "Each Run Command parameter needs a string 'name' and 'value'.")
    return {p["name"]: p["value"] for p in raw}


def run_command(sim: Simulator, r: Request) -> Response:
    """POST …/runCommand: run a recognised script in the guest, as an LRO whose result carries its output."""
    vm = sim.compute.get(r.params)
    body = r.body if isinstance(r.body, dict) else None
    if body is None or not body.get("commandId"):
        raise ArmError(400, "InvalidParameter", "Required parameter 'commandId' is missing (null).")
    command = body["commandId"]
    if command not in ("RunShellScript", "RunPowerShellScript"):
        raise ArmError(400, "InvalidParameter", f"The command id '{command}' is not supported by armsim.")
    want = "Linux" if command == "RunShellScript" else "Windows"
    if vm.guest.os_type != want:
        raise ArmError(409, "OperationNotAllowed",
                       f"Command {command} is not supported for {vm.guest.os_type} VM '{vm.name}'.")
    if vm.power != "running":
        raise ArmError(409, "OperationNotAllowed", "The operation requires the VM to be running (or set to run).")
    if vm.run_command_busy:
        raise ArmError(409, "Conflict", "Run command extension execution is in progress. "
                       "Please wait for completion before invoking a run command.")
    text = "\n".join(body.get("script") or [])
    params = _parameters(body.get("parameters"))
    vm.run_command_busy = True
    if restart_mode(script_id(text), text) == "inline" and vm.guest.responsive:
        return _hang(sim, r, vm, text)
    outcome: dict[str, Any] = {}

    def apply() -> None:
        if not vm.guest.responsive or vm.power != "running":
            raise _unreachable(vm)
        due = datetime.now(timezone.utc) + timedelta(seconds=_setting(sim, "agent_restart_seconds",
                                                                      AGENT_RESTART_SECONDS))
        run = run_script(vm.guest, text, restart_at=iso(due), params=params,
                         probe=lambda host, port: probe(sim, vm, host, port))
        if run.restart is not None:
            _schedule_restart(sim, vm, run.restart, due)
        outcome.update(code=run.code, out=run.out, err=run.err)

    def result() -> dict[str, Any]:
        out, err = outcome["out"], outcome["err"]
        state = "succeeded" if outcome["code"] == 0 else "failed"
        if vm.guest.os_type == "Linux":
            msg = f"Enable {state}: \n[stdout]\n{out}\n[stderr]\n{err}"
            return {"value": [{"code": f"ProvisioningState/{state}", "level": "Info", "displayStatus": "Provisioning "
                               f"{state}", "message": msg}]}
        return {"value": [
            {"code": "ComponentStatus/StdOut/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
             "message": out},
            {"code": "ComponentStatus/StdErr/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
             "message": err}]}

    def release() -> None:
        vm.run_command_busy = False

    op = sim.start_operation(r, apply=apply, result=result, release=release)
    return sim.accepted(r, op, "Microsoft.Compute")
