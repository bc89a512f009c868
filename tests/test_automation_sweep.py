"""sweep_backup_failures.py: the scheduled backstop fixes every broken VM once and does not fight the alert path.

The sweep runs as Automation runs it (a subprocess against armsim); its child fix_backup_failure jobs are
run by a harness thread playing the Automation worker (claim the job, run the entry script with the job's
parameters as argv, report the output and the end).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import BROKEN
from support.automation import ACCOUNT_ID, VAULT_ID, failed_job, proved, sample, vm_id
from support.runs import run_entry

from armsim import Server
from runbooks.automation import sweep
from runbooks.cmd_demo import DEMO_PROXY

# A VM whose own backup job still runs is left to that job, with the reason (vm-backup-running, issue #14: its
# fix is to wait for the job): the sweep fixes every other broken VM.
RUNNING = "vm-backup-running"
FIXABLE = sorted(vm for vm in BROKEN if vm != RUNNING)

SWEEP = "sweep_backup_failures.py"
ARGS = (f"vaults={VAULT_ID}", f"automation_account={ACCOUNT_ID}", "poll_seconds=0.05", "mode=apply",
        "allow_disruptive=true", f"proxy={DEMO_PROXY}")  # the working guest proxy, forwarded to every child


@pytest.fixture
def worker(armsim: Server) -> Iterator[list[Any]]:
    """A thread that runs every fix_backup_failure job armsim receives, up to 8 at once; yields their runs."""
    runs: list[Any] = []
    stop = threading.Event()
    auto = armsim.sim.automation
    armsim.sim.settings.extra["automation_job_polls"] = 10**6  # a job nobody plays never ends on its own

    def take() -> list[Any]:
        """The fix jobs nobody plays yet: New ones, and those the sweep's first read already made Running."""
        with armsim.sim.lock:
            running = [j for j in auto.jobs("fix_backup_failure") if j.status == "Running" and not j.claimed]
            for job in running:
                job.claimed = True
            return running + auto.claim("fix_backup_failure")

    def run(job: Any) -> None:
        r = run_entry(armsim, "fix_backup_failure.py", *job.parameters.values())
        runs.append(r)  # before the job ends: the sweep may return (and the test read `runs`) at once after
        auto.report(job.name, "Completed" if r.code == 0 else "Failed", output=r.lines)

    def loop() -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            while not stop.is_set():
                for job in take():
                    pool.submit(run, job)
                stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield runs
    stop.set()
    thread.join(timeout=300)


def test_the_sweep_fixes_every_broken_vm_once_and_a_second_sweep_changes_nothing(armsim: Server,
                                                                                 worker: list[Any]) -> None:
    since = datetime.now(timezone.utc)
    first = run_entry(armsim, SWEEP, *ARGS, "concurrency=3", timeout=600)
    assert [r.text for r in worker if r.code != 0] == []
    assert first.code == 0 and first.stderr == "", first.text
    assert sorted(v["vm"] for v in first.summary["vms"]) == FIXABLE
    assert all(v["status"] == "Completed" for v in first.summary["vms"])
    (running,) = first.summary["skipped"]
    assert running["vm"] == RUNNING and " is InProgress" in running["reason"] and first.summary["concurrency"] == 3
    assert 1 <= armsim.sim.automation.max_running <= 3
    assert sorted(r.summary["vms"][0]["vm"] for r in worker) == FIXABLE
    assert all(r.code == 0 and r.summary["vms"][0]["status"] == "fixed" for r in worker), [r.text for r in worker]
    assert all(len(proved(armsim, vm, since)) == 1 for vm in FIXABLE)  # one verification backup each

    armsim.sim.clear_requests()
    again = run_entry(armsim, SWEEP, *ARGS, timeout=600)
    assert again.code == 0 and again.summary["vms"] == [], again.text
    assert sorted(s["vm"] for s in again.summary["skipped"]) == sorted(BROKEN)
    assert all(s["reason"].startswith("verified since the failure") for s in again.summary["skipped"]
               if s["vm"] != RUNNING)
    assert [e for e in armsim.sim.requests() if e["mutating"]] == []


