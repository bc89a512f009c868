"""The commands behind the CLI: input is validated before any client exists, so bad input sends nothing."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remediations.azure import Azure, AzureConfig
from remediations.errors import BadInput
from remediations.target import Target, parse_target

from . import render
from .catalog import CATALOG, CAUSES, lookup
from .engine import Options, VmReport

__all__ = ["cmd_action", "cmd_apply", "cmd_demo", "cmd_diagnose", "cmd_explain", "cmd_fix", "cmd_list"]

DEMO_GROUP = "rg-demo"


@dataclass
class Where:
    """The validated connection settings of a command (no client built yet)."""

    subscription: str | None
    cloud: str
    endpoint: str | None
    ca_bundle: str | None
    credential: str
    client_id: str | None
    simulator: bool


def _where(args: argparse.Namespace) -> Where:
    sub = args.subscription or os.environ.get("AZURE_SUBSCRIPTION_ID")
    if args.simulator and not sub:
        from armsim import DEMO_SUBSCRIPTION

        sub = DEMO_SUBSCRIPTION
    endpoint = args.arm_endpoint or os.environ.get("RUNBOOKS_ARM_ENDPOINT")
    if args.simulator and endpoint:
        raise BadInput("--simulator and --arm-endpoint are exclusive")
    if endpoint and not re.match(r"^https://[A-Za-z0-9.\-\[\]:]+(/[\w\-./]*)?$", endpoint):
        raise BadInput(f"--arm-endpoint must be an https URL, not {endpoint!r}")
    ca = args.ca_bundle or os.environ.get("RUNBOOKS_CA_BUNDLE")
    return Where(sub, args.cloud, endpoint, ca, args.credential, args.client_id, args.simulator)


def _group(args: argparse.Namespace, where: Where) -> str | None:
    return args.resource_group or (DEMO_GROUP if where.simulator else None)


@contextmanager
def _azure(where: Where, *, read_only: bool) -> Iterator[Azure]:
    """Clients for the validated settings; with --simulator, an in-process armsim behind them."""
    server = None
    endpoint, ca = where.endpoint, where.ca_bundle
    if where.simulator:
        from armsim import serve

        server = serve()
        endpoint, ca = server.endpoint, server.ca_bundle
    if not where.subscription:
        raise BadInput("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
    try:
        yield Azure(AzureConfig(subscription=where.subscription, cloud=where.cloud,  # type: ignore[arg-type]
                                arm_endpoint=endpoint, ca_bundle=ca, read_only=read_only,
                                credential=where.credential, client_id=where.client_id))  # type: ignore[arg-type]
    finally:
        if server is not None:
            server.stop()


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    stream = sys.stderr if getattr(args, "output", "text") == "json" else sys.stdout
    tty = stream.isatty()

    def say(line: str) -> None:
        stream.write(f"\033[2m… {line}\033[0m\n" if tty else f"… {line}\n")
        stream.flush()
    return say


def _style() -> render.Style:
    return render.Style(sys.stdout.isatty())


def _options(args: argparse.Namespace, azure: Azure | None = None, **over: Any) -> Options:
    fast = bool(azure and azure.config.loopback)
    base: dict[str, Any] = {"error": getattr(args, "error", None), "dry_run": getattr(args, "dry_run", False),
            "allow_disruptive": getattr(args, "allow_disruptive", False),
            "backup": not getattr(args, "no_backup", False), "retention_days": getattr(args, "retention_days", 30),
            "egress_mode": getattr(args, "mode", None) or "service-tag",
            "backup_poll_seconds": 0.05 if fast else None, "wait_ready_seconds": 300.0}
    base.update(over)
    return Options(**base)


def _exit(reports: list[VmReport]) -> int:
    codes = {r.exit_code for r in reports}
    return 1 if 1 in codes else 3 if 3 in codes else 0


def _emit(args: argparse.Namespace, command: str, reports: list[VmReport], *, show_plan: bool = True,
          extra: dict[str, Any] | None = None, code: int | None = None) -> int:
    code = _exit(reports) if code is None else code
    if args.output == "json":
        doc = {"command": command, "vms": [render.report_json(r) for r in reports], "exit_code": code, **(extra or {})}
        print(render.dumps(doc))
        return code
    style = _style()
    for r in reports:
        print("\n".join(render.report_text(r, style, show_plan=show_plan)))
        print()
    if len(reports) > 1:
        print("\n".join(render.summary_table(reports)))
    return code


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
    return [parse_target(v, _group(args, where), where.subscription) for v in args.vms]


def _since_hours(text: str) -> float:
    m = re.fullmatch(r"(\d+)([hd])", text.strip())
    if not m:
        raise BadInput(f"--since {text!r}: use hours or days, e.g. 24h or 3d")
    return int(m.group(1)) * (24 if m.group(2) == "d" else 1)


def _check_error(code: str | None) -> None:
    if code is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,99}|\d{1,9}", code):
        raise BadInput(f"--error {code!r}: want an error code such as ExtensionSnapshotFailedNoNetwork, or E1..E5")


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Verdicts only; read-only in the HTTP pipeline."""
    _check_error(args.error)
    where = _where(args)
    targets = _parse_targets(args, where)
    from .engine import investigate

    with _azure(where, read_only=True) as azure:
        opts = _options(args, azure)
        reports = [_guarded(t, lambda t=t: VmReport(t, "planned", "", investigate(azure, t, opts)))  # type: ignore[misc]
                   for t in targets]
    return _emit(args, "diagnose", reports, show_plan=False)


