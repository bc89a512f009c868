"""`list` and `explain`: the catalog of runbooks as text or one document (json, table, tsv); no request.

Each runbook shows its fixes (the actions of its causes) and the causes only a person can act on (`manual`), and
the troubleshooting guide's section for its codes (`guide`; E1-E5 come from the 2017 article, docs/playbook.md)."""

from __future__ import annotations

import argparse
from typing import Any

from remediations.errors import BadInput

from .catalog import CATALOG, CAUSES, ErrorEntry, lookup
from .formats import is_machine, print_doc

__all__ = ["cmd_explain", "cmd_list"]


PLAYBOOK = "docs/playbook.md (the 2017 article)"  # where E1-E5 come from: they have no guide section


def fixes(entry: ErrorEntry) -> list[str]:
    """The actions that fix the entry's causes, in the runbook's order, each once."""
    return list(dict.fromkeys(a for c in entry.causes for a in CAUSES[c].fixes))


def manual_only(entry: ErrorEntry) -> list[str]:
    """The entry's causes no action fixes: only a person can (their steps: `explain`)."""
    return [c for c in entry.causes if not CAUSES[c].fixes and CAUSES[c].manual]


def _list_doc(entry: ErrorEntry) -> dict[str, Any]:
    return {"id": entry.id, "message": entry.message, "codes": entry.codes, "causes": entry.causes,
            "fixes": fixes(entry), "manual": manual_only(entry), "guide": entry.guide or None}


def _list_rows(doc: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Id": e["id"], "Codes": ",".join(e["codes"]), "Causes": ",".join(e["causes"]),
             "Fixes": ",".join(e["fixes"]), "Manual": ",".join(e["manual"]), "Message": e["message"]} for e in doc]


def _explain_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Order": i, "Cause": c["id"], "Fixes": ",".join(c["fixes"]), "ManualSteps": len(c["manual"]),
             "Title": c["title"]} for i, c in enumerate(doc["causes"], 1)]


def cmd_list(args: argparse.Namespace) -> int:
    """The catalog: every runbook, its codes, its causes in order, its fixes or manual steps, its guide section."""
    if is_machine(args):
        print_doc(args, [_list_doc(e) for e in CATALOG], _list_rows)
        return 0
    for e in CATALOG:
        print(f"{e.id}  {e.message}")
        print(f"    codes:  {', '.join(e.codes)}")
        print(f"    causes: {' > '.join(e.causes)}")
        if fix := fixes(e):
            print(f"    fix:    {', '.join(fix)}")
        by_hand = manual_only(e)
        if by_hand and not fix:  # only a person can act: the steps themselves (each cause's first)
            for c in by_hand:
                print(f"    manual: {CAUSES[c].manual[0]}")
        elif by_hand:
            print(f"    manual: {', '.join(by_hand)} (steps: explain {e.id})")
        print(f"    guide:  {e.guide or PLAYBOOK}")
    from remediations.actions import action_class, action_names

    def marked(name: str) -> str:
        cls = action_class(name)
        marks = [m for m, on in (("disruptive", cls.disruptive), ("not idempotent", not cls.idempotent)) if on]
        return name + (f" ({', '.join(marks)})" if marks else "")

    print(f"\nactions: {', '.join(marked(n) for n in action_names())}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """One runbook: the guide's section, then each cause in order with the actions that fix it and the manual
    steps."""
    entry = lookup(args.code)
    if entry is None:
        raise BadInput(f"unknown error {args.code!r}; see `python -m runbooks list`")
    causes = [{"id": c, "title": CAUSES[c].title, "fixes": CAUSES[c].fixes, "manual": CAUSES[c].manual}
              for c in entry.causes]
    if is_machine(args):
        print_doc(args, {"id": entry.id, "message": entry.message, "codes": entry.codes,
                         "guide": entry.guide or None, "causes": causes}, _explain_rows)
        return 0
    print(f"{entry.id}: {entry.message}\ncodes: {', '.join(entry.codes)}\nguide: {entry.guide or PLAYBOOK}\n")
    for i, c in enumerate(causes, 1):
        print(f"{i}. {c['id']}: {c['title']}")
        for f in c["fixes"]:
            print(f"     fix:    {f}")
        for m in c["manual"]:
            print(f"     manual: {m}")
    return 0
