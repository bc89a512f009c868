"""What the commands print: progress lines, reports, the fleet summary; or one document (-o json|table|tsv,
--query) on stdout and nothing else."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from . import render
from .engine import VmReport
from .formats import is_machine, print_doc
from .term import style

__all__ = ["action_rows", "emit", "exit_code", "fleet_rows"]


def exit_code(reports: list[VmReport]) -> int:
    """1 if any VM failed, else 3 if any needs a person or consent, else 0."""
    codes = {r.exit_code for r in reports}
    return 1 if 1 in codes else 3 if 3 in codes else 0


def fleet_rows(reports: list[VmReport]) -> Callable[[Any], list[dict[str, Any]]]:
    """The table/tsv rows of a diagnose/fix/apply/demo document: the text summary's rows (render.summary_row)."""
    return lambda _doc: [render.summary_row(r) for r in reports]


def action_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The table/tsv rows of an `action` document: one per change (planned, or as applied), else the outcome."""
    base = {"Action": doc["action"], "VM": doc["vm"].rsplit("/", 1)[-1]}
    outcome, plan = doc["outcome"], doc["plan"]
    if outcome is not None:
        changes, status, why = outcome["changes"], outcome["status"], outcome["reason"]
    else:
        changes, why = plan["changes"], plan["reason"]
        pending = "not applied" if doc["note"] else "planned"
        status = pending if changes else "manual" if plan["manual"] else "no changes"
    if not changes:
        return [{**base, "Kind": "", "Resource": "", "Summary": why, "Status": status}]
    return [{**base, "Kind": c["kind"], "Resource": c["resource"], "Summary": c["summary"], "Status": status}
            for c in changes]


def emit(args: argparse.Namespace, command: str, reports: list[VmReport], *, show_plan: bool = True,
         extra: dict[str, Any] | None = None, code: int | None = None) -> int:
    """Print every report (and the summary for several VMs), or one document; return the exit code."""
    code = exit_code(reports) if code is None else code
    if is_machine(args):
        doc = {"command": command, "vms": [render.report_json(r) for r in reports], "exit_code": code,
               **(extra or {})}
        print_doc(args, doc, fleet_rows(reports))
        return code
    print("\n".join(render.text_view(reports, style(), show_plan=show_plan)))
    return code
