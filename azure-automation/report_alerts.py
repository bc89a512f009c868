"""Azure Automation runbook (Python 3.10): what became of every backup alert of the last hours (an alert storm's account).

    python3 report_alerts.py automation_account=<ID> [hours=24] [client_id=<guid>] [...]

Reads the relay jobs (one per alert delivery) and the fix jobs they started, read-only, and accounts for
every delivery: fixed, already fixed, duplicate (the alert was delivered again: no second job), ignored (not
a backup failure alert, or Resolved), failed, attention (a manual or withheld step), unfinished. The summary
line has the counts (they add up to the deliveries) and one row per alert. Exit 1 when an alert's fix failed
or did not start, 3 when one needs a person, else 0 (unfinished jobs included: run it again later).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from runbooks import automation as aa
from runbooks.automation import BadInput, storm

SCRIPT = "report_alerts"


def main(argv: list[str]) -> int:
    """Parse, authenticate, read the jobs, report."""
    out = aa.Output(SCRIPT)
    return out.guard(lambda: _run(argv, out))


def _run(argv: list[str], out: aa.Output) -> int:
    data, _, s = aa.start(argv, SCRIPT, out)
    if data is not None:
        raise BadInput(f"unexpected data {data[:60]!r}: the report takes settings only (automation_account=<ID>)")
    if not s.automation_account:
        raise BadInput("no automation_account: pass automation_account=<Automation account resource ID> "
                       "(or set RUNBOOKS_AUTOMATION_ACCOUNT)")
    azure = aa.connect(s, aa.resource_parts(s.automation_account)[0], read_only=True)
    since = datetime.now(timezone.utc) - timedelta(hours=s.hours)
    report = storm.account(*storm.read_storm(azure, s.automation_account, since))
    counts = ", ".join(f"{report.counts[k]} {k}" for k in storm.OUTCOMES if report.counts[k]) or "none"
    out.say(f"{SCRIPT}: {report.deliveries} alert deliveries of {len(report.alerts)} alert(s) during the last "
            f"{s.hours:g} h: {counts}")
    for row in report.alerts:
        if row.outcome not in ("fixed", "already fixed"):
            out.say(f"{row.alert_id}: {row.outcome}" + (f" ({row.note})" if row.note else ""))
    code = 1 if report.counts["failed"] or report.counts["not started"] else 3 if report.counts["attention"] else 0
    return out.finish({0: "ok", 1: "failed", 3: "attention"}[code], code, **report.as_json())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
