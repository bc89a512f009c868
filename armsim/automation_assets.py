"""Microsoft.Automation resources around jobs: runtime environments, runbooks, webhooks, schedules, job schedules.

Shapes: azure-rest-api-specs specification/automation/resource-manager/Microsoft.Automation/stable/2024-10-23/
(runtimeEnvironment.json, runbook.json, webhook.json, schedule.json, jobSchedule.json and their examples).
Webhook behaviour: MicrosoftDocs/azure-docs articles/automation/automation-webhooks.md.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .arm import ArmError, Request, Response, iso, not_found
from .automation import Account, JobSchedule, Runbook, RuntimeEnvironment, Schedule, Webhook
from .automation_jobs import ACCT, API
from .routing import Route

if TYPE_CHECKING:
    from .sim import Simulator

Handler = Callable[["Simulator", Request], Response]

__all__ = ["ROUTES", "parse_time"]

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: Any, what: str) -> datetime:
    """An ISO-8601 time as ARM sends it (Z or offset, up to 7 fractional digits), or 400."""
    try:
        s = _FRACTION.sub(r"\1", str(text).strip()).replace("Z", "+00:00").replace("z", "+00:00")
        when = datetime.fromisoformat(s)
    except ValueError as e:
        raise ArmError(400, "BadRequest", f"{what} '{text}' is not a valid date-time.") from e
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _props(r: Request) -> dict[str, Any]:
    body = r.body if isinstance(r.body, dict) else {}
    props = body.get("properties")
    return props if isinstance(props, dict) else {}


def _sub(acct: Account, kind: str, name: str) -> dict[str, str]:
    return {"id": f"{acct.id}/{kind}/{name}", "name": name}


def _get(items: dict[str, Any], acct: Account, kind: str, name: str) -> Any:
    item = items.get(name.lower())
    if item is None:
        raise not_found(f"Microsoft.Automation/automationAccounts/{kind}", name, acct.group)
    return item


# --- runtime environments (runtimeEnvironment.json) -------------------------------------------
def _env_json(acct: Account, env: RuntimeEnvironment) -> dict[str, Any]:
    return {**_sub(acct, "runtimeEnvironments", env.name), "type": "Microsoft.Automation/automationAccounts/runtimeEnvironments",
            "location": env.location, "tags": {}, "systemData": {"createdAt": iso(env.created), "lastModifiedAt": iso(env.created)},
            "properties": {"runtime": {"language": env.language, "version": env.version},
                           "defaultPackages": env.default_packages, "description": env.description}}


def _env_put(sim: Simulator, r: Request) -> Response:
    acct, props, name = sim.automation.account(r.params), _props(r), r.params["runtimeEnvironmentName"]
    runtime = props.get("runtime") or {}
    language = str(runtime.get("language") or "")
    if language.lower() not in ("powershell", "python"):
        raise ArmError(400, "BadRequest", f"properties.runtime.language '{language}' is not supported (PowerShell or Python).")
    existed = name.lower() in acct.runtime_environments
    body = r.body if isinstance(r.body, dict) else {}
    env = acct.add_environment(RuntimeEnvironment(
        name, "Python" if language.lower() == "python" else "PowerShell", str(runtime.get("version") or ""),
        str(body.get("location") or acct.location), dict(props.get("defaultPackages") or {}), str(props.get("description") or "")))
    return Response(200 if existed else 201, _env_json(acct, env))


# --- runbooks (runbook.json) -------------------------------------------------------------------
def _runbook_json(acct: Account, rb: Runbook) -> dict[str, Any]:
    return {**_sub(acct, "runbooks", rb.name), "type": "Microsoft.Automation/AutomationAccounts/Runbooks",
            "location": rb.location, "tags": {},
            "properties": {"runbookType": rb.runbook_type, "runtimeEnvironment": rb.runtime_environment or None,
                           "state": "Published", "logVerbose": False, "logProgress": False, "logActivityTrace": 0,
                           "jobCount": 0, "parameters": {}, "outputTypes": [], "provisioningState": "Succeeded",
                           "description": rb.description, "creationTime": iso(rb.created),
                           "lastModifiedTime": iso(rb.created), "lastModifiedBy": ""}}


def _runbook_put(sim: Simulator, r: Request) -> Response:
    acct, props, name = sim.automation.account(r.params), _props(r), r.params["runbookName"]
    kind, env = str(props.get("runbookType") or ""), str(props.get("runtimeEnvironment") or "")
    if not kind:
        raise ArmError(400, "BadRequest", "properties.runbookType is required.")
    if env and env.lower() not in acct.runtime_environments:
        raise ArmError(404, "NotFound", f"The runtime environment '{env}' was not found.")
    existed = name.lower() in acct.runbooks
    body = r.body if isinstance(r.body, dict) else {}
    rb = acct.add_runbook(Runbook(name, kind, acct.runtime_environments[env.lower()].name if env else "",
                                  str(body.get("location") or acct.location), str(props.get("description") or "")))
    return Response(200 if existed else 201, _runbook_json(acct, rb))


# --- webhooks (webhook.json; automation-webhooks.md) -------------------------------------------
def _webhook_json(acct: Account, hook: Webhook, uri: str = "") -> dict[str, Any]:
    return {**_sub(acct, "webhooks", hook.name), "type": "Microsoft.Automation/AutomationAccounts/Webhooks",
            "properties": {"isEnabled": hook.is_enabled, "uri": uri,
                           "expiryTime": iso(hook.expiry) if hook.expiry else None,
                           "lastInvokedTime": iso(hook.last_invoked) if hook.last_invoked else None,
                           "runbook": {"name": hook.runbook}, "parameters": hook.parameters or None,
                           "runOn": hook.run_on or None, "creationTime": iso(hook.created),
                           "lastModifiedTime": iso(hook.created), "lastModifiedBy": "", "description": hook.description}}


def _new_uri(r: Request) -> str:
    return f"{r.headers.get('_base_url', '')}/webhooks?token={secrets.token_urlsafe(24)}"


def _webhook_put(sim: Simulator, r: Request) -> Response:
    acct, props, name = sim.automation.account(r.params), _props(r), r.params["webhookName"]
    runbook = str((props.get("runbook") or {}).get("name") or "")
    rb = acct.runbooks.get(runbook.lower())
    if rb is None:
        raise ArmError(404, "NotFound", f"The Runbook '{runbook}' was not found.")
    language, named_by = acct.language(rb)
    if language == "Python":
        raise ArmError(400, "BadRequest",
                       f"Cannot create webhook '{name}': runbook '{rb.name}' is a Python runbook ({named_by}). "
                       "Using a webhook to start a Python runbook is not supported.")
    old = acct.webhooks.get(name.lower())
    uri = "" if old else str(props.get("uri") or "") or _new_uri(r)
    token = old.token if old else (parse_qs(urlsplit(uri).query).get("token") or [""])[0]
    if not token:
        raise ArmError(400, "BadRequest", "properties.uri carries no token.")
    expiry = parse_time(props["expiryTime"], "expiryTime") if props.get("expiryTime") else (
        datetime.now(timezone.utc) + timedelta(days=3652))  # "a validity time period of 10 years"
    params = props.get("parameters") or {}
    hook = Webhook(name, rb.name, token, bool(props.get("isEnabled", False)), expiry, dict(params),
                   str(props.get("runOn") or ""), str(props.get("description") or ""))
    if old:
        hook.created = old.created
    acct.webhooks[name.lower()] = hook
    return Response(200 if old else 201, _webhook_json(acct, hook, "" if old else uri))


def _webhook_generate_uri(sim: Simulator, r: Request) -> Response:
    sim.automation.account(r.params)
    return Response(200, _new_uri(r))


def _webhook_call(sim: Simulator, r: Request) -> Response:
    headers = {k: v for k, v in r.headers.items() if not k.startswith("_")}
    job = sim.automation.call_webhook(r.query.get("token", ""), r.raw.decode("utf-8", "replace"), headers)
    return Response(202, {"JobIds": [job.job_id]})


# --- schedules (schedule.json) and job schedules (jobSchedule.json) ----------------------------
_FREQUENCIES = ("OneTime", "Day", "Hour", "Week", "Month", "Minute")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _schedule_json(acct: Account, s: Schedule) -> dict[str, Any]:
    return {**_sub(acct, "schedules", s.name), "type": "Microsoft.Automation/AutomationAccounts/Schedules",
            "properties": {**s.properties, "creationTime": iso(s.created), "lastModifiedTime": iso(s.created)}}


def _schedule_put(sim: Simulator, r: Request) -> Response:
    acct, props, name = sim.automation.account(r.params), _props(r), r.params["scheduleName"]
    freq = next((f for f in _FREQUENCIES if f.lower() == str(props.get("frequency") or "").lower()), None)
    if freq is None or not props.get("startTime"):
        raise ArmError(400, "BadRequest", f"properties.startTime and properties.frequency ({', '.join(_FREQUENCIES)}) are required.")
    if freq == "Minute" and _int(props.get("interval")) < 15:
        raise ArmError(400, "BadRequest", "The minimum allowed interval for Minute schedules is 15 minutes.")
    start = parse_time(props["startTime"], "startTime")
    expiry = parse_time(props["expiryTime"], "expiryTime") if props.get("expiryTime") else None
    stored = {"description": props.get("description"), "startTime": iso(start), "startTimeOffsetMinutes": 0,
              "expiryTime": iso(expiry) if expiry else "9999-12-31T23:59:59.999999Z", "expiryTimeOffsetMinutes": 0,
              "isEnabled": True, "nextRun": iso(start), "nextRunOffsetMinutes": 0, "interval": props.get("interval"),
              "frequency": freq, "timeZone": props.get("timeZone") or "UTC",
              "advancedSchedule": props.get("advancedSchedule") or None}
    old = acct.schedules.get(name.lower())
    sched = Schedule(name, stored)
    if old:
        sched.created = old.created
    acct.schedules[name.lower()] = sched
    return Response(200 if old else 201, _schedule_json(acct, sched))


def _schedule_cascade(acct: Account, sched: Schedule) -> None:
    """Deleting a schedule removes its job schedules (assumed)."""
    for key in [k for k, js in acct.job_schedules.items() if js.schedule.lower() == sched.name.lower()]:
        del acct.job_schedules[key]


def _js_json(acct: Account, js: JobSchedule) -> dict[str, Any]:
    return {"id": f"{acct.id}/jobSchedules/{js.job_schedule_id}", "name": js.job_schedule_id,
            "type": "Microsoft.Automation/AutomationAccounts/JobSchedules",
            "properties": {"jobScheduleId": js.job_schedule_id, "runbook": {"name": js.runbook},
                           "schedule": {"name": js.schedule}, "runOn": js.run_on or None, "parameters": js.parameters}}


def _js_put(sim: Simulator, r: Request) -> Response:
    acct, props, jid = sim.automation.account(r.params), _props(r), r.params["jobScheduleId"]
    try:
        jid = str(uuid.UUID(jid))
    except ValueError as e:
        raise ArmError(400, "BadRequest", f"The jobScheduleId '{jid}' is not a GUID.") from e
    sched = _get(acct.schedules, acct, "schedules", str((props.get("schedule") or {}).get("name") or ""))
    rb = acct.runbooks.get(str((props.get("runbook") or {}).get("name") or "").lower())
    if rb is None:
        raise ArmError(404, "NotFound", f"The Runbook '{(props.get('runbook') or {}).get('name')}' was not found.")
    if jid in acct.job_schedules:
        raise ArmError(409, "Conflict", "A jobSchedule with same id already exists.")
    if any(js.schedule.lower() == sched.name.lower() and js.runbook.lower() == rb.name.lower()
           for js in acct.job_schedules.values()):
        raise ArmError(409, "Conflict", "A job schedule for the specified runbook and schedule already exists.")
    js = JobSchedule(jid, sched.name, rb.name, dict(props.get("parameters") or {}), str(props.get("runOn") or ""))
    acct.job_schedules[jid] = js
    return Response(201, _js_json(acct, js))


def _collection(attr: str, kind: str, param: str, to_json: Callable[[Account, Any], dict[str, Any]],
                on_delete: Callable[[Account, Any], None] | None = None) -> tuple[Handler, Handler, Handler]:
    """GET one, list and DELETE handlers for the account's `attr` dict of `kind` resources (keys lower-case)."""
    def get(sim: Simulator, r: Request) -> Response:
        acct = sim.automation.account(r.params)
        return Response(200, to_json(acct, _get(getattr(acct, attr), acct, kind, r.params[param])))

    def lst(sim: Simulator, r: Request) -> Response:
        acct = sim.automation.account(r.params)
        return Response(200, {"value": [to_json(acct, x) for x in getattr(acct, attr).values()]})

    def delete(sim: Simulator, r: Request) -> Response:
        acct = sim.automation.account(r.params)
        item = _get(getattr(acct, attr), acct, kind, r.params[param])
        del getattr(acct, attr)[r.params[param].lower()]
        if on_delete is not None:
            on_delete(acct, item)
        return Response(200)

    return get, lst, delete


