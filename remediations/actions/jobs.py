"""wait-backup-job and cancel-backup-job: a backup job still running holds the VM (E7, UserErrorBackupOperationInProgress).

The guide (backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md, UserErrorBackupOperationInProgress): "If a
backup job is in progress, wait for it to complete or cancel the backup job … If you have reconfigured the backup
in a different vault, then ensure there are no backup jobs running in the old vault. If it exists, then cancel the
backup job … Retry backup operation." Both actions read the same facts: the VM's job still running (InProgress or
Cancelling) in its vault, else one in another vault of the subscription (an old vault). The retry is the engine's
verification backup.

- wait-backup-job (not disruptive, no write): follows the VM's own running job to its end, bounded by `wait_seconds`.
- cancel-backup-job (disruptive): cancels the VM's own job once it has run `stuck_hours` or longer (or with
  `force`), and a job of the VM in an old vault whatever its age (the guide says to cancel it).

The default threshold is 24 hours: a VM policy backs up at most once a day on its schedule (backup support matrix:
"one scheduled backup" a day for the standard policy), so a job that has run a day has met the next scheduled
backup, which then fails with this very code: it no longer just takes long, it blocks the schedule. Shorter jobs
are waited for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from pydantic import Field

from ..action import Action, ActionParams, Executed, Progress
from ..armid import parse_resource_id
from ..azure import Azure
from ..backupjobs import JobView, for_vm, when
from ..backupreads import BackupItem, backup_item, backup_job, recent_jobs, vault_jobs
from ..model import Change, Plan
from ..polling import poll_until
from ..reads import read_vm

__all__ = ["DEFAULT_STUCK_HOURS", "CancelBackupJob", "JobFacts", "JobParams", "RunningJob", "WaitBackupJob",
           "read_running"]

DEFAULT_STUCK_HOURS = 24.0
_VAULTS_API = "2025-08-01"  # Vaults_ListBySubscriptionId (azure-rest-api-specs recoveryservices)


class JobParams(ActionParams):
    """The VM; how long a job may run before it counts as stuck; how long wait-backup-job follows it."""

    stuck_hours: float = Field(DEFAULT_STUCK_HOURS, gt=0)
    wait_seconds: float = Field(3600.0, gt=0)
    poll_seconds: float | None = Field(None, gt=0)


@dataclass(frozen=True)
class RunningJob:
    """A backup job of the VM still running, and the vault it runs in (`old`: not the vault protecting the VM)."""

    job: JobView
    vault: str
    group: str
    old: bool

    def hours(self, now: datetime) -> float:
        """How long it has run, in hours (0 when its start is unknown)."""
        return max((now - self.job.start).total_seconds() / 3600.0, 0.0) if self.job.start else 0.0

    def describe(self, vm: str, now: datetime) -> str:
        """Evidence: job id, vault, start time and how long it has run."""
        where = f"the old vault {self.vault} (not the vault protecting {vm} now)" if self.old else f"vault {self.vault}"
        return (f"backup job {self.job.id} of {vm} is {self.job.status} in {where}: started "
                f"{when(self.job.start)}, running for {self.hours(now):.1f} h")


@dataclass(frozen=True)
class JobFacts:
    """Where the VM is protected, its job still running (own vault first, else an old vault), and the time read."""

    vm: str
    item: BackupItem | None
    running: RunningJob | None
    now: datetime
    vaults_read: int = 0  # other vaults whose jobs were read


def _other_vaults(azure: Azure, exclude: str) -> list[tuple[str, str]]:
    """(name, group) of the subscription's vaults other than `exclude` (Vaults_ListBySubscriptionId, all pages)."""
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    url: str | None = (f"{azure.config.endpoint}/subscriptions/{azure.subscription}/providers/"
                       f"Microsoft.RecoveryServices/vaults?api-version={_VAULTS_API}")
    out: list[tuple[str, str]] = []
    while url:
        resp = azure.backup.send_request(HttpRequest("GET", url))
        if resp.status_code >= 400:
            raise HttpResponseError(response=resp)
        body = resp.json() or {}
        for v in body.get("value") or []:
            vid = str(v.get("id") or "")
            if vid and vid.lower() != exclude.lower():
                rid = parse_resource_id(vid, type="Microsoft.RecoveryServices/vaults")
                out.append((rid.name, rid.resource_group))
        url = body.get("nextLink")
    return out


def read_running(azure: Azure, params: ActionParams) -> JobFacts:
    """The VM, where it is protected, its running job there; only when none runs there, the other vaults' jobs."""
    vm = read_vm(azure, params.target)
    now = datetime.now(timezone.utc)
    item = backup_item(azure, vm)
    if item is None:
        return JobFacts(vm.name, None, None, now)
    own = next((j for j in recent_jobs(azure, item, vm.name) if j.active), None)
    if own is not None:
        return JobFacts(vm.name, item, RunningJob(own, item.vault, item.vault_group, False), now)
    others = azure.call(_other_vaults, azure, item.vault_id)
    for name, group in others:
        jobs = for_vm(vault_jobs(azure, name, group, hours=24 * 7, now=now), vm.name, item.container)
        found = next((j for j in jobs if j.active), None)
        if found is not None:
            return JobFacts(vm.name, item, RunningJob(found, name, group, True), now, len(others))
    return JobFacts(vm.name, item, None, now, len(others))


def _nothing(plan: Plan, f: JobFacts) -> Plan | None:
    """The plan's reason when no job runs (or the VM is not protected); None when one runs."""
    if f.item is None:
        plan.reason = f"{f.vm} is not protected by Azure Backup"
    elif f.running is None:
        also = f", nor in the {f.vaults_read} other vault(s) of the subscription" if f.vaults_read else ""
        plan.reason = f"no backup job of {f.vm} is running in vault {f.item.vault}{also}"
    else:
        return None
    return plan


