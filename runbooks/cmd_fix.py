"""`diagnose`, `fix` and `apply`: verdicts, then plan, confirm, apply and verify, now or from a saved plan.

Input is validated before any client exists, so bad input sends nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from remediations.errors import BadInput
from remediations.target import Target, parse_target

from . import planfile, render
from .catalog import UNKNOWN, lookup, match_error
from .connection import Clients, Where, connect, group_of, where_from
from .engine import Options, VmReport
from .fleet import bound_apply, check_audit, confirm, guarded, options, run_fleet, unless_stopped
from .formats import is_machine
from .output import emit, exit_code

__all__ = ["DETAILED", "MAX_SINCE_HOURS", "cmd_apply", "cmd_diagnose", "cmd_fix"]

MAX_SINCE_HOURS = 180 * 24  # assumed bound: a backup job list further back is not a useful fix scope
# --detailed-exitcode: causes found (diagnose) or changes pending (fix --dry-run) instead of 0. Terraform's 2 is
# our bad input, and 1, 3 and 130 are taken; 4 is the next free code, below 64..78 (sysexits) and 126+ (shells).
DETAILED = 4
MAX_PAGE = 1000  # Resource Graph's maximum $top (remediations/discovery.py)
_ANY_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"  # names no subscription: the graph client ignores it


def _detailed(args: argparse.Namespace, reports: list[VmReport], pending: bool) -> int:
    """The exit code: 1 failed, 3 manual or withheld, else with --detailed-exitcode DETAILED when `pending`, else 0."""
    code = exit_code(reports)
    return DETAILED if code == 0 and pending and getattr(args, "detailed_exitcode", False) else code


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
    from .live import READING, Step, ended
    from .term import say_for

    display = say_for(args)
    say = display if display.live else None  # a live line on a terminal; piped, a diagnosis prints only its verdicts

    def one(clients: Clients, t: Target, opts: Options) -> VmReport:
        if say is None:
            return VmReport(t, "diagnosed", "", investigate(clients(t.subscription), t, opts))
        say(Step(t.name, "reading facts", hint=READING))
        try:
            return VmReport(t, "diagnosed", "", investigate(clients(t.subscription), t, opts))
        finally:
            ended(say, t.name)

    with connect(where, read_only=True) as clients:
        opts = options(args, clients)
        reports = [guarded(t, lambda t=t: one(clients, t, opts)) for t in targets]  # type: ignore[misc]
    found = any(r.investigation.present for r in reports if r.investigation is not None)
    return emit(args, "diagnose", reports, show_plan=False, code=_detailed(args, reports, found))


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
    if args.all_subscriptions and (args.vms or args.from_vault):
        raise BadInput("--all-subscriptions finds the VMs itself: give no VM names and no --from-vault")
    if not 1 <= args.page_size <= MAX_PAGE:
        raise BadInput(f"--page-size must be 1..{MAX_PAGE}")
    targets = _parse_targets(args, where)
    hours = _since_hours(args.since)
    if args.from_vault:
        if not group_of(args, where):
            raise BadInput("--from-vault needs the vault's resource group (-g)")
        if not where.subscription:
            raise BadInput("--from-vault needs a subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
        parse_target(args.from_vault, group_of(args, where), where.subscription)  # same naming rules as a VM
    elif not targets and not args.all_subscriptions:
        raise BadInput("name at least one VM, or use --from-vault VAULT -g RG or --all-subscriptions")
    if args.plan_out:
        planfile.check_writable(Path(args.plan_out))
    plan_only = args.dry_run or bool(args.plan_out)
    if args.detailed_exitcode and not plan_only:
        raise BadInput("--detailed-exitcode goes with --dry-run or --plan-out (it tells whether changes are pending; "
                       "a fix that applies leaves none)")
    interactive = not plan_only and not args.yes
    if not plan_only:
        check_audit(args)
    with connect(where, read_only=plan_only or interactive) as clients:
        if args.from_vault:
            from remediations.inventory import failed_vms

            targets = failed_vms(clients.default(), args.from_vault, group_of(args, where) or "", hours=hours)
            if not targets:
                return _no_failed_jobs(args, group_of(args, where) or "")
        elif args.all_subscriptions:
            targets = _everywhere(clients, where, args, hours)
            if not targets:
                return _no_failed_jobs(args, "")
        reports = run_fleet(clients, targets, options(args, clients, dry_run=plan_only or interactive,
                                                      prompt=interactive), args, concurrency=args.concurrency)
    if args.plan_out:
        _save_plan(Path(args.plan_out), args, reports)
    if not interactive or not any(r.changes() for r in reports):
        pending = any(r.changes() for r in reports)
        return unless_stopped(lambda: emit(args, "fix", reports, code=_detailed(args, reports, pending)))
    if is_machine(args):
        return emit(args, "fix", reports, code=3,
                    extra={"applied": False, "reason": "not applied: pass --yes to apply without a prompt"})
    emit(args, "plan", reports)
    if not sys.stdin.isatty():
        print("Not applied: no confirmation (pass --yes to apply without a prompt).")
        return 3
    if not confirm():
        print("Not applied.")
        return 3
    with connect(where, read_only=False) as clients:
        reports, refused = bound_apply(clients, args, options(args, clients), reports, ask=True,
                                       concurrency=args.concurrency)
    _shown(reports)
    code = unless_stopped(lambda: emit(args, "fix", reports))
    if refused:
        print("Not applied: " + "; ".join(refused))
        return max(code, 1)
    return code


def _everywhere(clients: Clients, where: Where, args: argparse.Namespace, hours: int) -> list[Target]:
    """--all-subscriptions: the VMs with a failed backup job in the window, from one paged Resource Graph query."""
    from remediations.discovery import failed_vms_everywhere

    # Resource Graph is tenant level: any subscription's clients will do (without a default, a placeholder GUID).
    found = failed_vms_everywhere(clients(where.subscription or _ANY_SUBSCRIPTION), hours, page_size=args.page_size)
    subs = {t.subscription for t, _ in found}
    if found:
        print(f"Azure Resource Graph: {len(found)} VM(s) with a failed backup job in the last {args.since.strip()} "
              f"in {len(subs)} subscription(s)", file=sys.stderr)
    return [t for t, _ in found]


def _no_failed_jobs(args: argparse.Namespace, group: str) -> int:
    """--from-vault or --all-subscriptions found no failed backup job in the window: say so in one line, exit 0."""
    since = args.since.strip()
    scope = f"vault {args.from_vault} ({group})" if args.from_vault else "any subscription you can read"
    line = f"No failed backup jobs in {scope} in the last {since}: nothing to fix."
    print(line, file=sys.stderr if is_machine(args) else sys.stdout)
    if is_machine(args):
        where = {"vault": args.from_vault} if args.from_vault else {"all_subscriptions": True}
        return emit(args, "fix", [], extra={**where, "since": since, "message": line})
    return 0


def _shown(reports: list[VmReport]) -> None:
    """After "yes": the diagnosis and the plan were shown with the prompt, so the output shows what happened."""
    for r in reports:
        r.shown = True


def _save_plan(path: Path, args: argparse.Namespace, reports: list[VmReport]) -> None:
    saved = {"error": args.error, "allow_disruptive": args.allow_disruptive, "backup": not args.no_backup,
             "mode": args.mode, "retention_days": args.retention_days, "proxy": args.proxy}
    planfile.save(path, saved, reports, [render.report_json(r)["plans"] for r in reports])
    print(f"Saved the plan to {path}; apply it with: python -m runbooks apply {path}", file=sys.stderr)


def cmd_apply(args: argparse.Namespace) -> int:
    """Re-plan every VM of a saved plan; refuse, showing the drift, unless it still matches; apply only that plan."""
    saved = planfile.load(args.plan_file)
    where = where_from(args)
    targets = saved.targets()
    o = saved.options
    consent = ("--allow-disruptive" if args.allow_disruptive
               else f"the saved plan {args.plan_file} (made with fix --allow-disruptive)")
    opts = {"error": o.error, "allow_disruptive": o.allow_disruptive or args.allow_disruptive, "consent": consent,
            "backup": o.backup, "egress_mode": o.mode, "retention_days": o.retention_days, "proxy": o.proxy}
    if not args.dry_run:
        check_audit(args)
    with connect(where, read_only=True) as clients:
        now = run_fleet(clients, targets, options(args, clients, dry_run=True, prompt=not args.dry_run, **opts), args,
                        concurrency=4)
    planned = [list(v.changes) for v in saved.vms]
    drift = [ln for t, changes, r in zip(targets, planned, now, strict=True)
             for ln in planfile.diff(t.name, changes, planfile.fingerprint(r))]
    if drift:
        why = "Refusing to apply: the state changed since the plan was saved."
        print(why + "\n" + "\n".join(drift), file=sys.stderr if is_machine(args) else sys.stdout)
        if is_machine(args):
            return emit(args, "apply", now, code=1, extra={"applied": False, "reason": why, "drift": drift})
        return 1
    if args.dry_run:
        return emit(args, "apply", now, extra={"applied": False, "reason": "dry run: the plan still matches"})
    if not args.yes:
        why = "Not applied: pass --yes to apply the saved plan without a prompt."
        if is_machine(args):
            return emit(args, "apply", now, code=3, extra={"applied": False, "reason": why})
        if not sys.stdin.isatty():
            print(why)
            return 3
        emit(args, "plan", now)
        if not confirm():
            print("Not applied.")
            return 3
    with connect(where, read_only=False) as clients:
        reports, refused = bound_apply(clients, args, options(args, clients, **opts), now, ask=False,
                                       concurrency=4)
    if not args.yes:
        _shown(reports)
    code = unless_stopped(lambda: emit(args, "apply", reports))
    if refused:
        print("Refusing to apply: the state changed since the plan was saved.\n" + "\n".join(refused),
              file=sys.stderr if is_machine(args) else sys.stdout)
        return 1
    return code
