"""ARM's request throttling: token buckets per subscription and principal, and per subscription across principals.

Source (docs/armsim.md, armsim/COVERAGE.md): "Understand how Azure Resource Manager throttles requests"
(azure-resource-manager/management/request-limits-and-throttling.md, the 2024 regional token bucket): per
subscription, per service principal and per operation type, reads 250 tokens refilled at 25/s, writes and
deletes 200 refilled at 10/s; a global subscription limit of 15x those across all principals; every answer
carries `x-ms-ratelimit-remaining-subscription-<reads|writes|deletes>`; past the limit ARM answers 429
SubscriptionRequestsThrottled with Retry-After in seconds, and a request sent before it elapses is not
processed. The method decides the type: GET/HEAD read, DELETE delete, anything else write (assumed for
POST actions such as effectiveNetworkSecurityGroups, which the doc does not list).
armsim knows no principals (a loopback client sends no token): the principal is a digest of the
Authorization header, or "anonymous". Time is real (time.monotonic): a client waits real seconds.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LIMITS", "Bucket", "Throttle", "kind_of"]

# kind -> (bucket size, refill per second), per subscription and principal
LIMITS: dict[str, tuple[float, float]] = {"reads": (250.0, 25.0), "writes": (200.0, 10.0), "deletes": (200.0, 10.0)}
GLOBAL_FACTOR = 15  # "a global subscription limit of 15x the per-principal limit" across all principals
_SUB = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)


def kind_of(method: str) -> str:
    """The operation type ARM counts a request against."""
    m = method.upper()
    return "reads" if m in ("GET", "HEAD") else "deletes" if m == "DELETE" else "writes"


@dataclass
class Bucket:
    """A token bucket: `size` tokens at most, `rate` added per second."""

    size: float
    rate: float
    tokens: float = -1.0
    at: float = 0.0

    def _fill(self, now: float) -> None:
        if self.tokens < 0:
            self.tokens, self.at = self.size, now
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait(self, now: float) -> float:
        """Seconds until one token is there (0 when one is there now)."""
        self._fill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """Use one token (the caller checked `wait` is 0)."""
        self._fill(now)
        self.tokens -= 1

    def remaining(self, now: float) -> int:
        """Whole tokens left."""
        self._fill(now)
        return max(0, int(self.tokens))


@dataclass
class Throttle:
    """Every bucket of one simulator; `admit` decides a request and names its headers."""

    enabled: bool = True
    limits: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(LIMITS))
    clock: Callable[[], float] = time.monotonic
    throttled: int = 0  # 429s answered so far
    _buckets: dict[tuple[str, str, str], Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Full buckets of ARM's sizes again (a reset simulator)."""
        with self._lock:
            self._buckets.clear()
            self.limits = dict(LIMITS)
            self.throttled = 0

    def _bucket(self, sub: str, who: str, kind: str) -> Bucket:
        key = (sub.lower(), who, kind)
        if key not in self._buckets:
            size, rate = self.limits[kind]
            factor = GLOBAL_FACTOR if who == "*" else 1
            self._buckets[key] = Bucket(size * factor, rate * factor)
        return self._buckets[key]

    def admit(self, method: str, path: str, authorization: str | None) -> tuple[float | None, dict[str, str]]:
        """(None, headers) to serve the request, or (Retry-After seconds, headers) to answer 429."""
        m = _SUB.match(path)
        if not self.enabled or m is None:  # tenant-level routes are not modelled
            return None, {}
        sub, kind = m.group(1), kind_of(method)
        who = hashlib.sha256(authorization.encode()).hexdigest()[:12] if authorization else "anonymous"
        with self._lock:
            now = self.clock()
            own, every = self._bucket(sub, who, kind), self._bucket(sub, "*", kind)
            wait = max(own.wait(now), every.wait(now))
            if wait > 0:
                self.throttled += 1
                return float(max(1, math.ceil(wait))), {f"x-ms-ratelimit-remaining-subscription-{kind}": "0"}
            own.take(now)
            every.take(now)
            left = min(own.remaining(now), every.remaining(now))
            return None, {f"x-ms-ratelimit-remaining-subscription-{kind}": str(left),
                          f"x-ms-ratelimit-remaining-subscription-global-{kind}": str(every.remaining(now))}

    def describe(self) -> dict[str, object]:
        """A JSON-ready view for /_armsim/state: on/off, the limits, 429s so far."""
        return {"enabled": self.enabled, "limits": {k: {"burst": s, "per_second": r} for k, (s, r) in self.limits.items()},
                "throttled": self.throttled}


def throttled_body(kind: str, sub: str, seconds: float) -> dict[str, object]:
    """The 429 body ARM sends (arm-fault-semantics.md §4.1, 2025 sample)."""
    op = kind[:-1]
    return {"error": {"code": "SubscriptionRequestsThrottled",
                      "message": f"Number of '{op}' requests for subscription '{sub}' actor 'anonymous' exceeded. "
                                 f"Please try again after '{int(seconds)}' seconds after additional tokens are "
                                 "available. Refer to https://aka.ms/arm-throttling for additional information."}}
