"""trigger-backup: take an on-demand backup of a VM (the proof that a fix worked), and optionally follow its job.

Over 400 lines on purpose: the plan (the job history, the daily limit, a job of ours or of someone else's
already running), the trigger and the follow share one reading of the vault's jobs, and splitting them would
split the rule that a retry never triggers twice (the job reads are in backupreads.py, the views in backupjobs.py).

Wanted state: the VM's latest backup succeeded, or one is in progress. The plan reads where the VM
is protected (backupStatus), the protected item (last backup status and time) and the vault's
backup jobs of the last 24 h, and triggers a backup only when the latest one failed (or `force`),
none is running, and Azure's on-demand limit allows another: it refuses at the hard limit of
ON_DEMAND_HARD_LIMIT (9) on-demand attempts per UTC day and warns past Microsoft's recommended
ON_DEMAND_RECOMMENDED (3); scheduled backups do not count (backup support matrix,
MicrosoftDocs/azure-docs articles/backup/backup-support-matrix-iaas.md).

The trigger POST is not idempotent. It is the only step a retry can repeat, and every retry
re-reads the job history first (the base class re-plans before it re-executes), so a backup
that was created although its answer was lost shows up InProgress and is not triggered again.
Polls of the trigger operation and of the job are GETs: a transient failure there is just a
missed poll, retried in the loop until its deadline, never a reason to trigger again.

The backup job itself is the lock (docs/concurrency.md): a trigger is never sent while a job of the item
runs (it is followed, or named with its start when it began before the fix). Two runs that read the job
list at once can both trigger; Azure then fails the later job with UserErrorBackupOperationInProgress
(REFUSED_CODES), and the run that owns it follows the job that held the item instead.

Outcome: with `wait`, a job that ends Failed raises BackupJobFailed (an ArmCallError), so the
Outcome is `failed` with the job's error title (e.g. ExtensionSnapshotFailedNoNetwork) as
error_code; a job that Completed makes the re-plan empty (latest succeeded), so `changed`.
The job id is in the evidence and in the result execute returns (Outcome.result), also when it failed.

Over 300 lines on purpose: the plan (when a backup may start) and the follow-up (trigger operation, job,
the refused-trigger race) are one protocol around one job history; split, each half would need the other's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlparse

from pydantic import Field

from ..action import Action, ActionParams, Executed, Progress, RunSettings, Unfinished
from ..azure import Azure
from ..backupjobs import (
    JobView,
    arm_container,
    cap_refusal,
    cap_warning,
    for_vm,
    job_view,
    parse_time,
    when,
)
from ..backupreads import backup_item, vault_jobs
from ..errors import ArmCallError, OperationTimedOut
from ..model import Change, Plan
from ..polling import poll_until
from ..reads import read_vm
from ..target import Target

__all__ = ["BackupFacts", "BackupJobFailed", "Progress", "TriggerBackup", "TriggerOperationFailed", "TriggerParams"]

FABRIC = "Azure"
TRIGGER_OPERATION_SECONDS = 300.0  # how long to wait for the trigger operation to name its job


class BackupJobFailed(ArmCallError):
    """A backup job that ended Failed or Cancelled; `code` is its error title (e.g. ExtensionSnapshotFailedNoNetwork)."""


class TriggerOperationFailed(ArmCallError):
    """The trigger's own operation ended Failed/Canceled naming no job; internal errors re-plan (re-read jobs) and retry.

    An operation that ended badly but names its job is no failure of the trigger: the job is followed.
    """

    @property
    def retryable(self) -> bool:
        """Whether the failure looks transient (internal error, timeout, 'retry')."""
        code = self.code.lower()
        return any(w in code for w in ("internal", "retry", "timeout", "transient"))


class TriggerParams(ActionParams):
    """trigger-backup parameters: how long the recovery point is kept, and whether to wait for the job."""

    retention_days: int = Field(30, ge=1, le=9999, description="days to keep the recovery point")
    wait: bool = Field(False, description="follow the job until it ends (or wait_seconds pass)")
    wait_seconds: float = Field(3600.0, gt=0, le=7 * 24 * 3600)
    poll_seconds: float = Field(15.0, gt=0, le=600)
    since: datetime | None = Field(None, description="want a backup that started at or after this time and "
                                                      "succeeded (verification after a fix)")
    exclude_jobs: tuple[str, ...] = Field((), description="with since: jobs seen before the fix began, which "
                                                          "can neither prove it nor be followed")

    @classmethod
    def for_run(cls, target: Target, settings: RunSettings, **values: Any) -> TriggerParams:
        """A run's retention of the verification backup."""
        return cls.model_validate({"target": target, "retention_days": settings.retention_days, **values})


