"""Recovery Services backup jobs: their course in simulated time, listing with `$filter` / `$skipToken` paging, reading one.

A job's course derives from its start on armsim's clock and its duration (`Settings.backup_job_seconds`):
the first SNAPSHOT_SHARE of it is the "Take Snapshot" task, the rest "Transfer data to vault"; time
alone ends it, whoever reads it. Reading the job itself (JobDetails_Get) only hurries it: after
`Settings.backup_job_polls` reads it ends at once.

`$filter` accepts `and`-joined `<key> eq '<value>'` terms with keys status, operation,
backupManagementType, startTime, endTime (azure-cli's format, also 24-hour and ISO-8601 with Z;
UTC; they bound the job's start time) and jobId; anything else is 400 BMSUserErrorInvalidFilter.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .arm import ArmError, Request, Response

if TYPE_CHECKING:
    from .backup import Item
    from .sim import Simulator

__all__ = ["SNAPSHOT_SHARE", "Job", "job_get", "jobs_list"]

# Assumed split: Azure reports the two tasks but publishes no share; the snapshot is the first half.
SNAPSHOT_SHARE = 0.5


@dataclass
class Job:
    """One backup job: started at `mono_start` simulated seconds, lasting `seconds` (0: until polls end it)."""

    item: Item
    error: str | None
    started: datetime
    polls_needed: int
    seconds: float
    mono_start: float
    user_triggered: bool = True
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "InProgress"
    ended: datetime | None = None
    polls: int = 0
    cancel_op: str | None = None  # the cancellation's operation id (armsim/jobstates.py)
    cancel_mono: float = 0.0
    cancel_reads: int = 0

    def fraction(self, clock: float) -> float:
        """How far the job has come (0..1) at simulated second `clock`: by time, or further by polls."""
        if self.status != "InProgress":
            return 1.0
        by_time = (clock - self.mono_start) / self.seconds if self.seconds > 0 else 0.0
        by_polls = self.polls / self.polls_needed if self.polls_needed > 0 else 0.0
        return max(0.0, min(1.0, max(by_time, by_polls)))

    def tasks(self, clock: float, now: datetime) -> list[dict[str, Any]]:
        """The tasksList: Take Snapshot, then Transfer data to vault, with their statuses and durations."""
        f = self.fraction(clock)
        total = ((self.ended or now) - self.started).total_seconds()
        snap_secs = min(total, self.seconds * SNAPSHOT_SHARE) if self.status == "InProgress" else \
            (total if self.error else total * SNAPSHOT_SHARE)
        if self.status == "InProgress":
            snap = "InProgress" if f < SNAPSHOT_SHARE else "Completed"
            transfer = "NotStarted" if f < SNAPSHOT_SHARE else "InProgress"
        else:
            snap = "Failed" if self.error else "Completed"
            transfer = "NotStarted" if self.error else "Cancelled" if self.cancel_op else "Completed"
        return [{"taskId": "Take Snapshot", "duration": f"PT{max(snap_secs, 0):.0f}S", "status": snap},
                {"taskId": "Transfer data to vault", "duration": f"PT{max(total - snap_secs, 0):.0f}S",
                 "status": transfer}]

    def due_end(self) -> datetime:
        """When time alone ends the job: its start plus its duration."""
        return self.started + timedelta(seconds=max(self.seconds, 0.0))


_FILTER_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_FILTER_KEYS = {"status", "operation", "backupmanagementtype", "starttime", "endtime", "jobid"}


def _parse_time(text: str) -> datetime:
    for fmt in ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ArmError(400, "BMSUserErrorInvalidFilter", f"The time '{text}' in $filter is not in a supported format.")


def _parse_filter(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    terms: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _FILTER_TERM.match(part)
        if not m or m.group(1).lower() not in _FILTER_KEYS:
            raise ArmError(400, "BMSUserErrorInvalidFilter", f"The $filter term '{part}' is not supported.")
        terms[m.group(1).lower()] = m.group(2)
    return terms


def jobs_list(sim: Simulator, r: Request) -> Response:
    """BackupJobs_List: newest first, filtered by `$filter`, paged by `$skipToken`."""
    vault = sim.backup.vault(r.params)
    terms = _parse_filter(r.query.get("$filter"))
    start = _parse_time(terms["starttime"]) if "starttime" in terms else None
    end = _parse_time(terms["endtime"]) if "endtime" in terms else None
    out = []
    for job in sorted(vault.jobs, key=lambda j: j.started, reverse=True):
        sim.backup.advance(job, poll=False)
        if "status" in terms and job.status.lower() != terms["status"].lower():
            continue
        if "operation" in terms and terms["operation"].lower() != "backup":
            continue
        if "backupmanagementtype" in terms and terms["backupmanagementtype"].lower() != "azureiaasvm":
            continue
        if "jobid" in terms and terms["jobid"].lower() != job.id:
            continue
        if (start and job.started < start) or (end and job.started > end):
            continue
        out.append(sim.backup.job_json(vault, job))
    size = int(sim.settings.extra.get("jobs_page_size", 50))
    skip = int(r.query.get("$skipToken") or 0)
    page: dict[str, Any] = {"value": out[skip:skip + size]}
    if skip + size < len(out):
        q = {k: v for k, v in r.query.items() if k != "$skipToken"} | {"$skipToken": str(skip + size)}
        page["nextLink"] = f"{r.headers.get('_base_url', '')}{r.path}?{urlencode(q)}"
    return Response(200, page)


def job_get(sim: Simulator, r: Request) -> Response:
    """JobDetails_Get: one job; each read advances it."""
    vault = sim.backup.vault(r.params)
    job = next((j for j in vault.jobs if j.id == r.params["jobName"].lower()), None)
    if job is None:
        raise ArmError(404, "BMSUserErrorJobNotFound", f"Job {r.params['jobName']} not found.")
    sim.backup.advance(job, poll=True)
    return Response(200, sim.backup.job_json(vault, job))
