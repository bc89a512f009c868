"""The VSS codes (issue #14: E12 ExtensionFailedVssWriterInBadState, E13 ExtensionFailedVssServiceInBadState):
diagnosis, plans, consent, apply, idempotence and dry-run of restart-vss-writers, restart-vss-service and
set-snapshot-without-threads, and the demo VMs fixed and proven by a backup; real SDK against armsim."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_RETRY, mutating
from support.demo import sim_vm, target

from armsim import DEMO_SUBSCRIPTION
from armsim.vss import WRITER_SERVICES as SIM_WRITERS
from remediations import scripts
from remediations.actions import get_action
from remediations.actions.guest_agent import script_step
from remediations.actions.vss import (
    WRITER_SERVICES,
    RestartVssService,
    RestartVssWriters,
    SetSnapshotWithoutThreads,
    writers_param,
)
from remediations.azure import Azure, AzureConfig
from remediations.errors import ArmCallError, BadInput, ReadOnlyViolation
from runbooks.engine import Options, investigate, plan_fixes, run
from runbooks.fleet import DEMO_CONSENT, options

WRITER_VM, SERVICE_VM = "vm-vss-writer", "vm-vss-service"
NO_THREADS = (r"hklm\software\microsoft\bcdragentpersistentkeys", "snapshotwithoutthreads")


def read_only(server: Any) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint, ca_bundle=server.ca_bundle,
                             read_only=True, retry=FAST_RETRY))


def states(server: Any, vm: str) -> dict[str, str]:
    return {w.name: w.state for w in sim_vm(server, vm).guest.vss.writers}


def finding(inv: Any, cause: str) -> Any:
    return next(f for f in inv.findings if f.cause == cause)


# --- diagnosis ---------------------------------------------------------------------------------------
def test_the_writer_vm_is_diagnosed_with_each_failed_writer_named(armsim: Any) -> None:
    inv = investigate(read_only(armsim), target(WRITER_VM), Options())
    assert inv.entry.id == "E12" and inv.error_code == "ExtensionFailedVssWriterInBadState"
    writers = finding(inv, "C9.writers")
    assert writers.verdict == "present"
    assert "System Writer is [8] Failed (last error: Non-retryable error)" in writers.evidence
    assert "SqlServerWriter is [9] Failed (last error: Timed out)" in writers.evidence
    assert "WMI Writer" not in writers.evidence  # a stable writer is not named
    service = finding(inv, "C9.service")
    assert service.verdict == "absent" and "VSS service on vm-vss-writer is Running" in service.evidence
    assert mutating(armsim) == []  # windows-vss-writers-get is read-only


def test_the_service_vm_is_diagnosed_with_the_hung_service(armsim: Any) -> None:
    inv = investigate(read_only(armsim), target(SERVICE_VM), Options())
    assert inv.entry.id == "E13"
    assert finding(inv, "C9.service").verdict == "present"
    assert "the VSS service hangs in StopPending" in finding(inv, "C9.service").evidence
    writers = finding(inv, "C9.writers")
    assert writers.verdict == "absent" and "restart-vss-service first" in writers.evidence
    plans, _ = plan_fixes(read_only(armsim), inv, Options())
    assert [p.action for p in plans if p.changes] == ["restart-vss-service"]
    assert mutating(armsim) == []


def test_a_windows_vm_without_vss_trouble_has_neither_cause(armsim: Any) -> None:
    inv = investigate(read_only(armsim), target("vm-win-provider-disabled"), Options(error="E12"))
    assert finding(inv, "C9.writers").verdict == "absent"
    assert "VSS writers on vm-win-provider-disabled are [1] Stable" in finding(inv, "C9.writers").evidence
    assert finding(inv, "C9.service").verdict == "absent"
    linux = investigate(read_only(armsim), target("vm-healthy"), Options(error="E12"))
    assert finding(linux, "C9.writers").verdict == "absent" and "applies to Windows" in finding(linux, "C9.writers").evidence


# --- plans -------------------------------------------------------------------------------------------
def test_the_restart_plan_names_each_failed_writer_and_its_service(azure: Azure, armsim: Any) -> None:
    plan = RestartVssWriters().preview(azure, RestartVssWriters.Params(target=target(WRITER_VM)))
    [c] = plan.changes
    assert c.disruptive and RestartVssWriters.disruptive and c.kind == "run"
    assert c.summary == "restart CryptSvc (System Writer), SQLWriter (SqlServerWriter) on vm-vss-writer"
    assert c.data == {"script": "windows-vss-writers-restart", "writers": ["System Writer", "SqlServerWriter"],
                      "services": ["CryptSvc", "SQLWriter"]}
    assert c.before == {"writers": {"System Writer": "[8] Failed", "SqlServerWriter": "[9] Failed"}}
    assert any("scheduled downtime" in n for n in plan.notes)
    threads = SetSnapshotWithoutThreads().preview(azure, SetSnapshotWithoutThreads.Params(target=target(WRITER_VM)))
    [t] = threads.changes
    assert not t.disruptive and t.kind == "add" and t.after == {"value": "True", "type": "REG_SZ"}
    assert "SqlServerWriter is [9] Failed (last error: Timed out)" in t.reason
    service = RestartVssService().preview(azure, RestartVssService.Params(target=target(WRITER_VM)))
    assert service.empty and "answers vssadmin" in service.reason
    assert mutating(armsim) == []


def test_without_a_timed_out_writer_the_registry_value_is_not_planned(azure: Azure, armsim: Any) -> None:
    sql = next(w for w in sim_vm(armsim, WRITER_VM).guest.vss.writers if w.name == "SqlServerWriter")
    sql.last_error = "Retryable error"
    plan = SetSnapshotWithoutThreads().preview(azure, SetSnapshotWithoutThreads.Params(target=target(WRITER_VM)))
    assert plan.empty and "no VSS writer on vm-vss-writer timed out" in plan.reason


def test_an_unknown_writer_is_a_manual_step(azure: Azure, armsim: Any) -> None:
    from armsim.vss import Writer

    vss = sim_vm(armsim, WRITER_VM).guest.vss
    vss.writers = [Writer("Contoso Writer", "ContosoSvc", "[7] Failed", "Retryable error")]
    plan = RestartVssWriters().preview(azure, RestartVssWriters.Params(target=target(WRITER_VM)))
    assert plan.empty and "no service of these writers is known here" in plan.reason
    assert any("Contoso Writer is [7] Failed" in m and "restart it by hand" in m for m in plan.manual)


def test_a_disabled_vss_is_a_manual_step_and_the_script_refuses_it(azure: Azure, armsim: Any) -> None:
    sim_vm(armsim, SERVICE_VM).guest.vss.start_type = "Disabled"
    plan = RestartVssService().preview(azure, RestartVssService.Params(target=target(SERVICE_VM)))
    assert plan.empty and plan.reason == "the VSS service is Disabled on vm-vss-service"
    assert any("back to Manual" in m for m in plan.manual)
    with pytest.raises(ArmCallError, match="service-disabled"):
        script_step(azure, target(SERVICE_VM), "windows-vss-restart")
    assert sim_vm(armsim, SERVICE_VM).guest.vss.restarts == {}


# --- consent, apply, idempotence, dry-run --------------------------------------------------------------
@pytest.mark.parametrize(("cls", "vm"), [(RestartVssWriters, WRITER_VM), (RestartVssService, SERVICE_VM)])
def test_without_consent_a_restart_is_withheld_with_zero_writes(azure: Azure, armsim: Any, cls: type, vm: str) -> None:
    out = cls().apply(azure, cls.Params(target=target(vm)), consent=False)
    assert out.status == "withheld", out
    assert mutating(armsim) == []
    assert sim_vm(armsim, vm).guest.vss.restarts == {}


def test_restart_vss_writers_applies_once_and_converges(azure: Azure, armsim: Any) -> None:
    p = RestartVssWriters.Params(target=target(WRITER_VM))
    out = RestartVssWriters().apply(azure, p, consent=True)
    assert out.status == "changed", out
    assert out.evidence[0] == ("restarted CryptSvc (Running -> Running), SQLWriter (Running -> Running) on "
                               "vm-vss-writer; now System Writer [1] Stable, SqlServerWriter [1] Stable"), out.evidence
    vss = sim_vm(armsim, WRITER_VM).guest.vss
    assert vss.restarts == {"CryptSvc": 1, "SQLWriter": 1}
    assert set(states(armsim, WRITER_VM).values()) == {"[1] Stable"}
    # the timed-out writer still fails the snapshot while it takes blob snapshots with threads (the guide's step 3)
    assert armsim.sim.backup.verdict(sim_vm(armsim, WRITER_VM)) == "ExtensionFailedVssWriterInBadState"
    armsim.sim.clear_requests()
    again = RestartVssWriters().apply(azure, p, consent=True)
    assert again.status == "unchanged" and "are [1] Stable" in again.reason
    assert mutating(armsim) == [] and vss.restarts == {"CryptSvc": 1, "SQLWriter": 1}


def test_set_snapshot_without_threads_applies_once_and_converges(azure: Azure, armsim: Any) -> None:
    p = SetSnapshotWithoutThreads.Params(target=target(WRITER_VM))
    out = SetSnapshotWithoutThreads().apply(azure, p, consent=False)
    assert out.status == "changed" and out.evidence[0] == "SnapshotWithoutThreads (absent) -> True (REG_SZ)"
    guest = sim_vm(armsim, WRITER_VM).guest
    assert guest.registry_value(*NO_THREADS) == ("REG_SZ", "True")
    armsim.sim.clear_requests()
    again = SetSnapshotWithoutThreads().apply(azure, p, consent=False)
    assert again.status == "unchanged" and "is True (REG_SZ)" in again.reason
    assert mutating(armsim) == []


def test_restart_vss_service_applies_once_and_converges(azure: Azure, armsim: Any) -> None:
    vm = sim_vm(armsim, SERVICE_VM)
    p = RestartVssService.Params(target=target(SERVICE_VM))
    out = RestartVssService().apply(azure, p, consent=True)
    assert out.status == "changed", out
    assert out.evidence[0].startswith("VSS on vm-vss-service: StopPending -> Running (its hung process was ended)")
    assert vm.guest.vss.status == "Running" and vm.guest.vss.restarts == {"VSS": 1}
    assert armsim.sim.backup.verdict(vm) is None
    armsim.sim.clear_requests()
    again = RestartVssService().apply(azure, p, consent=True)
    assert again.status == "unchanged" and mutating(armsim) == []


def test_dry_run_reads_the_guest_and_writes_nothing(armsim: Any) -> None:
    ro = read_only(armsim)
    for cls, vm in ((RestartVssWriters, WRITER_VM), (SetSnapshotWithoutThreads, WRITER_VM),
                    (RestartVssService, SERVICE_VM)):
        assert cls().preview(ro, cls.Params(target=target(vm))).changes
    for sid, params in (("windows-vss-writers-restart", {"Writers": "System Writer"}),
                        ("windows-vss-restart", None), ("windows-vss-writers-nothreads", None)):
        with pytest.raises(ReadOnlyViolation):
            script_step(ro, target(WRITER_VM), sid, params)
    assert mutating(armsim) == []
    assert states(armsim, WRITER_VM)["System Writer"] == "[8] Failed"
    assert sim_vm(armsim, WRITER_VM).guest.registry_value(*NO_THREADS) is None


# --- the Writers parameter: validated, never spliced -------------------------------------------------------
@pytest.mark.parametrize("names", [[], ["System Writer; Restart-Computer"], ["system writer"], ["Contoso Writer"],
                                   ["System Writer", "WMI Writer|BITS Writer"]])
def test_writers_param_takes_only_known_writer_names(names: list[str]) -> None:
    if names and all(n in WRITER_SERVICES for n in names):
        pytest.fail("a bad case is in the table")
    with pytest.raises(BadInput):
        writers_param(names)
    assert writers_param(["System Writer", "COM+ REGDB Writer"]) == "System Writer|COM+ REGDB Writer"


def test_the_script_refuses_an_unknown_writer_and_restarts_nothing(azure: Azure, armsim: Any) -> None:
    with pytest.raises(ArmCallError, match="bad-writer"):
        script_step(azure, target(WRITER_VM), "windows-vss-writers-restart", {"Writers": "System Writer|Evil"})
    assert sim_vm(armsim, WRITER_VM).guest.vss.restarts == {}


def _ps_table(sid: str) -> dict[str, str]:
    text = scripts.script(sid).text
    body = text[text.index("$services = @{"):text.index("\n}\n", text.index("$services = @{"))]
    return dict(re.findall(r"'([^']+)' = '([^']+)'", body))


def test_the_writer_tables_agree() -> None:
    """The action's, both scripts' and armsim's writer -> service tables are one table; no agent service in it."""
    assert _ps_table("windows-vss-writers-get") == _ps_table("windows-vss-writers-restart") == WRITER_SERVICES \
        == SIM_WRITERS
    assert {"RdAgent", "WindowsAzureGuestAgent"}.isdisjoint(WRITER_SERVICES.values())
    assert WRITER_SERVICES["System Writer"] == "CryptSvc" and WRITER_SERVICES["SqlServerWriter"] == "SQLWriter"


