"""The commands behind the CLI: input is validated before any client exists, so bad input sends nothing.

Connection setup, the plan file, output and Ctrl-C already live in their own modules; the remaining
split (one module per command group) is issue #12's.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from remediations.errors import BadInput
from remediations.target import Target, parse_target

from . import planfile, render
from .catalog import CATALOG, CAUSES, UNKNOWN, lookup, match_error
from .connection import DEMO_GROUP, Clients, Where, connect, group_of, where_from
from .engine import Options, VmReport
from .output import emit, say_for, style
from .stop import STOP, interrupted_note, track

__all__ = ["cmd_action", "cmd_apply", "cmd_demo", "cmd_diagnose", "cmd_explain", "cmd_fix", "cmd_list"]

MAX_SINCE_HOURS = 180 * 24  # assumed bound: a backup job list further back is not a useful fix scope
ROUNDS = 5  # how many times a drifting plan is shown again before giving up


def _options(args: argparse.Namespace, clients: Clients | None = None, **over: Any) -> Options:
    fast = bool(clients and clients.loopback)
    base: dict[str, Any] = {"error": getattr(args, "error", None), "dry_run": getattr(args, "dry_run", False),
            "allow_disruptive": getattr(args, "allow_disruptive", False),
            "backup": not getattr(args, "no_backup", False), "retention_days": getattr(args, "retention_days", 30),
            "egress_mode": getattr(args, "mode", None) or "service-tag",
            "backup_poll_seconds": 0.05 if fast else None, "wait_ready_seconds": 300.0}
    base.update(over)
    return Options(**base)


# --- catalog ---------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    """The catalog: every runbook, its codes, its causes in order."""
    if args.output == "json":
        print(render.dumps([{"id": e.id, "message": e.message, "codes": e.codes, "causes": e.causes}
                            for e in CATALOG]))
        return 0
    for e in CATALOG:
        print(f"{e.id}  {e.message}")
        print(f"    codes:  {', '.join(e.codes)}")
        print(f"    causes: {' > '.join(e.causes)}")
    from remediations.actions import ACTION_NAMES

    print(f"\nactions: {', '.join(ACTION_NAMES)}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """One runbook: each cause in order with the actions that fix it and the manual steps."""
    entry = lookup(args.code)
    if entry is None:
        raise BadInput(f"unknown error {args.code!r}; see `python -m runbooks list`")
    causes = [{"id": c, "title": CAUSES[c].title, "fixes": CAUSES[c].fixes, "manual": CAUSES[c].manual}
              for c in entry.causes]
    if args.output == "json":
        print(render.dumps({"id": entry.id, "message": entry.message, "codes": entry.codes, "causes": causes}))
        return 0
    print(f"{entry.id}: {entry.message}\ncodes: {', '.join(entry.codes)}\n")
    for i, c in enumerate(causes, 1):
        print(f"{i}. {c['id']}: {c['title']}")
        for f in c["fixes"]:
            print(f"     fix:    {f}")
        for m in c["manual"]:
            print(f"     manual: {m}")
    return 0


# --- diagnose / fix --------------------------------------------------------------------------
def _parse_targets(args: argparse.Namespace, where: Where) -> list[Target]:
    return [parse_target(v, group_of(args, where), where.subscription) for v in args.vms]


def _since_hours(text: str) -> int:
    m = re.fullmatch(r"([0-9]{1,6})([hd])", text.strip(), re.ASCII)
    if not m:
        raise BadInput(f"--since {text!r}: use hours or days in ASCII digits, e.g. 24h or 3d")
    hours = int(m.group(1)) * (24 if m.group(2) == "d" else 1)
    if not 1 <= hours <= MAX_SINCE_HOURS:
        raise BadInput(f"--since {text!r}: must be 1h..{MAX_SINCE_HOURS // 24}d")
    return hours


def _check_error(code: str | None) -> None:
    if code is None:
        return
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,99}|[0-9]{1,9}", code, re.ASCII):
        raise BadInput(f"--error {code!r}: want an error code such as ExtensionSnapshotFailedNoNetwork, or E1..E5")
    if lookup(code) is None and match_error(code)[0] is UNKNOWN:
        raise BadInput(f"--error {code!r}: unknown error code; see `python -m runbooks list`")


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Verdicts only; read-only in the HTTP pipeline."""
    _check_error(args.error)
    where = where_from(args)
    targets = _parse_targets(args, where)
    from .engine import investigate

    with connect(where, read_only=True) as clients:
        opts = _options(args, clients)
        reports = [_guarded(t, lambda t=t: VmReport(t, "planned", "", investigate(clients(t.subscription), t, opts)))  # type: ignore[misc]
                   for t in targets]
    return emit(args, "diagnose", reports, show_plan=False)


