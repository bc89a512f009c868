"""Azure Automation runbook (Python 3.10): fix the VM(s) an Azure Backup failure alert names, then prove it.

    python3 fix_backup_failure.py <alert JSON | WebhookData JSON | VM resource ID | JSON list of VM IDs>
                                  [mode=apply|dry-run] [allow_disruptive=true|false] [client_id=<guid>] [...]

The default mode is dry-run. A Resolved alert, or one that is not about a VM backup job, is logged and
ignored (exit 0); data that is not readable exits 2. Exit 1 when a remediation failed, 3 when a manual or
withheld step remains. See README.md in this folder for every setting and accepted input.
"""

from __future__ import annotations

import sys

from runbooks import automation as aa
from runbooks import render
from runbooks.automation import BadInput

SCRIPT = "fix_backup_failure"


def main(argv: list[str]) -> int:
    """Parse, authenticate, fix each VM with the engine, report."""
    out = aa.Output(SCRIPT)
    return out.guard(lambda: _run(argv, out))


def _run(argv: list[str], out: aa.Output) -> int:
    data, _, s = aa.start(argv, SCRIPT, out)
    if data is None:
        raise BadInput("no data: pass the alert (or WebhookData) JSON or a VM resource ID as the first parameter")
    trigger = aa.read_trigger(data)
    if trigger.ignored:
        out.say(f"ignored: {trigger.ignored}")
        return out.finish("ignored", 0, reason=trigger.ignored)
    names = ", ".join(t.name for t in trigger.targets)
    out.say(f"{SCRIPT}: {names} from {trigger.source}; mode {s.mode}"
            + ("; disruptive steps allowed" if s.allow_disruptive else "; disruptive steps withheld"))
    reports = []
    for t in trigger.targets:
        azure = aa.connect(s, t.subscription, read_only=s.dry_run)
        error, skip = aa.alert_error(azure, s, trigger, t, say=out.say)
        if skip:
            out.say(f"ignored: {skip}")
            return out.finish("ignored", 0, reason=skip)
        reports.append(aa.fix_one(azure, t, s, error=error, dry_run=s.dry_run, say=out.say))
    for r in reports:
        out.say("")
        out.lines(render.report_text(r, render.Style(False)))
    status, code = aa.overall(reports, dry_run=s.dry_run)
    return out.finish(status, code, [aa.vm_entry(r) for r in reports], source=trigger.source)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