def _routes(kind: str, param: str, op: str, put: Handler, to_json: Callable[[Account, Any], dict[str, Any]], *,
            attr: str, delete: bool = True, on_delete: Callable[[Account, Any], None] | None = None,
            create: str = "CreateOrUpdate") -> list[Route]:
    """PUT, GET, list (and DELETE) routes of one Automation resource type, named as the spec names them."""
    get, lst, remove = _collection(attr, kind, param, to_json, on_delete)
    api = {**API, "resource_type": f"automationAccounts/{kind}"}
    out = [Route("PUT", f"{ACCT}/{kind}/{{{param}}}", put, f"{op}_{create}", mutating=True, **api),
           Route("GET", f"{ACCT}/{kind}/{{{param}}}", get, f"{op}_Get", **api),
           Route("GET", f"{ACCT}/{kind}", lst, f"{op}_ListByAutomationAccount", **api)]
    if delete:
        out.append(Route("DELETE", f"{ACCT}/{kind}/{{{param}}}", remove, f"{op}_Delete", mutating=True, **api))
    return out


ROUTES = [
    *_routes("runtimeEnvironments", "runtimeEnvironmentName", "RuntimeEnvironments", _env_put, _env_json,
             attr="runtime_environments", delete=False, create="Create"),
    *_routes("runbooks", "runbookName", "Runbook", _runbook_put, _runbook_json, attr="runbooks"),
    Route("POST", ACCT + "/webhooks/generateUri", _webhook_generate_uri, "Webhook_GenerateUri",
          **{**API, "resource_type": "automationAccounts/webhooks"}),
    *_routes("webhooks", "webhookName", "Webhook", _webhook_put, _webhook_json, attr="webhooks"),
    *_routes("schedules", "scheduleName", "Schedule", _schedule_put, _schedule_json, attr="schedules",
             on_delete=_schedule_cascade),
    *_routes("jobSchedules", "jobScheduleId", "JobSchedule", _js_put, _js_json, attr="job_schedules", create="Create"),
    # The webhook itself: Automation's own endpoint (https://<id>.webhook.<region>.azure-automation.net/webhooks?token=)
    Route("POST", "/webhooks", _webhook_call, "Webhook_Invoke", mutating=True, arm=False),
]