def _guarded(t: Target, work: Callable[[], VmReport]) -> VmReport:
    """One VM's work; any failure met while running (a missing group included) is that VM's failed report."""
    from remediations.errors import ReadOnlyViolation, arm_error

    try:
        return work()
    except ReadOnlyViolation:
        raise  # a bug, never a VM's failure
    except Exception as e:  # one VM's failure must not hide the others'
        err = arm_error(e)
        return VmReport(t, "failed", f"{err.code}: {err.message}")


Expect = dict[str, planfile.Fingerprint]


def _fleet(clients: Clients, targets: list[Target], opts: Options, args: argparse.Namespace, *,
           concurrency: int, expect: Expect | None = None, drift: dict[str, list[str]] | None = None) -> list[VmReport]:
    """Run every VM; with `expect`, a VM applies only if its plan is still the one confirmed (else recorded in drift)."""
    from .audit import AuditTrail, default_audit_path
    from .engine import run

    audit = None if opts.dry_run else AuditTrail(getattr(args, "audit_file", None) or default_audit_path()).check()
    say = say_for(args)

    def one(t: Target) -> VmReport:
        def bound(report: VmReport) -> bool:
            lines = planfile.diff(t.name, expect[t.id.lower()], planfile.fingerprint(report)) if expect else []
            if lines and drift is not None:
                drift[t.id.lower()] = lines
            return not lines

        if STOP.is_set():
            return VmReport(t, "withheld", "Not started: interrupted.")
        return _guarded(t, lambda: run(clients(t.subscription), t, opts, confirm=bound if expect else None,
                                       on_change=track(t, audit.recorder(t)) if audit else None, say=say))

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(targets) or 1))) as pool:
        return list(pool.map(one, targets))


def _confirm() -> bool:
    if not sys.stdin.isatty():
        return False
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C at the prompt: leave at once
    try:
        answer = input("Apply these changes? Only 'yes' is accepted: ")
    finally:
        signal.signal(signal.SIGINT, previous)
    return answer.strip().lower() == "yes" and not STOP.is_set()


def _prints(fn: Callable[[], int]) -> int:
    code = fn()
    if STOP.is_set():
        print(interrupted_note(), file=sys.stderr)
        return 130
    return code


def _bound_apply(clients: Clients, args: argparse.Namespace, opts: Options, shown: list[VmReport], *,
                 ask: bool, concurrency: int) -> tuple[list[VmReport], list[str]]:
    """Apply exactly the plans shown: a VM whose plan drifted is shown again and asked again (or refused)."""
    expect = {r.target.id.lower(): planfile.fingerprint(r) for r in shown}
    pending = [r.target for r in shown]
    done: dict[str, VmReport] = {r.target.id.lower(): r for r in shown}
    for _ in range(ROUNDS):
        drift: dict[str, list[str]] = {}
        for r in _fleet(clients, pending, opts, args, concurrency=concurrency, expect=expect, drift=drift):
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
        if not _confirm():
            for r in again:
                r.status, r.message = "withheld", "Not applied: the plan changed and was not confirmed again."
            return list(done.values()), []
        expect.update({r.target.id.lower(): planfile.fingerprint(r) for r in again})
        pending = [r.target for r in again]
    return list(done.values()), ["the plan kept changing; gave up"]


