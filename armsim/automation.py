"""Microsoft.Automation state: accounts with runtime environments, runbooks, webhooks, schedules and jobs.

armsim runs no runbook. A job nobody claims goes New -> Running -> Completed as it is read
(`automation_job_polls` reads in Running), or Failed when one of its parameters contains a string listed in
Settings.extra["automation_failing"]; `AutomationModel.max_running` records the most jobs Running at once.
A test harness that `claim`s a job plays the runbook worker instead: the job then follows only what the
harness `report`s (output lines, error/warning streams, end status). Routes: automation_jobs.py and
automation_assets.py; control routes: automation_control.py.

Over 300 lines on purpose: the Automation model's state and its job lifecycle (claim, report, end) share one lock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .arm import ArmError, not_found

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["Account", "AutomationJob", "AutomationModel", "JobSchedule", "JobStream", "Runbook",
           "RuntimeEnvironment", "Schedule", "Webhook"]

ENDED = ("Completed", "Failed", "Stopped")
"""Job statuses after which a job has an endTime and changes no more."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RuntimeEnvironment:
    """A runtime environment: `language` (PowerShell or Python) and its `version`."""

    name: str
    language: str
    version: str
    location: str = "eastus"
    default_packages: dict[str, str] = field(default_factory=dict)
    description: str = ""
    created: datetime = field(default_factory=_now)


@dataclass
class Runbook:
    """A published runbook: legacy `runbook_type` (Python3, PowerShell72...) and/or a runtime environment name."""

    name: str
    runbook_type: str
    runtime_environment: str = ""
    location: str = "eastus"
    description: str = ""
    created: datetime = field(default_factory=_now)


@dataclass
class Webhook:
    """A webhook: the token of its URI starts a job of `runbook` with `parameters` plus WebhookData."""

    name: str
    runbook: str
    token: str
    is_enabled: bool = False
    expiry: datetime | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    run_on: str = ""
    description: str = ""
    created: datetime = field(default_factory=_now)
    last_invoked: datetime | None = None


@dataclass
class Schedule:
    """An Automation schedule (armsim keeps its definition; a test fires it through the control route)."""

    name: str
    properties: dict[str, Any]
    created: datetime = field(default_factory=_now)


@dataclass
class JobSchedule:
    """The link of a schedule to a runbook, with the parameters its jobs start with."""

    job_schedule_id: str
    schedule: str
    runbook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    run_on: str = ""


@dataclass
class JobStream:
    """One record of a job's streams (Output, Error, Warning, Verbose, Progress, Debug)."""

    stream_id: str
    stream_type: str
    text: str
    time: datetime = field(default_factory=_now)


@dataclass
class AutomationJob:
    """One runbook job; `parameters` hold exactly what the starter sent."""

    name: str
    runbook: str
    parameters: dict[str, Any]
    run_on: str = ""
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "New"
    reads: int = 0
    created: datetime = field(default_factory=_now)
    started: datetime | None = None
    ended: datetime | None = None
    exception: str | None = None
    claimed: bool = False
    streams: list[JobStream] = field(default_factory=list)
    runtime_environment: str = ""
    account: Account | None = field(default=None, repr=False)

    def add_stream(self, stream_type: str, text: str) -> JobStream:
        """Append one stream record, with an id in the service's `{jobId}_{ticks}_{seq}` form."""
        when = _now()
        ticks = int((when - datetime(1, 1, 1, tzinfo=timezone.utc)).total_seconds() * 10**7)
        rec = JobStream(f"{self.job_id}_{ticks:020d}_{len(self.streams) + 1:020d}", stream_type, text, when)
        self.streams.append(rec)
        return rec

    def output(self) -> str:
        """The Output stream as `jobs/{name}/output` returns it: one line per record."""
        return "\n".join(s.text for s in self.streams if s.stream_type == "Output")


