"""What the commands print: progress lines, reports, the fleet summary, and the one-document JSON form."""

from __future__ import annotations

import argparse
from typing import Any

from . import render
from .engine import VmReport
from .term import style

__all__ = ["emit", "exit_code"]


def exit_code(reports: list[VmReport]) -> int:
    """1 if any VM failed, else 3 if any needs a person or consent, else 0."""
    codes = {r.exit_code for r in reports}
    return 1 if 1 in codes else 3 if 3 in codes else 0


def emit(args: argparse.Namespace, command: str, reports: list[VmReport], *, show_plan: bool = True,
         extra: dict[str, Any] | None = None, code: int | None = None) -> int:
    """Print every report (and the summary for several VMs) or one JSON document; return the exit code."""
    code = exit_code(reports) if code is None else code
    if args.output == "json":
        doc = {"command": command, "vms": [render.report_json(r) for r in reports], "exit_code": code, **(extra or {})}
        print(render.dumps(doc))
        return code
    st = style()
    for r in reports:
        print("\n".join(render.report_text(r, st, show_plan=show_plan)))
        print()
    if len(reports) > 1:
        print("\n".join(render.summary_table(reports)))
    return code
