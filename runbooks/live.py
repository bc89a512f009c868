"""What a person sees while the CLI waits: a live status line per VM on a terminal, plain lines when piped.

On a terminal (and TERM is not `dumb`) each VM being worked on has one live line: the VM, the step (or the
backup job's phase and percentage), the time it has taken so far (ticking) and what Ctrl-C does now. When a
step ends, a normal line is left above the live area ("… vm: reading facts (2 s)"), so the history stays
in the scrollback; when the last VM ends, the live area is cleared, so the report printed next is clean.
Anything else written to stdout/stderr meanwhile (a log line, a prompt) first clears the live area.

One line per active VM rather than one summary line: the VMs run different steps with different Ctrl-C
meanings (before a write vs. following a backup job), and a fleet run has at most --concurrency of them
(32); past the terminal's height the last line says how many more are waiting.

Piped (or TERM=dumb), no cursor movement: one line per change of status, and while nothing changes at most
one "still waiting: …, 3 min" line per `heartbeat` seconds (60).

Plain ANSI, not rich: the live area needs four escape sequences (carriage return, cursor up, erase below,
SGR colour), and runbooks is also the Azure Automation bundle, where rich and its closure (markdown-it-py,
mdurl, pygments: ~5 MB installed) would ride along into every sandbox for a terminal it never has.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["BEFORE_WRITE", "FOLLOW", "READING", "STOPPING", "Display", "Step", "ended", "interrupt_all",
           "job_progress", "job_step", "took"]

READING = "Ctrl-C stops before any change"
BEFORE_WRITE = "Ctrl-C stops before the next write"
FOLLOW = "Ctrl-C stops waiting; the backup goes on in Azure"
STOPPING = "stopping after the step in flight; Ctrl-C again exits at once"
_DIM, _BOLD, _RESET = "\033[2m", "\033[1m", "\033[0m"


class Step(str):
    """A progress line (a str: any `say(line)` prints it as before) that also says which VM, which step, and
    what Ctrl-C does; `detail` (e.g. a backup job's status) changes within one step, `phase` is its live form,
    and `state` what must change for a piped display to print a new line (a job's status and task states,
    not every percent)."""

    vm: str
    step: str
    detail: str
    phase: str
    hint: str
    state: str

    def __new__(cls, vm: str, step: str, *, detail: str = "", phase: str = "", hint: str = BEFORE_WRITE,
                state: str = "") -> Step:
        self = super().__new__(cls, f"{vm}: {detail or step}")
        self.vm, self.step, self.detail, self.phase, self.hint = vm, step, detail, phase, hint
        self.state = state or f"{step}: {detail}"
        return self


def job_step(vm: str, status: str, info: dict[str, Any]) -> Step:
    """A backup job's progress as a Step: "backup job 3f2c…  InProgress 50% (task states)"."""
    tasks = info.get("tasks") or []
    pct = f" {info['progress']:.0f}%" if info.get("progress") is not None else ""
    head = f"backup job {str(info.get('job_id', ''))[:8]}… {status}{pct}"
    states = ", ".join(f"{t['task']} {t['status']}" for t in tasks)
    running = next((t["task"] for t in tasks if t.get("status") == "InProgress"), None)
    return Step(vm, "following the backup job", detail=head + (f" ({states})" if states else ""),
                phase=head + (f": {running}" if running else ""), hint=FOLLOW, state=f"{status} ({states})")


def job_progress(vm: str, say: Callable[[str], None]) -> Callable[[str, dict[str, Any]], None]:
    """A backup-job progress callback that says each change of the job's status or task states, once."""
    last: list[str] = []

    def progress(status: str, info: dict[str, Any]) -> None:
        step = job_step(vm, status, info)
        if not last or last[-1] != step:
            last.append(str(step))
            say(step)
    return progress


def took(seconds: float) -> str:
    """A duration as a person reads it: "4.2 s", "12 s", "3 min 05 s", "1 h 02 min"."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class _Row:
    step: Step
    started: float
    printed: str = ""


class _Guard:
    """A stand-in for sys.stdout/sys.stderr while the live area is shown: clears it before anything is written."""

    def __init__(self, display: Display, inner: TextIO) -> None:
        self._display, self._inner = display, inner

    def write(self, text: str) -> int:
        return self._display._foreign(self._inner, text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_LIVE: weakref.WeakSet[Display] = weakref.WeakSet()


class Display:
    """A `say` callable (str or Step) that keeps the live area (live=True) or prints plain lines with a heartbeat.

    `clock` and `heartbeat` are parameters so that a test drives the heartbeat with a fake clock (ticker=False
    and calls to `tick`); `size` overrides the terminal's (columns, lines)."""

    def __init__(self, stream: TextIO, *, live: bool, colour: bool, clock: Callable[[], float] = time.monotonic,
                 heartbeat: float = 60.0, refresh: float = 0.5, ticker: bool = True,
                 size: tuple[int, int] | None = None) -> None:
        self.stream, self.live, self.colour = stream, live, colour
        self._clock, self._heartbeat, self._refresh, self._ticker, self._size = clock, heartbeat, refresh, ticker, size
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._drawn = 0  # lines of the live area now on screen; the cursor is at the end of the last one
        self._at_line_start = True  # False while someone else's line (a prompt) is unfinished
        self._last_out = clock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._swapped: list[tuple[str, TextIO]] = []
        self._handlers: list[tuple[logging.StreamHandler[Any], TextIO]] = []

    # --- the say side ------------------------------------------------------------------------------------
    def __call__(self, line: str) -> None:
        """A progress line: a Step updates its VM's row; a plain str is printed as a normal line."""
        with self._lock:
            if not isinstance(line, Step):
                self._above(self._paint(f"… {line}", _DIM))
                self._last_out = self._clock()
                self._draw()
                return
            now = self._clock()
            row = self._rows.get(line.vm)
            if row is not None and row.step.step != line.step:
                self._finished(row, now)
                row = None
            if row is None:
                row = self._rows[line.vm] = _Row(line, now)
            row.step = line
            if not self.live and line.state != row.printed:
                row.printed = line.state
                self._above(self._paint(f"… {line}", _DIM))
                self._last_out = now
            self._draw()
            self._start()

    def end(self, vm: str) -> None:
        """`vm`'s work is over: its last step is left as a normal line; with no VM left, the live area is gone."""
        with self._lock:
            row = self._rows.pop(vm, None)
            if row is not None:
                self._finished(row, self._clock())
            self._draw()

    def close(self) -> None:
        """End every VM still shown (each left as a normal line) and clear the live area."""
        with self._lock:
            now = self._clock()
            for row in self._rows.values():
                self._finished(row, now)
            self._rows.clear()
            self._draw()

    def interrupt(self) -> None:
        """Ctrl-C was pressed: clear the live area now (its lines then say "stopping…"); safe in a signal handler."""
        self._stopping = True
        if self._lock.acquire(timeout=0.2):  # the interrupted thread may hold it: then leave the area be
            try:
                self._clear()
                self.stream.flush()
            finally:
                self._lock.release()

    def tick(self) -> None:
        """Redraw the live area (the elapsed time ticks), or when piped print the heartbeat when it is due."""
        with self._lock:
            now = self._clock()
            if self.live:
                self._draw()
            elif self._rows and now - self._last_out >= self._heartbeat:
                self._above(self._paint("… still waiting: " + "; ".join(
                    f"{r.step}, {int((now - r.started) // 60)} min" for r in self._rows.values()), _DIM))
                self._last_out = now

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- drawing (with the lock held) -----------------------------------------------------------------------
    def _paint(self, text: str, how: str) -> str:
        return f"{how}{text}{_RESET}" if self.colour else text

    def _finished(self, row: _Row, now: float) -> None:
        if self.live:
            self._above(self._paint(f"… {row.step} ({took(now - row.started)})", _DIM))

    def _above(self, line: str) -> None:
        """A normal line, above the live area (which is redrawn by the caller)."""
        self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + (f"\033[{self._drawn - 1}A" if self._drawn > 1 else "") + "\033[J")
            self._drawn = 0

    def _lines(self) -> list[str]:
        cols, rows = self._size or _size_of(self.stream)
        now = self._clock()
        shown = list(self._rows.values())
        room = max(1, rows - 2)
        more = len(shown) - room
        if more > 0:
            shown = shown[:room - 1]
        out = []
        for r in shown:
            s = r.step
            text = f"▸ {s.vm}: {s.phase or s.detail or s.step} · {took(now - r.started)} · "
            text = (text + (STOPPING if self._stopping else s.hint))[:max(cols - 1, 10)]
            out.append(self._paint(text, _BOLD) if self.colour else text)
        if more > 0:
            out.append(f"▸ and {more + 1} more VMs")
        return out

    def _draw(self) -> None:
        if not self.live or not self._at_line_start:
            return
        lines = self._lines()
        self._clear()
        if lines:
            self.stream.write("\n".join(lines))
            self._drawn = len(lines)
            self._guard()
        else:
            self._unguard()
        self.stream.flush()

    def _foreign(self, inner: TextIO, text: str) -> int:
        """Someone else writes to stdout/stderr while the live area is shown: clear it, write, then redraw it
        below once that line is complete (a prompt left open keeps the area away until its line ends)."""
        with self._lock:
            self._clear()
            self.stream.flush()
            n = inner.write(text)
            inner.flush()
            if text:
                self._at_line_start = text.endswith("\n")
            self._draw()
            return n

    # --- the guard and the ticker --------------------------------------------------------------------------
    def _guard(self) -> None:
        import sys

        if self._swapped:
            return
        _LIVE.add(self)
        for name in ("stdout", "stderr"):
            inner = getattr(sys, name)
            if not isinstance(inner, _Guard) and _isatty(inner):
                self._swapped.append((name, inner))
                setattr(sys, name, _Guard(self, inner))
        for h in _stream_handlers():  # a log line (--verbose) clears the live area too
            for _name, inner in self._swapped:
                if h.stream is inner:
                    self._handlers.append((h, inner))
                    h.setStream(_Guard(self, inner))  # type: ignore[arg-type]

    def _unguard(self) -> None:
        import sys

        for name, inner in self._swapped:
            if isinstance(getattr(sys, name), _Guard):
                setattr(sys, name, inner)
        for h, inner in self._handlers:
            h.setStream(inner)
        self._swapped.clear()
        self._handlers.clear()
        _LIVE.discard(self)

    def _start(self) -> None:
        if self._ticker and self._rows and self._thread is None:
            self._thread = threading.Thread(target=self._tick_loop, name="live-display", daemon=True)
            self._thread.start()

    def _tick_loop(self) -> None:
        while True:
            time.sleep(self._refresh)
            with self._lock:
                if not self._rows:
                    self._thread = None
                    return
            self.tick()


def ended(say: Callable[[str], None], vm: str) -> None:
    """Tell a Display that `vm`'s work is over; any other say callable is told nothing (prints nothing)."""
    if isinstance(say, Display):
        say.end(vm)


def interrupt_all() -> None:
    """Ctrl-C: clear every live area now (called from the SIGINT handler)."""
    for d in list(_LIVE):
        d.interrupt()


def _clear_all() -> None:
    for d in list(_LIVE):
        d.close()


atexit.register(_clear_all)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [h for lg in loggers for h in getattr(lg, "handlers", ()) if isinstance(h, logging.StreamHandler)]


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _size_of(stream: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns, size.lines
    except (AttributeError, ValueError, OSError):
        return 80, 24
