"""armsim's one simulated clock: real monotonic time times a speed factor, plus explicit advances.

Every backup job and long-running operation reads it, so time alone moves them on, as Azure's
do: a client that only lists jobs sees them end. `now()` is the simulated UTC wall time, which
equals the real wall time after `resync()` (each scenario reset) until the clock is advanced or
sped up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

__all__ = ["SimClock"]


class SimClock:
    """Simulated seconds since creation (callable, monotonic), and the matching simulated UTC wall time."""

    def __init__(self, real: Callable[[], float] | None = None, *, speed: float = 1.0) -> None:
        self._real = real or time.monotonic
        self._lock = threading.Lock()
        self._real0 = self._real()
        self._sim0 = 0.0
        self._speed = float(speed)
        self._wall0 = datetime.now(timezone.utc)

    def __call__(self) -> float:
        """Simulated seconds elapsed; never goes backwards."""
        with self._lock:
            return self._sim0 + (self._real() - self._real0) * self._speed

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def set_speed(self, speed: float) -> None:
        """From now on run `speed` simulated seconds per real second (> 0); time so far is kept."""
        if not speed > 0:
            raise ValueError("clock speed must be > 0")
        with self._lock:
            real = self._real()
            self._sim0 += (real - self._real0) * self._speed
            self._real0, self._speed = real, float(speed)

    def advance(self, seconds: float) -> float:
        """Jump `seconds` (>= 0) ahead at once; the new simulated seconds."""
        if not seconds >= 0:
            raise ValueError("the clock only moves forward: seconds must be >= 0")
        with self._lock:
            self._sim0 += float(seconds)
        return self()

    def now(self) -> datetime:
        """The simulated UTC wall time."""
        return self._wall0 + timedelta(seconds=self())

    def seconds_at(self, wall: datetime) -> float:
        """The simulated seconds at which `now()` was (or will be) `wall`."""
        return (wall - self._wall0).total_seconds()

    def resync(self) -> None:
        """Make `now()` the real UTC wall time again (keeps the simulated seconds monotonic)."""
        elapsed = self()
        self._wall0 = datetime.now(timezone.utc) - timedelta(seconds=elapsed)

    def describe(self) -> dict[str, object]:
        """The clock's state for the control route."""
        return {"seconds": round(self(), 3), "now": self.now().isoformat(), "speed": self._speed}
