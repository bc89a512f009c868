"""Recovery Services backup jobs: listing with `$filter` / `$skipToken` paging, and reading one job.

`$filter` accepts `and`-joined `<key> eq '<value>'` terms with keys status, operation,
backupManagementType, startTime, endTime (azure-cli's format, also 24-hour and ISO-8601 with Z;
UTC; they bound the job's start time) and jobId; anything else is 400 BMSUserErrorInvalidFilter.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .arm import ArmError, Request, Response

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["job_get", "jobs_list"]


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