_NOT_THERE = {"subscriptionnotfound", "resourcegroupnotfound", "invalidsubscriptionid"}


def _guarded(t: Target, work: Callable[[], VmReport]) -> VmReport:
    """One VM's work; its ARM failure becomes a failed report (or bad input when the place does not exist)."""
    try:
        return work()
    except BadInput:
        raise
    except Exception as e:  # one VM's failure must not hide the others'
        from remediations.errors import RemediationError, arm_error

        if isinstance(e, RemediationError) and not hasattr(e, "code"):
            raise
        err = arm_error(e)
        if err.code.lower() in _NOT_THERE:
            raise BadInput(f"{t.name}: {err.message}") from None
        return VmReport(t, "failed", f"{err.code}: {err.message}")


def _fleet(azure: Azure, targets: list[Target], opts: Options, args: argparse.Namespace, *,
           concurrency: int) -> list[VmReport]:
    from .audit import AuditTrail, default_audit_path
    from .engine import run

    audit = None if opts.dry_run else AuditTrail(getattr(args, "audit_file", None) or default_audit_path())
    say = _say(args)

    def one(t: Target) -> VmReport:
        return _guarded(t, lambda: run(azure, t, opts, on_change=audit.recorder(t) if audit else None, say=say))

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(targets) or 1))) as pool:
        return list(pool.map(one, targets))


def _confirm(reports: list[VmReport]) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input("Apply these changes? Only 'yes' is accepted: ")
    return answer.strip().lower() == "yes"


def cmd_fix(args: argparse.Namespace) -> int:
    """Diagnose, plan, confirm, apply, verify: one VM, several, or every failed VM of a vault."""
    _check_error(args.error)
    where = _where(args)
    if args.concurrency < 1 or args.concurrency > 32:
        raise BadInput("--concurrency must be 1..32")
    if not 1 <= args.retention_days <= 9999:
        raise BadInput("--retention-days must be 1..9999")
    if args.from_vault and args.vms:
        raise BadInput("give VMs or --from-vault, not both")
    targets = _parse_targets(args, where)
    hours = _since_hours(args.since)
    if args.from_vault:
        if not _group(args, where):
            raise BadInput("--from-vault needs the vault's resource group (-g)")
        parse_target(args.from_vault, _group(args, where), where.subscription)  # same naming rules as a VM
    elif not targets:
        raise BadInput("name at least one VM, or use --from-vault VAULT -g RG")
    plan_only = args.dry_run or bool(args.plan_out)
    interactive = not plan_only and not args.yes
    with _azure(where, read_only=plan_only or interactive) as azure:
        if args.from_vault:
            from remediations.facts import failed_vms

            targets = failed_vms(azure, args.from_vault, _group(args, where) or "", hours=hours)
        reports = _fleet(azure, targets, _options(args, azure, dry_run=plan_only or interactive), args,
                         concurrency=args.concurrency)
    if args.plan_out:
        _save_plan(Path(args.plan_out), args, reports)
    if not interactive or not any(r.changes() for r in reports):
        return _emit(args, "fix", reports)
    if args.output == "json":
        return _emit(args, "fix", reports, code=3,
                     extra={"applied": False, "reason": "not applied: pass --yes to apply without a prompt"})
    _emit(args, "plan", reports)
    if not sys.stdin.isatty():
        print("Not applied: no confirmation (pass --yes to apply without a prompt).")
        return 3
    if not _confirm(reports):
        print("Not applied.")
        return 3
    with _azure(where, read_only=False) as azure:
        reports = _fleet(azure, targets, _options(args, azure), args, concurrency=args.concurrency)
    return _emit(args, "fix", reports)


# --- saved plans -----------------------------------------------------------------------------
def _fingerprint(r: VmReport) -> list[list[str]]:
    return sorted([c.action, c.kind, c.resource.lower(), json.dumps(c.after, sort_keys=True, default=str)]
                  for c in r.changes() if c.action != "trigger-backup")


def _save_plan(path: Path, args: argparse.Namespace, reports: list[VmReport]) -> None:
    doc = {"format": "azure-backup-runbooks/plan@1",
           "options": {"error": args.error, "allow_disruptive": args.allow_disruptive,
                       "backup": not args.no_backup, "mode": args.mode, "retention_days": args.retention_days},
           "vms": [{"target": r.target.model_dump(), "error": r.investigation.error_code if r.investigation else None,
                    "changes": _fingerprint(r), "plan": render.report_json(r)["plans"]} for r in reports]}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"Saved the plan to {path}; apply it with: python -m runbooks apply {path}", file=sys.stderr)


