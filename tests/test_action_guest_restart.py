"""Actions that restart the agent Run Command runs through: armsim hangs inline restarts, the actions detach them."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from support.demo import RG, sim_vm
from support.guest import params

from remediations.actions.guest import RestartGuestAgent, UpgradeLinuxAgent
from remediations.azure import Azure
from remediations.backupjobs import parse_time
from remediations.errors import arm_error
from remediations.scripts import SCRIPTS, output_text, parse_result

# armsim lands a detached restart 15 simulated seconds after the Run Command, or at the first instance-view read
# (`agent_restart_polls`), whichever comes first; the tests that need it late turn the reads' hurry off.
SLOW = {"agent_restart_polls": 10**6}


def inline(script_id: str) -> list[str]:
    text = SCRIPTS[script_id].text
    if script_id == "linux-agent-restart":
        text = text.replace('if ! how=$(schedule_detached "$AGENT_JOB" "$unit"); then',
                            'systemctl restart "$unit.service" >&2\nhow=inline\nif false; then')
    elif script_id == "linux-agent-upgrade":
        text = text.replace('if ! how=$(schedule_detached "$AGENT_JOB" "$pm" "$pkg" "$unit" "$JOB_LOG"); then',
                            '"$pm" -y update "$pkg" >&2\nhow=inline\nif false; then')
    else:
        text = text.replace("    $at = (Get-Date).AddSeconds($delay)",
                            "    Restart-Service -Name WindowsAzureGuestAgent -Force\n    $at = Get-Date")
    assert text != SCRIPTS[script_id].text
    return text.splitlines()


def post_script(azure: Azure, vm_name: str, script_id: str, lines: list[str]) -> dict[str, Any]:
    body = {"commandId": SCRIPTS[script_id].command_id, "script": lines}
    res = azure.compute.virtual_machines.begin_run_command(RG, vm_name, body).result()
    return parse_result(output_text([v.as_dict() for v in res.value])[0])


@pytest.mark.parametrize(("vm_name", "script_id"), [("vm-healthy", "linux-agent-restart"),
                                                    ("vm-linux-agent-old", "linux-agent-upgrade"),
                                                    ("vm-sql-vss", "windows-agent-restart")])
def test_an_inline_agent_restart_hangs_the_run_command(armsim: Any, azure: Azure, vm_name: str,
                                                       script_id: str) -> None:
    armsim.sim.settings.extra["run_command_timeout"] = 1.0
    started = time.monotonic()
    with pytest.raises(HttpResponseError) as e:
        post_script(azure, vm_name, script_id, inline(script_id))
    assert arm_error(e.value).code == "VMExtensionProvisioningTimeout"
    assert time.monotonic() - started >= 1.0  # Transitioning until the timeout, not a quick failure
    assert sim_vm(armsim, vm_name).guest.agent_restarts == 1  # the agent did restart; the Run Command never heard
    # the detached scripts end at once, and the restart comes later
    out = post_script(azure, vm_name, script_id, SCRIPTS[script_id].text.splitlines())
    assert out["scheduled"] is True and parse_time(out["restart_at"]) is not None


def test_run_command_stays_busy_while_an_inline_restart_hangs(armsim: Any, azure: Azure) -> None:
    armsim.sim.settings.extra["run_command_timeout"] = 30.0
    body = {"commandId": "RunShellScript", "script": inline("linux-agent-restart")}
    poller = azure.compute.virtual_machines.begin_run_command(RG, "vm-healthy", body)
    assert not poller.done()
    with pytest.raises(HttpResponseError) as e:
        post_script(azure, "vm-healthy", "linux-agent-status", SCRIPTS["linux-agent-status"].text.splitlines())
    assert e.value.status_code == 409 and arm_error(e.value).code == "Conflict"


def test_old_restart_action_would_hang(armsim: Any, azure: Azure) -> None:
    """The action now sends the detached script; the inline one would fail the whole action."""
    armsim.sim.settings.extra["run_command_timeout"] = 0.5
    assert RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-healthy", force=True)).status == "changed"
    armsim.sim.reset("demo")
    with pytest.raises(HttpResponseError):
        post_script(azure, "vm-healthy", "linux-agent-restart", inline("linux-agent-restart"))


def test_restart_waits_for_a_report_after_the_restart(armsim: Any, azure: Azure) -> None:
    """Ready alone is not enough: the agent reports Ready (an old report) until the detached restart happens."""
    armsim.sim.settings.extra.update(SLOW, agent_restart_seconds=1.5)
    vm = sim_vm(armsim, "vm-healthy")
    started = time.monotonic()
    out = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-healthy", force=True))
    assert out.status == "changed", out
    assert vm.guest.agent_restarts == 1 and time.monotonic() - started >= 1.5
    assert vm.guest.agent_report_time is None


def test_windows_restart_schedules_both_services(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-sql-vss")
    vm.extensions["vmsnapshot"].state = "Updating"
    out = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-sql-vss"))
    assert out.evidence[0].startswith("scheduled a restart of RdAgent and WindowsAzureGuestAgent on vm-sql-vss "
                                      "through Run Command (scheduled-task, at ")
    assert vm.guest.agent_restarts == 1


def test_restart_that_does_not_come_back_is_reported(armsim: Any, azure: Azure) -> None:
    armsim.sim.settings.extra.update(SLOW, agent_restart_seconds=600.0)
    out = RestartGuestAgent().apply(azure, params(RestartGuestAgent, "vm-healthy", force=True,
                                                  wait_ready_seconds=0.3))
    assert re.search(r"guest agent on vm-healthy not Ready since \d\d:\d\d:\d\dZ after 0 s; the restart runs "
                     "detached in the guest", out.evidence[0]), out
    assert sim_vm(armsim, "vm-healthy").guest.agent_restarts == 0


def test_upgrade_that_does_not_come_back_is_reported(armsim: Any, azure: Azure) -> None:
    armsim.sim.settings.extra.update(SLOW, agent_restart_seconds=600.0)
    out = UpgradeLinuxAgent().apply(azure, params(UpgradeLinuxAgent, "vm-linux-agent-old", wait_ready_seconds=0.2))
    assert out.status == "failed" and "did not converge" in out.reason  # still 2.2.10: re-planned
    assert "waagent 2.2.10 -> unknown via dnf" in out.evidence[0]
    assert "the upgrade runs detached in the guest (its log: /var/log/azure-runbooks-agent-job.log)" \
        in out.evidence[0]


@pytest.mark.parametrize(("script_id", "old", "new", "lacks"), [
    ("windows-agent-restart", "Restart-Service -Name RdAgent, WindowsAzureGuestAgent", "Restart-Service -Name "
     "WindowsAzureGuestAgent", "RdAgent (in the detached job)"),
    ("windows-vss-set", "[Microsoft.Win32.RegistryView]::Registry64", "[Microsoft.Win32.RegistryView]::Default",
     "[Microsoft.Win32.RegistryView]::Registry64"),
    ("windows-vss-get", "[Microsoft.Win32.RegistryView]::Registry64", "[Microsoft.Win32.RegistryView]::Default",
     "[Microsoft.Win32.RegistryView]::Registry64"),
    ("linux-agent-upgrade", "debian) pm=apt pkg=waagent", "debian) pm=apt pkg=walinuxagent", "pkg=waagent"),
    ("linux-agent-upgrade", "'AutoUpdate\\.UpdateToLatestVersion' 'AutoUpdate\\.Enabled'", "'AutoUpdate\\.Enabled'",
     "AutoUpdate\\.UpdateToLatestVersion"),
], ids=lambda v: v if isinstance(v, str) and "-" in v and " " not in v else None)
def test_armsim_refuses_a_script_missing_what_its_effect_needs(armsim: Any, azure: Azure, script_id: str,
                                                              old: str, new: str, lacks: str) -> None:
    text = SCRIPTS[script_id].text
    assert old in text
    vm_name = "vm-sql-vss" if script_id.startswith("windows") else "vm-healthy"
    body = {"commandId": SCRIPTS[script_id].command_id, "script": text.replace(old, new).splitlines()}
    res = azure.compute.virtual_machines.begin_run_command(RG, vm_name, body).result()
    _, stderr = output_text([v.as_dict() for v in res.value])
    assert "lacks what its effect needs" in stderr and lacks in stderr, stderr
