"""Fault switches: per operation or route pattern, answer the way real Azure fails.

Kinds (defaults follow ../docs/armsim.md and the shapes ARM really sends):
- ``throttle``    429 SubscriptionRequestsThrottled with Retry-After (seconds)
- ``busy``        429 RetryableError / RetryableErrorDueToAnotherOperation with Retry-After (Network RP lock)
- ``server_error`` 500 InternalServerError
- ``unavailable`` 503 ServiceUnavailable with Retry-After
- ``conflict``    409 AnotherOperationInProgress
- ``precondition`` 412 PreconditionFailed / PreconditionFailedEtagMismatch
- ``reset``       the TCP connection is reset before any answer
- ``lost_answer`` the request is carried out, then the connection is reset instead of the answer
- ``latency``     the request is held `seconds` before it is served normally
- ``lro_failed``  the request is accepted, its long-running operation ends Failed
- ``lro_canceled`` accepted, then Canceled as superseded; the write is NOT applied
- ``status``      any `status`/`code`/`message` you give
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from .arm import ArmError

__all__ = ["Fault", "FaultBook", "KINDS"]

KINDS = (
    "throttle", "busy", "server_error", "unavailable", "conflict", "precondition",
    "reset", "latency", "lro_failed", "lro_canceled", "status", "lost_answer",
)

_ids = itertools.count(1)


@dataclass
class Fault:
    """One switch: which requests it hits (method, path glob or operation id), how, how often."""

    kind: str
    method: str = "*"
    path: str = "*"
    operation: str | None = None
    count: int | None = 1
    skip: int = 0
    retry_after: int | None = None
    seconds: float = 0.0
    status: int | None = None
    code: str | None = None
    message: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(KINDS)}")
        self.method = self.method.upper()

    def matches(self, method: str, path: str, operation: str | None) -> bool:
        """Whether this switch is aimed at the request."""
        if self.method != "*" and self.method != method:
            return False
        if self.operation is not None:
            return operation is not None and self.operation.lower() == operation.lower()
        return fnmatch.fnmatch(path.lower(), self.path.lower())

    def error(self) -> ArmError:
        """The ARM error this switch answers with (for the kinds that answer with one)."""
        ra = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        if self.kind == "throttle":
            secs = self.retry_after if self.retry_after is not None else 1
            return ArmError(
                429, self.code or "SubscriptionRequestsThrottled",
                self.message or "Number of 'write' requests for subscription actor exceeded. "
                f"Please try again after '{secs}' seconds after additional tokens are available. "
                "Refer to https://aka.ms/arm-throttling for additional information.",
                headers={"Retry-After": str(secs)},
            )
        if self.kind == "busy":
            secs = self.retry_after if self.retry_after is not None else 1
            return ArmError(
                429, "RetryableError", "A retryable error occurred.",
                details=[{"code": "RetryableErrorDueToAnotherOperation",
                          "message": "Operation PutSecurityRuleOperation is updating resource. "
                          f"The call can be retried in {secs} seconds."}],
                headers={"Retry-After": str(secs)},
            )
        if self.kind == "server_error":
            return ArmError(500, self.code or "InternalServerError",
                            self.message or "Encountered internal server error. Diagnostic information: timestamp.",
                            headers=ra)
        if self.kind == "unavailable":
            return ArmError(503, self.code or "ServiceUnavailable",
                            self.message or "The service is temporarily unavailable. Please retry later.",
                            headers={"Retry-After": str(self.retry_after if self.retry_after is not None else 1)})
        if self.kind == "conflict":
            return ArmError(409, self.code or "AnotherOperationInProgress",
                            self.message or "Another operation on this or dependent resource is in progress.",
                            headers=ra)
        if self.kind == "precondition":
            return ArmError(412, "PreconditionFailed", "Precondition failed.",
                            details=[{"code": "PreconditionFailedEtagMismatch",
                                      "message": "Etag provided in if-match header does not match etag of resource."}])
        return ArmError(self.status or 500, self.code or "InternalServerError", self.message or "Injected fault.",
                        headers=ra)


class FaultBook:
    """The armed switches of one simulator; thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, **spec: Any) -> Fault:
        """Arm a switch (keyword arguments are `Fault` fields) and return it."""
        fault = Fault(**spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every switch."""
        with self._lock:
            self._faults.clear()

    def describe(self) -> list[dict[str, Any]]:
        """The armed switches as JSON-ready dicts."""
        with self._lock:
            return [asdict(f) for f in self._faults]

    def take(self, method: str, path: str, operation: str | None) -> list[Fault]:
        """The switches that fire for this request (latency first), spending one of each one's count."""
        fired: list[Fault] = []
        with self._lock:
            for f in self._faults:
                if not f.matches(method, path, operation):
                    continue
                f.hits += 1
                if f.hits <= f.skip:
                    continue
                if f.count is not None:
                    if f.count <= 0:
                        continue
                    f.count -= 1
                fired.append(f)
        fired.sort(key=lambda f: f.kind != "latency")
        return fired