def cmd_apply(args: argparse.Namespace) -> int:
    """Re-plan every VM of a saved plan; refuse, showing the drift, unless it still matches."""
    try:
        doc = json.loads(Path(args.plan_file).read_text(encoding="utf-8"))
        if doc.get("format") != "azure-backup-runbooks/plan@1":
            raise ValueError("not a saved plan")
        saved = [(Target(**v["target"]), v["changes"], v.get("error")) for v in doc["vms"]]
        o = doc["options"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInput(f"cannot read plan {args.plan_file}: {e}") from None
    where = _where(args)
    if not where.subscription and saved:
        where.subscription = saved[0][0].subscription
    opts = {"error": o.get("error"), "allow_disruptive": bool(o.get("allow_disruptive")) or args.allow_disruptive,
            "backup": bool(o.get("backup", True)), "egress_mode": o.get("mode") or "service-tag",
            "retention_days": int(o.get("retention_days") or 30)}
    targets = [t for t, _, _ in saved]
    with _azure(where, read_only=True) as azure:
        now = _fleet(azure, targets, _options(args, azure, dry_run=True, **opts), args, concurrency=4)
    drift = []
    for (t, changes, _), r in zip(saved, now, strict=True):
        current = _fingerprint(r)
        if current != changes:
            drift.append(f"{t.name}: planned {len(changes)} change(s), now {len(current)}")
            drift += [f"  - {' '.join(c[:3])}" for c in changes if c not in current]
            drift += [f"  + {' '.join(c[:3])}" for c in current if c not in changes]
    if drift:
        print("Refusing to apply: the state changed since the plan was saved.\n" + "\n".join(drift))
        return 1
    if args.dry_run:
        return _emit(args, "apply", now, extra={"applied": False, "reason": "dry run: the plan still matches"})
    if not args.yes:
        why = "Not applied: pass --yes to apply the saved plan without a prompt."
        if args.output == "json":
            return _emit(args, "apply", now, code=3, extra={"applied": False, "reason": why})
        if not sys.stdin.isatty():
            print(why)
            return 3
        _emit(args, "plan", now)
        if not _confirm(now):
            print("Not applied.")
            return 3
    with _azure(where, read_only=False) as azure:
        reports = _fleet(azure, targets, _options(args, azure, **opts), args, concurrency=4)
        return _emit(args, "apply", reports)


# --- one action ------------------------------------------------------------------------------
def cmd_action(args: argparse.Namespace) -> int:
    """Run one action by hand: plan, confirm (or --dry-run), apply, verify."""
    from pydantic import ValidationError

    from remediations.actions import ACTION_NAMES, get_action

    if args.name not in ACTION_NAMES:
        raise BadInput(f"unknown action {args.name!r}; known: {', '.join(ACTION_NAMES)}")
    where = _where(args)
    target = parse_target(args.vm, _group(args, where), where.subscription)
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
    with _azure(where, read_only=args.dry_run or not args.yes) as azure:
        plan = action.preview(azure, params)
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
        print("\n".join(render.plan_text([plan], _style())) if plan.changes else f"No changes. {plan.reason}")
        for m in plan.manual:
            print(f"  manual step: {m}")
    if args.dry_run or plan.empty:
        return done(3 if plan.empty and plan.manual else 0)
    if not args.yes and (as_json or not _confirm([])):
        return done(3, note="Not applied: no confirmation (pass --yes to apply without a prompt).")
    from .audit import AuditTrail, default_audit_path

    audit = AuditTrail(args.audit_file or default_audit_path())
    if hasattr(action, "progress"):
        action.progress = lambda status, info: _say(args)(f"{target.name}: backup job {status}")
    with _azure(where, read_only=False) as azure:
        outcome = action.apply(azure, params, consent=args.allow_disruptive, on_change=audit.recorder(target))
    if not as_json:
        print(f"{outcome.action}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
        for line in outcome.evidence:
            print(f"  {line}")
    return done({"changed": 0, "unchanged": 0, "failed": 1, "withheld": 3}[outcome.status], outcome)


# --- the demo --------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """Start armsim in-process with the demo fleet and fix every VM for real over HTTPS."""
    from remediations.facts import list_vms

    where = Where(None, "AzureCloud", None, None, "default", None, True)
    from armsim import DEMO_SUBSCRIPTION

    where.subscription = DEMO_SUBSCRIPTION
    args.audit_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), "azure-backup-runbooks-demo-audit.jsonl")
    with _azure(where, read_only=False) as azure:
        print(f"armsim demo fleet at {azure.config.endpoint} (subscription {DEMO_SUBSCRIPTION}, {DEMO_GROUP})\n")
        targets = list_vms(azure, DEMO_GROUP)
        opts = _options(args, azure, allow_disruptive=not args.no_disruptive)
        reports = _fleet(azure, targets, opts, args, concurrency=args.concurrency)
        code = _emit(args, "demo", reports, extra={"audit_file": args.audit_file})
    if args.output == "text":
        print(f"\naudit trail: {args.audit_file}")
    return code

