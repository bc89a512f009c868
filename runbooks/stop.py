"""Ctrl-C: the first stops before the next write and says what changed; the second exits at once (130)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from remediations.model import Change
from remediations.polling import STOP, check_stop
from remediations.target import Target

from .live import interrupt_all

__all__ = ["STOP", "follow", "install", "interrupted_note", "track"]

_lock = threading.Lock()
_changed: list[str] = []
_jobs: dict[str, str] = {}  # job id -> VM


def _handler(signum: int, frame: Any) -> None:
    interrupt_all()  # clear any live status line first, so the notes below stay readable
    if STOP.is_set():
        os.write(2, b"\ninterrupted again: exiting now\n")
        os._exit(130)
    STOP.set()
    os.write(2, b"\ninterrupted: stopping before the next write (Ctrl-C again to exit at once)\n")


def install() -> None:
    """Take over SIGINT (main thread only)."""
    STOP.clear()
    with _lock:
        _changed.clear()
        _jobs.clear()
    signal.signal(signal.SIGINT, _handler)


def track(target: Target, on_change: Callable[[Change, str | None, str], None]
          ) -> Callable[[Change, str | None, str], None]:
    """Wrap an on_change callback to remember what was written (or may have been), for the interrupted note."""
    def record(change: Change, correlation_id: str | None, outcome: str = "applied") -> None:
        on_change(change, correlation_id, outcome)
        if outcome != "sending":
            with _lock:
                _changed.append(f"{target.name}: {change.summary} [{outcome}]")
    return record


def follow(target: Target, progress: Callable[[str, dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], None]:
    """Wrap a backup-job progress callback: remember the job, and stop waiting once Ctrl-C was pressed."""
    def wrapped(status: str, info: dict[str, Any]) -> None:
        if info.get("job_id"):
            with _lock:
                _jobs[str(info["job_id"])] = target.name
        progress(status, info)
        check_stop(f"the end of the backup job of {target.name}")
    return wrapped


def interrupted_note() -> str:
    """What was changed before the stop, and how to follow any backup job still running."""
    with _lock:
        lines = ["Interrupted. Changes made (or possibly made) before stopping:"]
        lines += [f"  {c}" for c in _changed] or ["  none"]
        for job, vm in _jobs.items():
            lines.append(f"  backup job {job} of {vm} may still be running; follow it with: "
                         f"az backup job show --name {job} --vault-name <vault> -g <group>")
    return "\n".join(lines)
