"""Microsoft.Automation jobs: what a fan-out runbook needs (create a child job, read it, list them).

A job goes New -> Running -> Completed as it is read (`automation_job_polls` reads in Running), or
Failed when one of its parameters contains a string listed in Settings.extra["automation_failing"],
so a caller that bounds its concurrency by waiting for jobs to end can be observed doing so:
`AutomationModel.max_running` records the most jobs that were Running at the same time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, iso, not_found
from .routing import Route

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["ROUTES", "Account", "AutomationJob", "AutomationModel"]


@dataclass
class AutomationJob:
    """One runbook job."""

    name: str
    runbook: str
    parameters: dict[str, str]
    run_on: str = ""
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "New"
    reads: int = 0
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ended: datetime | None = None
    exception: str | None = None


@dataclass
class Account:
    """An Automation account with its runbooks and jobs."""

    name: str
    group: str
    subscription: str
    runbooks: set[str] = field(default_factory=set)
    jobs: dict[str, AutomationJob] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Automation/automationAccounts/{self.name}")


class AutomationModel:
    """Automation accounts of one simulator."""

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

    def advance(self, job: AutomationJob) -> None:
        """One read of a job moves it along its lifecycle."""
        job.reads += 1
        polls = int(self.sim.settings.extra.get("automation_job_polls", 2))
        if job.status == "New":
            job.status = "Running"
        elif job.status == "Running" and job.reads > polls:
            failing = [str(x).lower() for x in self.sim.settings.extra.get("automation_failing", [])]
            text = " ".join(job.parameters.values()).lower()
            fails = any(f in text for f in failing)
            job.status, job.ended = ("Failed" if fails else "Completed"), datetime.now(timezone.utc)
            if fails:
                job.exception = "The runbook exited with a non-zero code (armsim: automation_failing)."
        self.max_running = max(self.max_running, self.running())

    def job_json(self, acct: Account, job: AutomationJob) -> dict[str, Any]:
        """A job as ARM returns it."""
        return {
            "id": f"{acct.id}/jobs/{job.name}", "name": job.name, "type": "Microsoft.Automation/AutomationAccounts/Jobs",
            "properties": {
                "jobId": job.job_id, "runbook": {"name": job.runbook},
                "provisioningState": "Succeeded" if job.status == "Completed" else "Processing",
                "creationTime": iso(job.created), "startTime": iso(job.created) if job.status != "New" else None,
                "endTime": iso(job.ended) if job.ended else None, "exception": job.exception,
                "lastModifiedTime": iso(job.created), "lastStatusModifiedTime": iso(job.created),
                "status": job.status, "statusDetails": "None", "parameters": job.parameters, "runOn": job.run_on,
                "jobRuntimeEnvironment": {"runtimeEnvironmentName": "Python-3.10"},
            },
        }


def _job_create(sim: Simulator, r: Request) -> Response:
    acct = sim.automation.account(r.params)
    body = r.body if isinstance(r.body, dict) else {}
    props = body.get("properties") or {}
    runbook = (props.get("runbook") or {}).get("name")
    if not runbook:
        raise ArmError(400, "BadRequest", "properties.runbook.name is required.")
    if acct.runbooks and runbook not in acct.runbooks:
        raise ArmError(404, "NotFound", f"The Runbook '{runbook}' was not found.")
    name = r.params["jobName"]
    if name.lower() in acct.jobs:
        raise ArmError(409, "Conflict", f"A job with name '{name}' already exists.")
    params = {str(k): str(v) for k, v in (props.get("parameters") or {}).items()}
    job = AutomationJob(name, runbook, params, props.get("runOn") or "")
    acct.jobs[name.lower()] = job
    return Response(201, sim.automation.job_json(acct, job))


def _job_get(sim: Simulator, r: Request) -> Response:
    acct = sim.automation.account(r.params)
    job = acct.jobs.get(r.params["jobName"].lower())
    if job is None:
        raise not_found("Microsoft.Automation/automationAccounts/jobs", r.params["jobName"], acct.group)
    sim.automation.advance(job)
    return Response(200, sim.automation.job_json(acct, job))


def _job_list(sim: Simulator, r: Request) -> Response:
    acct = sim.automation.account(r.params)
    return Response(200, {"value": [sim.automation.job_json(acct, j) for j in acct.jobs.values()]})


_ACCT = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Automation"
         "/automationAccounts/{automationAccountName}")
_API: dict[str, Any] = {"oldest_api": "2015-10-31", "newest_api": "2026-12-31", "resource_type": "automationAccounts/jobs"}

ROUTES = [
    Route("PUT", _ACCT + "/jobs/{jobName}", _job_create, "Job_Create", mutating=True, **_API),
    Route("GET", _ACCT + "/jobs/{jobName}", _job_get, "Job_Get", **_API),
    Route("GET", _ACCT + "/jobs", _job_list, "Job_ListByAutomationAccount", **_API),
]
