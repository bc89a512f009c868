"""The stdout-JSON protocol of the entry scripts: progress lines, then one JSON summary line, always last.

Automation has no stderr stream for Python, so everything goes to stdout and the last line is
{"status", "script", "mode", "vms", "exit_code", ...}: bad input exits 2, a crash 1.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from remediations.errors import BadInput

from .settings import Settings, parse_argv, resolve

__all__ = ["Output", "Say", "outcome", "overall", "start", "vm_entry"]

Say = Callable[[str], None]


@dataclass
class Output:
    """stdout only; the last line is one JSON summary."""

    script: str
    mode: str | None = None

    def say(self, line: str) -> None:
        """One progress line."""
        print(line, flush=True)

    def lines(self, lines: Iterable[str]) -> None:
        """Several lines."""
        for line in lines:
            self.say(line)

    def finish(self, status: str, exit_code: int, vms: list[dict[str, Any]] | None = None, **extra: Any) -> int:
        """Print the JSON summary line; returns the exit code."""
        doc = {"status": status, "script": self.script, "mode": self.mode, "vms": vms or [], "exit_code": exit_code,
               **extra}
        print(json.dumps(doc, default=str, separators=(",", ":")), flush=True)
        return exit_code

    def guard(self, body: Callable[[], int]) -> int:
        """Run the script body: bad input is one `error:` line and exit 2; a crash is exit 1."""
        import logging

        logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            return body()
        except BadInput as e:
            line = str(e).splitlines()[0] if str(e) else "bad input"
            self.say(f"error: {line}")
            return self.finish("invalid", 2, error=line)
        except Exception as e:
            self.lines(traceback.format_exc().rstrip().splitlines())
            line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self.say(f"error: {line}")
            return self.finish("error", 1, error=line)


def start(argv: list[str], entry: str, out: Output) -> tuple[str | None, dict[str, str], Settings]:
    """An entry script's data, the settings it was given, and the resolved settings (mode recorded on `out`)."""
    data, given = parse_argv(argv, entry)
    s = resolve(entry, given)
    out.mode = s.mode
    return data, given, s


def vm_entry(r: Any) -> dict[str, Any]:
    """A VmReport as one compact summary entry."""
    inv = r.investigation
    backup = r.backup.result.get("job_id") if r.backup is not None else None
    return {"vm": r.target.name, "id": r.target.id, "status": r.status, "exit_code": r.exit_code,
            "error": inv.error_code if inv else None, "message": r.message,
            "changes": [f"{c.action}: {c.kind} {c.resource}" for c in r.changes()], "backup_job": backup,
            "outcome": outcome(r)}


def outcome(report: Any) -> str:
    """What became of a VM, from its fix report (runbooks.automation.storm accounts for alerts with it): fixed (this
    run changed something, or its own backup proved the VM), already fixed (nothing changed; another run's backup
    or an earlier success proves it), failed, attention (a manual or withheld step), planned (dry-run)."""
    status = report.status
    if status == "fixed":
        changed = any(o.status == "changed" for o in report.outcomes)
        proof = report.backup.result if report.backup is not None else {}
        return "fixed" if changed or not (proof.get("followed") or proof.get("refused_job")) else "already fixed"
    if status == "nothing":
        return "already fixed"
    if status in ("manual", "withheld", "applied"):
        return "attention"
    if status in ("planned", "diagnosed"):
        return "planned"
    return "failed"


def overall(reports: list[Any], *, dry_run: bool) -> tuple[str, int]:
    """(status, exit code) of several VM reports: failed 1, attention (manual/withheld) 3, else 0."""
    codes = {r.exit_code for r in reports}
    if 1 in codes:
        return "failed", 1
    if 3 in codes and not dry_run:
        return "attention", 3
    return ("planned" if dry_run else "ok"), 0