def test_the_actions_are_registered() -> None:
    for cls in (RestartVssWriters, RestartVssService, SetSnapshotWithoutThreads):
        assert type(get_action(cls.name)) is cls
    assert Path(scripts.__file__).with_name("windows-vss-writers-get.ps1").exists()
    assert not scripts.script("windows-vss-writers-get").mutating


# --- the demo VMs, fixed and proven by a backup ---------------------------------------------------------
def demo_options(**over: Any) -> Options:
    return options(argparse.Namespace(command="demo", no_disruptive=False),
                   **{"allow_disruptive": True, "backup_poll_seconds": 0.05, **over})


@pytest.mark.parametrize(("vm", "actions"), [
    (WRITER_VM, ["set-snapshot-without-threads", "restart-vss-writers"]),
    (SERVICE_VM, ["restart-vss-service"]),
])
def test_the_demo_fixes_the_vss_vms_and_a_backup_proves_it(azure: Azure, armsim: Any, vm: str,
                                                            actions: list[str]) -> None:
    report = run(azure, target(vm), demo_options())
    assert report.status == "fixed", (report.status, report.message)
    assert [o.action for o in report.outcomes] == actions
    assert all(o.status == "changed" for o in report.outcomes)
    disruptive = [e for o in report.outcomes for e in o.evidence if e.startswith("disruptive:")]
    assert disruptive and all(f"consent: {DEMO_CONSENT}" in e for e in disruptive)
    assert report.backup is not None and report.backup.status == "changed"
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) is None
    armsim.sim.clear_requests()
    second = run(azure, target(vm), demo_options())
    assert second.status == "nothing" and mutating(armsim) == []


def test_the_demo_without_consent_is_withheld(azure: Azure, armsim: Any) -> None:
    report = run(azure, target(WRITER_VM), demo_options(allow_disruptive=False))
    assert report.status == "withheld" and "restart-vss-writers needs --allow-disruptive" in report.message
    assert states(armsim, WRITER_VM)["System Writer"] == "[8] Failed"
