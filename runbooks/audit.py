"""The audit trail: one JSON line per write intent ("sending") and one per its outcome ("applied", "failed", "unknown").

The file is created 0600 in a folder created 0700, and checked writable before the first request.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from remediations.errors import BadInput
from remediations.model import Change
from remediations.target import Target

if TYPE_CHECKING:
    import argparse

__all__ = ["OUTCOMES", "AuditTrail", "audit_path", "default_audit_path"]

OUTCOMES = ("sending", "applied", "failed", "unknown")


def default_audit_path(simulator: bool = False) -> Path:
    """The user's audit file, $XDG_STATE_HOME/azure-backup-runbooks/audit.jsonl (default ~/.local/state/…);
    audit-simulator.jsonl beside it for simulator runs."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "azure-backup-runbooks" / ("audit-simulator.jsonl" if simulator else "audit.jsonl")


def audit_path(args: argparse.Namespace) -> Path:
    """--audit-file if given; else the simulator's own file for --simulator and demo, never the real trail."""
    if getattr(args, "audit_file", None):
        return Path(args.audit_file)
    simulated = bool(getattr(args, "simulator", False)) or getattr(args, "command", None) == "demo"
    return default_audit_path(simulator=simulated)


class AuditTrail:
    """Appends audit lines to a file; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def check(self) -> AuditTrail:
        """Create the folder (0700) if missing; BadInput unless the file can be appended to (created 0600 on first write)."""
        try:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(mode=0o700, parents=True)
            if self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
            elif not os.access(self.path.parent, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as e:
            raise BadInput(f"audit file {str(self.path)!r} cannot be written: {e.strerror or e}") from None
        return self

    def recorder(self, target: Target) -> Callable[[Change, str | None, str], None]:
        """An on_change callback for one VM."""
        def record(change: Change, correlation_id: str | None, outcome: str = "applied") -> None:
            self.write(target, change, correlation_id, outcome)
        return record

    def write(self, target: Target, change: Change, correlation_id: str | None, outcome: str = "applied") -> None:
        """Append one line: the intent ("sending") or the outcome, optionally "failed: CODE"/"unknown: CODE"; no secrets."""
        status, _, error = outcome.partition(": ")
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "vm": target.id, "action": change.action, "kind": change.kind, "resource": change.resource,
            "resource_id": change.resource_id, "summary": change.summary, "before": change.before,
            "after": change.after, "outcome": status if status in OUTCOMES else outcome,
            "error": error or None, "correlation_id": correlation_id,
        }
        data = (json.dumps(line, default=str) + "\n").encode("utf-8")
        with self._lock:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(mode=0o700, parents=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
