"""One scheduler for the fleet paths: items in order, at most `concurrency` in flight, an error budget.

The error budget is SSM's MaxErrors (AWS Systems Manager StartAutomationExecution / SendCommand MaxErrors,
docs.aws.amazon.com): a count such as 3 or a percentage of the items such as 10%, the failures *allowed*.
One failure past it (the 4th with 3; the 6th with 10% of 50; the 1st with 0) starts no new item; the items
in flight finish, so more may fail meanwhile; the rest end without starting, withheld with the reason.
A percentage rounds down (assumed: SSM does not say). Two worker kinds share the rule: `run_local` runs a
function per item on threads (fix --from-vault, many VMs in the CLI); `Remote` starts and polls remote
work round by round (Automation child jobs: the fan-out, and the sweep through it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Gate", "Remote", "allowed_failures", "check_max_errors", "run_local"]

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H")

_MAX_ERRORS = re.compile(r"([0-9]{1,6})(%?)", re.ASCII)


def check_max_errors(text: str) -> str:
    """`text` as given when it is a count (0..999999) or a percentage (0%..100%); ValueError says what is wanted."""
    m = _MAX_ERRORS.fullmatch(text.strip())
    if m is None or (m.group(2) and int(m.group(1)) > 100):
        raise ValueError("want a count of failures allowed (e.g. 0, 10) or a percentage of the VMs (e.g. 10%)")
    return text.strip()


def allowed_failures(max_errors: str | None, total: int) -> int | None:
    """How many failures `max_errors` allows among `total` items (a percentage rounds down); None: no limit."""
    if max_errors is None:
        return None
    m = _MAX_ERRORS.fullmatch(check_max_errors(max_errors))
    assert m is not None
    n = int(m.group(1))
    return n * total // 100 if m.group(2) else n


@dataclass
class Gate:
    """The rule both worker kinds follow: room for one more in flight, and the error budget not spent."""

    concurrency: int
    allowed: int | None  # failures allowed (allowed_failures); None: no limit
    label: str = "max_errors"  # the budget as the user gave it (e.g. "--max-errors 3"), for the reason
    failures: int = 0

    @property
    def spent(self) -> bool:
        """Whether more items failed than the budget allows: nothing new starts."""
        return self.allowed is not None and self.failures > self.allowed

    def may_start(self, in_flight: int) -> bool:
        """Whether one more item may start now."""
        return in_flight < max(1, self.concurrency) and not self.spent

    def ended(self, failed: bool) -> None:
        """Count one item that ended."""
        self.failures += failed

    @property
    def reason(self) -> str:
        """Why an item did not start once the budget is spent."""
        return f"error budget spent ({self.failures} failed; {self.label})"


def run_local(items: Sequence[T], work: Callable[[T], R], gate: Gate, *, failed: Callable[[R], bool],
              withheld: Callable[[T, str], R]) -> list[R]:
    """Run `work` on each item on threads within `gate`; results in item order (unstarted ones from `withheld`).

    An exception from `work` (an unreachable endpoint) propagates once the items in flight finish."""
    results: dict[int, R] = {}
    nxt = 0
    with ThreadPoolExecutor(max_workers=max(1, min(gate.concurrency, len(items) or 1))) as pool:
        running: dict[Future[R], int] = {}
        while True:
            while nxt < len(items) and gate.may_start(len(running)):
                running[pool.submit(work, items[nxt])] = nxt
                nxt += 1
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                k = running.pop(f)
                results[k] = f.result()
                gate.ended(failed(results[k]))
    for k in range(nxt, len(items)):
        results[k] = withheld(items[k], gate.reason)
    return [results[k] for k in range(len(items))]


@dataclass
class Remote(Generic[T, H]):
    """Remote work started and polled round by round: `start(item)` returns a handle (ended at once when refused),
    `read(handle)` refreshes it, `ended`/`failed` judge it. `adopted` holds handles of items started before
    (a restarted run): they count as in flight or ended, and those items are never started again."""

    items: Sequence[T]
    gate: Gate
    start: Callable[[T], H]
    read: Callable[[H], None]
    ended: Callable[[H], bool]
    failed: Callable[[H], bool]
    adopted: dict[int, H] = field(default_factory=dict)
    handles: dict[int, H] = field(default_factory=dict)
    running: list[int] = field(default_factory=list)
    cursor: int = 0

    def __post_init__(self) -> None:
        for k, h in sorted(self.adopted.items()):
            self.handles[k] = h
            self._settle(k)

    @property
    def unstarted(self) -> list[int]:
        """Indexes of the items not started (nor adopted) yet."""
        return [k for k in range(self.cursor, len(self.items)) if k not in self.handles]

    @property
    def finished(self) -> bool:
        """Whether nothing runs and nothing more will start."""
        return not self.running and (not self.unstarted or self.gate.spent)

    def _settle(self, k: int) -> None:
        """File item `k`'s handle as running or ended (counting a failure)."""
        if self.ended(self.handles[k]):
            self.gate.ended(self.failed(self.handles[k]))
        elif k not in self.running:
            self.running.append(k)

    def round(self) -> Remote[T, H]:
        """Start items while the gate allows, read each running one; again at once if none runs and items wait."""
        while True:
            while self.cursor < len(self.items) and self.gate.may_start(len(self.running)):
                k, self.cursor = self.cursor, self.cursor + 1
                if k in self.handles:
                    continue  # adopted
                self.handles[k] = self.start(self.items[k])
                self._settle(k)
            for k in list(self.running):
                self.read(self.handles[k])
                if self.ended(self.handles[k]):
                    self.running.remove(k)
                    self.gate.ended(self.failed(self.handles[k]))
            if self.running or self.finished:
                return self

    def results(self, unstarted: Callable[[T, str], H], reason: str | None = None) -> list[H]:
        """Every item's handle in item order; an item never started gets `unstarted(item, why)`."""
        why = reason or self.gate.reason
        return [self.handles[k] if k in self.handles else unstarted(self.items[k], why) for k in range(len(self.items))]
