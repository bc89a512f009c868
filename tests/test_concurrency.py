"""Acting twice: concurrent fixes of one VM give one change set and one verification backup (issue #10 item 3).

Two `python -m runbooks fix` processes against the session's armsim, started 0.3 s apart; armsim's
request log and job list say how many backups reached its model. See docs/concurrency.md.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from support.runs import ROOT, cli, runbooks

from armsim import DEMO_SUBSCRIPTION, Server

VM = "vm-nsg-blocked"


def _env(server: Server, tmp: Path) -> dict[str, str]:
    import os
    return {**os.environ, "RUNBOOKS_ARM_ENDPOINT": server.endpoint, "RUNBOOKS_CA_BUNDLE": server.ca_bundle,
            "AZURE_SUBSCRIPTION_ID": DEMO_SUBSCRIPTION, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp)}


def two_fixes(server: Server, tmp: Path, gap: float = 0.3) -> list[subprocess.CompletedProcess[str]]:
    """Two `fix VM --yes -o json` processes against one armsim, the second started `gap` s after the first."""
    args = runbooks("fix", VM, "-g", "rg-demo", "--yes", "-o", "json")
    procs = []
    for i in range(2):
        (tmp / str(i)).mkdir()
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                      env=_env(server, tmp / str(i))))
        if i == 0:
            time.sleep(gap)
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def jobs_of(server: Server, vm: str = VM) -> list[Any]:
    """armsim's backup jobs of the VM (its model, not the API), oldest first."""
    vault = next(iter(server.sim.backup.vaults.values()))
    return sorted((j for j in vault.jobs if j.item.vm.name == vm), key=lambda j: j.started)


def triggers(server: Server) -> list[dict[str, Any]]:
    return [e for e in server.sim.requests() if e["operation"] == "Backups_Trigger"]


def nsg_rule_writes(server: Server) -> list[dict[str, Any]]:
    return [e for e in server.sim.requests() if e["mutating"] and "securityRules" in e["path"]
            and e["status"] < 300]


def slow_jobs(server: Server, seconds: float = 4.0) -> None:
    """Backup jobs that take `seconds` of armsim's time, however often they are read (no poll hurry)."""
    server.sim.settings.backup_job_polls = 0
    server.sim.settings.backup_job_seconds = seconds