def _follow(azure: Azure, params: JobParams, vault: str, group: str, job_id: str, seconds: float,
            progress: Progress | None) -> JobView:
    """Read the job until it ends (bounded by `seconds`, Ctrl-C honoured); its last view."""
    interval = params.poll_seconds or (0.05 if azure.config.loopback else 30.0)

    def read() -> JobView:
        view = backup_job(azure, vault, group, job_id)
        if progress is not None:
            progress(view.status, view.progress_info())
        return view

    return poll_until(read, lambda j: not j.active, name=f"backup job {job_id}", interval=interval,
                      seconds=seconds, status=lambda j: j.status)


class _JobAction(Action[JobParams, JobFacts]):
    """An action on the VM's running backup job: both read it the same way (read_running)."""

    Params = JobParams
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.RecoveryServices/locations/backupStatus/action",
        "Microsoft.RecoveryServices/Vaults/backupJobs/read", "Microsoft.RecoveryServices/Vaults/read")

    def read(self, azure: Azure, params: JobParams) -> JobFacts:
        """The VM's running backup job, in its vault or an old one (see read_running)."""
        return read_running(azure, params)


class WaitBackupJob(_JobAction):
    """Follow the VM's running backup job to its end (bounded); the engine's verification backup then retries."""

    name = "wait-backup-job"
    summary = "wait (bounded) for the VM's running backup job to end, so that a backup can start"
    disruptive: ClassVar[bool] = False

    def plan(self, facts: JobFacts, params: JobParams) -> Plan:
        """A `run` step following the VM's own job when it runs under the stuck threshold; otherwise why not."""
        plan = Plan(action=self.name, target=str(params.target))
        if _nothing(plan, facts) is not None or facts.running is None:
            return plan
        r, vm = facts.running, facts.vm
        said = r.describe(vm, facts.now)
        if r.old:
            plan.reason = f"{said}; cancel-backup-job cancels it there (with consent), waiting is not the guide's fix"
            return plan
        if r.hours(facts.now) >= params.stuck_hours:
            plan.reason = (f"{said}, past the {params.stuck_hours:g} h threshold: it counts as stuck; "
                           "cancel-backup-job cancels it (with consent)")
            return plan
        plan.changes.append(Change(
            action=self.name, kind="run", resource=f"{r.vault}/backupJobs/{r.job.id}",
            summary=f"wait for backup job {r.job.id} of {vm} to end (at most {params.wait_seconds:g} s)",
            reason=f"{said}; a backup of {vm} cannot start until it ends",
            before={"status": r.job.status}, data={"vault": r.vault, "group": r.group, "job": r.job.id}))
        return plan

    def execute(self, azure: Azure, params: JobParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Read the job until it ends (no write); its final status is the evidence."""
        d = change.data
        job = _follow(azure, params, d["vault"], d["group"], d["job"], params.wait_seconds, progress)
        return Executed(f"backup job {job.id} of {params.target.name} ended {job.status} at {when(job.end)}",
                        {"job_id": job.id, "job_status": job.status})


class CancelBackupJob(_JobAction):
    """Cancel the VM's backup job that is stuck (running `stuck_hours` or more) or runs in an old vault."""

    name = "cancel-backup-job"
    summary = "cancel the VM's stuck backup job, or its job still running in an old vault (disruptive)"
    disruptive: ClassVar[bool] = True
    permissions: ClassVar[tuple[str, ...]] = (
        *_JobAction.permissions, "Microsoft.RecoveryServices/Vaults/backupJobs/cancel/action")

    def plan(self, facts: JobFacts, params: JobParams) -> Plan:
        """A disruptive `remove` cancelling the job when it is stuck, runs in an old vault, or `force`; else why not."""
        plan = Plan(action=self.name, target=str(params.target))
        if _nothing(plan, facts) is not None or facts.running is None:
            return plan
        r, vm = facts.running, facts.vm
        said = r.describe(vm, facts.now)
        if r.job.status.lower() == "cancelling":
            plan.reason = f"{said}: its cancellation is under way; wait-backup-job follows it"
            return plan
        stuck = r.hours(facts.now) >= params.stuck_hours
        if not (r.old or stuck or params.force):
            plan.reason = (f"{said}, under the {params.stuck_hours:g} h threshold: wait-backup-job follows it to "
                           "its end")
            return plan
        why = ("the guide: cancel a job still running in the old vault after the backup was reconfigured"
               if r.old else f"past the {params.stuck_hours:g} h threshold: it counts as stuck" if stuck
               else "forced")
        plan.changes.append(Change(
            action=self.name, kind="remove", resource=f"{r.vault}/backupJobs/{r.job.id}",
            summary=f"cancel backup job {r.job.id} of {vm} in vault {r.vault}",
            reason=f"{said}; {why}", before={"status": r.job.status}, after={"status": "Cancelled"},
            disruptive=True, data={"vault": r.vault, "group": r.group, "job": r.job.id}))
        return plan

    def execute(self, azure: Azure, params: JobParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """POST the cancellation (JobCancellations_Trigger, 202), then read the job until it is no longer running."""
        d = change.data
        azure.call(azure.backup.job_cancellations.trigger, d["vault"], d["group"], d["job"])
        job = _follow(azure, params, d["vault"], d["group"], d["job"], azure.config.operation_seconds, progress)
        result: dict[str, Any] = {"job_id": job.id, "job_status": job.status}
        return Executed(f"cancelled backup job {job.id} of {params.target.name} in vault {d['vault']}: {job.status}",
                        result)