@dataclass(frozen=True)
class BackupFacts:
    """Where the VM is protected, its last backup, and its backup jobs of the last 24 h (newest first)."""

    vm: str
    power_state: str | None
    protected: bool
    vault_name: str = ""
    vault_group: str = ""
    container: str = ""  # as ARM paths want it: IaasVMContainer;iaasvmcontainerv2;rg;vm
    item: str = ""
    last_status: str = ""
    last_time: datetime | None = None
    jobs: tuple[JobView, ...] = ()
    now: datetime = datetime.min.replace(tzinfo=timezone.utc)


def _operation_id(headers: dict[str, str]) -> str:
    """The operation id at the end of the Azure-AsyncOperation (or Location) URL."""
    h = {k.lower(): v for k, v in headers.items()}
    url = h.get("azure-asyncoperation") or h.get("location") or ""
    return urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]


def _retry_after(headers: dict[str, str]) -> float | None:
    """The trigger's Retry-After in seconds (TriggerBackup_Post.json sends 60), or None when absent or not a number."""
    raw = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


class TriggerBackup(Action[TriggerParams, BackupFacts]):
    """Trigger an on-demand backup unless the latest succeeded, one is running, or Azure's hard limit forbids it."""

    name = "trigger-backup"
    summary = "take an on-demand backup of the VM and (optionally) follow its job"
    Params = TriggerParams
    disruptive: ClassVar[bool] = False
    # Not idempotent: each trigger makes a new job and recovery point; a forced run triggers again.
    idempotent: ClassVar[bool] = False
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.RecoveryServices/locations/backupStatus/action",
        "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/read",
        "Microsoft.RecoveryServices/Vaults/backupJobs/read",
        "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/backup/action",
        "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/operationsStatus/read")

    # --- read --------------------------------------------------------------------------------
    def read(self, azure: Azure, params: TriggerParams) -> BackupFacts:
        """backupStatus for the VM, then its protected item and the vault's backup jobs of the last 24 h."""
        t = params.target
        vm = read_vm(azure, t)
        where = backup_item(azure, vm)
        if where is None:
            return BackupFacts(t.name, vm.power_state, False)
        vault, group, container, item = where.vault, where.vault_group, arm_container(where.container), where.item
        it = azure.call(azure.backup.protected_items.get, vault, group, FABRIC, container, item).as_dict()
        props = it.get("properties") or {}
        now = datetime.now(timezone.utc)
        pages = vault_jobs(azure, vault, group, now=now)
        return BackupFacts(t.name, vm.power_state, True, vault, group, container, item,
                           str(props.get("lastBackupStatus") or ""), parse_time(props.get("lastBackupTime")),
                           tuple(for_vm(pages, t.name, container)), now)

    # --- plan --------------------------------------------------------------------------------
    def plan(self, facts: BackupFacts, params: TriggerParams) -> Plan:
        """A `run` backup when the latest failed (or forced), none runs and the hard limit allows (warned past 3); else why not."""
        vm = facts.vm
        plan = Plan(action=self.name, target=str(params.target))
        if not facts.protected:
            plan.reason = f"{vm} is not protected by Azure Backup"
            plan.manual.append(f"protect {vm} in a Recovery Services vault first")
            return plan
        fix = _Fix(params)
        running = next((j for j in facts.jobs if j.active), None)
        if running is not None:  # it holds the item: a trigger now would only make a refused job
            return self._while_running(plan, facts, params, fix, running)
        latest = _latest(facts)
        if fix.since is not None:
            proof = next((j for j in facts.jobs if j.succeeded and not fix.before(j)), None)
            if proof is not None:
                plan.reason = f"backup job {proof.id} of {vm} started {when(proof.start)} and succeeded"
                plan.proven_by = proof.id
                return plan
            latest = latest._replace(ok=False, why=f"a new backup proves the fix ({vm} has no successful backup "
                                                   "since it began)")
        if latest.ok and not params.force:
            plan.reason = f"latest backup of {vm} succeeded at {when(latest.at)}"
            return plan
        return self._trigger_plan(plan, facts, params, latest)

    def _while_running(self, plan: Plan, facts: BackupFacts, params: TriggerParams, fix: _Fix,
                       running: JobView) -> Plan:
        """While a job runs (docs/concurrency.md): wait for one from before the fix, follow one of ours, or say so."""
        vm = facts.vm
        if fix.since is not None and fix.before(running):
            plan.reason = (f"backup job {running.id} of {vm}, started {when(running.start)} before the fix, is "
                           f"still {running.status}; a new backup cannot start until it ends")
            plan.manual.append(f"wait for backup job {running.id} to end, then verify again "
                               f"(python -m runbooks action trigger-backup {vm} --param wait=true)")
        elif fix.since is not None and params.wait:
            plan.changes.append(self._follow_change(facts, running))
        else:
            plan.reason = f"backup job {running.id} for {vm} is {running.status} (started {when(running.start)})"
        return plan

    def _trigger_plan(self, plan: Plan, facts: BackupFacts, params: TriggerParams, latest: _Latest) -> Plan:
        """The trigger step, unless Azure's hard limit refuses it; warned past the recommended count."""
        vm = facts.vm
        refusal = cap_refusal(facts.jobs, vm, facts.now)
        if refusal is not None:
            plan.reason, step = refusal
            plan.manual.append(step)
            return plan
        warning = cap_warning(facts.jobs, vm, facts.now)
        if warning is not None:
            plan.notes.append(warning)
        if facts.power_state and facts.power_state != "running":
            plan.notes.append(f"{vm} is {facts.power_state}: the backup will be crash-consistent")
        reason = f"forced: the latest backup of {vm} succeeded at {when(latest.at)}" if latest.ok else latest.why
        plan.changes.append(Change(
            action=self.name, kind="run", resource=f"{vm} backup",
            resource_id=f"/subscriptions/{params.target.subscription}/resourceGroups/{facts.vault_group}/providers/"
                        f"Microsoft.RecoveryServices/vaults/{facts.vault_name}/backupFabrics/{FABRIC}/"
                        f"protectionContainers/{facts.container}/protectedItems/{facts.item}",
            summary=f"backup vault {facts.vault_name}, keep {params.retention_days} days", reason=reason,
            before={"latest": latest.status, "at": latest.at.isoformat() if latest.at else None},
            after={"backup": "InProgress"},
            data={**_where(facts), **({"warning": warning} if warning else {})}))
        return plan

    def _follow_change(self, facts: BackupFacts, job: JobView) -> Change:
        """A `run` step that follows an already running job of ours to its end (no new trigger)."""
        return Change(
            action=self.name, kind="run", resource=f"{facts.vm} backup",
            summary=f"follow backup job {job.id} in vault {facts.vault_name}",
            reason=f"backup job {job.id} started {when(job.start)}, after the fix, and is still {job.status}",
            before={"job": job.id, "status": job.status}, after={"backup": "Completed"},
            data={**_where(facts), "follow": job.id})

    # --- execute -----------------------------------------------------------------------------
    def also_retry(self, exc: BaseException) -> bool:
        """A trigger operation that failed internally: re-plan (re-read jobs) and try again."""
        return isinstance(exc, TriggerOperationFailed) and exc.retryable

    def execute(self, azure: Azure, params: TriggerParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """POST the trigger, learn the job id from its operation, with `wait` follow the job (calling `progress` on
        each poll); the plan's warning kept. The result names the vault, operation and job, also when it fails."""
        result: dict[str, Any] = {}
        try:
            note = self._trigger(azure, params, change, result, progress)
        except Exception as e:
            raise Unfinished(e, result) from None
        warning = change.data.get("warning")
        return Executed(f"{note}; {warning}" if note and warning else note, result)

    def _trigger(self, azure: Azure, params: TriggerParams, change: Change, result: dict[str, Any],
                 progress: Progress | None) -> str | None:
        from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

        d = change.data
        if d.get("follow"):
            result.update(vault=d["vault"], job_id=d["follow"], followed=True)
            return self._finish(azure, params, d, d["follow"], result, progress)
        expiry = datetime.now(timezone.utc) + timedelta(days=params.retention_days)
        body = BackupRequestResource(properties=IaasVMBackupRequest(recovery_point_expiry_time_in_utc=expiry))
        # The generated code hands `cls` an empty headers dict: read them off the HTTP response.
        headers = azure.call(azure.backup.backups.trigger, d["vault"], d["vault_group"], FABRIC, d["container"],
                             d["item"], body, cls=lambda resp, _des, _h: dict(resp.http_response.headers))
        op_id = _operation_id(headers or {})
        result.update(vault=d["vault"], operation_id=op_id)
        job_id = self._job_id(azure, params, d, op_id, result, _retry_after(headers or {}))
        vm = params.target.name
        if not job_id:
            return f"backup of {vm} triggered (operation {op_id}); its job id was not reported yet"
        result["job_id"] = job_id
        if not params.wait:
            return f"backup job {job_id} for {vm} started"
        return self._finish(azure, params, d, job_id, result, progress)

    def _finish(self, azure: Azure, params: TriggerParams, d: dict[str, Any], job_id: str, result: dict[str, Any],
                progress: Progress | None) -> str:
        """Follow the job to its end; a failed job raises BackupJobFailed with the job's error code."""
        vm = params.target.name
        job = job_view(self.follow(azure, params, job_id, progress, vault=d["vault"], vault_group=d["vault_group"]))
        result["status"] = job.status
        held = None
        if job.refused:  # another run's trigger won the race: follow the job that holds the item instead
            held = self._holder(azure, params, job)
            if held is not None:
                result.update(refused_job=job_id, job_id=held.id, followed=True)
                job_id, job = held.id, job_view(self.follow(azure, params, held.id, progress, vault=d["vault"],
                                                            vault_group=d["vault_group"]))
                result["status"] = job.status
        if job.status.lower() in ("failed", "cancelled", "canceled"):
            code = job.error_code or f"BackupJob{job.status}"
            raise BackupJobFailed(None, code, f"backup job {job_id} for {vm} {job.status}"
                                  + (f": {job.error_message}" if job.error_message else ""),
                                  correlation_id=azure.last_correlation_id())
        note = "" if (d.get("power_state") or "running") == "running" else \
            f" (crash-consistent: {vm} is {d['power_state']})"
        if held is not None:
            note += (f" (this run's trigger was refused as job {result['refused_job']}: job {job_id}, "
                     f"started {when(held.start)}, held {vm})")
        if job.active:
            return f"job {job_id} still {job.status} after {params.wait_seconds:g} s{note}"
        return f"job {job_id} {job.status}{note}"

    def _holder(self, azure: Azure, params: TriggerParams, refused: JobView) -> JobView | None:
        """The job that held the item when `refused` was refused: one still running, else the newest that began before it."""
        jobs = [j for j in self.read(azure, params).jobs if j.id != refused.id and not j.refused]
        running = next((j for j in jobs if j.active), None)
        if running is not None or refused.start is None:
            return running
        return next((j for j in jobs if j.start is not None and j.start <= refused.start), None)

    def _job_id(self, azure: Azure, params: TriggerParams, d: dict[str, Any], op_id: str,
                result: dict[str, Any], retry_after: float | None = None) -> str | None:
        """Poll the trigger operation until it names its job (the operation ends in seconds), no faster than the
        trigger's Retry-After asks (capped; a fleet's polls would spend ARM's read budget); a lost poll is polled
        again, never triggered again. Past TRIGGER_OPERATION_SECONDS: the job id seen so far, if any."""
        if not op_id:
            return None
        interval = max(params.poll_seconds, min(retry_after or 0.0, azure.config.retry.retry_after_cap))

        def read() -> dict[str, Any]:
            st: dict[str, Any] = azure.call(azure.backup.protected_item_operation_statuses.get, d["vault"],
                                            d["vault_group"], FABRIC, d["container"], d["item"], op_id).as_dict()
            if (st.get("properties") or {}).get("jobId"):
                result["job_id"] = st["properties"]["jobId"]
            return st

        try:
            st = poll_until(read, lambda s: _op_status(s) in _OP_ENDED, name=f"backup trigger operation {op_id}",
                            interval=interval, seconds=min(params.wait_seconds, TRIGGER_OPERATION_SECONDS),
                            cap=azure.config.retry.retry_after_cap, status=_op_status)
        except OperationTimedOut:
            return result.get("job_id")
        status, job_id = _op_status(st), (st.get("properties") or {}).get("jobId")
        if status == "succeeded":
            return job_id
        err = st.get("error") or {}
        if job_id:  # the job exists: the backup started although its trigger operation ended badly
            result["trigger_operation"] = f"{status}: {err.get('code') or 'no code'}"
            return job_id
        raise TriggerOperationFailed(None, str(err.get("code") or f"TriggerOperation{status.title()}"),
                                     str(err.get("message") or f"backup trigger operation {op_id} {status}"),
                                     correlation_id=azure.last_correlation_id())

    def follow(self, azure: Azure, params: TriggerParams, job_id: str, on_progress: Progress | None = None, *,
               vault: str | None = None, vault_group: str | None = None) -> dict[str, Any]:
        """Poll the job (JobDetails_Get) until it leaves InProgress or wait_seconds pass; the last job JSON."""
        if vault is None or vault_group is None:
            facts = self.read(azure, params)
            vault, vault_group = facts.vault_name, facts.vault_group
        last: list[dict[str, Any]] = []

        def read() -> dict[str, Any]:  # a GET: a transient failure is one missed poll
            job: dict[str, Any] = azure.call(azure.backup.job_details.get, vault, vault_group, job_id).as_dict()
            last[:] = [job]
            if on_progress is not None:
                view = job_view(job)
                on_progress(view.status, view.progress_info())
            return job

        try:
            return poll_until(read, lambda j: not job_view(j).active, name=f"backup job {job_id}",
                              interval=params.poll_seconds, seconds=params.wait_seconds,
                              cap=azure.config.retry.retry_after_cap, status=lambda j: job_view(j).status)
        except OperationTimedOut:
            if last:  # still running at the deadline: the caller says so
                return last[0]
            raise


class _Fix:
    """With `since`: which jobs began before the fix (listed then, or earlier than `since`) and prove nothing."""

    def __init__(self, params: TriggerParams) -> None:
        s = params.since
        self.since = None if s is None else (s if s.tzinfo else s.replace(tzinfo=timezone.utc))
        self.excluded = {j.lower() for j in params.exclude_jobs}

    def before(self, j: JobView) -> bool:
        """Whether job `j` began before the fix."""
        return j.id.lower() in self.excluded or j.start is None or (self.since is not None and j.start < self.since)


class _Latest(NamedTuple):
    """The VM's latest backup: whether it succeeded, when, its status, and why it counts as failed."""

    ok: bool
    at: datetime | None
    status: str | None
    why: str


def _latest(facts: BackupFacts) -> _Latest:
    """The latest finished job of the last 24 h, else what the protected item remembers."""
    vm = facts.vm
    finished = next((j for j in facts.jobs if not j.active), None)
    if finished is not None:
        at = finished.end or finished.start
        return _Latest(finished.succeeded, at, finished.status,
                       f"the latest backup of {vm} failed at {when(at)} with {finished.error}"
                       + (f" ({finished.error_message})" if finished.error_message else ""))
    ok, at = facts.last_status.lower() in ("completed", "completedwithwarnings"), facts.last_time
    return _Latest(ok, at, facts.last_status or None,
                   f"the latest backup of {vm} ended {facts.last_status} at {when(at)}" if facts.last_status
                   else f"{vm} has no backup yet")


def _where(facts: BackupFacts) -> dict[str, Any]:
    """What execute needs to address the protected item."""
    return {"vault": facts.vault_name, "vault_group": facts.vault_group, "container": facts.container,
            "item": facts.item, "power_state": facts.power_state}


_OP_FAILED = ("failed", "canceled", "cancelled", "invalid")
_OP_ENDED = ("succeeded", *_OP_FAILED)


def _op_status(st: dict[str, Any]) -> str:
    return str(st.get("status") or "").lower()
