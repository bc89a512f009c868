"""Child jobs: one job of a runbook per VM, at most `concurrency` unfinished at once, followed to their end.

The waiting is `remediations.polling.poll_until` (deadline, Ctrl-C); each round starts children while
there is room and reads every unfinished one. A child that cannot start, or is still unfinished at the
deadline, is reported with its error; VMs not started by then are NotStarted.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from remediations.automation_jobs import job_status, start_runbook_job
from remediations.azure import Azure
from remediations.errors import OperationTimedOut, arm_error
from remediations.polling import poll_until
from remediations.target import Target

from .alerts import resource_parts
from .protocol import Say
from .settings import FORWARDED, Settings

__all__ = ["TERMINAL_JOB", "Child", "child_parameters", "fan_out"]

TERMINAL_JOB = ("Completed", "Failed", "Stopped", "Suspended")


@dataclass
class Child:
    """One child job: its VM, job name, and the last status Automation reported."""

    target: Target
    job: str
    status: str = "New"
    error: str | None = None


def child_parameters(vm_id: str, s: Settings) -> dict[str, str]:
    """A child job's parameters: the VM ID first, then self-describing key=value settings (order-proof)."""
    params = {"data": vm_id}
    for key in FORWARDED:
        value = getattr(s, key)
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
        params[key] = f"{key}={text}"
    return params


@dataclass
class _FanOut:
    """The children of one fan-out: VMs not started yet, jobs unfinished, jobs ended."""

    azure: Azure
    account_id: str
    s: Settings
    say: Say
    pending: deque[Target]
    running: dict[str, Child] = field(default_factory=dict)
    done: list[Child] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether every VM's child has ended (or could not start)."""
        return not (self.pending or self.running)

    def start(self, t: Target) -> None:
        """Start one child job for `t`; a refusal ends it at once as NotStarted."""
        child = Child(t, str(uuid.uuid4()))
        params = child_parameters(t.id, self.s)
        try:
            start_runbook_job(self.azure, self.account_id, child.job, self.s.runbook, params)
        except Exception as e:
            err = arm_error(e)
            child.status, child.error = "NotStarted", f"{err.code}: {err.message}"
            self.say(f"{t.name}: could not start a {self.s.runbook} job: {child.error}")
            self.done.append(child)
            return
        self.running[child.job] = child
        self.say(f"{t.name}: started job {child.job} ({self.s.runbook})")

    def read(self, child: Child) -> None:
        """Read one unfinished child's status; a lost read is retried on the next round."""
        try:
            status = job_status(self.azure, self.account_id, child.job)
        except Exception as e:
            child.error = f"{arm_error(e).code}: {arm_error(e).message}"
            return
        if status != child.status:
            self.say(f"{child.target.name}: job {child.job} {status}")
        child.status = status
        if status in TERMINAL_JOB:
            self.done.append(self.running.pop(child.job))

    def round(self) -> _FanOut:
        """Start children while there is room, read the unfinished; again at once if all ended and VMs wait."""
        while True:
            while self.pending and len(self.running) < self.s.concurrency:
                self.start(self.pending.popleft())
            for child in list(self.running.values()):
                self.read(child)
            if self.running or not self.pending:
                return self

    def time_out(self) -> None:
        """At the deadline: the unfinished children and the VMs never started end with an error."""
        for child in self.running.values():
            self.say(f"{child.target.name}: job {child.job} still {child.status} after {self.s.timeout_seconds:g} s")
            child.error = "timed out waiting for the job"
        self.done += [*self.running.values(),
                      *(Child(t, "", "NotStarted", "timed out before it could start") for t in self.pending)]
        self.running.clear()
        self.pending.clear()


def fan_out(azure: Azure, account_id: str, s: Settings, targets: Iterable[Target], say: Say) -> list[Child]:
    """Start one child job per VM, at most `s.concurrency` unfinished at once; wait for each to end."""
    resource_parts(account_id)  # not an account ID: BadInput before any job starts
    run = _FanOut(azure, account_id, s, say, deque(targets))
    try:  # a round after `timeout_seconds` with children unfinished is the last (the poll interval is added back)
        poll_until(run.round, lambda r: r.finished, name=f"{s.runbook} child jobs", interval=s.poll_seconds,
                   seconds=s.timeout_seconds + s.poll_seconds, status=lambda r: f"{len(r.running)} unfinished")
    except OperationTimedOut:
        run.time_out()
    return run.done
