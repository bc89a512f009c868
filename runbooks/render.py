"""What a person sees: Terraform-style plans, verdicts, outcomes, a fleet table; and the same as JSON."""

from __future__ import annotations

import json
from typing import Any

from remediations.model import Change, Outcome, Plan

from .catalog import CAUSES, VERIFY
from .engine import VmReport

__all__ = ["LEGEND", "Style", "actions_cell", "legend", "plan_text", "report_json", "report_text", "summary_row", "summary_table",
           "text_view", "totals_line"]

_VERB = {"add": "added", "change": "changed", "remove": "removed", "run": "run"}
_COLOUR = {"+": "32", "~": "33", "-": "31", "!": "36"}
_MARK = {"present": "[x]", "absent": "[ ]", "unknown": "[?]"}
LEGEND = ("Legend: [x] present (the cause is found)   [ ] absent (ruled out)   "
          "[?] unknown (not visible through ARM, or not checked)")


class Style:
    """Colour or not, as decided by runbooks.term.colour (NO_COLOR, FORCE_COLOR, TERM=dumb, a terminal)."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def sign(self, symbol: str) -> str:
        """A plan sign, coloured when allowed."""
        return f"\033[{_COLOUR[symbol]}m{symbol}\033[0m" if self.colour else symbol

    def bold(self, text: str) -> str:
        """Bold text, when allowed."""
        return f"\033[1m{text}\033[0m" if self.colour else text


def change_text(c: Change, style: Style, consent: str | None = None) -> list[str]:
    """One change: what will happen to which resource (a disruptive one: whose consent, or that it needs one), why,
    then the signed one-line summary."""
    held = f" (disruptive; consent: {consent})" if consent else " (disruptive: needs --allow-disruptive)"
    lines = [f"  # {c.resource} will be {_VERB[c.kind]}" + (held if c.disruptive else ""),
             f"  # (because {c.reason})",
             f"  {style.sign(c.symbol)} {c.summary}"]
    return lines


def totals_line(changes: list[Change]) -> str:
    """"Plan: 1 to add, 0 to change, 0 to remove, 1 to run." or "No changes."."""
    if not changes:
        return "No changes."
    n = {k: sum(c.kind == k for c in changes) for k in _VERB}
    return f"Plan: {n['add']} to add, {n['change']} to change, {n['remove']} to remove, {n['run']} to run."


def plan_text(plans: list[Plan], style: Style, consent: str | None = None) -> list[str]:
    """Every change of every plan, then the totals line; notes and empty-plan reasons as comments."""
    lines: list[str] = []
    for p in plans:
        for c in p.changes:
            lines += change_text(c, style, consent)
            lines.append("")
        if p.changes and not p.idempotent:
            lines.append(f"  # note: {p.action} is not idempotent: applying this plan again acts again")
        for note in p.notes:
            lines.append(f"  # note: {note}")
    lines.append(totals_line([c for p in plans for c in p.changes]))
    return lines


def _error_line(r: VmReport) -> str | None:
    inv = r.investigation
    if inv is None:
        return None
    job = inv.job
    if job is None and inv.error_code is None:
        return "Error   none: no failed backup job of this VM in the last 7 days"
    where = ""
    if job is not None and not inv.matched_by.startswith("--error"):
        when = job.start.strftime("%Y-%m-%d %H:%M UTC") if job.start else "time unknown"
        where = f" (latest failed job {job.id[:8]}…, {when})"
    code = inv.error_code or "none recorded"
    return f"Error   {code} -> {inv.entry.id}: {inv.entry.message}{where}"


def _shows_causes(r: VmReport) -> bool:
    return r.investigation is not None and r.status != "nothing" and not r.shown


def report_text(r: VmReport, style: Style, *, show_plan: bool = True) -> list[str]:
    """A VM's error, verdicts, plan and outcome, as lines; once its plan was shown (`r.shown`), only what happened."""
    lines = [style.bold(f"{r.target.name} ({r.target.resource_group})")]
    err = None if r.shown else _error_line(r)
    if err:
        lines.append(err)
        if r.investigation is not None and r.investigation.entry.guide:  # the guide's section for the code
            lines.append(f"Guide   {r.investigation.entry.guide}")
    if _shows_causes(r) and r.investigation is not None:
        width = max([13] + [len(f.cause) + 1 for f in r.investigation.findings])  # a long id keeps a space
        for i, f in enumerate(r.investigation.findings):
            head = "Causes  " if i == 0 else "        "
            lines.append(f"{head}{_MARK[f.verdict]} {f.cause:<{width}}{f.evidence}")
    if show_plan and r.plans and not r.shown:
        lines.append("")
        lines += plan_text(r.plans, style, r.consent)
    for o in r.outcomes:
        if o.status == "changed":  # the reason is the re-plan's: the state now, as verified
            lines.append(f"  {o.action}: changed" + (" (disruptive)" if any(c.disruptive for c in o.changes) else "")
                         + (f"; verified: {o.reason}" if o.reason else ""))
        else:
            lines.append(f"  {o.action}: {o.status}" + (f" ({o.reason})" if o.reason else ""))
        lines += [f"    {e}" for e in o.evidence]
    if r.backup is not None:
        b = r.backup
        lines.append(f"  backup: {'verified; ' + b.reason if b.status == 'changed' else b.status + ' (' + b.reason + ')'}"
                     if b.reason else f"  backup: {b.status}")
    for m in r.manual:
        lines.append(f"  manual step: {m}")
    if r.message:
        lines.append(r.message)
    return lines


