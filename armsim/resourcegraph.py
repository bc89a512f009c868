"""Azure Resource Graph `resources` POST, for exactly one query shape: the backup jobs of RecoveryServicesResources.

Served: `POST /providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01|2022-10-01|2024-04-01` (tenant
level: no subscription in the path) with the query remediations/discovery.py sends (QUERY below: IaaS VM backup
jobs started in the last N hours, optionally of one status, projected and ordered by id). Any other query, a
management-group scope or the `table` result format is 400: armsim does not evaluate KQL and never pretends to.

Rows come from armsim's backup model (armsim/backup.py): every vault's jobs, in every subscription armsim knows
when the request names none (the spec's "Basic tenant query" example, ResourcesTenantBasicQuery.json, sends no
`subscriptions`), else in the named ones. A row is the job's REST JSON (its `properties` as BackupJobs_List
returns them; that ARG carries the same properties is assumed) plus ARG's `subscriptionId` and `resourceGroup`.

Paging (resourcegraph.json 2024-04-01 QueryRequestOptions; examples ResourcesFirstPageQuery.json and
ResourcesNextPageQuery.json): `options.$top` 1..1000 (default 1000, learn.microsoft.com governance/resource-graph/
concepts/work-with-data), `options.$skip`, `options.$skipToken` (opaque; it pins the query and scopes it was made
for); the answer has `totalRecords`, `count`, `resultTruncated`, `facets`, `data` (objectArray) and `$skipToken`
while rows remain. Quota (guidance-for-throttled-requests): every answer carries `x-ms-user-quota-remaining` and
`x-ms-user-quota-resets-after` (15 queries per 5-second window per user); past it, 429 only with Settings.throttle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response
from .routing import Route

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["API_VERSIONS", "QUERY", "ROUTES", "query_text"]

API_VERSIONS = ("2021-03-01", "2022-10-01", "2024-04-01")  # stable versions in the spec with this operation
MAX_TOP = 1000  # QueryRequestOptions.$top maximum (resourcegraph.json)
DEFAULT_TOP = 1000  # rows when $top is absent (work-with-data: "By default, Resource Graph limits any query to ... 1000")
QUOTA, QUOTA_WINDOW = 15, 5.0  # "at most 15 queries within every 5-second window" (guidance-for-throttled-requests)

# The one query armsim evaluates; {window} like 24h or 90m, {status} '' or a `| where properties.status =~ '<S>'` stage.
QUERY = ("RecoveryServicesResources"
         " | where type =~ 'microsoft.recoveryservices/vaults/backupjobs'"
         " | where properties.backupManagementType =~ 'AzureIaasVM' and properties.operation =~ 'Backup'"
         " | where todatetime(properties.startTime) > ago({window}){status}"
         " | project id, name, type, subscriptionId, resourceGroup, properties"
         " | order by id asc")
_STATUS = " | where properties.status =~ '{status}'"
_SHAPE = re.compile("^" + re.escape(QUERY).replace(re.escape("{window}"), r"(?P<n>[0-9]{1,6})(?P<unit>[hm])")
                    .replace(re.escape("{status}"), r"(?: \| where properties\.status =~ '(?P<status>[A-Za-z]{1,40})')?")
                    + "$")


def query_text(window: str, status: str | None = None) -> str:
    """The query text for jobs started in the last `window` (24h, 90m), optionally of one status (the tests' copy)."""
    return QUERY.format(window=window, status=_STATUS.format(status=status) if status else "")


def _refuse(what: str) -> ArmError:
    return ArmError(400, "BadRequest", f"armsim does not evaluate {what}: it serves only the RecoveryServicesResources "
                    "backup-jobs query of remediations/discovery.py (see armsim/COVERAGE.md).",
                    details=[{"code": "NotServedByArmsim", "message": what}])


def _parse(body: Any) -> tuple[float, str | None, list[str] | None, dict[str, Any]]:
    """(hours, status, subscriptions or None, options) of a request body; 400 for anything armsim does not evaluate."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise ArmError(400, "BadRequest", "The request content was invalid: 'query' is required.")
    if body.get("managementGroups") or body.get("facets"):
        raise _refuse("management-group scopes or facets")
    m = _SHAPE.match(" ".join(body["query"].split()))
    if m is None:
        raise _refuse(f"this query ({' '.join(body['query'].split())[:120]!r})")
    subs = body.get("subscriptions")
    if subs is not None and (not isinstance(subs, list) or not all(isinstance(s, str) for s in subs)):
        raise ArmError(400, "BadRequest", "The request content was invalid: 'subscriptions' must be a list of ids.")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ArmError(400, "BadRequest", "The request content was invalid: 'options' must be an object.")
    if str(options.get("resultFormat") or "objectArray") != "objectArray":
        raise _refuse("resultFormat 'table'")
    hours = int(m.group("n")) / (60 if m.group("unit") == "m" else 1)
    return hours, m.group("status"), subs, options


def _int_option(options: dict[str, Any], key: str, low: int, high: int, default: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ArmError(400, "BadRequest", f"The request content was invalid: '{key}' must be an integer {low}..{high}.")
    return value


def _token(key: str, offset: int) -> str:
    return base64.b64encode(json.dumps({"k": key, "o": offset}).encode()).decode()


def _untoken(token: Any, key: str) -> int:
    try:
        doc = json.loads(base64.b64decode(str(token), validate=True))
        offset = int(doc["o"])
        ok = doc["k"] == key and offset >= 0
    except (ValueError, KeyError, TypeError):
        ok, offset = False, 0
    if not ok:
        raise ArmError(400, "BadRequest", "The $skipToken is invalid or was made for another query or scopes.")
    return offset


def _rows(sim: Simulator, hours: float, status: str | None, subs: set[str] | None) -> list[dict[str, Any]]:
    """Every matching job of every vault in scope, as ARG rows, ordered by id."""
    since = sim.clock.now() - timedelta(hours=hours)
    rows = []
    for vault in sim.backup.vaults.values():
        if subs is not None and vault.subscription.lower() not in subs:
            continue
        for job in vault.jobs:
            sim.backup.advance(job, poll=False)
            if job.started <= since or (status and job.status.lower() != status.lower()):
                continue
            doc = sim.backup.job_json(vault, job)
            rid = "/subscriptions/" + doc["id"].split("/", 2)[2]  # ARG writes ids with a lower-case 'subscriptions'
            rows.append({"id": rid, "name": doc["name"], "type": doc["type"].lower(),
                         "subscriptionId": vault.subscription, "resourceGroup": vault.group.lower(),
                         "properties": doc["properties"]})
    return sorted(rows, key=lambda r: r["id"].lower())


class _Quota:
    """ARG's per-user query quota: QUOTA queries per QUOTA_WINDOW seconds of simulated time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, tuple[float, int]] = {}

    def spend(self, who: str, now: float) -> tuple[int, float]:
        """(queries left after this one, -1 when none was left; seconds until the window resets)."""
        with self.lock:
            start, used = self.windows.get(who, (now, 0))
            if now - start >= QUOTA_WINDOW:
                start, used = now, 0
            left = QUOTA - used - 1
            self.windows[who] = (start, used + (1 if left >= 0 else 0))
            return max(left, -1), max(0.0, start + QUOTA_WINDOW - now)


_QUOTAS: weakref.WeakKeyDictionary[Any, _Quota] = weakref.WeakKeyDictionary()


def _quota_headers(sim: Simulator, r: Request) -> tuple[dict[str, str], float | None]:
    quota = _QUOTAS.setdefault(sim, _Quota())
    who = hashlib.sha256((r.header("authorization") or "anonymous").encode()).hexdigest()[:12]
    left, resets = quota.spend(who, sim.clock())
    secs = int(resets + 0.999)
    headers = {"x-ms-user-quota-remaining": str(max(left, 0)),
               "x-ms-user-quota-resets-after": f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"}
    return headers, (float(max(1, secs)) if left < 0 and sim.settings.throttle else None)


def _resources(sim: Simulator, r: Request) -> Response:
    """Resources: the backup-jobs query over every subscription in scope, one page."""
    if r.query.get("api-version") not in API_VERSIONS:
        raise ArmError(400, "NoRegisteredProviderFound", f"The api-version '{r.query.get('api-version')}' is not "
                       f"served for Microsoft.ResourceGraph/resources; armsim serves {', '.join(API_VERSIONS)}.")
    headers, retry = _quota_headers(sim, r)
    if retry is not None:
        raise ArmError(429, "RateLimiting", "Please provide below info when asking for support: the user quota of "
                       "Azure Resource Graph queries is spent; retry after the window resets.",
                       headers={**headers, "Retry-After": str(int(retry))})
    hours, status, subs, options = _parse(r.body)
    scope = None if subs is None else {s.lower() for s in subs}
    key = hashlib.sha256(json.dumps([hours, status, sorted(scope) if scope is not None else None]).encode()
                         ).hexdigest()[:16]
    top = _int_option(options, "$top", 1, MAX_TOP, DEFAULT_TOP)
    offset = _int_option(options, "$skip", 0, 10**9, 0)
    if options.get("$skipToken"):
        offset = _untoken(options["$skipToken"], key)
    rows = _rows(sim, hours, status, scope)
    page = rows[offset:offset + top]
    body: dict[str, Any] = {"totalRecords": len(rows), "count": len(page), "resultTruncated": "false",
                            "facets": [], "data": page}
    if offset + top < len(rows):
        body["$skipToken"] = _token(key, offset + top)
    return Response(200, body, headers)


ROUTES = [
    Route("POST", "/providers/Microsoft.ResourceGraph/resources", _resources, "Resources",
          oldest_api=API_VERSIONS[0], newest_api=API_VERSIONS[-1], resource_type="Microsoft.ResourceGraph/resources"),
]
