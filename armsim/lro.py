"""Long-running operations: accepted now, ended by T simulated seconds on armsim's clock (sooner by N status polls), then applied."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .arm import ArmError

__all__ = ["TIME_ONLY", "Operation", "Operations"]

TIME_ONLY = 1 << 30  # status polls needed: so many that only time ends the operation


@dataclass
class Operation:
    """One accepted operation; `apply` runs once, when it succeeds; `release` always runs when it ends."""

    id: str
    started: float
    polls_needed: int
    seconds: float
    apply: Callable[[], Any] | None = None
    release: Callable[[], None] | None = None
    result: Callable[[], Any] | None = None
    fail: ArmError | None = None
    cancel: ArmError | None = None
    status: str = "InProgress"
    polls: int = 0
    outcome: Any = None
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The Azure-AsyncOperation status body."""
        body: dict[str, Any] = {"id": self.id, "name": self.id, "status": self.status}
        if self.error:
            body["error"] = self.error
        return body


class Operations:
    """Every operation of one simulator: `tick` (before each request) lets the clock end them, polls hurry them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._ops: dict[str, Operation] = {}

    def start(
        self,
        *,
        polls: int,
        seconds: float,
        apply: Callable[[], Any] | None = None,
        release: Callable[[], None] | None = None,
        result: Callable[[], Any] | None = None,
        fail: ArmError | None = None,
        cancel: ArmError | None = None,
    ) -> Operation:
        """Accept an operation; it ends after `polls` status reads or `seconds` (if > 0), whichever comes first."""
        op = Operation(str(uuid.uuid4()), self._clock(), polls, seconds, apply, release, result, fail, cancel)
        self._ops[op.id] = op
        if polls <= 0:
            self._finish(op)
        return op

    def get(self, op_id: str) -> Operation | None:
        """The operation, advanced by one poll; None when unknown."""
        op = self._ops.get(op_id)
        if op is None:
            return None
        if op.status == "InProgress":
            op.polls += 1
            if op.polls >= op.polls_needed or self._due(op):
                self._finish(op)
        return op

    def tick(self) -> None:
        """Finish every operation whose time has come (called before each request is served)."""
        for op in list(self._ops.values()):
            if op.status == "InProgress" and op.seconds > 0 and self._due(op):
                self._finish(op)

    def _due(self, op: Operation) -> bool:
        return op.seconds > 0 and self._clock() - op.started >= op.seconds

    def _finish(self, op: Operation) -> None:
        try:
            if op.cancel is not None:
                op.status, op.error = "Canceled", op.cancel.body()["error"]
            elif op.fail is not None:
                op.status, op.error = "Failed", op.fail.body()["error"]
            else:
                try:
                    if op.apply is not None:
                        op.apply()
                    op.outcome = op.result() if op.result is not None else None
                    op.status = "Succeeded"
                except ArmError as e:
                    op.status, op.error = "Failed", e.body()["error"]
        finally:
            if op.release is not None:
                op.release()
