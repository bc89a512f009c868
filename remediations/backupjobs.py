"""Backup job history, shared by diagnosis (facts) and trigger-backup: the jobs filter, a typed job view, per-VM matching, and Azure's on-demand caps."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "ACTIVE",
    "CONTAINER_PREFIX",
    "MAX_ATTEMPTS_PER_24H",
    "MAX_ON_DEMAND_PER_DAY",
    "SUCCEEDED",
    "JobView",
    "arm_container",
    "cap_refusal",
    "for_vm",
    "job_view",
    "jobs_filter",
    "parse_time",
    "when",
]

# Azure's limits on backups of one VM, checked from the job history before triggering another.
MAX_ON_DEMAND_PER_DAY = 3  # on-demand (isUserTriggered) backups per UTC day
MAX_ATTEMPTS_PER_24H = 9  # backup attempts of any kind in a rolling 24 hours

ACTIVE = ("inprogress", "cancelling")
SUCCEEDED = ("completed", "completedwithwarnings")
CONTAINER_PREFIX = "IaasVMContainer;"
_TIME_FORMAT = "%Y-%m-%d %I:%M:%S %p"  # what azure-cli sends in the jobs $filter (UTC)
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from ARM's ISO text (7-digit fractions and 'Z' included), or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    m = _ISO.match(str(value or "").strip())
    if not m:
        return None
    date, clock, frac, zone = m.groups()
    zone = "+00:00" if zone in (None, "Z") else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    text = f"{date}T{clock}.{(frac or '0')[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def when(t: datetime | None) -> str:
    """A short UTC timestamp for reasons and evidence."""
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "an unknown time"


def jobs_filter(now: datetime, *, hours: float = 24, status: str | None = None) -> str:
    """The OData $filter azure-cli sends for the last `hours` of IaaS VM backup jobs (optionally one status).

    The end is rounded up by a minute: the format has no fractions of a second, so `now` itself
    would exclude a job started earlier in the same second (and client clocks drift).
    """
    start = now - timedelta(hours=hours)
    end = now + timedelta(minutes=1)
    which = f"status eq '{status}' and " if status else ""
    return (f"{which}operation eq 'Backup' and backupManagementType eq 'AzureIaasVM' and "
            f"startTime eq '{start.strftime(_TIME_FORMAT)}' and endTime eq '{end.strftime(_TIME_FORMAT)}'")


def arm_container(name: str) -> str:
    """The container name ARM paths want: 'IaasVMContainer;iaasvmcontainerv2;rg;vm'."""
    return name if name.lower().startswith(CONTAINER_PREFIX.lower()) else CONTAINER_PREFIX + name


def _bare_container(name: str) -> str:
    low = name.lower()
    return low[len(CONTAINER_PREFIX):] if low.startswith(CONTAINER_PREFIX.lower()) else low


@dataclass(frozen=True)
class JobView:
    """One backup job (AzureIaaSVMJob): status, times, who started it, and its error if it failed."""

    id: str
    status: str
    start: datetime | None
    end: datetime | None
    user: bool
    entity: str
    container: str
    error_title: str | None = None
    error_number: int | None = None
    error_message: str = ""
    progress: float | None = None
    tasks: tuple[tuple[str, str], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def active(self) -> bool:
        """Whether the job still runs (InProgress, Cancelling)."""
        return self.status.lower() in ACTIVE

    @property
    def succeeded(self) -> bool:
        """Whether the job ended Completed (or CompletedWithWarnings)."""
        return self.status.lower() in SUCCEEDED

    @property
    def error(self) -> str:
        """The error title (symbolic code) or number, for reasons and error codes."""
        if self.error_title:
            return self.error_title
        return str(self.error_number) if self.error_number is not None else "an unknown error"

    def progress_info(self) -> dict[str, Any]:
        """What a progress callback gets besides the status: percentage and task statuses."""
        return {"job_id": self.id, "progress": self.progress,
                "tasks": [{"task": t, "status": s} for t, s in self.tasks]}


def job_view(d: dict[str, Any]) -> JobView:
    """A JobView from a job's REST JSON (JobResource.as_dict())."""
    p = d.get("properties") or {}
    errors = p.get("errorDetails") or []
    first = errors[0] if errors else {}
    ext = p.get("extendedInfo") or {}
    tasks = tuple((str(t.get("taskId") or ""), str(t.get("status") or "")) for t in ext.get("tasksList") or [])
    number = first.get("errorCode")
    try:
        number = int(number) if number is not None else None
    except (TypeError, ValueError):
        number = None
    progress = ext.get("progressPercentage")
    return JobView(
        id=str(d.get("name") or p.get("activityId") or str(d.get("id", "")).rsplit("/", 1)[-1]),
        status=str(p.get("status") or "Unknown"), start=parse_time(p.get("startTime")),
        end=parse_time(p.get("endTime")), user=bool(p.get("isUserTriggered")),
        entity=str(p.get("entityFriendlyName") or ""), container=str(p.get("containerName") or ""),
        error_title=first.get("errorTitle") or None, error_number=number,
        error_message=str(first.get("errorString") or ext.get("dynamicErrorMessage") or ""),
        progress=float(progress) if isinstance(progress, (int, float)) else None, tasks=tasks, raw=d)


def for_vm(jobs: Iterable[JobView], vm: str, container: str) -> list[JobView]:
    """This VM's jobs, newest first: friendly name matches (case-insensitively), and the container when given."""
    want = _bare_container(container) if container else ""
    mine = [j for j in jobs if j.entity.lower() == vm.lower()
            and (not j.container or not want or _bare_container(j.container) == want)]
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(mine, key=lambda j: j.start or oldest, reverse=True)


def cap_refusal(jobs: Sequence[JobView], vm: str, now: datetime) -> tuple[str, str] | None:
    """(reason, manual step) when another backup now would exceed Azure's caps; None when allowed."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    on_demand = [j for j in jobs if j.user and j.start and j.start >= day]
    if len(on_demand) >= MAX_ON_DEMAND_PER_DAY:
        return (f"refused: {len(on_demand)} on-demand backups of {vm} already ran today (UTC); Azure allows "
                f"{MAX_ON_DEMAND_PER_DAY} per UTC day",
                f"wait until 00:00 UTC ({when(day + timedelta(days=1))}), then run trigger-backup on {vm} again")
    recent = sorted(j.start for j in jobs if j.start and j.start > now - timedelta(hours=24))
    if len(recent) >= MAX_ATTEMPTS_PER_24H:
        free = recent[len(recent) - MAX_ATTEMPTS_PER_24H] + timedelta(hours=24)
        return (f"refused: {len(recent)} backup attempts of {vm} in the last 24 h; Azure allows "
                f"{MAX_ATTEMPTS_PER_24H} per 24 h",
                f"wait until {when(free)}, when the oldest of them is 24 h old, then run trigger-backup on {vm} again")
    return None