@dataclass
class Account:
    """An Automation account with its runtime environments, runbooks, webhooks, schedules and jobs."""

    name: str
    group: str
    subscription: str
    location: str = "eastus"
    runtime_environments: dict[str, RuntimeEnvironment] = field(default_factory=dict)
    runbooks: dict[str, Runbook] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    job_schedules: dict[str, JobSchedule] = field(default_factory=dict)
    jobs: dict[str, AutomationJob] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Automation/automationAccounts/{self.name}")

    def add_environment(self, env: RuntimeEnvironment) -> RuntimeEnvironment:
        """Register a runtime environment."""
        self.runtime_environments[env.name.lower()] = env
        return env

    def add_runbook(self, runbook: Runbook) -> Runbook:
        """Register a published runbook."""
        self.runbooks[runbook.name.lower()] = runbook
        return runbook

    def language(self, runbook: Runbook) -> tuple[str, str]:
        """(language, what names it): from the runtime environment when linked, else from runbookType."""
        env = self.runtime_environments.get(runbook.runtime_environment.lower()) if runbook.runtime_environment else None
        if env is not None:
            return env.language, f"runtime environment '{env.name}' ({env.language} {env.version})"
        kind = "Python" if runbook.runbook_type.lower().startswith("python") else "PowerShell"
        return kind, f"runbookType '{runbook.runbook_type}'"


