"""Backup job history, shared by diagnosis (facts) and trigger-backup: the jobs filter, a typed job view, per-VM matching, and Azure's on-demand limit."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .target import Target

__all__ = [
    "ACTIVE",
    "CONTAINER_PREFIX",
    "ON_DEMAND_HARD_LIMIT",
    "ON_DEMAND_RECOMMENDED",
    "REFUSED_CODES",
    "SUCCEEDED",
    "JobView",
    "arm_container",
    "job_target",
    "cap_refusal",
    "cap_warning",
    "for_vm",
    "job_view",
    "jobs_filter",
    "latest_failure",
    "on_demand_today",
    "parse_time",
    "when",
]

# On-demand backups of one VM, counted from its job history before triggering another. The Azure VM backup
# support matrix (MicrosoftDocs/azure-docs articles/backup/backup-support-matrix-iaas.md, and
# backup-azure-manage-vms.md): "Four backups per day: one scheduled ... and three on-demand ... hard limit for
# on-demand backups is set to nine attempts in a 24 hour UTC period". Three is Microsoft's recommendation (warn
# past it), nine the hard limit (refuse at it); scheduled backups do not count.
ON_DEMAND_RECOMMENDED = 3  # on-demand backups per UTC day Microsoft recommends
ON_DEMAND_HARD_LIMIT = 9  # on-demand attempts per UTC day Azure allows

ACTIVE = ("inprogress", "cancelling")
# A trigger while another backup of the item runs makes a job that fails at once with this code
# (azure-docs articles/backup/backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md, "UserErrorBackupOperationInProgress":
# "Your recent backup job failed because there is an existing backup job in progress"; docs.azure.cn lists it
# as "UserErrorBackupOperationInProgress/SystemBackupOperationInProgress"). Such a job says nothing about the VM.
REFUSED_CODES = ("usererrorbackupoperationinprogress", "systembackupoperationinprogress")
_REFUSED_TEXT = "another backup operation is currently in progress"
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
    def refused(self) -> bool:
        """Whether an on-demand trigger failed only because another backup of the item was running (not the VM's error).

        A scheduled backup that failed so is the VM's failure to explain (E7, UserErrorBackupOperationInProgress:
        a job still running, here or in an old vault, holds the VM); only on-demand triggers (this tool's, a
        person's) are set aside."""
        return self.user and self.status.lower() == "failed" and (
            (self.error_title or "").lower() in REFUSED_CODES or _REFUSED_TEXT in self.error_message.lower())

    @property
    def error(self) -> str:
        """The error title (symbolic code) or number, for reasons and error codes."""
        return self.error_code or "an unknown error"

    @property
    def error_code(self) -> str | None:
        """The error as a code: its title (symbolic), else its number as text, else None."""
        if self.error_title:
            return self.error_title
        return str(self.error_number) if self.error_number is not None else None

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


def latest_failure(jobs: Iterable[JobView]) -> JobView | None:
    """The newest job that failed for a reason of the VM's own: refused triggers (REFUSED_CODES) are skipped."""
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    failed = [j for j in jobs if j.status.lower() == "failed" and not j.refused]
    return max(failed, key=lambda j: j.start or oldest, default=None)


def on_demand_today(jobs: Iterable[JobView], now: datetime) -> list[JobView]:
    """The on-demand (isUserTriggered) jobs, failed ones included, started since 00:00 UTC of `now`'s day."""
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return [j for j in jobs if j.user and j.start is not None and j.start >= day]


def _next_midnight(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def cap_refusal(jobs: Sequence[JobView], vm: str, now: datetime) -> tuple[str, str] | None:
    """(reason, manual step) when another on-demand backup now would pass Azure's hard limit; None when allowed."""
    used = len(on_demand_today(jobs, now))
    if used < ON_DEMAND_HARD_LIMIT:
        return None
    return (f"refused: {used} on-demand backup attempts of {vm} already ran today (UTC); Azure's hard limit is "
            f"{ON_DEMAND_HARD_LIMIT} per UTC day (scheduled backups do not count)",
            f"wait until 00:00 UTC ({when(_next_midnight(now))}), then run trigger-backup on {vm} again")


def cap_warning(jobs: Sequence[JobView], vm: str, now: datetime) -> str | None:
    """A note when another on-demand backup now would pass Microsoft's recommendation (but not the hard limit)."""
    used = len(on_demand_today(jobs, now))
    if used < ON_DEMAND_RECOMMENDED:
        return None
    return (f"warning: this is on-demand backup {used + 1} of {vm} today (UTC); Microsoft recommends at most "
            f"{ON_DEMAND_RECOMMENDED} a day, Azure refuses after {ON_DEMAND_HARD_LIMIT}")


def job_target(job: JobView, subscription: str, group: str) -> Target | None:
    """The VM a backup job is about (its container names the group; the vault's group otherwise), or None."""
    parts = job.container.split(";")
    try:
        return Target(subscription=subscription, resource_group=parts[-2] if len(parts) >= 3 else group,
                      name=job.entity or parts[-1])
    except ValueError:  # a job of something that is not a VM this project can name
        return None
