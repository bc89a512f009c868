"""The audit trail: one JSON line per applied change (time, VM, action, before, after, correlation id)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from remediations.model import Change
from remediations.target import Target

__all__ = ["AuditTrail", "default_audit_path"]


def default_audit_path() -> Path:
    """$XDG_STATE_HOME/azure-backup-runbooks/audit.jsonl (default ~/.local/state/…)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "azure-backup-runbooks" / "audit.jsonl"


class AuditTrail:
    """Appends audit lines to a file; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def recorder(self, target: Target) -> Callable[[Change, str | None, str], None]:
        """An on_change callback for one VM."""
        def record(change: Change, correlation_id: str | None, outcome: str = "applied") -> None:
            self.write(target, change, correlation_id, outcome)
        return record

    def write(self, target: Target, change: Change, correlation_id: str | None, outcome: str = "applied") -> None:
        """Append one line for a change made (or possibly made: outcome "error after sending: CODE"); no secrets."""
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "vm": target.id, "action": change.action, "kind": change.kind, "resource": change.resource,
            "resource_id": change.resource_id, "summary": change.summary, "before": change.before,
            "after": change.after, "outcome": outcome, "correlation_id": correlation_id,
        }
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, default=str) + "\n")
