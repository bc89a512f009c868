"""The exception tree: every error keeps what decides it (ARM code, status, correlation id)."""

from __future__ import annotations

import re
import ssl
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ArmCallError",
    "BadInput",
    "Interrupted",
    "OperationTimedOut",
    "ReadOnlyViolation",
    "RemediationError",
    "Unreachable",
    "arm_error",
    "causes",
    "not_found",
    "one_line",
    "unreachable",
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
    message = getattr(err, "message", None) or (str(getattr(exc, "message", "") or exc).splitlines() or [""])[0]
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


class Unreachable(ArmCallError):
    """The endpoint was not reached or not trusted, so nothing was answered: `kind` is "tls" or "refused"."""

    def __init__(self, endpoint: str, kind: str, reason: str) -> None:
        what = f"the TLS certificate of {endpoint} is not trusted ({reason})" if kind == "tls" \
            else f"cannot connect to {endpoint}: {reason}"
        code = "CertificateNotTrusted" if kind == "tls" else "ConnectionRefused"
        super().__init__(None, code, what)
        self.endpoint, self.kind, self.reason = endpoint, kind, reason
        self.args = (what,)  # str(e) is the one line, without the code


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (cause, context, azure-core's inner_exception, urllib3's reason)."""
    out: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(out) < 20:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is seen for seen in out):
            continue
        out.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "inner_exception", None), getattr(e, "reason", None),
                 *e.args]
    return out


def unreachable(exc: BaseException, url: str) -> Unreachable | None:
    """An Unreachable for a request to `url` that failed on an untrusted certificate or a refused connection.

    Neither is transient: a certificate does not become trusted by asking again, and a refusal means nothing
    listens there (ARM's front door does not refuse), so both are reported at once instead of retried.
    """
    parts = urlsplit(url)
    endpoint = f"{parts.scheme}://{parts.netloc}"
    for e in causes(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return Unreachable(endpoint, "tls", str(e.verify_message or e.reason or "certificate verify failed"))
        if isinstance(e, ConnectionRefusedError):
            return Unreachable(endpoint, "refused", "connection refused")
    return None


_NOT_FOUND = {"resourcenotfound", "resourcegroupnotfound", "subscriptionnotfound", "notfound"}
_GROUP = re.compile(r"resource group '([^']+)'", re.I)
_RESOURCE = re.compile(r"resource '(?:[^'/]+/)*([^'/]+)/([^'/]+)' under resource group '([^']+)'", re.I)
_SUBSCRIPTION = re.compile(r"subscription '([^']+)'", re.I)


def not_found(err: ArmCallError) -> str | None:
    """"not found: <what> (<code>)" for a 404 that says a subscription, group or resource does not exist."""
    if err.status != 404 or err.code.lower() not in _NOT_FOUND:
        return None
    code, msg = err.code.lower(), err.message
    m = _RESOURCE.search(msg)
    if code == "resourcegroupnotfound" and (g := _GROUP.search(msg)):
        what = f"resource group '{g.group(1)}'"
    elif code == "subscriptionnotfound" and (s := _SUBSCRIPTION.search(msg)):
        what = f"subscription '{s.group(1)}'"
    elif m:
        kind = {"virtualmachines": "VM"}.get(m.group(1).lower(), m.group(1))
        what = f"{kind} '{m.group(2)}' in resource group '{m.group(3)}'"
    else:
        what = msg.split(". ", 1)[0].rstrip(".")
    return f"not found: {what} ({err.code})"


def one_line(exc: BaseException) -> str:
    """The one line that reports a failed call: not found, unreachable, or `CODE: message`."""
    if isinstance(exc, Interrupted):
        return str(exc)  # "interrupted: stopped before …", not "Interrupted: interrupted: …"
    err = arm_error(exc)
    if isinstance(err, Unreachable):
        return str(err)
    return not_found(err) or f"{err.code}: {err.message}"
