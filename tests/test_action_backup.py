"""trigger-backup: job-history helpers and plans (pure), then the real SDK against armsim (jobs, caps, faults)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import BROKEN, DEMO_VMS, TRANSIENT_FAULTS, mutating
from pydantic import ValidationError

from armsim import DEMO_SUBSCRIPTION
from remediations.actions.backup import BackupFacts, TriggerBackup
from remediations.azure import Azure, AzureConfig
from remediations.backupjobs import (
    JobView,
    arm_container,
    cap_refusal,
    cap_warning,
    for_vm,
    job_view,
    jobs_filter,
    parse_time,
)
from remediations.errors import arm_error
from remediations.target import Target

ACTION = TriggerBackup()
NOW = datetime(2026, 11, 26, 13, 0, tzinfo=timezone.utc)
FAST = {"poll_seconds": 0.01}


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name)


def params(name: str, **kw: Any) -> Any:
    return ACTION.params(target=target(name), **{**FAST, **kw})


def job(status: str = "Failed", *, hours_ago: float = 1, user: bool = False, vm: str = "vm-x",
        title: str | None = "ExtensionSnapshotFailedNoNetwork") -> JobView:
    start = NOW - timedelta(hours=hours_ago)
    return JobView(f"job-{status}-{hours_ago}", status, start, start + timedelta(minutes=1), user, vm,
                   f"iaasvmcontainerv2;rg;{vm}", title if status == "Failed" else None)


def facts(*jobs: JobView, last: str = "Completed", power: str = "running") -> BackupFacts:
    return BackupFacts("vm-x", power, True, "rsv-demo", "rg-demo", "IaasVMContainer;iaasvmcontainerv2;rg;vm-x",
                       "VM;iaasvmcontainerv2;rg;vm-x", last, NOW - timedelta(days=1), tuple(jobs), NOW)


def sim_vault(armsim: Any) -> Any:
    return next(v for v in armsim.sim.backup.vaults.values() if v.name == "rsv-demo")


def sim_item(armsim: Any, vm: str) -> Any:
    return sim_vault(armsim).items[f"vm;iaasvmcontainerv2;rg-demo;{vm}"]


def sim_jobs(armsim: Any, vm: str) -> list[Any]:
    return [j for j in sim_vault(armsim).jobs if j.item.vm.name == vm]


def operations(armsim: Any) -> list[str]:
    return [str(e["operation"]) for e in armsim.sim.requests()]


# --- job history helpers ---------------------------------------------------------------------
def test_parse_time_takes_arm_fractions_and_zones() -> None:
    assert parse_time("2017-11-29T06:55:29.8631582Z") == datetime(2017, 11, 29, 6, 55, 29, 863158, tzinfo=timezone.utc)
    assert parse_time("2026-11-26T10:00:00+01:00") == datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    assert parse_time("") is None and parse_time(None) is None


def test_jobs_filter_is_azure_clis_with_the_end_rounded_up() -> None:
    assert jobs_filter(NOW) == ("operation eq 'Backup' and backupManagementType eq 'AzureIaasVM' and "
                                "startTime eq '2026-11-25 01:00:00 PM' and endTime eq '2026-11-26 01:01:00 PM'")


def test_container_names_and_matching() -> None:
    assert arm_container("iaasvmcontainerv2;rg;vm-x") == "IaasVMContainer;iaasvmcontainerv2;rg;vm-x"
    assert arm_container("IaasVMContainer;iaasvmcontainerv2;rg;vm-x") == "IaasVMContainer;iaasvmcontainerv2;rg;vm-x"
    other_rg = JobView("j3", "Failed", NOW, None, False, "vm-x", "iaasvmcontainerv2;rg2;vm-x")
    mine = [job(hours_ago=2, vm="VM-X"), job(hours_ago=1), job(vm="vm-y"), other_rg]
    assert [j.id for j in for_vm(mine, "vm-x", "IaasVMContainer;iaasvmcontainerv2;rg;vm-x")] == \
        ["job-Failed-1", "job-Failed-2"]


def test_job_view_reads_the_error_title_and_tasks() -> None:
    v = job_view({"name": "j1", "properties": {
        "status": "Failed", "startTime": "2026-11-26T10:00:00Z", "entityFriendlyName": "vm-x",
        "errorDetails": [{"errorCode": 400237, "errorTitle": "ExtensionSnapshotFailedNoNetwork", "errorString": "no net"}],
        "extendedInfo": {"tasksList": [{"taskId": "Take Snapshot", "status": "Failed"}], "progressPercentage": 40}}})
    assert (v.error, v.error_number, v.error_message, v.progress) == ("ExtensionSnapshotFailedNoNetwork", 400237,
                                                                      "no net", 40.0)
    assert v.progress_info()["tasks"] == [{"task": "Take Snapshot", "status": "Failed"}]


def test_on_demand_limit_refuses_only_at_nine_and_warns_past_three() -> None:
    two = [job(user=True, hours_ago=h) for h in (1, 2)]
    assert cap_refusal(two, "vm-x", NOW) is None and cap_warning(two, "vm-x", NOW) is None
    three = [*two, job(user=True, hours_ago=3)]  # a fourth is past the recommendation, not refused (was refused)
    assert cap_refusal(three, "vm-x", NOW) is None
    assert (cap_warning(three, "vm-x", NOW) or "").startswith("warning: this is on-demand backup 4 of vm-x today (UTC)")
    eight = [job(user=True, hours_ago=h) for h in range(1, 9)]
    assert cap_refusal(eight, "vm-x", NOW) is None
    nine = [*eight, job("Completed", user=True, hours_ago=9)]  # failed attempts count as much as completed ones
    reason, manual = cap_refusal(nine, "vm-x", NOW) or ("", "")
    assert reason.startswith("refused: 9 on-demand backup attempts of vm-x already ran today (UTC)")
    assert "wait until 00:00 UTC (2026-11-27 00:00 UTC)" in manual
    yesterday = [job(user=True, hours_ago=h) for h in range(14, 23)]  # before 00:00 UTC: not today
    assert cap_refusal(yesterday, "vm-x", NOW) is None and cap_warning(yesterday, "vm-x", NOW) is None
    scheduled = [job(hours_ago=h) for h in range(1, 10)]  # scheduled backups do not count (were refused at 9)
    assert cap_refusal(scheduled, "vm-x", NOW) is None and cap_warning(scheduled, "vm-x", NOW) is None


# --- pure plans ------------------------------------------------------------------------------
def test_params_are_validated() -> None:
    for bad in ({"retention_days": 0}, {"retention_days": 10000}, {"poll_seconds": 0}, {"on_progress": 1}):
        with pytest.raises(ValidationError):
            ACTION.params(target=target("vm-x"), **bad)
    assert ACTION.params(target=target("vm-x")).retention_days == 30


def test_plan_cases() -> None:
    p = ACTION.plan(BackupFacts("vm-x", "running", False), params("vm-x"))
    assert p.empty and p.manual == ["protect vm-x in a Recovery Services vault first"]
    p = ACTION.plan(facts(job("InProgress"), job()), params("vm-x"))
    assert p.empty and p.reason.startswith("backup job job-InProgress-1 for vm-x is InProgress (started ")
    assert ACTION.plan(facts(job("Completed")), params("vm-x")).reason.startswith("latest backup of vm-x succeeded at")
    assert ACTION.plan(facts(), params("vm-x")).reason == "latest backup of vm-x succeeded at 2026-11-25 13:00 UTC"
    (c,) = ACTION.plan(facts(job("Completed")), params("vm-x", force=True)).changes
    assert c.reason.startswith("forced:")
    (c,) = ACTION.plan(facts(job(), job("Completed", hours_ago=5)), params("vm-x", retention_days=7)).changes
    assert (c.kind, c.resource, c.summary) == ("run", "vm-x backup", "backup vault rsv-demo, keep 7 days")
    assert c.reason.startswith("the latest backup of vm-x failed at") and "ExtensionSnapshotFailedNoNetwork" in c.reason
    assert not c.disruptive and c.data["container"].startswith("IaasVMContainer;")
    stopped = ACTION.plan(facts(job(), power="stopped"), params("vm-x"))
    assert stopped.notes == ["vm-x is stopped: the backup will be crash-consistent"]
    fourth = ACTION.plan(facts(*[job(user=True, hours_ago=h) for h in (1, 2, 3)]), params("vm-x"))
    assert len(fourth.changes) == 1 and fourth.notes[0].startswith("warning: this is on-demand backup 4 of vm-x")
    capped = ACTION.plan(facts(*[job(user=True, hours_ago=h) for h in range(1, 10)]), params("vm-x"))
    assert capped.empty and capped.reason.startswith("refused:") and "00:00 UTC" in capped.manual[0]


# --- against armsim --------------------------------------------------------------------------
def test_vm_healthy_latest_backup_succeeded(armsim: Any, azure: Azure) -> None:
    out = ACTION.apply(azure, params("vm-healthy"))
    assert out.status == "unchanged" and out.reason.startswith("latest backup of vm-healthy succeeded at")
    assert mutating(armsim) == []


def test_vm_nsg_blocked_job_fails_with_its_error_code(armsim: Any, azure: Azure) -> None:
    seen: list[tuple[str, Any]] = []
    before = len(sim_jobs(armsim, "vm-nsg-blocked"))
    out = TriggerBackup().apply(azure, params("vm-nsg-blocked", wait=True),
                                progress=lambda status, info: seen.append((status, info["tasks"])))
    assert out.status == "failed" and out.error_code == "ExtensionSnapshotFailedNoNetwork", out
    assert out.result["job_id"] == sim_jobs(armsim, "vm-nsg-blocked")[-1].id  # kept although the job failed
    assert "Snapshot operation failed due to no network connectivity" in out.reason
    jobs = sim_jobs(armsim, "vm-nsg-blocked")
    assert len(jobs) == before + 1 and jobs[-1].status == "Failed" and jobs[-1].id in out.reason
    assert [s for s, _ in seen][0] == "InProgress" and seen[-1][0] == "Failed"
    assert [e["operation"] for e in mutating(armsim)] == ["Backups_Trigger"]


def test_trigger_without_wait_then_nothing_while_in_progress(armsim: Any, azure: Azure) -> None:
    out = ACTION.apply(azure, params("vm-win-provider-disabled"))
    job_id = out.result["job_id"]
    assert out.status == "changed" and out.result["vault"] == "rsv-demo"
    assert out.reason.startswith(f"backup job {job_id} for vm-win-provider-disabled is InProgress")
    assert out.evidence[0] == f"backup job {job_id} for vm-win-provider-disabled started"
    armsim.sim.clear_requests()
    again = ACTION.apply(azure, params("vm-win-provider-disabled", force=True))
    assert again.status == "unchanged" and job_id in again.reason and mutating(armsim) == []
    final = ACTION.follow(azure, params("vm-win-provider-disabled"), job_id)
    assert final["properties"]["status"] == "Failed"  # the provider is still disabled
    assert final["properties"]["errorDetails"][0]["errorTitle"] == "BackUpOperationFailed"


def test_seeded_in_progress_job_means_nothing_triggered(armsim: Any, azure: Azure) -> None:
    running = armsim.sim.backup.start_job(sim_vault(armsim), sim_item(armsim, "vm-sql-vss"), error=None, user=False)
    out = ACTION.apply(azure, params("vm-sql-vss", force=True))
    assert out.status == "unchanged" and f"backup job {running.id} for vm-sql-vss is InProgress" in out.reason
    assert mutating(armsim) == []


@pytest.mark.parametrize("seed", ["failed", "completed-forced", "completed"])
def test_a_fourth_on_demand_backup_is_triggered_with_a_warning(armsim: Any, azure: Azure, seed: str) -> None:
    vault, item = sim_vault(armsim), sim_item(armsim, "vm-nsg-blocked")
    error = "ExtensionSnapshotFailedNoNetwork" if seed == "failed" else None
    for _ in range(3):
        armsim.sim.backup.start_job(vault, item, error=error, user=True, finished=True)
    out = ACTION.apply(azure, params("vm-nsg-blocked", force=seed == "completed-forced"))
    if seed == "completed":
        assert out.status == "unchanged" and out.reason.startswith("latest backup of vm-nsg-blocked succeeded")
        assert mutating(armsim) == []
    else:  # three a day is Microsoft's recommendation, not Azure's limit: the fourth goes ahead, with a warning
        assert out.status == "changed", out
        assert [e["operation"] for e in mutating(armsim)] == ["Backups_Trigger"]
        assert "warning: this is on-demand backup 4 of vm-nsg-blocked today (UTC)" in out.evidence[0]


def test_on_demand_hard_limit_refuses_a_tenth(armsim: Any, azure: Azure) -> None:
    vault, item = sim_vault(armsim), sim_item(armsim, "vm-subnet-blocked")
    for _ in range(9):
        armsim.sim.backup.start_job(vault, item, error="ExtensionSnapshotFailedNoNetwork", user=True, finished=True)
    out = ACTION.apply(azure, params("vm-subnet-blocked"))
    assert out.status == "unchanged" and mutating(armsim) == [], out
    assert out.reason.startswith("refused: 9 on-demand backup attempts of vm-subnet-blocked already ran today (UTC)")
    assert "wait until 00:00 UTC" in out.manual[0]


def test_scheduled_backups_do_not_count(armsim: Any, azure: Azure) -> None:
    vault, item = sim_vault(armsim), sim_item(armsim, "vm-subnet-blocked")
    for h in range(1, 9):  # 8 more scheduled failures, plus the demo's one: 9 in 24 h (refused before)
        armsim.sim.backup.start_job(vault, item, error="ExtensionSnapshotFailedNoNetwork", user=False,
                                    when=datetime.now(timezone.utc) - timedelta(hours=h), finished=True)
    out = ACTION.apply(azure, params("vm-subnet-blocked"))
    assert out.status == "changed" and not any("warning" in e for e in out.evidence), out
    assert [e["operation"] for e in mutating(armsim)] == ["Backups_Trigger"]


def test_not_protected(armsim: Any, azure: Azure) -> None:
    sim_vault(armsim).items.pop("vm;iaasvmcontainerv2;rg-demo;vm-healthy")
    out = ACTION.apply(azure, params("vm-healthy"))
    assert out.status == "unchanged" and out.reason == "vm-healthy is not protected by Azure Backup"
    assert out.manual == ["protect vm-healthy in a Recovery Services vault first"] and mutating(armsim) == []


def test_read_only_preview_of_every_demo_vm(armsim: Any) -> None:
    ro = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                           ca_bundle=armsim.ca_bundle, read_only=True))
    plans = {vm: ACTION.preview(ro, params(vm)) for vm in DEMO_VMS}
    # a plan only where a backup failed since the last good one: every VM without a failed job (vm-healthy, the proxies)
    # ... and vm-backup-running, whose own backup job still runs: it is followed, not triggered again
    assert [vm for vm, p in plans.items() if p.empty] == [vm for vm in DEMO_VMS if vm not in BROKEN
                                                          or vm == "vm-backup-running"]
    assert plans["vm-backup-running"].reason.startswith("backup job ") and " is InProgress " in plans["vm-backup-running"].reason
    assert "vm-healthy" in plans and plans["vm-healthy"].empty
    assert mutating(armsim) == []


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
def test_transient_faults_on_trigger_make_one_job(armsim: Any, azure: Azure, fault: dict[str, Any]) -> None:
    before = len(sim_jobs(armsim, "vm-linux-agent-old"))
    f = armsim.sim.faults.add(operation="Backups_Trigger", **fault)
    out = ACTION.apply(azure, params("vm-linux-agent-old"))
    assert out.status == "changed", out
    assert f.hits == 2 and len(sim_jobs(armsim, "vm-linux-agent-old")) == before + 1
    ops = operations(armsim)
    first, second = (i for i, op in enumerate(ops) if op == "Backups_Trigger")
    assert "BackupJobs_List" in ops[first:second]  # re-read the job history before triggering again


def test_trigger_operation_failed_after_the_job_started_does_not_trigger_twice(armsim: Any, azure: Azure) -> None:
    before = len(sim_jobs(armsim, "vm-win-agent-hung"))
    armsim.sim.faults.add(kind="lro_failed", operation="Backups_Trigger")  # job created, its operation Fails
    out = ACTION.apply(azure, params("vm-win-agent-hung", wait=True))
    assert len(sim_jobs(armsim, "vm-win-agent-hung")) == before + 1
    assert operations(armsim).count("Backups_Trigger") == 1
    # the operation named its job: that job is followed to its own end (the agent is still hung)
    assert out.status == "failed" and out.error_code == "GuestAgentSnapshotTaskStatusError", out
    assert out.result["job_id"] == sim_jobs(armsim, "vm-win-agent-hung")[-1].id
    assert out.result["trigger_operation"] == "failed: InternalOperationError"


@pytest.mark.parametrize("operation", ["ProtectedItemOperationStatuses_Get", "JobDetails_Get"])
def test_lost_polls_are_polled_again_not_triggered_again(armsim: Any, azure: Azure, operation: str) -> None:
    before = len(sim_jobs(armsim, "vm-ext-failed"))
    armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", "vm-ext-failed")].extensions.clear()
    armsim.sim.faults.add(kind="reset", operation=operation)
    armsim.sim.faults.add(kind="server_error", operation=operation)
    out = ACTION.apply(azure, params("vm-ext-failed", wait=True))
    assert out.status == "changed" and out.evidence == [f"job {out.result['job_id']} Completed"], out
    assert len(sim_jobs(armsim, "vm-ext-failed")) == before + 1
    assert operations(armsim).count("Backups_Trigger") == 1


def test_non_transient_trigger_error_is_a_clean_failure(armsim: Any, azure: Azure) -> None:
    before = len(sim_jobs(armsim, "vm-sql-vss"))
    armsim.sim.faults.add(kind="status", status=400, code="BMSUserErrorObjectLocked", operation="Backups_Trigger",
                          message="Another operation is in progress on the selected item.")
    out = ACTION.apply(azure, params("vm-sql-vss"))
    assert out.status == "failed" and out.error_code == "BMSUserErrorObjectLocked" and out.error_status == 400
    assert len(sim_jobs(armsim, "vm-sql-vss")) == before


def test_wait_is_bounded(armsim: Any, azure: Azure) -> None:
    armsim.sim.settings.backup_job_polls = 10_000
    out = ACTION.apply(azure, params("vm-rdp-shutdown", wait=True, wait_seconds=0.05))
    assert out.status == "changed" and "still InProgress after 0.05 s" in out.evidence[0], out
    assert "is InProgress" in out.reason


def test_armsim_refuses_the_tenth_on_demand_trigger_of_a_utc_day(armsim: Any, azure: Azure) -> None:
    vault, item = sim_vault(armsim), sim_item(armsim, "vm-healthy")
    args = ("rsv-demo", "rg-demo", "Azure", "IaasVMContainer;iaasvmcontainerv2;rg-demo;vm-healthy",
            "VM;iaasvmcontainerv2;rg-demo;vm-healthy", {"properties": {"objectType": "IaasVMBackupRequest"}})
    for _ in range(8):  # scheduled jobs do not count; on-demand attempts, failed or not, do
        armsim.sim.backup.start_job(vault, item, error=None, user=False, finished=True)
        armsim.sim.backup.start_job(vault, item, error="BackUpOperationFailed", user=True, finished=True)
    azure.backup.backups.trigger(*args)  # the ninth: accepted
    before = len(sim_jobs(armsim, "vm-healthy"))
    with pytest.raises(HttpResponseError) as e:
        azure.backup.backups.trigger(*args)
    err = arm_error(e.value)
    assert (e.value.status_code, err.code) == (400, "CloudDosAbsoluteLimitReached")
    assert "limit on number of operations permitted in 24 hours" in err.message
    assert len(sim_jobs(armsim, "vm-healthy")) == before
