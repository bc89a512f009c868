"""Microsoft.Automation job routes: create, get, list, output (text/plain) and streams.

Shapes follow azure-rest-api-specs specification/automation/resource-manager/Microsoft.Automation/stable/
2024-10-23/examples/job/ (createJob, getJob, getJobOutput, listJobStreamsByJob, getJobStream).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, iso, not_found
from .automation import Account, AutomationJob, JobStream
from .routing import Route

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["ACCT", "ROUTES", "job_json", "stream_json"]

ACCT = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Automation"
        "/automationAccounts/{automationAccountName}")
API: dict[str, Any] = {"oldest_api": "2015-10-31", "newest_api": "2026-12-31"}


def job_json(acct: Account, job: AutomationJob) -> dict[str, Any]:
    """A job as ARM returns it (createJob.json / getJob.json)."""
    return {
        "id": f"{acct.id}/jobs/{job.name}", "name": job.name, "type": "Microsoft.Automation/AutomationAccounts/Jobs",
        "properties": {
            "jobId": job.job_id, "runbook": {"name": job.runbook},
            "provisioningState": "Succeeded" if job.status == "Completed" else "Processing",
            "creationTime": iso(job.created), "startTime": iso(job.started) if job.started else None,
            "endTime": iso(job.ended) if job.ended else None, "exception": job.exception,
            "lastModifiedTime": iso(job.created), "lastStatusModifiedTime": iso(job.created),
            "status": job.status, "statusDetails": "None", "parameters": job.parameters, "runOn": job.run_on,
            "jobRuntimeEnvironment": {"runtimeEnvironmentName": job.runtime_environment},
        },
    }


def stream_json(acct: Account, job: AutomationJob, rec: JobStream, *, full: bool) -> dict[str, Any]:
    """A stream record: the list form has no text (listJobStreamsByJob.json), the get form has it (getJobStream.json)."""
    props: dict[str, Any] = {"jobStreamId": rec.stream_id, "summary": rec.text[:80] or None, "time": iso(rec.time),
                             "streamType": rec.stream_type}
    if full:
        props.update({"streamText": rec.text, "value": {}})
    return {"id": f"{acct.id}/jobs/{job.name}/streams/{rec.stream_id}", "properties": props}


def _job(sim: Simulator, r: Request) -> tuple[Account, AutomationJob]:
    acct = sim.automation.account(r.params)
    job = acct.jobs.get(r.params["jobName"].lower())
    if job is None:
        raise not_found("Microsoft.Automation/automationAccounts/jobs", r.params["jobName"], acct.group)
    return acct, job


def _job_create(sim: Simulator, r: Request) -> Response:
    acct = sim.automation.account(r.params)
    body = r.body if isinstance(r.body, dict) else {}
    props = body.get("properties") or {}
    runbook = (props.get("runbook") or {}).get("name")
    if not runbook:
        raise ArmError(400, "BadRequest", "properties.runbook.name is required.")
    params = props.get("parameters") or {}
    if not isinstance(params, dict):
        raise ArmError(400, "BadRequest", "properties.parameters must be an object of name/value pairs.")
    job = sim.automation.start_job(acct, runbook, dict(params), name=r.params["jobName"], run_on=props.get("runOn") or "")
    return Response(201, job_json(acct, job))


def _job_get(sim: Simulator, r: Request) -> Response:
    acct, job = _job(sim, r)
    sim.automation.advance(job)
    return Response(200, job_json(acct, job))


def _job_list(sim: Simulator, r: Request) -> Response:
    acct = sim.automation.account(r.params)
    return Response(200, {"value": [job_json(acct, j) for j in acct.jobs.values()]})


def _job_output(sim: Simulator, r: Request) -> Response:
    _, job = _job(sim, r)
    return Response(200, job.output(), {"Content-Type": "text/plain; charset=utf-8"})


def _stream_list(sim: Simulator, r: Request) -> Response:
    acct, job = _job(sim, r)
    return Response(200, {"value": [stream_json(acct, job, s, full=False) for s in job.streams], "nextLink": None})


def _stream_get(sim: Simulator, r: Request) -> Response:
    acct, job = _job(sim, r)
    want = r.params["jobStreamId"].lower()
    for rec in job.streams:
        if rec.stream_id.lower() == want:
            return Response(200, stream_json(acct, job, rec, full=True))
    raise not_found("Microsoft.Automation/automationAccounts/jobs/streams", r.params["jobStreamId"], acct.group)


_JOBS = {**API, "resource_type": "automationAccounts/jobs"}

ROUTES = [
    Route("PUT", ACCT + "/jobs/{jobName}", _job_create, "Job_Create", mutating=True, **_JOBS),
    Route("GET", ACCT + "/jobs/{jobName}", _job_get, "Job_Get", **_JOBS),
    Route("GET", ACCT + "/jobs", _job_list, "Job_ListByAutomationAccount", **_JOBS),
    Route("GET", ACCT + "/jobs/{jobName}/output", _job_output, "Job_GetOutput", **_JOBS),
    Route("GET", ACCT + "/jobs/{jobName}/streams", _stream_list, "JobStream_ListByJob", **_JOBS),
    Route("GET", ACCT + "/jobs/{jobName}/streams/{jobStreamId}", _stream_get, "JobStream_Get", **_JOBS),
]
