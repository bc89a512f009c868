"""In-guest actions (VSS, iaasvmprovider, Linux agent upgrade, agent restart): real SDK against armsim."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import pytest
from conftest import DEMO_VMS, FAST_RETRY, TRANSIENT_FAULTS, mutating
from pydantic import ValidationError
from support.demo import sim_vm, target
from support.guest import params

from armsim import DEMO_SUBSCRIPTION
from remediations.actions import get_action
from remediations.actions.guest import (
    EnableIaasVmProvider,
    RestartGuestAgent,
    SetVssCopyBackup,
    UpgradeLinuxAgent,
)
from remediations.actions.guest_agent import (
    AgentFacts,
    GuestFacts,
    restart_time,
    script_step,
    wait_agent_ready,
)
from remediations.azure import Azure, AzureConfig
from remediations.backupjobs import parse_time
from remediations.errors import ArmCallError
from remediations.reads import vm_view
from remediations.verdicts import MIN_LINUX_AGENT

ACTIONS = (SetVssCopyBackup, RestartGuestAgent, UpgradeLinuxAgent, EnableIaasVmProvider)
VSS = (r"hklm\software\microsoft\bcdragent", "usevsscopybackup")


def run_commands(armsim: Any) -> list[dict[str, Any]]:
    return [e for e in armsim.sim.requests() if e["operation"] == "VirtualMachines_RunCommand"]


def converge(armsim: Any, azure: Azure, cls: type, name: str, *, consent: bool = False, **kw: Any) -> Any:
    """Apply once (must change), re-plan empty, apply again with zero mutating requests; the first Outcome."""
    first = cls().apply(azure, params(cls, name, **kw), consent=consent)
    assert first.status == "changed", first
    assert cls().preview(azure, params(cls, name)).empty
    armsim.sim.clear_requests()
    second = cls().apply(azure, params(cls, name), consent=consent)
    assert second.status == "unchanged", second
    assert second.reason
    assert mutating(armsim) == []
    return first


# --- the demo VMs that need each fix ---------------------------------------------------------------
def test_catalog_names_resolve() -> None:
    for cls in ACTIONS:
        assert type(get_action(cls.name)) is cls


def test_vss_on_sql_vm(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-sql-vss")
    assert armsim.sim.backup.verdict(vm) == "ExtensionOperationFailedForManagedDisks"
    plan = SetVssCopyBackup().preview(azure, params(SetVssCopyBackup, "vm-sql-vss"))
    [c] = plan.changes
    assert c.kind == "add" and not c.disruptive
    assert c.resource == r"vm-sql-vss/registry/HKLM\SOFTWARE\Microsoft\BcdrAgent\USEVSSCOPYBACKUP"
    assert c.after == {"value": "TRUE", "type": "REG_SZ"}
    assert mutating(armsim) == []  # windows-vss-get is read-only
    out = converge(armsim, azure, SetVssCopyBackup, "vm-sql-vss")
    assert vm.guest.registry_value(*VSS) == ("REG_SZ", "TRUE")
    assert out.evidence[0] == "USEVSSCOPYBACKUP (absent) -> TRUE (REG_SZ)"
    assert armsim.sim.backup.verdict(vm) is None


def test_vss_changes_a_wrong_value(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-sql-vss")
    vm.guest.registry[VSS] = ("REG_SZ", "FALSE")
    [c] = SetVssCopyBackup().preview(azure, params(SetVssCopyBackup, "vm-sql-vss")).changes
    assert c.kind == "change" and c.before == {"value": "FALSE", "type": "REG_SZ"}
    converge(armsim, azure, SetVssCopyBackup, "vm-sql-vss")
    vm.guest.registry[VSS] = ("REG_SZ", "true")  # values compare case-insensitively
    plan = SetVssCopyBackup().preview(azure, params(SetVssCopyBackup, "vm-sql-vss"))
    assert plan.empty and "is true" in plan.reason and "already" not in plan.reason


def test_enable_provider(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-win-provider-disabled")
    assert armsim.sim.backup.verdict(vm) == "BackUpOperationFailed"
    [c] = EnableIaasVmProvider().preview(azure, params(EnableIaasVmProvider, "vm-win-provider-disabled")).changes
    assert c.kind == "change" and c.resource == "vm-win-provider-disabled/services/iaasvmprovider"
    assert c.before == {"start_type": "Disabled", "status": "Stopped"}
    assert c.after == {"start_type": "Automatic", "status": "Running"}
    out = converge(armsim, azure, EnableIaasVmProvider, "vm-win-provider-disabled")
    provider = vm.guest.service("iaasvmprovider")
    assert (provider.start_type, provider.running) == ("Automatic", True)
    assert out.evidence[0] == "iaasvmprovider Disabled -> Automatic (Running)"
    assert armsim.sim.backup.verdict(vm) != "BackUpOperationFailed"


def test_upgrade_old_linux_agent(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-linux-agent-old")
    assert armsim.sim.backup.verdict(vm) == "UserErrorGuestAgentVersionUnsupported"
    [c] = UpgradeLinuxAgent().preview(azure, params(UpgradeLinuxAgent, "vm-linux-agent-old")).changes
    assert c.kind == "change"
    assert c.summary == "upgrade WALinuxAgent from the dnf repository, enable auto-update and automatic restart"
    assert c.before == {"version": "2.2.10", "auto_update": True}
    assert c.after == {"version": f">= {MIN_LINUX_AGENT}", "auto_update": True}
    out = converge(armsim, azure, UpgradeLinuxAgent, "vm-linux-agent-old")
    assert out.evidence[0].startswith("waagent 2.2.10 -> 2.7.0.6 via dnf; guest agent on vm-linux-agent-old Ready since")
    assert vm.guest.agent_restarts == 1
    assert out.result["before"] == "2.2.10" and out.result["after"] == "2.7.0.6"
    assert vm.guest.agent_version == "2.7.0.6" and vm.guest.auto_update
    assert armsim.sim.backup.verdict(vm) is None


def test_upgrade_turns_auto_update_on(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-healthy")
    vm.guest.auto_update = False
    [c] = UpgradeLinuxAgent().preview(azure, params(UpgradeLinuxAgent, "vm-healthy")).changes
    assert "auto-update is off" in c.reason and c.before == {"version": "2.9.1.1", "auto_update": False}
    out = converge(armsim, azure, UpgradeLinuxAgent, "vm-healthy")
    assert out.evidence[0].startswith("walinuxagent 2.9.1.1 -> 2.9.1.1 via apt")
    assert vm.guest.auto_update


def test_restart_hung_windows_agent_through_the_platform(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-win-agent-hung")
    assert armsim.sim.backup.verdict(vm) == "GuestAgentSnapshotTaskStatusError"
    plan = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-win-agent-hung"))
    [c] = plan.changes
    assert (c.kind, c.summary, c.disruptive) == ("run", "restart vm-win-agent-hung through the platform", True)
    assert any("--run-id win-GA-fix" in m and "az vm repair restore -g rg-demo -n vm-win-agent-hung" in m
               for m in plan.manual)
    assert run_commands(armsim) == []  # nothing goes through Run Command while the agent is silent

    held = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-win-agent-hung"))
    assert held.status == "withheld" and "restart vm-win-agent-hung through the platform" in held.reason
    assert mutating(armsim) == [] and vm.guest.agent_hung

    out = converge(armsim, azure, RestartGuestAgent, "vm-win-agent-hung", consent=True)
    assert not vm.guest.agent_hung
    assert out.evidence[0].startswith("restarted vm-win-agent-hung through the platform; guest agent on "
                                      "vm-win-agent-hung Ready")
    assert armsim.sim.backup.verdict(vm) != "GuestAgentSnapshotTaskStatusError"


def test_restart_hung_linux_agent_plans_platform_restart(armsim: Any, azure: Azure) -> None:
    sim_vm(armsim, "vm-healthy").guest.agent_hung = True
    plan = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-healthy", force=True))
    [c] = plan.changes
    assert c.disruptive and c.data["how"] == "platform"
    assert any("walinuxagent/WALinuxAgent from the distribution repository" in m for m in plan.manual)
    out = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-healthy"), consent=True)
    assert out.status == "changed" and not sim_vm(armsim, "vm-healthy").guest.agent_hung
    assert [e["operation"] for e in mutating(armsim)] == ["VirtualMachines_Restart"]


def test_forced_linux_agent_restart_through_run_command(armsim: Any, azure: Azure) -> None:
    plan = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-healthy", force=True))
    [c] = plan.changes
    assert (c.kind, c.disruptive, c.data["script"]) == ("run", False, "linux-agent-restart")
    assert c.summary == "restart walinuxagent/waagent on vm-healthy through Run Command (detached)"
    out = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-healthy", force=True))
    assert out.status == "changed", out
    assert re.match(r"scheduled a restart of walinuxagent on vm-healthy through Run Command \(systemd-run, at "
                    r"\d\d:\d\d:\d\dZ\); guest agent on vm-healthy Ready since \d\d:\d\d:\d\dZ", out.evidence[0])
    assert sim_vm(armsim, "vm-healthy").guest.agent_restarts == 1  # it waited for the restart itself
    assert "after the restart" in out.reason
    assert [e["operation"] for e in mutating(armsim)] == ["VirtualMachines_RunCommand"]
    armsim.sim.clear_requests()
    assert RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-healthy")).status == "unchanged"
    assert mutating(armsim) == []


def test_restart_when_backup_extension_is_stuck(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-sql-vss")
    vm.extensions["vmsnapshot"].state = "Updating"
    [c] = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-sql-vss")).changes
    assert c.data["script"] == "windows-agent-restart" and not c.disruptive
    assert "stuck in Updating" in c.reason


def test_restart_leaves_failed_extension_and_inside_shutdown_alone(armsim: Any, azure: Azure) -> None:
    plan = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-ext-failed"))
    assert plan.empty and "remove-backup-extension" in plan.notes[0]
    plan = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-rdp-shutdown"))
    # a guest shut down from inside shows PowerState/stopped (issue #9): nothing to restart, start it first
    assert plan.empty and not plan.changes and plan.reason == "vm-rdp-shutdown is stopped; start it first"
    assert mutating(armsim) == []


def test_a_silent_agent_on_a_running_vm_is_hung_without_a_health_read(armsim: Any, azure: Azure) -> None:
    """Issue #9: a guest shut down from inside shows PowerState/stopped, so a silent agent on a running VM is
    hung, and Resource Health is not asked (before, it was read to rule out a shutdown the platform missed)."""
    plan = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-win-agent-hung"))
    assert plan.changes[0].disruptive and not plan.notes
    assert not [e for e in armsim.sim.requests() if e["operation"] == "AvailabilityStatuses_GetByResource"]


def test_stopped_vm(armsim: Any, azure: Azure) -> None:
    for name in ("vm-healthy", "vm-sql-vss"):
        sim_vm(armsim, name).power = "stopped"
    plan = RestartGuestAgent().preview(azure, params(RestartGuestAgent, "vm-healthy", force=True))
    assert plan.empty and plan.reason == "vm-healthy is stopped; start it first"
    plan = SetVssCopyBackup().preview(azure, params(SetVssCopyBackup, "vm-sql-vss"))
    assert plan.empty and plan.reason == "vm-sql-vss is stopped; start it first"
    assert run_commands(armsim) == []


def test_script_actions_need_a_responsive_agent(armsim: Any, azure: Azure) -> None:
    sim_vm(armsim, "vm-linux-agent-old").guest.agent_hung = True
    for cls, name in ((SetVssCopyBackup, "vm-win-agent-hung"), (EnableIaasVmProvider, "vm-win-agent-hung"),
                      (UpgradeLinuxAgent, "vm-linux-agent-old")):
        out = cls().apply(azure, params(cls, name))
        assert out.status == "unchanged"
        assert "not responsive" in out.reason and "Run Command needs a responsive agent" in out.reason
        assert "restart-guest-agent" in out.manual[0]
    assert run_commands(armsim) == [] and mutating(armsim) == []


def test_wrong_os_reason(armsim: Any, azure: Azure) -> None:
    plan = SetVssCopyBackup().preview(azure, params(SetVssCopyBackup, "vm-healthy"))
    assert plan.reason == "vm-healthy runs Linux; the VSS registry key applies to Windows"
    plan = UpgradeLinuxAgent().preview(azure, params(UpgradeLinuxAgent, "vm-sql-vss"))
    assert plan.reason == "vm-sql-vss runs Windows; the Linux agent upgrade applies to Linux"


@pytest.mark.parametrize("cls", ACTIONS, ids=lambda c: c.name)
def test_healthy_vm_needs_nothing(armsim: Any, azure: Azure, cls: type) -> None:
    plan = cls().preview(azure, params(cls, "vm-healthy"))
    assert plan.empty and plan.reason
    out = cls().apply(azure, params(cls, "vm-healthy"))
    assert out.status == "unchanged" and out.reason == plan.reason
    assert mutating(armsim) == []


def test_read_only_preview_everywhere(armsim: Any) -> None:
    ro = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                           ca_bundle=armsim.ca_bundle, read_only=True, retry=FAST_RETRY))
    planned = set()
    for cls in ACTIONS:
        for name in DEMO_VMS:
            plan = cls().preview(ro, params(cls, name))
            assert plan.changes or plan.reason, (cls.name, name)
            planned |= {(cls.name, name)} if plan.changes else set()
    assert mutating(armsim) == []
    assert {("set-vss-copy-backup", "vm-sql-vss"), ("restart-guest-agent", "vm-win-agent-hung"),
            ("upgrade-linux-agent", "vm-linux-agent-old"),
            ("enable-iaasvmprovider", "vm-win-provider-disabled")} <= planned


# --- faults on the Run Command POST -----------------------------------------------------------------
def bounded_reads(azure: Azure) -> Azure:
    """The same real clients with a 5 s read timeout (AzureConfig.read_timeout): a `reset` fault aborts the TCP
    connection, and should the client's side of a kept-alive TLS connection not see the reset, it waits for an
    answer that never comes; the bound turns that into the timeout a real client would see, which is retried."""
    return Azure(dataclasses.replace(azure.config, read_timeout=5))


@pytest.mark.parametrize("skip", [0, 1], ids=["on-read", "on-write"])
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=lambda f: f["kind"])
def test_transient_run_command_faults_are_retried(armsim: Any, azure: Azure, fault: dict[str, Any],
                                                 skip: int) -> None:
    if fault["kind"] == "reset":
        azure = bounded_reads(azure)
    armsim.sim.faults.add(method="POST", operation="VirtualMachines_RunCommand", count=1, skip=skip, **fault)
    out = SetVssCopyBackup().apply(azure, params(SetVssCopyBackup, "vm-sql-vss"))
    assert out.status == "changed", out
    assert sim_vm(armsim, "vm-sql-vss").guest.registry_value(*VSS) == ("REG_SZ", "TRUE")
    statuses = [e["status"] for e in run_commands(armsim)]
    # The faulted POST (the probe, or the write) answered with the fault, and was sent again: on the read, the
    # probe once more; on the write, a re-read (the probe) and the write. Then the verifying probe.
    assert statuses[skip] in (0, 409, 429, 500, 503), statuses
    assert len(statuses) == (4 if skip == 0 else 5), statuses
    assert all(s == 202 for i, s in enumerate(statuses) if i != skip), statuses


@pytest.mark.parametrize(("fault", "code"), [({"kind": "lro_failed"}, "InternalOperationError"),
                                             ({"kind": "precondition"}, "PreconditionFailedEtagMismatch")],
                         ids=["lro_failed", "precondition"])
def test_failed_run_command_is_a_clean_failure(armsim: Any, azure: Azure, fault: dict[str, Any],
                                               code: str) -> None:
    armsim.sim.faults.add(method="POST", operation="VirtualMachines_RunCommand", count=1, skip=1, **fault)
    out = EnableIaasVmProvider().apply(azure, params(EnableIaasVmProvider, "vm-win-provider-disabled"))
    assert (out.status, out.error_code) == ("failed", code), out
    assert sim_vm(armsim, "vm-win-provider-disabled").guest.service("iaasvmprovider").start_type == "Disabled"
    assert EnableIaasVmProvider().apply(azure, params(EnableIaasVmProvider, "vm-win-provider-disabled")).status \
        == "changed"


def test_upgrade_survives_a_throttled_write(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="throttle", retry_after=1, method="POST", operation="VirtualMachines_RunCommand",
                          count=1, skip=1)
    out = UpgradeLinuxAgent().apply(azure, params(UpgradeLinuxAgent, "vm-linux-agent-old"))
    assert out.status == "changed" and sim_vm(armsim, "vm-linux-agent-old").guest.agent_version == "2.7.0.6"


def test_platform_restart_faults(armsim: Any, azure: Azure) -> None:
    armsim.sim.faults.add(kind="conflict", method="POST", operation="VirtualMachines_Restart", count=1)
    out = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-win-agent-hung"), consent=True)
    assert out.status == "changed"
    armsim.sim.reset("demo")
    armsim.sim.faults.add(kind="lro_failed", method="POST", operation="VirtualMachines_Restart", count=1)
    out = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-win-agent-hung"), consent=True)
    assert (out.status, out.error_code) == ("failed", "InternalOperationError")
    assert sim_vm(armsim, "vm-win-agent-hung").guest.agent_hung


def test_script_error_becomes_arm_call_error(armsim: Any, azure: Azure) -> None:
    del sim_vm(armsim, "vm-win-provider-disabled").guest.services["iaasvmprovider"]
    with pytest.raises(ArmCallError) as e:
        script_step(azure, target("vm-win-provider-disabled"), "windows-provider-enable")
    assert e.value.code == "service-missing"
    plan = EnableIaasVmProvider().preview(azure, params(EnableIaasVmProvider, "vm-win-provider-disabled"))
    assert plan.empty and "not installed" in plan.reason


def test_wait_for_ready_is_bounded(armsim: Any, azure: Azure) -> None:
    note = wait_agent_ready(azure, target("vm-win-agent-hung"), 0.05, 0.01)
    assert note == "guest agent on vm-win-agent-hung not Ready after 0 s"
    assert wait_agent_ready(azure, target("vm-healthy"), 1, 0.01).startswith("guest agent on vm-healthy Ready")


# --- parameters ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "bad"), [
    (SetVssCopyBackup, {"value": "TRUE"}),
    (EnableIaasVmProvider, {"start_type": "Manual"}),
    (RestartGuestAgent, {"poll_seconds": 0}),
    (RestartGuestAgent, {"wait_ready_seconds": -1}),
    (UpgradeLinuxAgent, {"minimum_version": "abc"}),
    (UpgradeLinuxAgent, {"minimum_version": "2"}),
    (UpgradeLinuxAgent, {"minimum_versoin": "2.2.53"}),
], ids=str)
def test_bad_params_rejected_before_any_request(armsim: Any, cls: type, bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        cls.params(target=target("vm-healthy"), **bad)
    assert armsim.sim.requests() == []


# --- pure plans ---------------------------------------------------------------------------------------
def view(os_type: str = "Linux", *, agent: str | None = "Ready", power: str = "running",
         ext_state: str = "Succeeded", reported: str | None = None) -> Any:
    ext_type = "VMSnapshotLinux" if os_type == "Linux" else "VMSnapshot"
    iv: dict[str, Any] = {"statuses": [{"code": f"PowerState/{power}"}]}
    if agent:
        status = {"displayStatus": agent, **({"time": reported} if reported else {})}
        iv["vmAgent"] = {"vmAgentVersion": "2.9.1.1", "statuses": [status], "extensionHandlers": [
            {"type": f"Microsoft.Azure.RecoveryServices.{ext_type}",
             "status": {"displayStatus": "Ready" if ext_state == "Succeeded" else "Not Ready"}}]}
    return vm_view({"id": target("vm-x").id, "name": "vm-x", "properties": {
        "storageProfile": {"osDisk": {"osType": os_type}}, "instanceView": iv},
        "resources": [{"name": ext_type, "properties": {"publisher": "Microsoft.Azure.RecoveryServices",
                                                        "type": ext_type, "provisioningState": ext_state}}]})


STATUS = {"unit": "walinuxagent", "active": True, "enabled": True, "version": "2.9.1.1", "distro": "ubuntu",
          "distro_version": "22.04", "package_manager": "apt", "auto_update": None}


@pytest.mark.parametrize(("change", "planned", "why"), [
    ({}, False, "2.9.1.1 (>= 2.2.53.1) with auto-update on"),
    ({"version": "2.2.53"}, True, "agent 2.2.53 is older than the supported minimum 2.2.53.1"),
    ({"version": "2.2.53.1"}, False, "2.2.53.1 (>= 2.2.53.1)"),
    ({"auto_update": False}, True, "auto-update is off in /etc/waagent.conf"),
    ({"enabled": False}, True, "the walinuxagent unit is not enabled"),
    ({"version": None}, True, "could not be read"),
    ({"version": "2.2.10", "package_manager": None, "distro": "alpine"}, False, "does not support"),
    ({"unit": None, "version": "2.2.10"}, False, "no walinuxagent or waagent unit"),
], ids=str)
def test_upgrade_plan(change: dict[str, Any], planned: bool, why: str) -> None:
    p = UpgradeLinuxAgent.params(target=target("vm-x"))
    plan = UpgradeLinuxAgent().plan(GuestFacts(view(), {**STATUS, **change}), p)
    assert bool(plan.changes) is planned
    assert why in (plan.changes[0].reason if plan.changes else plan.reason)
    if not planned and ("support" in why or "unit" in why):
        assert plan.manual


def test_upgrade_minimum_is_a_setting() -> None:
    p = UpgradeLinuxAgent.params(target=target("vm-x"), minimum_version="2.9.2")
    [c] = UpgradeLinuxAgent().plan(GuestFacts(view(), STATUS), p).changes
    assert c.after == {"version": ">= 2.9.2", "auto_update": True}
    assert "2.2.53.1" in UpgradeLinuxAgent.__doc__ and "support-extensions-agent-version" in UpgradeLinuxAgent.__doc__


def test_provider_plan_pure() -> None:
    p = EnableIaasVmProvider.params(target=target("vm-x"))
    base = {"service": "iaasvmprovider", "exists": True, "start_type": "Manual", "status": "Stopped"}
    [c] = EnableIaasVmProvider().plan(GuestFacts(view("Windows"), base), p).changes
    assert c.before == {"start_type": "Manual", "status": "Stopped"}
    plan = EnableIaasVmProvider().plan(GuestFacts(view("Windows"), {**base, "exists": False, "start_type": None}), p)
    assert plan.empty and "not installed" in plan.reason and plan.manual


def test_restart_plan_pure() -> None:
    p = RestartGuestAgent.params(target=target("vm-x"), force=True)
    [c] = RestartGuestAgent().plan(AgentFacts(view(reported="2026-01-02T03:04:06Z")), p).changes  # forced
    assert c.reason.startswith("forced:")
    # a forced restart is done once the agent reports Ready after the time the restart was due
    done = p.model_copy(update={"restarted_after": parse_time("2026-01-02T03:04:05Z")})
    plan = RestartGuestAgent().plan(AgentFacts(view(reported="2026-01-02T03:04:06Z")), done)
    assert plan.empty and plan.reason.endswith("after the restart")
    assert RestartGuestAgent().plan(AgentFacts(view(reported="2026-01-02T03:04:04Z")), done).changes  # not yet
    assert RestartGuestAgent().plan(AgentFacts(view()), done).changes  # no report time: not proven
    assert RestartGuestAgent().plan(AgentFacts(view(power="deallocated")), p).reason == \
        "vm-x is deallocated; start it first"
    [c] = RestartGuestAgent().plan(AgentFacts(view(agent="Not Ready")), p).changes
    assert c.disruptive
    [c] = RestartGuestAgent().plan(AgentFacts(view(agent=None)), p).changes  # no agent status at all
    assert c.disruptive
    plan = RestartGuestAgent().plan(AgentFacts(view("Windows", ext_state="Transitioning")),
                                    RestartGuestAgent.params(target=target("vm-x")))
    assert plan.changes[0].data["script"] == "windows-agent-restart"


def test_vss_key_is_not_planned_without_sql_server(armsim: Any, azure: Azure) -> None:
    plan = SetVssCopyBackup().preview(azure, params(SetVssCopyBackup, "vm-win-provider-disabled"))
    assert plan.empty and "SQL Server is not installed on vm-win-provider-disabled" in plan.reason
    forced = SetVssCopyBackup().preview(azure, SetVssCopyBackup.Params(
        target=params(SetVssCopyBackup, "vm-win-provider-disabled").target, force=True))
    assert [c.kind for c in forced.changes] == ["add"]
    assert mutating(armsim) == []


def test_restart_time() -> None:
    assert restart_time({"restart_at": "2026-01-02T03:04:05Z"}) == parse_time("2026-01-02T03:04:05+00:00")
    assert parse_time("2019-07-22T19:27:19.4318894+00:00") == parse_time("2019-07-22T19:27:19.431889Z")
    assert parse_time("2019-07-22T21:27:19+02:00") == parse_time("2019-07-22T19:27:19Z")
    assert parse_time("soon") is None and parse_time(None) is None
    due = restart_time({"delay": 10})
    assert 9 < (due - parse_time(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))).total_seconds() <= 11
