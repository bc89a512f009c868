"""Control routes under /_armsim/automation/: a test harness plays the Automation worker over HTTPS.

POST /_armsim/automation/claim                          {"runbook": name?, "limit": n?}  -> 200 [job, ...]
POST /_armsim/automation/jobs/{nameOrId}/report         {"status", "output", "errors", "warnings", "exception"}
POST /_armsim/automation/schedules/{name}/fire          {"account": name?}  -> 200 {"jobs": [job, ...]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response
from .automation import AutomationJob
from .automation_jobs import job_json

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["control"]


def _json(job: AutomationJob) -> dict[str, Any]:
    assert job.account is not None
    return job_json(job.account, job)


def _err(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


def control(sim: Simulator, request: Request, what: str) -> Response:
    """Serve one /_armsim/automation/... request; `what` is the path after /_armsim/automation."""
    body = request.body if isinstance(request.body, dict) else {}
    parts = [p for p in what.split("/") if p]
    if request.method != "POST":
        return _err(501, "NotImplemented", f"armsim control does not serve {request.method} {request.path}")
    try:
        with sim.lock:
            if parts == ["claim"]:
                limit = body.get("limit")
                if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                    return _err(400, "InvalidClaim", "limit must be a positive integer")
                return Response(200, [_json(j) for j in sim.automation.claim(body.get("runbook"), limit)])
            if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "report":
                job = sim.automation.report(
                    parts[1], str(body.get("status", "Completed")), output=body.get("output"),
                    errors=body.get("errors"), warnings=body.get("warnings"), exception=body.get("exception"))
                return Response(200, _json(job))
            if len(parts) == 3 and parts[0] == "schedules" and parts[2] == "fire":
                jobs = sim.automation.fire_schedule(parts[1], body.get("account"))
                return Response(200, {"jobs": [_json(j) for j in jobs]})
    except KeyError as e:
        return _err(404, "JobNotFound", f"no Automation job named or with id {e}")
    except ValueError as e:
        return _err(400, "InvalidReport", str(e))
    except ArmError as e:
        return Response(e.status, e.body())
    return _err(501, "NotImplemented", f"armsim control does not serve {request.method} {request.path}")