def test_two_fixes_at_once_make_one_change_set_and_one_backup(armsim: Server, tmp_path: Path) -> None:
    slow_jobs(armsim)
    before = len(jobs_of(armsim))
    runs = two_fixes(armsim, tmp_path)
    for r in runs:
        assert r.returncode == 0, r.stdout + r.stderr
        (report,) = json.loads(r.stdout)["vms"]
        assert report["status"] == "fixed", report
    new = jobs_of(armsim)[before:]
    # Two processes import the SDK at once, so on a loaded machine the 0.3 s gap can shrink to the tight race
    # of docs/concurrency.md: then a second trigger reaches Azure and becomes a refused job. Either way one
    # backup runs and proves both fixes, and the NSG is written once.
    completed = [j for j in new if j.status == "Completed"]
    refused = [j for j in new if j.status == "Failed" and "UserErrorBackupOperationInProgress" in str(j.error)]
    assert len(completed) == 1 and len(completed) + len(refused) == len(new) == len(triggers(armsim)), \
        [(j.status, j.error) for j in new]
    assert len(triggers(armsim)) <= 2, triggers(armsim)
    assert len(nsg_rule_writes(armsim)) == 1
    armsim.sim.clear_requests()
    again = cli(armsim, "fix", VM, "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout + again.stderr
    assert [e for e in armsim.sim.requests() if e["mutating"]] == []


def test_a_trigger_refused_in_the_race_follows_the_job_that_holds_the_vm(armsim: Server, tmp_path: Path) -> None:
    """Both runs read the job list before either trigger lands: the loser's job is refused, and it follows the winner's."""
    slow_jobs(armsim)
    armsim.sim.faults.add(kind="latency", operation="Backups_Trigger", seconds=2.5, count=1)  # hold the first
    before = len(jobs_of(armsim))
    runs = two_fixes(armsim, tmp_path)
    reports = []
    for r in runs:
        assert r.returncode == 0, r.stdout + r.stderr
        (report,) = json.loads(r.stdout)["vms"]
        assert report["status"] == "fixed", report
        reports.append(report)
    new = jobs_of(armsim)[before:]
    assert [(j.status, j.error) for j in new] == [("Completed", None), ("Failed", "UserErrorBackupOperationInProgress")]
    held, refused = new
    assert all(held.id in rep["message"] for rep in reports)
    assert any(f"trigger was refused as job {refused.id}" in rep["message"] for rep in reports), reports
    assert held.item.last_status == "Completed"  # the refusal is not the VM's backup status
    armsim.sim.clear_requests()
    again = cli(armsim, "fix", VM, "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert again.returncode == 0 and "No changes. The VM's latest backup succeeded." in again.stdout, again.stdout
    assert [e for e in armsim.sim.requests() if e["mutating"]] == []


def test_a_later_run_follows_the_backup_another_run_started(armsim: Server, tmp_path: Path) -> None:
    """The second run starts after the first has fixed the NSG and triggered: nothing to change, it follows that job."""
    slow_jobs(armsim, 6.0)
    armsim.sim.faults.add(kind="latency", operation="JobDetails_Get", seconds=1.0, count=1)  # first poll of run 1
    before = len(jobs_of(armsim))
    first = subprocess.Popen(runbooks("fix", VM, "-g", "rg-demo", "--yes"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=_env(armsim, tmp_path))
    deadline = time.monotonic() + 60
    while len(jobs_of(armsim)) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    second = cli(armsim, "fix", VM, "-g", "rg-demo", "--yes", "-o", "json", tmp=tmp_path)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.returncode == 0, second.stdout + second.stderr
    (report,) = json.loads(second.stdout)["vms"]
    (job,) = jobs_of(armsim)[before:]
    assert report["status"] == "fixed" and f"backup job {job.id} completed (found running and followed)" in \
        report["message"], report
    assert job.status == "Completed" and len(triggers(armsim)) == 1


def test_a_job_older_than_the_run_is_named_with_its_start_and_exit_3(armsim: Server, tmp_path: Path) -> None:
    """A job that began before this run (less the skew margin) holds the VM: say who holds it, trigger nothing."""
    from datetime import timedelta
    vault = next(iter(armsim.sim.backup.vaults.values()))
    item = next(i for i in vault.items.values() if i.vm.name == "vm-healthy")
    old = armsim.sim.backup.start_job(vault, item, error=None, user=False,
                                      when=armsim.sim.clock.now() - timedelta(minutes=10))
    armsim.sim.clear_requests()
    r = cli(armsim, "fix", "vm-healthy", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"backup job {old.id} of vm-healthy, started" in r.stdout and "before the fix" in r.stdout
    assert [e for e in armsim.sim.requests() if e["mutating"]] == []


def seed_refusal(server: Server, vm: str) -> tuple[Any, Any]:
    """The VM's history: a real failure, then a trigger refused while another backup ran (both finished)."""
    from datetime import timedelta
    vault = next(iter(server.sim.backup.vaults.values()))
    item = next(i for i in vault.items.values() if i.vm.name == vm)
    now = server.sim.clock.now()
    for j in [j for j in vault.jobs if j.item is item]:
        vault.jobs.remove(j)
    real = server.sim.backup.start_job(vault, item, error="ExtensionSnapshotFailedNoNetwork", user=False,
                                       when=now - timedelta(hours=2), finished=True)
    refused = server.sim.backup.start_job(vault, item, error="UserErrorBackupOperationInProgress", user=True,
                                          when=now - timedelta(minutes=5), finished=True)
    return real, refused


def test_a_refused_job_is_never_taken_as_the_vms_error(armsim: Server, tmp_path: Path) -> None:
    real, refused = seed_refusal(armsim, VM)
    r = cli(armsim, "diagnose", VM, "-g", "rg-demo", "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    text = json.dumps(doc)
    assert "ExtensionSnapshotFailedNoNetwork" in text and real.id in text and refused.id not in text, text


def test_a_vm_whose_newest_job_is_a_refusal_after_a_success_needs_nothing(armsim: Server, tmp_path: Path) -> None:
    """The issue's third backup: a success, then a refused trigger; the next fix must change nothing."""
    from datetime import timedelta
    vault = next(iter(armsim.sim.backup.vaults.values()))
    item = next(i for i in vault.items.values() if i.vm.name == "vm-healthy")
    now = armsim.sim.clock.now()
    armsim.sim.backup.start_job(vault, item, error=None, user=True, when=now - timedelta(minutes=30), finished=True)
    armsim.sim.backup.start_job(vault, item, error="UserErrorBackupOperationInProgress", user=True,
                                when=now - timedelta(minutes=29), finished=True)
    armsim.sim.clear_requests()
    r = cli(armsim, "fix", "vm-healthy", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 0 and "No changes. The VM's latest backup succeeded." in r.stdout, r.stdout + r.stderr
    assert triggers(armsim) == []


def test_the_sweep_and_the_alert_path_skip_a_refused_job() -> None:
    from datetime import datetime, timezone

    from remediations.backupjobs import JobView, latest_failure
    from remediations.target import parse_target
    from runbooks.automation import sweep

    t = parse_target(f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/rg-demo/providers/Microsoft.Compute/"
                     "virtualMachines/vm-a")
    at = [datetime(2026, 12, 1, h, tzinfo=timezone.utc) for h in range(24)]

    def job(i: str, status: str, hour: int, title: str | None = None, message: str = "") -> JobView:
        return JobView(i, status, at[hour], None, True, "vm-a", "iaasvmcontainerv2;rg-demo;vm-a", title,
                       error_message=message)

    real = job("f", "Failed", 3, "ExtensionSnapshotFailedNoNetwork")
    refused = job("r", "Failed", 5, "UserErrorBackupOperationInProgress")
    by_text = job("n", "Failed", 6, None, "Unable to initiate backup as another backup operation is currently in "
                                          "progress")
    assert refused.refused and by_text.refused and not real.refused
    assert latest_failure([refused, real, by_text]) is real
    assert [x.id for _, x in sweep.plan([(t, real), (t, refused), (t, by_text)]).fix] == ["f"]
    assert sweep.plan([(t, job("c", "Completed", 2)), (t, refused)]) == sweep.Sweep((), ())


def test_an_alert_about_a_refused_job_fixes_the_vms_real_failure(armsim: Server) -> None:
    from support.automation import FIX, clean, sample
    from support.runs import run_entry

    _, refused = seed_refusal(armsim, VM)
    armsim.sim.clear_requests()
    run = run_entry(armsim, FIX, sample("backup-failure-alert.json", VM, refused.id))
    clean(run)
    assert run.code == 0 and f"job {refused.id} was refused (UserErrorBackupOperationInProgress" in run.text, run.text
    assert run.summary["vms"][0]["error"] == "ExtensionSnapshotFailedNoNetwork"
    assert [e for e in armsim.sim.requests() if e["mutating"]] == []


def test_armsim_accepts_a_trigger_while_a_job_runs_and_fails_its_job_at_once(armsim: Server) -> None:
    """Azure's model (backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md): the POST is accepted, the new
    job fails with UserErrorBackupOperationInProgress; the running job runs on."""
    from conftest import http
    vault = next(iter(armsim.sim.backup.vaults.values()))
    item = next(i for i in vault.items.values() if i.vm.name == "vm-healthy")
    slow_jobs(armsim, 600.0)
    running = armsim.sim.backup.start_job(vault, item, error=None, user=False)
    path = (f"{vault.id}/backupFabrics/Azure/protectionContainers/IaasVMContainer;{item.container}/protectedItems/"
            f"{item.name}")
    status, _ = http(armsim, "POST", f"{path}/backup?api-version=2023-04-01",
                     {"properties": {"objectType": "IaasVMBackupRequest"}})
    assert status == 202
    status, page = http(armsim, "GET", f"{vault.id}/backupJobs?api-version=2023-04-01")
    assert status == 200
    jobs = {j["name"]: j["properties"] for j in page["value"] if j["properties"]["entityFriendlyName"] == "vm-healthy"}
    (refused,) = [p for name, p in jobs.items() if name != running.id and p["startTime"] >= jobs[running.id]["startTime"]]
    assert refused["status"] == "Failed" and refused["errorDetails"][0]["errorTitle"] == \
        "UserErrorBackupOperationInProgress" and "endTime" in refused
    assert jobs[running.id]["status"] == "InProgress"
