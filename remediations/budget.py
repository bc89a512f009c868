"""The client's share of ARM's request budget: one token bucket per (ARM endpoint, subscription, principal, kind),
shared by every worker thread of the process, so a fleet does not run into ARM's throttling.

ARM counts reads, writes and deletes per subscription and principal in token buckets (reads 250 refilled at
25/s, writes and deletes 200 at 10/s; learn.microsoft.com azure-resource-manager/management/
request-limits-and-throttling.md) and says what is left in `x-ms-ratelimit-remaining-subscription-<kind>`.
The client mirrors that bucket once ARM has said what is left: each request takes a token first (waiting
for the refill when none is left), each answer's header lowers the estimate to what ARM says is left (other
processes and principals spend the same budget), and a 429's Retry-After holds every worker of that bucket
until it elapses (capped as the retry policy caps it). So a 429 may happen, but a burst of them cannot
follow it. An endpoint that sends no header (armsim with throttling off) is not paced. The policy sits per retry in the SDK pipeline
(remediations/azure.py), below the retries, which stay tenacity's alone.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BUDGETS", "Budget", "BudgetPolicy", "Budgets"]

LIMITS: dict[str, tuple[float, float]] = {"reads": (250.0, 25.0), "writes": (200.0, 10.0), "deletes": (200.0, 10.0)}
_SUB = re.compile(r"/subscriptions/([0-9a-fA-F-]{36})", re.IGNORECASE)


def _kind(method: str) -> str:
    m = method.upper()
    return "reads" if m in ("GET", "HEAD") else "deletes" if m == "DELETE" else "writes"


@dataclass
class Budget:
    """The estimate of one ARM bucket: unknown until ARM speaks; then tokens left (refilled at `rate`) and a hold
    until a 429's Retry-After."""

    size: float
    rate: float
    tokens: float | None = None  # None: ARM has not said (no header yet): nothing is paced
    at: float = 0.0
    held_until: float = 0.0
    waited: float = 0.0  # seconds workers waited for this bucket, in total
    throttled: int = 0  # 429s seen
    inflight: int = 0  # requests sent that ARM has not answered yet (its count does not include them)

    def _fill(self, now: float) -> None:
        if self.tokens is not None:
            self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may go (0: go now)."""
        self._fill(now)
        hold = max(0.0, self.held_until - now)
        short = 0.0 if self.tokens is None or self.tokens >= 1 else (1 - self.tokens) / self.rate
        return max(hold, short)

    def take(self, now: float) -> None:
        """Spend one token (a request on its way that ARM has not counted yet)."""
        self._fill(now)
        self.inflight += 1
        if self.tokens is not None:
            self.tokens -= 1

    def heard(self, now: float, remaining: int | None, retry_after: float | None) -> None:
        """An answer: tokens left as ARM counts them, less the requests still on their way (another principal's or
        process's spending lowers it; the refill raises it), or a 429 with its Retry-After (every worker holds until
        then)."""
        self._fill(now)
        self.inflight = max(0, self.inflight - 1)
        if remaining is not None:  # answers may come back out of order: an older, higher count never raises it
            said = float(remaining) - self.inflight
            self.tokens = said if self.tokens is None else min(self.tokens, said)
        if retry_after is not None:
            self.throttled += 1
            if self.tokens is None:  # ARM never announced this budget: not its bucket's 429 (a busy resource…)
                return
            self.tokens = 0.0
            self.held_until = max(self.held_until, now + retry_after)


class Budgets:
    """Every bucket of the process, by (endpoint, subscription, principal, kind)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._budgets: dict[tuple[str, str, str, str], Budget] = {}

    def get(self, key: tuple[str, str, str, str]) -> Budget:
        """The bucket for a key (ARM's published size and refill)."""
        with self._lock:
            if key not in self._budgets:
                self._budgets[key] = Budget(*LIMITS[key[3]])
            return self._budgets[key]

    def acquire(self, key: tuple[str, str, str, str], sleep: Callable[[float], None], cap: float) -> float:
        """Wait (through `sleep`, at most `cap` seconds at a time) until the bucket lets a request go; the seconds
        waited."""
        budget, waited = self.get(key), 0.0
        while True:
            with self._lock:
                now = self.clock()
                pause = budget.delay(now)
                if pause <= 0 or waited >= cap:  # never wait longer than a Retry-After the retry policy honours
                    budget.take(now)
                    budget.waited += waited
                    return waited
            pause = min(pause, cap - waited, 5.0)  # look again: an answer may have changed the estimate meanwhile
            sleep(pause)
            waited += pause

    def heard(self, key: tuple[str, str, str, str], remaining: int | None, retry_after: float | None) -> None:
        """Feed an answer's headers to its bucket."""
        budget = self.get(key)
        with self._lock:
            budget.heard(self.clock(), remaining, retry_after)

    def lost(self, key: tuple[str, str, str, str]) -> None:
        """A request that got no answer (a reset connection): no longer in flight."""
        budget = self.get(key)
        with self._lock:
            budget.inflight = max(0, budget.inflight - 1)

    def stats(self) -> dict[str, dict[str, float]]:
        """Per bucket (kind@subscription): 429s seen and seconds waited (the benchmarks print them)."""
        with self._lock:
            return {f"{k[3]}@{k[1]}": {"throttled": b.throttled, "waited": round(b.waited, 3)}
                    for k, b in self._budgets.items()}

    def clear(self) -> None:
        """Forget every bucket."""
        with self._lock:
            self._budgets.clear()


BUDGETS = Budgets()  # the process's: every Azure instance of one principal shares it


def _policy_base() -> type:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    return SansIOHTTPPolicy


class BudgetPolicy(_policy_base()):  # type: ignore[misc]
    """Takes a token of the request's bucket before it is sent; feeds the answer's headers back."""

    def __init__(self, endpoint: str, principal: str, *, sleep: Callable[[float], None] | None = None,
                 cap: float = 60.0, budgets: Budgets | None = None) -> None:
        self.endpoint, self.principal = endpoint.rstrip("/").lower(), principal
        self.sleep, self.cap = sleep or time.sleep, cap
        self.budgets = budgets or BUDGETS

    def _key(self, request: Any) -> tuple[str, str, str, str] | None:
        http = request.http_request
        m = _SUB.search(http.url)
        return (self.endpoint, m.group(1).lower(), self.principal, _kind(http.method)) if m else None

    def on_request(self, request: Any) -> None:
        """Wait for a token (tenant-level requests are not counted)."""
        key = self._key(request)
        if key is not None:
            request.context["budget_key"] = key
            self.budgets.acquire(key, self.sleep, self.cap)

    def on_exception(self, request: Any) -> None:
        """No answer came: the request is no longer in flight."""
        key = request.context.get("budget_key")
        if key is not None:
            self.budgets.lost(key)

    def on_response(self, request: Any, response: Any) -> None:
        """Lower the estimate to ARM's count; hold the bucket for a 429's Retry-After."""
        key = request.context.get("budget_key")
        if key is None:
            return
        http = response.http_response
        left = http.headers.get(f"x-ms-ratelimit-remaining-subscription-{key[3]}")
        wait: float | None = None
        # A 429 that still shows tokens left is not the budget's (e.g. Network RP's RetryableErrorDueToAnotherOperation
        # on a busy resource): it holds nothing here.
        if http.status_code == 429 and not (left and left.isdigit() and int(left) > 0):
            try:
                wait = float(http.headers.get("Retry-After") or 1)
            except ValueError:
                wait = 1.0
        self.budgets.heard(key, int(left) if left and left.isdigit() else None, wait)