def legend(reports: list[VmReport]) -> list[str]:
    """The legend of the verdict marks, when any report shows verdicts (printed once per run)."""
    return [LEGEND, ""] if any(_shows_causes(r) for r in reports) else []


def text_view(reports: list[VmReport], style: Style, *, show_plan: bool = True) -> list[str]:
    """The whole text output of a run: the legend once, each report and a blank line, the table for several VMs."""
    lines = legend(reports)
    for r in reports:
        lines += [*report_text(r, style, show_plan=show_plan), ""]
    return lines + (summary_table(reports) if len(reports) > 1 else [])


def actions_cell(r: VmReport) -> str:
    """The ACTIONS cell: what ran (failed or withheld ones marked), else what is planned, else (a diagnosis)
    the catalog's fixes for the causes found; "manual" when only a person can act, "-" for nothing."""
    if r.outcomes:
        return ",".join(o.action + ("" if o.status == "changed" else f" ({o.status})")
                        for o in r.outcomes if o.status != "unchanged") or "-"
    planned = [p.action for p in r.plans if p.changes and p.action != VERIFY]
    if planned:
        return ",".join(planned) + " (planned)"
    inv = r.investigation
    if r.status == "diagnosed" and inv is not None:
        fixes = list(dict.fromkeys(a for f in inv.present for a in CAUSES[f.cause].fixes))
        if fixes:
            return ",".join(fixes) + " (catalog)"
        return "manual" if inv.present else "-"
    return "manual" if r.manual else "-"


def _backup_cell(r: VmReport) -> str:
    b = r.backup
    if b is not None:
        return "failed" if b.error_code else "verified" if b.status == "changed" else b.status
    return "planned" if any(p.action == VERIFY and p.changes for p in r.plans) else "-"


def summary_row(r: VmReport) -> dict[str, str]:
    """A VM's row of the fleet table (text, -o table and -o tsv share it): "" where there is nothing."""
    inv = r.investigation
    actions, backup = actions_cell(r), _backup_cell(r)
    return {"VM": r.target.name, "ResourceGroup": r.target.resource_group,
            "Error": (inv.error_code or "") if inv else "",
            "Causes": ",".join(f.cause for f in inv.present) if inv else "",
            "Actions": "" if actions == "-" else actions, "Backup": "" if backup == "-" else backup,
            "Status": r.status}


def summary_table(reports: list[VmReport]) -> list[str]:
    """One row per VM: error, causes found, actions (applied, else planned, else the catalog's fixes), backup,
    result."""
    rows: list[tuple[str, ...]] = [("VM", "ERROR", "CAUSES", "ACTIONS", "BACKUP", "RESULT")]
    for r in reports:
        row = summary_row(r)
        rows.append(tuple(row[k] or "-" for k in ("VM", "Error", "Causes", "Actions", "Backup", "Status")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _outcome(o: Outcome) -> dict[str, Any]:
    return o.model_dump(exclude={"changes": {"__all__": {"data"}}})


def report_json(r: VmReport) -> dict[str, Any]:
    """A VM's report as a JSON-ready dict (stable keys for scripts)."""
    inv = r.investigation
    out: dict[str, Any] = {
        "vm": r.target.name, "resource_group": r.target.resource_group, "subscription": r.target.subscription,
        "id": r.target.id, "status": r.status, "exit_code": r.exit_code, "message": r.message,
        "error": None, "findings": [], "plans": [p.model_dump(exclude={"changes": {"__all__": {"data"}}})
                                              for p in r.plans],
        "outcomes": [_outcome(o) for o in r.outcomes],
        "backup": _outcome(r.backup) if r.backup else None, "manual": r.manual,
    }
    if inv is not None:
        job = inv.job
        out["error"] = {"code": inv.error_code, "runbook": inv.entry.id, "message": inv.entry.message,
                        "guide": inv.entry.guide or None,
                        "matched_by": inv.matched_by,
                        "job": None if job is None else {"id": job.id, "status": job.status,
                                                         "start": job.start.isoformat() if job.start else None,
                                                         "error_code": job.error_number,
                                                         "error_title": job.error_title}}
        out["findings"] = [{"cause": f.cause, "title": f.title, "verdict": f.verdict, "evidence": f.evidence}
                           for f in inv.findings]
    return out


def dumps(doc: Any) -> str:
    """JSON text, one document."""
    return json.dumps(doc, indent=2, default=str)