class AutomationModel:
    """Automation accounts of one simulator, the job lifecycle, and the harness that plays the worker."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.accounts: dict[str, Account] = {}
        self.max_running = 0

    def add(self, account: Account) -> Account:
        """Register an account."""
        self.accounts[account.id.lower()] = account
        return account

    def account(self, p: dict[str, str]) -> Account:
        """The account named by route params, or 404."""
        rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
               f"/providers/Microsoft.Automation/automationAccounts/{p['automationAccountName']}")
        acct = self.accounts.get(rid.lower())
        if acct is None:
            raise not_found("Microsoft.Automation/automationAccounts", p["automationAccountName"], p["resourceGroupName"])
        return acct

    def running(self) -> int:
        """How many jobs are Running now, across accounts."""
        return sum(j.status == "Running" for a in self.accounts.values() for j in a.jobs.values())

    # --- starting jobs -----------------------------------------------------------------------
    def start_job(self, acct: Account, runbook: str, parameters: dict[str, Any], *, name: str | None = None,
                  run_on: str = "") -> AutomationJob:
        """Queue a New job of a published runbook (404 when the account has runbooks and not this one)."""
        rb = acct.runbooks.get(runbook.lower())
        if acct.runbooks and rb is None:
            raise ArmError(404, "NotFound", f"The Runbook '{runbook}' was not found.")
        job = AutomationJob(name or "", rb.name if rb else runbook, parameters, run_on, account=acct,
                            runtime_environment=rb.runtime_environment if rb else "")
        job.name = name or job.job_id
        if job.name.lower() in acct.jobs:
            raise ArmError(409, "Conflict", f"Job with specified id already exists. Job id: {job.name}")
        acct.jobs[job.name.lower()] = job
        return job

    def call_webhook(self, token: str, body: str, headers: dict[str, str]) -> AutomationJob:
        """Start the job a webhook POST asks for (404 unknown token; 400 disabled, expired or no token)."""
        if not token:
            raise ArmError(400, "BadRequest", "The webhook token is missing or invalid.")
        for acct in self.accounts.values():
            for hook in acct.webhooks.values():
                if hook.token != token:
                    continue
                if not hook.is_enabled:
                    raise ArmError(400, "BadRequest", f"Webhook '{hook.name}' is disabled.")
                if hook.expiry is not None and hook.expiry <= _now():
                    raise ArmError(400, "BadRequest", f"Webhook '{hook.name}' has expired.")
                data = {"WebhookName": hook.name, "RequestBody": body, "RequestHeader": headers}
                params = {**hook.parameters, "WebhookData": json.dumps(data)}
                hook.last_invoked = _now()
                return self.start_job(acct, hook.runbook, params, run_on=hook.run_on)
        raise ArmError(404, "NotFound", "The webhook was not found.")

    def fire_schedule(self, schedule: str, account: str | None = None) -> list[AutomationJob]:
        """Start one job per job schedule linked to `schedule`, with that job schedule's parameters."""
        started: list[AutomationJob] = []
        for acct in self.accounts.values():
            if account is not None and acct.name.lower() != account.lower():
                continue
            if schedule.lower() not in acct.schedules:
                continue
            for link in acct.job_schedules.values():
                if link.schedule.lower() == schedule.lower():
                    started.append(self.start_job(acct, link.runbook, dict(link.parameters), run_on=link.run_on))
        if not started and not any(schedule.lower() in a.schedules for a in self.accounts.values()):
            raise ArmError(404, "NotFound", f"The schedule '{schedule}' was not found.")
        return started

    # --- the automatic lifecycle (jobs nobody claimed) ---------------------------------------
    def advance(self, job: AutomationJob) -> None:
        """One read of an unclaimed job moves it along its lifecycle; a claimed job follows its harness."""
        job.reads += 1
        if job.claimed:
            return
        polls = int(self.sim.settings.extra.get("automation_job_polls", 2))
        if job.status == "New":
            job.status, job.started = "Running", _now()
        elif job.status == "Running" and job.reads > polls:
            failing = [str(x).lower() for x in self.sim.settings.extra.get("automation_failing", [])]
            text = " ".join(v if isinstance(v, str) else json.dumps(v) for v in job.parameters.values()).lower()
            fails = any(f in text for f in failing)
            job.status, job.ended = ("Failed" if fails else "Completed"), _now()
            if fails:
                job.exception = "The runbook exited with a non-zero code (armsim: automation_failing)."
        self.max_running = max(self.max_running, self.running())

    # --- the harness: a test plays the runbook worker ----------------------------------------
    def jobs(self, runbook: str | None = None) -> list[AutomationJob]:
        """Every job (of one runbook, when given), in creation order."""
        return [j for a in self.accounts.values() for j in a.jobs.values()
                if runbook is None or j.runbook.lower() == runbook.lower()]

    def find_job(self, name_or_id: str) -> AutomationJob:
        """A job by name or jobId, across accounts (KeyError when none)."""
        for job in self.jobs():
            if name_or_id.lower() in (job.name.lower(), job.job_id.lower()):
                return job
        raise KeyError(name_or_id)

    def claim(self, runbook: str | None = None, limit: int | None = None) -> list[AutomationJob]:
        """Take the unclaimed jobs not ended (of one runbook, when given; the oldest `limit`, when given): they are
        Running and follow `report` only (a read may have moved one to Running meanwhile: a worker still owns it). Several workers can claim one at a time, as Automation's sandboxes take jobs."""
        with self.sim.lock:
            taken = [j for j in self.jobs(runbook) if j.status not in ENDED and not j.claimed][:limit]
            for job in taken:
                job.claimed, job.status, job.started = True, "Running", _now()
            self.max_running = max(self.max_running, self.running())
            return taken

    def report(self, name_or_id: str, status: str = "Completed", *, output: list[str] | None = None,
               errors: list[str] | None = None, warnings: list[str] | None = None,
               exception: str | None = None) -> AutomationJob:
        """Record what a claimed job wrote and how it ended (Completed, Failed, Stopped, Suspended or Running)."""
        if status not in (*ENDED, "Suspended", "Running"):
            raise ValueError(f"unknown job status {status!r}")
        with self.sim.lock:
            job = self.find_job(name_or_id)
            if job.status in ENDED:
                raise ValueError(f"job {job.name} already ended {job.status}")
            job.claimed = True
            job.started = job.started or _now()
            for kind, lines in (("Output", output), ("Warning", warnings), ("Error", errors)):
                for line in lines or []:
                    job.add_stream(kind, line)
            job.status, job.exception = status, exception
            if status in ENDED:
                job.ended = _now()
            return job
