"""What the commands share: Options from flags, one VM's failure kept to its report, a bounded pool of VMs
within an error budget (runbooks.schedule), the yes/no prompt, and apply bound to exactly the plan that was shown."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from remediations.target import Target

from . import planfile
from .connection import Clients
from .engine import Options, VmReport
from .output import emit
from .schedule import Gate, allowed_failures, run_local
from .stop import STOP, interrupted_note, track
from .term import say_for

__all__ = ["DEMO_CONSENT", "ROUNDS", "Expect", "bound_apply", "check_audit", "confirm", "guarded", "options", "run_fleet",
           "unless_stopped"]

ROUNDS = 5  # how many times a drifting plan is shown again before giving up
DEMO_CONSENT = "the demo (it runs disruptive steps unless --no-disruptive)"

Expect = dict[str, planfile.Fingerprint]


def options(args: argparse.Namespace, clients: Clients | None = None, **over: Any) -> Options:
    """The engine's Options from a command's flags (faster backup polls against a loopback endpoint); `over` wins.

    Whose consent a disruptive step runs with: --allow-disruptive, or the demo's (it consents unless
    --no-disruptive); `apply` passes a saved plan's consent in `over`."""
    fast = bool(clients and clients.loopback)
    demo = getattr(args, "command", None) == "demo"
    base: dict[str, Any] = {"error": getattr(args, "error", None), "dry_run": getattr(args, "dry_run", False),
            "allow_disruptive": getattr(args, "allow_disruptive", False),
            "consent": DEMO_CONSENT if demo else "--allow-disruptive",
            "backup": not getattr(args, "no_backup", False), "retention_days": getattr(args, "retention_days", 30),
            "egress_mode": getattr(args, "mode", None) or "service-tag",
            "backup_poll_seconds": 0.05 if fast else None, "wait_ready_seconds": 300.0,
            "proxy": getattr(args, "proxy", None)}
    base.update(over)
    return Options(**base)


def guarded(t: Target, work: Callable[[], VmReport]) -> VmReport:
    """One VM's work; any failure met while running (a missing VM or group: "not found: …") is that VM's failed
    report, except an endpoint that cannot be reached or trusted (errors.Unreachable: the run's error, one line)."""
    from remediations.errors import ReadOnlyViolation, Unreachable, one_line

    try:
        return work()
    except (ReadOnlyViolation, Unreachable):
        raise  # a bug, or the endpoint: never one VM's failure
    except Exception as e:  # one VM's failure must not hide the others'
        return VmReport(t, "failed", one_line(e))


def check_audit(args: argparse.Namespace) -> None:
    """Fail early (BadInput) when the audit file cannot be written, before any change is planned."""
    from .audit import AuditTrail, audit_path

    AuditTrail(audit_path(args)).check()


def run_fleet(clients: Clients, targets: list[Target], opts: Options, args: argparse.Namespace, *,
              concurrency: int, expect: Expect | None = None, drift: dict[str, list[str]] | None = None
              ) -> list[VmReport]:
    """Run every VM, at most `concurrency` at once; with `expect`, a VM applies only if its plan is still the one
    confirmed (else recorded in drift). With --max-errors (args.max_errors; default none: a person watches and
    Ctrl-C stops), once more VMs failed than it allows no new VM starts: the rest are withheld with the reason."""
    from .audit import AuditTrail, audit_path
    from .engine import run, slimmed

    audit = None if opts.dry_run else AuditTrail(audit_path(args)).check()
    say = say_for(args)

    def one(t: Target) -> VmReport:
        def bound(report: VmReport) -> bool:
            lines = planfile.diff(t.name, expect[t.id.lower()], planfile.fingerprint(report)) if expect else []
            if lines and drift is not None:
                drift[t.id.lower()] = lines
            return not lines

        if STOP.is_set():
            return VmReport(t, "withheld", "Not started: interrupted.")
        return slimmed(guarded(t, lambda: run(clients(t.subscription), t, opts, confirm=bound if expect else None,
                                              on_change=track(t, audit.recorder(t)) if audit else None, say=say)))

    budget = getattr(args, "max_errors", None)
    gate = Gate(concurrency, allowed_failures(budget, len(targets)), f"--max-errors {budget}")
    return run_local(targets, one, gate, failed=lambda r: r.status == "failed",
                     withheld=lambda t, why: VmReport(t, "withheld", f"Not started: {why}."))


def confirm() -> bool:
    """Ask on a terminal; only 'yes' (and no Ctrl-C meanwhile) is consent. False without a terminal."""
    if not sys.stdin.isatty():
        return False
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C at the prompt: leave at once
    try:
        answer = input("Apply these changes? Only 'yes' is accepted: ")
    finally:
        signal.signal(signal.SIGINT, previous)
    return answer.strip().lower() == "yes" and not STOP.is_set()


def unless_stopped(fn: Callable[[], int]) -> int:
    """Run `fn` (which prints); if Ctrl-C was pressed meanwhile, add what changed and return 130."""
    code = fn()
    if STOP.is_set():
        print(interrupted_note(), file=sys.stderr)
        return 130
    return code


def bound_apply(clients: Clients, args: argparse.Namespace, opts: Options, shown: list[VmReport], *,
                ask: bool, concurrency: int) -> tuple[list[VmReport], list[str]]:
    """Apply exactly the plans shown: a VM whose plan drifted is shown again and asked again (or refused)."""
    expect = {r.target.id.lower(): planfile.fingerprint(r) for r in shown}
    pending = [r.target for r in shown]
    done: dict[str, VmReport] = {r.target.id.lower(): r for r in shown}
    for _ in range(ROUNDS):
        drift: dict[str, list[str]] = {}
        for r in run_fleet(clients, pending, opts, args, concurrency=concurrency, expect=expect, drift=drift):
            done[r.target.id.lower()] = r
        if not drift or STOP.is_set():
            return list(done.values()), []
        lines = [ln for k in drift for ln in drift[k]]
        again = [done[k] for k in drift]
        if not ask:
            return list(done.values()), lines
        print("The state changed since the plan was shown; this is the plan now:\n" + "\n".join(lines) + "\n")
        for r in again:
            r.status, r.message = "planned", "Changed since shown: confirm again."
        emit(args, "plan", again)
        if not confirm():
            for r in again:
                r.status, r.message = "withheld", "Not applied: the plan changed and was not confirmed again."
            return list(done.values()), []
        expect.update({r.target.id.lower(): planfile.fingerprint(r) for r in again})
        pending = [r.target for r in again]
    return list(done.values()), ["the plan kept changing; gave up"]
