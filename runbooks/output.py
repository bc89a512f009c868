"""What the commands print: progress lines, reports, the fleet summary; or one document (-o json|table|tsv,
--query) on stdout and nothing else."""

from __future__ import annotations

import argparse
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


_BACKUP = {"changed": "verified"}  # the backup outcome's status, as a person reads it


def _actions(vm: dict[str, Any]) -> list[str]:
    """The actions applied (outcomes that changed something), else planned (plans with changes), else (a diagnosis
    has no plan) the catalog's fixes for the causes found."""
    if vm["outcomes"]:
        return [o["action"] for o in vm["outcomes"] if o["status"] == "changed"]
    if vm["plans"]:
        return [p["action"] for p in vm["plans"] if p["changes"]]
    from .catalog import CAUSES

    found = [f["cause"] for f in vm["findings"] if f["verdict"] == "present"]
    return list(dict.fromkeys(a for c in found if c in CAUSES for a in CAUSES[c].fixes))


def fleet_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One table/tsv row per VM of a diagnose/fix/apply/demo document."""
    return [{"VM": vm["vm"], "ResourceGroup": vm["resource_group"],
             "Error": (vm["error"] or {}).get("code") or "",
             "Causes": ",".join(f["cause"] for f in vm["findings"] if f["verdict"] == "present"),
             "Actions": ",".join(_actions(vm)),
             "Backup": _BACKUP.get(status, status) if (status := (vm["backup"] or {}).get("status")) else "",
             "Status": vm["status"]} for vm in doc["vms"]]


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
        print_doc(args, doc, fleet_rows)
        return code
    print("\n".join(render.text_view(reports, style(), show_plan=show_plan)))
    return code
