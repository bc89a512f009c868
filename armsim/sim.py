"""The simulator: one instance holds every provider's state, the clock, faults, operations and the log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import (
    automation,
    automation_assets,
    automation_jobs,
    backup,
    compute,
    firewall,
    network,
    resourcegraph,
    routes,
)
from .arm import ArmError, Request, Response, check_api_version
from .clock import SimClock
from .faults import FaultBook
from .locks import ROUTES as LOCK_ROUTES
from .locks import LockModel, enforce
from .lro import TIME_ONLY, Operation, Operations
from .restorepoints import ROUTES as RESTORE_POINT_ROUTES
from .restorepoints import RestorePointModel
from .routing import Route, Router
from .throttle import Throttle

__all__ = ["Settings", "Simulator"]


@dataclass
class Settings:
    """Timing knobs: the clock's speed, and how many seconds (or, sooner, status polls) an operation or job takes.

    Seconds are simulated (`SimClock`): time alone ends every operation and job; polls only hurry
    them (`lro_polls`, `backup_job_polls`; 0 polls ends an operation at once and turns the backup
    job hurry off; 0 seconds means time never ends it). `clock_speed` (> 0) applies from the next
    request.
    """

    lro_polls: int = 1
    lro_seconds: float = 30.0  # assumed: ARM LROs of the kinds armsim serves end in seconds to minutes
    backup_job_polls: int = 2
    backup_job_seconds: float = 1223.0  # the example job took 00:20:23 (azure-docs backup-azure-arm-userestapi-managejobs.md)
    clock_speed: float = 1.0
    nsg_write_polls: int = 1
    nsg_write_seconds: float = 5.0  # NRP finishes a write on its own even if nobody polls
    latency: float = 0.0
    lro_retry_after: int | None = None
    # ARM's token buckets per subscription and principal (armsim/throttle.py). Off unless asked for (armsim
    # --throttle, benchmarks, the throttling tests): the demo and the suite measure behaviour, not ARM's pace.
    throttle: bool = False
    # A benchmark knob (assumed, armsim --op-seconds): every long-running operation (Run Command, NSG rule and route
    # writes, extension deletes, power actions, effective reads) ends by time alone after this many seconds, however
    # often it is polled; None keeps the counts and durations above. (--op-seconds S also gives backup jobs S seconds
    # by time alone: backup_job_polls 0, backup_job_seconds S.)
    op_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Simulator:
    """A stateful ARM: providers' models, a router over their routes, and the request log."""

    def __init__(self, scenario: str = "demo", *, clock: Callable[[], float] | None = None,
                 settings: Settings | None = None) -> None:
        self.clock = SimClock(clock or time.monotonic)
        self.lock = threading.RLock()
        self.faults = FaultBook()
        self.settings = settings or Settings()
        self.throttle = Throttle(enabled=self.settings.throttle)
        self.router = Router(self._routes())
        self.scenario_name = scenario
        self._log: list[dict[str, Any]] = []
        self.reset(scenario)

    # --- state -------------------------------------------------------------------------------
    def reset(self, scenario: str | None = None) -> None:
        """Restore a named scenario (default: the current one); clears operations, log stays."""
        from .scenarios import load

        with self.lock:
            self.scenario_name = scenario or self.scenario_name
            self._sync_clock()
            self.clock.resync()
            self.ops = Operations(self.clock)
            self.compute = compute.ComputeModel(self)
            self.network = network.NetworkModel(self)
            self.route_tables = routes.RouteTableModel(self)
            self.firewalls = firewall.FirewallModel(self)
            self.backup = backup.BackupModel(self)
            self.locks = LockModel(self)
            self.restore_points = RestorePointModel(self)
            self.automation = automation.AutomationModel(self)
            self.throttle.enabled = self.settings.throttle
            self.throttle.reset()  # full buckets: a reset simulator is a fresh subscription
            load(self, self.scenario_name)

    def requests(self) -> list[dict[str, Any]]:
        """A copy of the request log."""
        with self.lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self.lock:
            self._log.clear()

    def record(self, method: str, path: str, status: int, mutating: bool, operation: str | None) -> None:
        """Append one entry to the request log."""
        with self.lock:
            self._log.append({"method": method, "path": path, "status": status,
                              "mutating": mutating, "operation": operation})

    # --- the clock ---------------------------------------------------------------------------
    def _sync_clock(self) -> None:
        speed = self.settings.clock_speed
        if isinstance(speed, (int, float)) and speed > 0 and speed != self.clock.speed:
            self.clock.set_speed(speed)

    def tick(self) -> None:
        """Let time act: end every operation and backup job whose time has come (before each request)."""
        with self.lock:
            self._sync_clock()
            self.ops.tick()
            self.backup.tick()

    def advance_clock(self, seconds: float) -> dict[str, object]:
        """Move simulated time `seconds` ahead and let it act; the clock's new state."""
        with self.lock:
            self.clock.advance(seconds)
            self.tick()
            return self.clock.describe()

    # --- long-running operations -------------------------------------------------------------
    def start_operation(self, request: Request, *, polls: int | None = None, **kw: Any) -> Operation:
        """Accept an LRO for `request`, honouring any armed lro_failed / lro_canceled switch."""
        fault = request.params.get("_lro_fault")
        if fault == "lro_failed":
            kw["fail"] = ArmError(500, "InternalOperationError",
                                  "The operation failed with an internal error (injected by armsim).")
        elif fault == "lro_canceled":
            kw["cancel"] = ArmError(
                409, "Canceled", "Operation was canceled.",
                details=[{"code": "CanceledAndSupersededDueToAnotherOperation",
                          "message": "Operation was canceled and superseded by another operation."}])
        if polls is None:
            polls = self.settings.lro_polls
        seconds = kw.pop("seconds", self.settings.lro_seconds)
        if self.settings.op_seconds is not None and not kw.pop("own_time", False):  # time alone ends it
            polls, seconds = TIME_ONLY, max(self.settings.op_seconds, 1e-6)
        kw.pop("own_time", None)
        return self.ops.start(polls=polls, seconds=seconds, **kw)

    def accepted(self, request: Request, op: Operation, provider: str, *, status: int = 202,
                 body: Any = None, location: bool = True, async_operation: bool = True) -> Response:
        """The 201/202 answer for an accepted operation, with Azure-AsyncOperation and/or Location."""
        sub = request.params.get("subscriptionId", "00000000-0000-0000-0000-000000000000")
        base = request.headers.get("_base_url", "")
        api = request.query.get("api-version", "")
        root = f"{base}/subscriptions/{sub}/providers/{provider}/locations/eastus"
        headers: dict[str, str] = {}
        if async_operation:
            headers["Azure-AsyncOperation"] = f"{root}/operations/{op.id}?api-version={api}"
        if location:
            headers["Location"] = f"{root}/operationResults/{op.id}?api-version={api}"
        if self.settings.lro_retry_after is not None:
            headers["Retry-After"] = str(self.settings.lro_retry_after)
        return Response(status, body, headers)

    def _op_status(self, request: Request) -> Response:
        op = self.ops.get(request.params["operationId"])
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation {request.params['operationId']} not found.")
        retry = self.settings.lro_retry_after  # ARM's status answers may ask for the next poll's time too
        return Response(200, op.body(), {"Retry-After": str(retry)} if retry and op.status == "InProgress" else {})

    def _op_result(self, request: Request) -> Response:
        op = self.ops.get(request.params["operationId"])
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation {request.params['operationId']} not found.")
        if op.status == "InProgress":  # a poll's 202 may carry Retry-After, as the first answer does
            retry = {"Retry-After": str(self.settings.lro_retry_after)} if self.settings.lro_retry_after else {}
            return Response(202, None, {"Location": request.headers.get("_url", ""), **retry})
        return self.operation_result(op)

    def operation_result(self, op: Operation) -> Response:
        """The final answer of an ended operation: 200 with its outcome (204 without), or its error."""
        if op.status != "Succeeded":
            err = op.error or {"code": "OperationFailed", "message": "The operation failed."}
            raise ArmError(400 if op.status == "Failed" else 409, err["code"], err["message"])
        return Response(200, op.outcome) if op.outcome is not None else Response(204)

    # --- dispatch ----------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        ops: list[Route] = []
        for prov in ("Microsoft.Compute", "Microsoft.Network"):
            base = f"/subscriptions/{{subscriptionId}}/providers/{prov}/locations/{{location}}"
            ops.append(Route("GET", base + "/operations/{operationId}", Simulator._op_status,
                             f"{prov}/operations/read"))
            ops.append(Route("GET", base + "/operationResults/{operationId}", Simulator._op_result,
                             f"{prov}/operationResults/read"))
        return [*compute.ROUTES, *network.ROUTES, *routes.ROUTES, *firewall.ROUTES, *backup.ROUTES,
                *automation_jobs.ROUTES, *automation_assets.ROUTES, *LOCK_ROUTES, *RESTORE_POINT_ROUTES,
                *resourcegraph.ROUTES, *ops]

    def scopes(self) -> dict[str, set[str]]:
        """Known subscriptions (lower-case) and, per subscription, the groups any resource lives in."""
        out: dict[str, set[str]] = {}
        resources: list[Any] = [*self.compute.vms.values(), *self.network.nsgs.values(), *self.network.subnets.values(),
                     *self.network.nics.values(), *self.route_tables.tables.values(),
                     *self.firewalls.firewalls.values(), *self.backup.vaults.values(), *self.automation.accounts.values(),
                     *self.restore_points.collections.values()]
        for res in resources:
            out.setdefault(res.subscription.lower(), set()).add(res.group.lower())
        return out

    def check_scope(self, params: dict[str, str]) -> None:
        """404 SubscriptionNotFound / ResourceGroupNotFound, as ARM answers, for a scope with no resources."""
        sub = params.get("subscriptionId")
        if sub is None:
            return
        groups = self.scopes().get(sub.lower())
        if groups is None:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        group = params.get("resourceGroupName")
        if group is not None and group.lower() not in groups:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")

    def serve(self, request: Request, route: Route) -> Response:
        """Run one matched request under the state lock; ARM errors become their envelopes."""
        with self.lock:
            self.tick()
            try:
                if route.arm:
                    check_api_version(request.query, oldest=route.oldest_api, newest=route.newest_api,
                                      resource_type=route.resource_type or route.operation)
                self.check_scope(request.params)
                enforce(self, request, route)  # 409 ScopeLocked under a lock (armsim/locks.py)
                return route.handler(self, request)
            except ArmError as e:
                return Response(e.status, e.body(), dict(e.headers))
