"""azure-automation/rbac-map.json as code: which RBAC action Azure checks for an ARM request (method + path)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

__all__ = ["rbac_action", "rbac_table"]

RBAC_MAP = Path(__file__).resolve().parents[2] / "azure-automation" / "rbac-map.json"


@cache
def rbac_table() -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path pattern, RBAC action) per row; `{x}` in a path is one segment, case-insensitive."""
    rows = json.loads(RBAC_MAP.read_text(encoding="utf-8"))["requests"]
    return [(r["method"], re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(r["path"])) + "/?", re.I),
             r["action"]) for r in rows]


def rbac_action(method: str, path: str) -> str | None:
    """The RBAC action Azure checks for a request, per rbac-map.json; None when it is not mapped."""
    return next((a for m, p, a in rbac_table() if m == method and p.fullmatch(path)), None)
