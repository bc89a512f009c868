"""Bounded waiting: Ctrl-C's stop flag, `poll_until` for hand-written loops, and the guard on the SDK's LRO polls.

- Every wait honours Retry-After only up to the cap of the retry policy (RetrySettings.retry_after_cap).
- Every long-running operation has a deadline; past it, OperationTimedOut names the operation and its
  last status in one line.
- STOP (set by the first Ctrl-C) ends `poll_until` loops at once and stops every action before its next
  write; an SDK operation already sent is still followed to its answer (bounded by its deadline).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import Interrupted, OperationTimedOut, arm_error

__all__ = ["STOP", "PollGuard", "check_stop", "follow", "poll_until", "settle"]

T = TypeVar("T")
STOP = threading.Event()
_RETRY_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms", "retry-after")


def check_stop(what: str = "the next write") -> None:
    """Raise Interrupted when Ctrl-C asked to stop."""
    if STOP.is_set():
        raise Interrupted(f"interrupted: stopped before {what}")


def poll_until(read: Callable[[], T], done: Callable[[T], bool], *, name: str, interval: float, seconds: float,
               cap: float = 60.0, status: Callable[[T], str] = str) -> T:
    """Read until `done`; transient errors wait (Retry-After capped at `cap`); past `seconds`, OperationTimedOut."""
    from .azure import is_transient, poll_pause

    deadline = time.monotonic() + seconds
    last = "not read yet"
    while True:
        check_stop(f"the next poll of {name}")
        try:
            value = read()
        except Exception as e:
            if not is_transient(e):
                raise
            last, pause = f"{arm_error(e).code} ({getattr(e, 'status_code', '?')})", poll_pause(e, interval, cap)
        else:
            last = status(value)
            if done(value):
                return value
            pause = interval
        if time.monotonic() + pause > deadline:
            raise OperationTimedOut(name, seconds, last)
        if STOP.wait(pause):
            check_stop(f"the next poll of {name}")


def _status_of(response: Any) -> str:
    try:
        body = json.loads(response.text() or "null")
    except (ValueError, TypeError, AttributeError):
        body = None
    status = body.get("status") if isinstance(body, dict) else None
    if isinstance(body, dict) and status is None:
        status = (body.get("properties") or {}).get("provisioningState") if isinstance(body.get("properties"), dict) \
            else None
    return f"{status} (HTTP {response.status_code})" if status else f"HTTP {response.status_code}"


def _base() -> type:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    return SansIOHTTPPolicy


class PollGuard(_base()):  # type: ignore[misc]
    """A pipeline policy: caps Retry-After on every answer; bounds each LRO's polls by a deadline."""

    def __init__(self, cap: float, seconds: float) -> None:
        self.cap, self.seconds = cap, seconds
        self._ops: dict[str, list[Any]] = {}  # poll URL -> [deadline, name, last status]
        self._lock = threading.Lock()
        self._local = threading.local()  # this thread's last accepted operation: (poll URL, name)

    def last(self) -> tuple[str, str] | None:
        """This thread's last accepted operation (its poll URL and name), if any."""
        return getattr(self._local, "last", None)

    def forget(self) -> None:
        """Forget this thread's last accepted operation (before a new write)."""
        self._local.last = None

    @staticmethod
    def _key(url: str) -> str:
        return url.split("?", 1)[0].lower()

    def on_request(self, request: Any) -> None:
        http = request.http_request
        if http.method.upper() != "GET":
            return
        with self._lock:
            op = self._ops.get(self._key(http.url))
        if op is None:
            return
        if time.monotonic() > op[0]:
            raise OperationTimedOut(op[1], self.seconds, op[2])

    def on_response(self, request: Any, response: Any) -> None:
        http, resp = request.http_request, response.http_response
        headers = resp.headers
        for name in _RETRY_HEADERS:
            value = headers.get(name)
            if value is None:
                continue
            scale = 1000.0 if name.endswith("-ms") else 1.0
            try:
                if float(value) > self.cap * scale:
                    headers[name] = str(int(self.cap * scale))
            except ValueError:
                continue
        key = self._key(http.url)
        with self._lock:
            if key in self._ops:
                self._ops[key][2] = _status_of(resp)
                return
            if http.method.upper() != "GET" and resp.status_code in (201, 202):
                name = f"{http.method.upper()} {http.url.split('?', 1)[0].rsplit('/providers/', 1)[-1]}"
                for h in ("operation-location", "location", "azure-asyncoperation"):  # the last one is followed
                    if headers.get(h):
                        self._ops[self._key(headers[h])] = [time.monotonic() + self.seconds, name, "Accepted"]
                        self._local.last = (headers[h], name)


_TERMINAL = {"succeeded", "failed", "canceled", "cancelled"}


def settle(azure: Any) -> str | None:
    """Follow this thread's last accepted operation to its end (bounded, Retry-After capped); its last status.

    Used after a fault on a poll: the write was accepted, so wait for its fate instead of sending it again.
    """
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    last = azure.poll_guard.last()
    if last is None:
        return None
    url, name = last
    cfg = azure.config

    def read() -> Any:
        resp = azure.compute.send_request(HttpRequest("GET", url))
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            raise HttpResponseError(response=resp)
        return resp

    def done(resp: Any) -> bool:
        if resp.status_code != 200:
            return resp.status_code != 202
        try:
            status = (resp.json() or {}).get("status")
        except (ValueError, AttributeError):
            status = None
        return status is None or str(status).lower() in _TERMINAL

    interval = cfg.polling_interval if cfg.polling_interval is not None else (0.05 if cfg.loopback else 5.0)
    resp = poll_until(read, done, name=name, interval=interval, seconds=cfg.operation_seconds,
                      cap=cfg.retry.retry_after_cap, status=lambda r: f"HTTP {r.status_code}")
    return f"HTTP {resp.status_code}"


def follow(azure: Any, begin: Callable[..., Any], name: str) -> Any:
    """Start a long-running operation once and return its result; a transient fault on a poll (a 429, a 5xx, a lost
    answer) resumes the same operation from its continuation token after the pause the fault asks for, bounded by
    the operation deadline. The start is never sent again once accepted: a second Run Command POST while the first
    runs is refused 409 "Run command extension execution is in progress", and a mutating script would run twice.

    `begin(**kw)` is an SDK `begin_*` call with its arguments bound; `azure.call` retries the start alone (only a
    refused start: ARM did not process a 429, azure-core LROPoller.continuation_token / from_continuation_token).
    """
    from .azure import is_transient

    poller = azure.call(begin)
    token = poller.continuation_token()
    cfg = azure.config
    interval = cfg.polling_interval if cfg.polling_interval is not None else (0.05 if cfg.loopback else 5.0)
    current: list[Any] = [poller]

    def read() -> Any:
        if not current:
            current.append(begin(continuation_token=token))  # no request: the poller resumes from the token
        try:
            return current[0].result()
        except Exception as e:
            if is_transient(e):
                current.clear()
            raise

    return poll_until(read, lambda _: True, name=name, interval=interval, seconds=cfg.operation_seconds,
                      cap=cfg.retry.retry_after_cap, status=lambda _: "Succeeded")
