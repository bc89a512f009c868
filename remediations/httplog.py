"""What each ARM call and each retry looks like on the `remediations.http` logger, with every secret redacted.

- INFO: one line per HTTP attempt (method, path without its query, status or connection failure, time, and the
  retry owner's attempt number) and one per retry (what failed, and the wait before the next attempt).
- DEBUG: the request and response heads as well (start line and headers).
- Secrets never reach a record: credential headers (Authorization, cookies, ...) are replaced, and SAS or token
  query parameters (``sig=``, ``se=``, ``sv=``, ..., ``token=``) and bearer tokens are masked in every URL,
  header value and message before a line is formatted.
- The SDK's own HttpLoggingPolicy is replaced by `CallLog` (the client layer passes it as
  ``http_logging_policy``): at INFO it would log a Location header with its SAS. Nothing here configures
  logging; `show` is how a program (the CLI) sends these records to a stream of its choice.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from typing import Any, TextIO
from urllib.parse import urlsplit

from .errors import arm_error, causes, unreachable

__all__ = ["ATTEMPT", "LOG", "REDACTED", "CallLog", "reason", "redact", "retrying", "show"]

LOG = logging.getLogger("remediations.http")
REDACTED = "REDACTED"
ATTEMPT: contextvars.ContextVar[int | None] = contextvars.ContextVar("attempt", default=None)

_SECRET_HEADERS = {"authorization", "proxy-authorization", "x-ms-authorization-auxiliary", "cookie", "set-cookie",
                   "x-identity-header", "x-ms-encryption-key", "ocp-apim-subscription-key", "x-functions-key"}
# SAS fields (Azure Storage account, service and user-delegation SAS) and other secrets carried in a query.
_SECRET_PARAMS = ("sig", "se", "st", "sv", "sp", "sr", "spr", "si", "ss", "srt", "sdd", "ses", "skoid", "sktid",
                  "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "token", "code", "client_secret",
                  "access_token", "refresh_token")
_PARAM = re.compile(r"(?i)((?:[?&;]|%26|%3F)(?:" + "|".join(_SECRET_PARAMS) + r")(?:=|%3D))(?:(?!%26)[^&#\s\"'<>,;])*")
_BEARER = re.compile(r"(?i)\b(bearer|basic|sharedaccesssignature|sharedkey)\s+[^\s,\"']+")


def redact(text: str) -> str:
    """`text` with SAS/token query values and bearer credentials replaced by REDACTED."""
    return _BEARER.sub(rf"\1 {REDACTED}", _PARAM.sub(rf"\1{REDACTED}", text))


def _header(name: str, value: str) -> str:
    return f"{name}: {REDACTED if name.lower() in _SECRET_HEADERS else redact(str(value))}"


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _chain_text(exc: BaseException) -> str:
    for e in causes(exc):
        for kind, words in ((ConnectionResetError, "connection reset"), (ConnectionRefusedError, "connection refused"),
                            (TimeoutError, "timed out")):
            if isinstance(e, kind):
                return words
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def reason(exc: BaseException) -> str:
    """Why an attempt failed, in a few words: `429 SubscriptionRequestsThrottled, Retry-After 2 s`, `connection reset`."""
    from .azure import retry_after

    status = getattr(exc, "status_code", None)
    if status is None:
        return redact(_chain_text(exc))
    asked = retry_after(exc)
    return redact(f"{status} {arm_error(exc).code}" + (f", Retry-After {asked:g} s" if asked is not None else ""))


def retrying(attempt: int, attempts: int, wait: float, exc: BaseException) -> None:
    """Log one retry: which attempt failed and why, and the wait before the next one."""
    LOG.info("ARM retry: attempt %d of %d failed (%s); attempt %d in %.1f s",
             attempt, attempts, reason(exc), attempt + 1, wait)


def _base() -> type:
    from azure.core.pipeline.policies import HTTPPolicy

    return HTTPPolicy


class CallLog(_base()):  # type: ignore[misc]
    """The last policy before the transport: logs each attempt (INFO) and its heads (DEBUG), redacted; a request
    that meets an untrusted certificate or a refused connection raises errors.Unreachable naming the endpoint."""

    def send(self, request: Any) -> Any:
        http = request.http_request
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("\n".join([f"> {http.method} {redact(http.url)}",
                                 *(f"> {_header(k, v)}" for k, v in http.headers.items())]))
        start = time.monotonic()
        attempt = ATTEMPT.get()
        tail = f" (attempt {attempt})" if attempt else ""
        try:
            response = self.next.send(request)
        except Exception as e:
            if LOG.isEnabledFor(logging.INFO):
                LOG.info("ARM %s %s -> %s after %.2f s%s", http.method, _path(http.url), reason(e),
                         time.monotonic() - start, tail)
            gone = unreachable(e, http.url)
            if gone is not None:
                raise gone from e
            raise
        if LOG.isEnabledFor(logging.INFO):
            resp = response.http_response
            LOG.info("ARM %s %s -> %s in %.2f s%s", http.method, _path(http.url), resp.status_code,
                     time.monotonic() - start, tail)
            if LOG.isEnabledFor(logging.DEBUG):
                LOG.debug("\n".join([f"< {resp.status_code} {getattr(resp, 'reason', '') or ''}".rstrip(),
                                     *(f"< {_header(k, v)}" for k, v in resp.headers.items())]))
        return response


def show(stream: TextIO, *, debug: bool = False) -> logging.Handler:
    """Write these records to `stream` (calls and retries; with `debug`, the heads too), and only there."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.DEBUG if debug else logging.INFO)
    LOG.propagate = False  # a root handler (e.g. one on stdout) never sees them
    return handler
