"""`list` and `explain`: the catalog of runbooks as text or one document (json, table, tsv); no request."""

from __future__ import annotations

import argparse
from typing import Any

from remediations.errors import BadInput

from .catalog import CATALOG, CAUSES, lookup
from .formats import is_machine, print_doc

__all__ = ["cmd_explain", "cmd_list"]


def _list_rows(doc: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Id": e["id"], "Codes": ",".join(e["codes"]), "Causes": ",".join(e["causes"]),
             "Message": e["message"]} for e in doc]


def _explain_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Order": i, "Cause": c["id"], "Fixes": ",".join(c["fixes"]), "ManualSteps": len(c["manual"]),
             "Title": c["title"]} for i, c in enumerate(doc["causes"], 1)]


def cmd_list(args: argparse.Namespace) -> int:
    """The catalog: every runbook, its codes, its causes in order."""
    if is_machine(args):
        print_doc(args, [{"id": e.id, "message": e.message, "codes": e.codes, "causes": e.causes}
                         for e in CATALOG], _list_rows)
        return 0
    for e in CATALOG:
        print(f"{e.id}  {e.message}")
        print(f"    codes:  {', '.join(e.codes)}")
        print(f"    causes: {' > '.join(e.causes)}")
    from remediations.actions import action_class, action_names

    def marked(name: str) -> str:
        cls = action_class(name)
        marks = [m for m, on in (("disruptive", cls.disruptive), ("not idempotent", not cls.idempotent)) if on]
        return name + (f" ({', '.join(marks)})" if marks else "")

    print(f"\nactions: {', '.join(marked(n) for n in action_names())}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """One runbook: each cause in order with the actions that fix it and the manual steps."""
    entry = lookup(args.code)
    if entry is None:
        raise BadInput(f"unknown error {args.code!r}; see `python -m runbooks list`")
    causes = [{"id": c, "title": CAUSES[c].title, "fixes": CAUSES[c].fixes, "manual": CAUSES[c].manual}
              for c in entry.causes]
    if is_machine(args):
        print_doc(args, {"id": entry.id, "message": entry.message, "codes": entry.codes, "causes": causes},
                  _explain_rows)
        return 0
    print(f"{entry.id}: {entry.message}\ncodes: {', '.join(entry.codes)}\n")
    for i, c in enumerate(causes, 1):
        print(f"{i}. {c['id']}: {c['title']}")
        for f in c["fixes"]:
            print(f"     fix:    {f}")
        for m in c["manual"]:
            print(f"     manual: {m}")
    return 0
