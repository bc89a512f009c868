"""`action`: one remediation action by hand on one VM: plan, confirm (or --dry-run), apply, verify."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from remediations.errors import BadInput
from remediations.target import parse_target

from . import render
from .connection import connect, group_of, where_from
from .fleet import check_audit, confirm
from .formats import is_machine, print_doc
from .output import action_rows
from .stop import STOP, interrupted_note
from .term import say_for, style

__all__ = ["cmd_action"]


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
        check_audit(args)
    with connect(where, read_only=args.dry_run or not args.yes) as clients:
        plan = action.preview(clients(target.subscription), params)
    as_json = is_machine(args)  # -o json|table|tsv or --query: stdout holds one document
    plan_doc = plan.model_dump(exclude={"changes": {"__all__": {"data"}}})

    def done(code: int, outcome: Any = None, note: str = "") -> int:
        if as_json:
            print_doc(args, {"command": "action", "action": args.name, "vm": target.id, "plan": plan_doc,
                             "outcome": None if outcome is None else outcome.model_dump(
                                 exclude={"changes": {"__all__": {"data"}}}),
                             "note": note or None, "exit_code": code}, action_rows)
        elif note:
            print(note)
        return code

    if not as_json:
        print("\n".join(render.plan_text([plan], style(), "--allow-disruptive" if args.allow_disruptive else None)) if plan.changes else f"No changes. {plan.reason}")
        for m in plan.manual:
            print(f"  manual step: {m}")
    if args.dry_run or plan.empty:
        return done(3 if plan.empty and plan.manual else 0)
    if not args.yes and (as_json or not confirm()):
        return done(3, note="Not applied: no confirmation (pass --yes to apply without a prompt).")
    from .audit import AuditTrail, audit_path

    audit = AuditTrail(audit_path(args)).check()
    from .live import BEFORE_WRITE, Step, job_progress
    from .stop import follow

    say = say_for(args)  # the live line on a terminal (cleared when the block ends), else plain lines
    progress = follow(target, job_progress(target.name, say))
    say(Step(target.name, f"applying {args.name}", hint=BEFORE_WRITE))
    with say, connect(where, read_only=False) as clients:
        outcome = action.apply(clients(target.subscription), params, consent="--allow-disruptive" if args.allow_disruptive else False,
                               on_change=audit.recorder(target), progress=progress)
    if STOP.is_set():
        print(interrupted_note(), file=sys.stderr)
        return 130
    if not as_json:
        print(f"{outcome.action}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
        for line in outcome.evidence:
            print(f"  {line}")
    return done({"changed": 0, "unchanged": 0, "failed": 1, "withheld": 3}[outcome.status], outcome)
