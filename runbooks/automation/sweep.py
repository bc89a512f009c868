"""The scheduled sweep: every VM with a failed backup job in the last N hours (refused triggers aside), minus the VMs a fix already has.

A backstop for alerts that were lost, throttled or never configured. It must not fight the alert path:
a VM is skipped (and listed with the reason) when a backup job of it is in progress (a fix may be
verifying it), when a backup of it Completed after its failure (verified since), when a job of the
fix runbook that names it is not finished, or when one was created after the failure and ended (tried
since: the sweep does not retry a VM hourly; a new failure makes it eligible again). The rest go to
runbooks.automation.children.fan_out: the same child jobs, concurrency bound and forwarded settings as fan_out.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from remediations.automation_jobs import get_job, list_jobs
from remediations.azure import Azure
from remediations.backupjobs import JobView, job_target, latest_failure, parse_time
from remediations.backupreads import vault_jobs
from remediations.discovery import jobs_everywhere
from remediations.errors import BadInput
from remediations.target import Target

from .alerts import read_trigger, resource_parts
from .settings import parse_argv

__all__ = ["UNFINISHED_JOB", "FixJob", "Skipped", "Sweep", "backup_jobs", "describe", "everywhere", "fix_jobs",
           "plan"]

# Automation job states that are not an end (Job.status in the REST spec).
UNFINISHED_JOB = ("New", "Activating", "Running", "Resuming", "Queued", "Starting", "Stopping", "Suspending",
                  "Blocked", "Disconnected")


@dataclass(frozen=True)
class Skipped:
    """A VM the sweep leaves alone, and why."""

    target: Target
    reason: str


@dataclass(frozen=True)
class Sweep:
    """What one sweep does: the VMs to fix (with their latest failed job) and the VMs it skips."""

    fix: tuple[tuple[Target, JobView], ...]
    skipped: tuple[Skipped, ...]


def backup_jobs(azure: Azure, vault_id: str, hours: float) -> list[tuple[Target, JobView]]:
    """Every IaaS VM backup job of the vault started in the last `hours` (any status), with its VM."""
    sub, group, vault = resource_parts(vault_id)
    return [(t, j) for j in vault_jobs(azure, vault, group, hours=hours) if (t := job_target(j, sub, group)) is not None]


def everywhere(azure_for: Callable[[str], Azure], home: str, hours: float, vaults: Iterable[str],
               say: Callable[[str], None]) -> tuple[list[tuple[Target, JobView]], str]:
    """(every IaaS VM backup job of the last `hours` in every subscription the identity reads, where they came from):
    one paged Resource Graph query (remediations/discovery.py), or the `vaults`' job lists when it is refused."""
    fell_back: list[str] = []

    def note(line: str) -> None:
        fell_back.append(line)
        say(line)

    vaults = list(dict.fromkeys(v.rstrip("/") for v in vaults))
    jobs = jobs_everywhere(azure_for(home), hours, vaults=vaults, azure_for=azure_for, say=note)
    source = (f"backup jobs of {len(vaults)} vault(s) (Resource Graph refused the query)" if fell_back else
              "backup jobs of every subscription the identity can read (Azure Resource Graph)")
    return jobs, f"{source} during the last {hours:g} h"


@dataclass(frozen=True)
class FixJob:
    """A job of the fix runbook: the VM it names (lower-case ID), its name, status and creation time."""

    vm: str
    name: str
    status: str
    created: datetime | None

    @property
    def finished(self) -> bool:
        """Whether the job has ended."""
        return self.status not in UNFINISHED_JOB


def fix_jobs(azure: Azure, account_id: str, runbook: str, since: datetime) -> list[FixJob]:
    """The jobs of `runbook` that are unfinished or were created since `since`, with the VMs they name.

    A job's parameters are only on its own GET (listJobsByAutomationAccount.json has none), so each such
    job is read once; they are parsed exactly as the runbook parses them."""
    resource_parts(account_id)  # not an account ID: BadInput before any read
    found: list[FixJob] = []
    for item in list_jobs(azure, account_id):
        props = item.get("properties") or item
        status = str(props.get("status") or "")
        created = parse_time(props.get("creation_time") or props.get("creationTime"))
        if str((props.get("runbook") or {}).get("name") or "").lower() != runbook.lower() \
                or (status not in UNFINISHED_JOB and (created is None or created < since)):
            continue
        name = str(item.get("name") or "")
        job = get_job(azure, account_id, name)
        params: dict[str, Any] = (job.get("properties") or job).get("parameters") or {}
        try:
            data, _ = parse_argv(["job", *(str(v) for v in params.values())], "fix_backup_failure")
            targets = read_trigger(data).targets if data else ()
        except BadInput:
            continue
        found += [FixJob(t.id.lower(), name, status, created) for t in targets]
    return found


def plan(jobs: Iterable[tuple[Target, JobView]], fixes: Iterable[FixJob] = (), runbook: str = "fix_backup_failure"
         ) -> Sweep:
    """Pure: the VMs with a failed backup job, minus those a fix is working on, has tried since, or verified since."""
    by_vm: dict[str, tuple[Target, list[JobView]]] = {}
    for t, j in jobs:
        by_vm.setdefault(t.id.lower(), (t, []))[1].append(j)
    fixes = list(fixes)
    fix: list[tuple[Target, JobView]] = []
    skipped: list[Skipped] = []
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    for key, (t, views) in by_vm.items():
        failure = latest_failure(views)  # a trigger refused while another backup ran is no failure of the VM
        if failure is None:
            continue
        # a job running in another vault (an old one still protecting the VM) is no fix verifying it: it is the cause
        # the fix reports (E7); only Resource Graph, which reads every vault, shows such jobs
        active = next((j for j in views if j.active and _same_vault(j, failure)), None)
        verified = next((j for j in sorted(views, key=lambda j: j.start or oldest, reverse=True)
                         if j.succeeded and (j.start or oldest) > (failure.start or oldest)), None)
        busy = next((f for f in fixes if f.vm == key and not f.finished), None)
        tried = next((f for f in fixes if f.vm == key and f.finished and (f.created or oldest) > (failure.start or oldest)),
                     None)
        if active is not None:
            skipped.append(Skipped(t, f"backup job {active.id} is {active.status}: a fix may be verifying it"))
        elif verified is not None:
            skipped.append(Skipped(t, f"verified since the failure: backup job {verified.id} {verified.status}"))
        elif busy is not None:
            skipped.append(Skipped(t, f"{runbook} job {busy.name} is {busy.status} for it"))
        elif tried is not None:
            skipped.append(Skipped(t, f"tried since the failure: {runbook} job {tried.name} {tried.status} "
                                      "(a new failure is needed to try again)"))
        else:
            fix.append((t, failure))
    return Sweep(tuple(fix), tuple(skipped))


def _same_vault(a: JobView, b: JobView) -> bool:
    """Whether two jobs belong to one vault (their IDs say; when either does not, assume so)."""
    va, vb = (str(j.raw.get("id") or "").lower().rpartition("/backupjobs/")[0] for j in (a, b))
    return not va or not vb or va == vb


def describe(sweep: Sweep, say: Callable[[str], None]) -> None:
    """One line per VM: fixed next, or skipped with the reason."""
    for t, job in sweep.fix:
        say(f"{t.name}: backup job {job.id} Failed ({job.error_title or 'no recorded error'}): fixing")
    for s in sweep.skipped:
        say(f"{s.target.name}: skipped: {s.reason}")