def test_a_vm_a_fix_is_working_on_is_skipped_with_the_reason(armsim: Server, request: pytest.FixtureRequest) -> None:
    from azure.mgmt.automation import models

    from remediations.azure import Azure, AzureConfig

    azure = Azure(AzureConfig(subscription=ACCOUNT_ID.split("/")[2], arm_endpoint=armsim.endpoint,
                              ca_bundle=armsim.ca_bundle))
    busy, held = "vm-nsg-blocked", "vm-ext-failed"
    # an alert-path job for `busy` that nobody has run yet (the relay just started it)
    armsim.sim.settings.extra["automation_job_polls"] = 10**6
    body = models.JobCreateParameters(properties=models.JobCreateProperties(
        runbook=models.RunbookAssociationProperty(name="fix_backup_failure"),
        parameters={"alert": sample("backup-failure-alert.json", busy, failed_job(armsim, busy)), "mode": "mode=apply"}))
    azure.call(azure.automation.job.create, "rg-demo", "aa-backup-runbooks", "0b0b0b0b-0000-8000-8000-000000000001", body)
    armsim.sim.automation.claim("fix_backup_failure")  # the worker holds it, still Running
    # a backup of `held` in progress (e.g. the verification backup of a fix)
    vault = armsim.sim.backup.vaults[VAULT_ID.lower()]
    item = next(j.item for j in vault.jobs if j.item.vm.name == held)
    settings = armsim.sim.settings
    polls, seconds = settings.backup_job_polls, settings.backup_job_seconds
    settings.backup_job_polls, settings.backup_job_seconds = 10**6, 10**6  # this one job runs on
    armsim.sim.backup.start_job(vault, item, error=None)
    settings.backup_job_polls, settings.backup_job_seconds = polls, seconds
    request.getfixturevalue("worker")  # only now: the worker must not take the job held above
    run = run_entry(armsim, SWEEP, *ARGS, "concurrency=8", timeout=600)
    assert run.code == 0, run.text
    reasons = {s["vm"]: s["reason"] for s in run.summary["skipped"]}
    assert reasons[busy] == "fix_backup_failure job 0b0b0b0b-0000-8000-8000-000000000001 is Running for it"
    assert reasons[held].startswith("backup job ") and "is InProgress" in reasons[held]
    assert sorted(v["vm"] for v in run.summary["vms"]) == sorted(set(FIXABLE) - {busy, held})


def test_plan_is_pure_and_skips_verified_or_busy_vms() -> None:
    from remediations.backupjobs import JobView
    from remediations.target import parse_target

    t = parse_target(vm_id("vm-a"))
    at = [datetime(2026, 12, 1, h, tzinfo=timezone.utc) for h in range(24)]

    def job(i: str, status: str, hour: int) -> JobView:
        return JobView(i, status, at[hour], None, False, "vm-a", "iaasvmcontainerv2;rg-demo;vm-a")

    assert [x.id for _, x in sweep.plan([(t, job("f", "Failed", 3))]).fix] == ["f"]
    assert sweep.plan([(t, job("f", "Failed", 3)), (t, job("c", "Completed", 4))]).skipped[0].reason == \
        "verified since the failure: backup job c Completed"
    assert sweep.plan([(t, job("c", "Completed", 2)), (t, job("f", "Failed", 3))]).fix  # older success
    assert "is InProgress" in sweep.plan([(t, job("f", "Failed", 3)), (t, job("p", "InProgress", 4))]).skipped[0].reason
    busy = sweep.FixJob(t.id.lower(), "j1", "Running", at[1])
    assert sweep.plan([(t, job("f", "Failed", 3))], [busy]).skipped[0].reason == \
        "fix_backup_failure job j1 is Running for it"
    tried = sweep.FixJob(t.id.lower(), "j2", "Failed", at[5])
    assert sweep.plan([(t, job("f", "Failed", 3))], [tried]).skipped[0].reason.startswith(
        "tried since the failure: fix_backup_failure job j2 Failed")
    assert sweep.plan([(t, job("f", "Failed", 6))], [tried]).fix  # a newer failure: try again
    assert sweep.plan([(t, job("c", "Completed", 3))], []) == sweep.Sweep((), ())


def test_a_dry_run_sweep_does_not_start_the_same_vms_again_every_hour(armsim: Server) -> None:
    args = (f"vaults={VAULT_ID}", f"automation_account={ACCOUNT_ID}", "poll_seconds=0.01", "concurrency=8")
    first = run_entry(armsim, SWEEP, *args)  # children nobody runs: armsim completes them on reads
    assert first.code == 0 and sorted(v["vm"] for v in first.summary["vms"]) == FIXABLE, first.text
    armsim.sim.clear_requests()
    again = run_entry(armsim, SWEEP, *args)
    assert again.code == 0 and again.summary["vms"] == [], again.text
    assert all(s["reason"].startswith("tried since the failure: fix_backup_failure job ") for s in again.summary["skipped"]
               if s["vm"] != RUNNING)
    assert [e for e in armsim.sim.requests() if e["mutating"]] == []


@pytest.mark.parametrize("args, why", [
    ((f"automation_account={ACCOUNT_ID}",), "no vaults"),
    ((f"vaults={VAULT_ID}",), "no automation_account"),
    ((f"vaults={VAULT_ID},/subscriptions/x", f"automation_account={ACCOUNT_ID}"), "vaults="),
    ((vm_id("vm-a"), f"vaults={VAULT_ID}", f"automation_account={ACCOUNT_ID}"), "settings only"),
])
def test_sweep_bad_input_exits_2_without_a_request(armsim: Server, args: tuple[str, ...], why: str) -> None:
    run = run_entry(armsim, SWEEP, *args)
    assert run.code == 2 and why in run.lines[0], run.lines
    assert armsim.sim.requests() == []