def cmd_fix(args: argparse.Namespace) -> int:
    """Diagnose, plan, confirm, apply, verify: one VM, several, or every failed VM of a vault."""
    _check_error(args.error)
    where = where_from(args)
    if args.concurrency < 1 or args.concurrency > 32:
        raise BadInput("--concurrency must be 1..32")
    if not 1 <= args.retention_days <= 9999:
        raise BadInput("--retention-days must be 1..9999")
    if args.from_vault and args.vms:
        raise BadInput("give VMs or --from-vault, not both")
    targets = _parse_targets(args, where)
    hours = _since_hours(args.since)
    if args.from_vault:
        if not group_of(args, where):
            raise BadInput("--from-vault needs the vault's resource group (-g)")
        if not where.subscription:
            raise BadInput("--from-vault needs a subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
        parse_target(args.from_vault, group_of(args, where), where.subscription)  # same naming rules as a VM
    elif not targets:
        raise BadInput("name at least one VM, or use --from-vault VAULT -g RG")
    if args.plan_out:
        planfile.check_writable(Path(args.plan_out))
    plan_only = args.dry_run or bool(args.plan_out)
    interactive = not plan_only and not args.yes
    if not plan_only:
        _audit(args)
    with connect(where, read_only=plan_only or interactive) as clients:
        if args.from_vault:
            from remediations.facts import failed_vms

            targets = failed_vms(clients.default(), args.from_vault, group_of(args, where) or "", hours=hours)
        reports = _fleet(clients, targets, _options(args, clients, dry_run=plan_only or interactive), args,
                         concurrency=args.concurrency)
    if args.plan_out:
        _save_plan(Path(args.plan_out), args, reports)
    if not interactive or not any(r.changes() for r in reports):
        return _prints(lambda: emit(args, "fix", reports))
    if args.output == "json":
        return emit(args, "fix", reports, code=3,
                    extra={"applied": False, "reason": "not applied: pass --yes to apply without a prompt"})
    emit(args, "plan", reports)
    if not sys.stdin.isatty():
        print("Not applied: no confirmation (pass --yes to apply without a prompt).")
        return 3
    if not _confirm():
        print("Not applied.")
        return 3
    with connect(where, read_only=False) as clients:
        reports, refused = _bound_apply(clients, args, _options(args, clients), reports, ask=True,
                                        concurrency=args.concurrency)
    code = _prints(lambda: emit(args, "fix", reports))
    if refused:
        print("Not applied: " + "; ".join(refused))
        return max(code, 1)
    return code


def _audit(args: argparse.Namespace) -> None:
    from .audit import AuditTrail, default_audit_path

    AuditTrail(getattr(args, "audit_file", None) or default_audit_path()).check()


# --- saved plans -----------------------------------------------------------------------------
def _save_plan(path: Path, args: argparse.Namespace, reports: list[VmReport]) -> None:
    options = {"error": args.error, "allow_disruptive": args.allow_disruptive, "backup": not args.no_backup,
               "mode": args.mode, "retention_days": args.retention_days}
    planfile.save(path, options, reports, [render.report_json(r)["plans"] for r in reports])
    print(f"Saved the plan to {path}; apply it with: python -m runbooks apply {path}", file=sys.stderr)


def cmd_apply(args: argparse.Namespace) -> int:
    """Re-plan every VM of a saved plan; refuse, showing the drift, unless it still matches; apply only that plan."""
    saved = planfile.load(args.plan_file)
    where = where_from(args)
    targets = saved.targets()
    o = saved.options
    opts = {"error": o.error, "allow_disruptive": o.allow_disruptive or args.allow_disruptive,
            "backup": o.backup, "egress_mode": o.mode, "retention_days": o.retention_days}
    if not args.dry_run:
        _audit(args)
    with connect(where, read_only=True) as clients:
        now = _fleet(clients, targets, _options(args, clients, dry_run=True, **opts), args, concurrency=4)
    planned = [list(v.changes) for v in saved.vms]
    drift = [ln for t, changes, r in zip(targets, planned, now, strict=True)
             for ln in planfile.diff(t.name, changes, planfile.fingerprint(r))]
    if drift:
        print("Refusing to apply: the state changed since the plan was saved.\n" + "\n".join(drift))
        return 1
    if args.dry_run:
        return emit(args, "apply", now, extra={"applied": False, "reason": "dry run: the plan still matches"})
    if not args.yes:
        why = "Not applied: pass --yes to apply the saved plan without a prompt."
        if args.output == "json":
            return emit(args, "apply", now, code=3, extra={"applied": False, "reason": why})
        if not sys.stdin.isatty():
            print(why)
            return 3
        emit(args, "plan", now)
        if not _confirm():
            print("Not applied.")
            return 3
    with connect(where, read_only=False) as clients:
        reports, refused = _bound_apply(clients, args, _options(args, clients, **opts), now, ask=False,
                                        concurrency=4)
    code = _prints(lambda: emit(args, "apply", reports))
    if refused:
        print("Refusing to apply: the state changed since the plan was saved.\n" + "\n".join(refused))
        return 1
    return code


# --- one action ------------------------------------------------------------------------------
def cmd_action(args: argparse.Namespace) -> int:
    """Run one action by hand: plan, confirm (or --dry-run), apply, verify."""
    from pydantic import ValidationError

    from remediations.actions import ACTION_NAMES, get_action

    if args.name not in ACTION_NAMES:
        raise BadInput(f"unknown action {args.name!r}; known: {', '.join(ACTION_NAMES)}")
    where = where_from(args)
    target = parse_target(args.vm, group_of(args, where), where.subscription)
    action = get_action(args.name)
    values: dict[str, Any] = {"target": target, "force": args.force}
    if args.mode:
        values["mode"] = args.mode
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z_]+", key):
            raise BadInput(f"--param {item!r}: want key=value")
        values[key] = value
    try:
        params = action.Params(**values)
    except ValidationError as e:
        first = e.errors()[0]
        raise BadInput(f"{args.name}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if not args.dry_run and args.yes:
        _audit(args)
    with connect(where, read_only=args.dry_run or not args.yes) as clients:
        plan = action.preview(clients(target.subscription), params)
    as_json = args.output == "json"
    plan_doc = plan.model_dump(exclude={"changes": {"__all__": {"data"}}})

    def done(code: int, outcome: Any = None, note: str = "") -> int:
        if as_json:
            print(render.dumps({"command": "action", "action": args.name, "vm": target.id, "plan": plan_doc,
                                "outcome": None if outcome is None else outcome.model_dump(
                                    exclude={"changes": {"__all__": {"data"}}}),
                                "note": note or None, "exit_code": code}))
        elif note:
            print(note)
        return code

    if not as_json:
        print("\n".join(render.plan_text([plan], style())) if plan.changes else f"No changes. {plan.reason}")
        for m in plan.manual:
            print(f"  manual step: {m}")
    if args.dry_run or plan.empty:
        return done(3 if plan.empty and plan.manual else 0)
    if not args.yes and (as_json or not _confirm()):
        return done(3, note="Not applied: no confirmation (pass --yes to apply without a prompt).")
    from .audit import AuditTrail, default_audit_path

    audit = AuditTrail(args.audit_file or default_audit_path()).check()
    if hasattr(action, "progress"):
        from .stop import follow

        action.progress = follow(target, lambda status, info: say_for(args)(f"{target.name}: backup job {status}"))
    with connect(where, read_only=False) as clients:
        outcome = action.apply(clients(target.subscription), params, consent=args.allow_disruptive,
                               on_change=audit.recorder(target))
    if STOP.is_set():
        print(interrupted_note(), file=sys.stderr)
        return 130
    if not as_json:
        print(f"{outcome.action}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
        for line in outcome.evidence:
            print(f"  {line}")
    return done({"changed": 0, "unchanged": 0, "failed": 1, "withheld": 3}[outcome.status], outcome)


# --- the demo --------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """Start armsim in-process with the demo fleet and fix every VM for real over HTTPS."""
    import os

    from armsim import DEMO_SUBSCRIPTION
    from remediations.facts import list_vms

    where = Where(DEMO_SUBSCRIPTION, "AzureCloud", None, None, "default", None, True)
    args.audit_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), "azure-backup-runbooks-demo-audit.jsonl")
    with connect(where, read_only=False) as clients:
        print(f"armsim demo fleet at {clients.endpoint} (subscription {DEMO_SUBSCRIPTION}, {DEMO_GROUP})\n")
        targets = list_vms(clients.default(), DEMO_GROUP)
        opts = _options(args, clients, allow_disruptive=not args.no_disruptive)
        reports = _fleet(clients, targets, opts, args, concurrency=args.concurrency)
        code = emit(args, "demo", reports, extra={"audit_file": args.audit_file})
    if args.output == "text":
        print(f"\naudit trail: {args.audit_file}")
    return code
