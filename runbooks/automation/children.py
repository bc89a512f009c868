"""Child jobs: one job of a runbook per VM, at most `concurrency` unfinished at once, within the error budget.

The scheduling is runbooks.schedule (Remote, Gate): children start in the VMs' order while there is room
and fewer than `max_errors` allow have failed (a child that ended other than Completed, or could not
start); past the budget no new child starts and the rest are NotStarted with the reason. The waiting is
`remediations.polling.poll_until` (deadline, Ctrl-C). A child still unfinished at the deadline is
reported with its error; VMs not started by then are NotStarted.

Resume: a fan-out run again (Automation restarted it, or a person re-ran the trigger) starts no second
child for a VM. It first reads the runbook's jobs (runbooks.automation.sweep.fix_jobs: unfinished, or
created since `resume_since`) and adopts, per VM, an unfinished job that names it (whatever its settings:
one fix per VM at a time), else the latest finished one created since `resume_since` with exactly this
fan-out's parameters (a dry-run child is not adopted by an apply fan-out); it follows the adopted ones
and starts the rest. Without `resume_since` (the sweep: its plan already skips VMs tried since their
failure) only unfinished jobs are adopted, so a VM that failed again after its last fix is fixed again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from remediations.automation_jobs import get_job, job_status, start_runbook_job
from remediations.azure import Azure
from remediations.errors import OperationTimedOut, arm_error
from remediations.polling import poll_until
from remediations.target import Target

from ..schedule import Gate, Remote, allowed_failures
from .alerts import resource_parts
from .protocol import Say
from .settings import FORWARDED, Settings
from .sweep import FixJob, fix_jobs

__all__ = ["TERMINAL_JOB", "Child", "adopt", "child_parameters", "fan_out"]

TERMINAL_JOB = ("Completed", "Failed", "Stopped", "Suspended")


@dataclass
class Child:
    """One child job: its VM, job name, the last status Automation reported, and whether an earlier run started it."""

    target: Target
    job: str
    status: str = "New"
    error: str | None = None
    adopted: bool = False

    @property
    def ended(self) -> bool:
        """Whether the job ended, or never started."""
        return self.status in TERMINAL_JOB or self.status == "NotStarted"

    @property
    def failed(self) -> bool:
        """Whether it counts against the error budget: ended other than Completed."""
        return self.ended and self.status != "Completed"


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


def _same(params: object, vm_id: str, s: Settings) -> bool:
    """Whether a job's parameters are exactly the ones this fan-out gives `vm_id`'s child (case aside)."""
    if not isinstance(params, dict):
        return False
    mine = child_parameters(vm_id, s)
    return {str(k): str(v).lower() for k, v in params.items()} == {k: v.lower() for k, v in mine.items()}


def adopt(azure: Azure, account_id: str, s: Settings, targets: list[Target], jobs: Iterable[FixJob],
          say: Say, finished_since: datetime | None) -> dict[int, Child]:
    """The children an earlier run started, by target index: an unfinished job naming the VM, else (with
    `finished_since`) the latest finished one created since then with exactly this fan-out's parameters
    (one Job_Get each, newest first, until one matches)."""
    by_vm: dict[str, list[FixJob]] = {}
    for j in jobs:
        by_vm.setdefault(j.vm, []).append(j)
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    found: dict[int, Child] = {}
    for k, t in enumerate(targets):
        mine = sorted(by_vm.get(t.id.lower(), []), key=lambda j: j.created or oldest, reverse=True)
        job = next((j for j in mine if not j.finished), None)
        ended = [j for j in mine if finished_since is not None and j.created is not None and j.created >= finished_since]
        for j in [] if job is not None else ended:
            got = get_job(azure, account_id, j.name)
            if _same((got.get("properties") or got).get("parameters"), t.id, s):
                job = j
                break
        if job is not None:
            found[k] = Child(t, job.name, job.status, adopted=True)
            say(f"{t.name}: job {job.name} ({s.runbook}, {job.status}) was started before: following it, no second child")
    return found


def _start(azure: Azure, account_id: str, s: Settings, say: Say, t: Target) -> Child:
    """Start one child job for `t`; a refusal ends it at once as NotStarted."""
    child = Child(t, str(uuid.uuid4()))
    try:
        start_runbook_job(azure, account_id, child.job, s.runbook, child_parameters(t.id, s))
    except Exception as e:
        err = arm_error(e)
        child.status, child.error = "NotStarted", f"{err.code}: {err.message}"
        say(f"{t.name}: could not start a {s.runbook} job: {child.error}")
        return child
    say(f"{t.name}: started job {child.job} ({s.runbook})")
    return child


def _read(azure: Azure, account_id: str, say: Say, child: Child) -> None:
    """Read one unfinished child's status; a lost read is retried on the next round."""
    try:
        status = job_status(azure, account_id, child.job)
    except Exception as e:
        child.error = f"{arm_error(e).code}: {arm_error(e).message}"
        return
    if status != child.status:
        say(f"{child.target.name}: job {child.job} {status}")
    child.status = status


def fan_out(azure: Azure, account_id: str, s: Settings, targets: Iterable[Target], say: Say, *,
            resume_since: datetime | None = None, known: Iterable[FixJob] | None = None) -> list[Child]:
    """One child job per VM (adopting those an earlier run started: see the module), at most `s.concurrency`
    unfinished at once, none started once more than `s.max_errors` failed; wait for each to end. Children in
    the VMs' order. `known`: the runbook's jobs a caller already read (sweep.fix_jobs); else they are read here."""
    resource_parts(account_id)  # not an account ID: BadInput before any job starts
    vms = list(targets)
    if known is None:
        known = fix_jobs(azure, account_id, s.runbook, resume_since or datetime.now(timezone.utc))
    gate = Gate(s.concurrency, allowed_failures(s.max_errors, len(vms)), f"max_errors={s.max_errors}")
    run: Remote[Target, Child] = Remote(
        vms, gate, start=lambda t: _start(azure, account_id, s, say, t), read=lambda c: _read(azure, account_id, say, c),
        ended=lambda c: c.ended, failed=lambda c: c.failed, adopted=adopt(azure, account_id, s, vms, known, say, resume_since))
    reason = None
    try:  # a round after `timeout_seconds` with children unfinished is the last (the poll interval is added back)
        poll_until(run.round, lambda r: r.finished, name=f"{s.runbook} child jobs", interval=s.poll_seconds,
                   seconds=s.timeout_seconds + s.poll_seconds, status=lambda r: f"{len(r.running)} unfinished")
    except OperationTimedOut:
        for k in run.running:
            child = run.handles[k]
            say(f"{child.target.name}: job {child.job} still {child.status} after {s.timeout_seconds:g} s")
            child.error = "timed out waiting for the job"
        reason = None if gate.spent else "timed out before it could start"
    if gate.spent and run.unstarted:
        say(f"withheld: {gate.reason}: {len(run.unstarted)} VM(s) not started")
    return run.results(lambda t, why: Child(t, "", "NotStarted", why), reason or f"withheld: {gate.reason}")
