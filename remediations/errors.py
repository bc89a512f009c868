"""The exception tree: every error keeps what decides it (ARM code, status, correlation id)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArmCallError",
    "BadInput",
    "Interrupted",
    "OperationTimedOut",
    "ReadOnlyViolation",
    "RemediationError",
    "arm_error",
]


class RemediationError(Exception):
    """Base of every error this library raises on purpose."""


class BadInput(RemediationError, ValueError):
    """Input that fails validation; nothing was sent to Azure (exit code 2)."""


class ReadOnlyViolation(RemediationError):
    """A state-changing request was stopped in the HTTP pipeline before leaving the process."""

    def __init__(self, method: str, url: str) -> None:
        super().__init__(f"read-only mode: refused {method} {url.split('?', 1)[0]}")
        self.method = method
        self.url = url


class ArmCallError(RemediationError):
    """An ARM call that failed for good: HTTP status, ARM error code (innermost detail first), correlation id."""

    def __init__(self, status: int | None, code: str, message: str, *, correlation_id: str | None = None,
                 outer_code: str | None = None) -> None:
        super().__init__(f"{code} ({status}): {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.correlation_id = correlation_id
        self.outer_code = outer_code


def _codes(exc: Any) -> tuple[str, str | None, str]:
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None) or ""
    message = getattr(err, "message", None) or str(getattr(exc, "message", "") or exc).splitlines()[0]
    details = getattr(err, "details", None) or []
    inner = next((getattr(d, "code", None) for d in details if getattr(d, "code", None)), None)
    return (inner or code or "UnknownError"), (code if inner else None), message


def arm_error(exc: BaseException) -> ArmCallError:
    """Translate an azure-core HttpResponseError (or any error) into an ArmCallError that keeps the code."""
    if isinstance(exc, ArmCallError):
        return exc
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    code, outer, message = _codes(exc)
    if code == "UnknownError" and not getattr(exc, "error", None):
        code = type(exc).__name__
    return ArmCallError(status, code, message, correlation_id=headers.get("x-ms-correlation-request-id"),
                        outer_code=outer)


class Interrupted(RemediationError):
    """Ctrl-C asked to stop: raised before the next write or poll (exit code 130)."""


class OperationTimedOut(ArmCallError):
    """A long-running operation passed its deadline; the message names it and its last status."""

    def __init__(self, name: str, seconds: float, last: str) -> None:
        super().__init__(None, "OperationTimedOut", f"{name} did not finish within {seconds:g}s; last status {last}")
