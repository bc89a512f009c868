"""Azure Automation runbook (Python 3.10, hourly schedule): the backstop for lost or missing alerts.

    python3 sweep_backup_failures.py vaults=<vault ID>[,<vault ID>...] automation_account=<ID> [hours=24]
                                     [concurrency=5] [mode=apply|dry-run] [allow_disruptive=true|false] [...]

Every VM with a failed backup job in the last `hours` in the given vaults gets one child job of `runbook`
(default fix_backup_failure), at most `concurrency` unfinished at once, with the forwarded settings, as
fan_out does. A VM that a fix is already working on (a backup job in progress, or an unfinished job of
`runbook` naming it), that was verified since the failure (a backup Completed after it), or that a job of
`runbook` already tried since the failure is skipped and listed with the reason, so a second sweep
changes nothing. Exit 1 when a child did not complete, else 0.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from runbooks import automation as aa
from runbooks.automation import BadInput, sweep

SCRIPT = "sweep_backup_failures"


def main(argv: list[str]) -> int:
    """Parse, authenticate, plan the sweep, start and follow the child jobs, report."""
    out = aa.Output(SCRIPT)
    return out.guard(lambda: _run(argv, out))


def _run(argv: list[str], out: aa.Output) -> int:
    data, _, s = aa.start(argv, SCRIPT, out)
    if data is not None:
        raise BadInput(f"unexpected data {data[:60]!r}: the sweep takes settings only (vaults=<IDs>)")
    if not s.vaults:
        raise BadInput("no vaults: pass vaults=<vault resource ID>[,<vault resource ID>...] (or RUNBOOKS_VAULTS)")
    if not s.automation_account:
        raise BadInput("no automation_account: pass automation_account=<Automation account resource ID> "
                       "(or set RUNBOOKS_AUTOMATION_ACCOUNT)")
    jobs = []
    for vault_id in dict.fromkeys(v.rstrip("/") for v in s.vaults.split(",")):
        jobs += sweep.backup_jobs(aa.connect(s, aa.resource_parts(vault_id)[0], read_only=True), vault_id, s.hours)
    sub = aa.resource_parts(s.automation_account)[0]
    automation = aa.connect(s, sub, read_only=False)
    since = datetime.now(timezone.utc) - timedelta(hours=s.hours)
    plan = sweep.plan(jobs, sweep.fix_jobs(automation, s.automation_account, s.runbook, since), s.runbook)
    source = f"failed backup jobs of {len(s.vaults.split(','))} vault(s) during the last {s.hours:g} h"
    out.say(f"{SCRIPT}: {len(plan.fix)} VM(s) to fix, {len(plan.skipped)} skipped, from {source}; child runbook "
            f"{s.runbook}, mode {s.mode}, at most {s.concurrency} at once")
    sweep.describe(plan, out.say)
    skipped = [{"vm": k.target.name, "id": k.target.id, "reason": k.reason} for k in plan.skipped]
    if not plan.fix:
        return out.finish("ok", 0, skipped=skipped, source=source)
    children = aa.fan_out(automation, s.automation_account, s, [t for t, _ in plan.fix], out.say)
    vms = [{"vm": c.target.name, "id": c.target.id, "job": c.job, "status": c.status, "error": c.error}
           for c in children]
    ok = all(c.status == "Completed" for c in children)
    for c in children:
        out.say(f"{c.target.name}: {c.status}" + (f" ({c.error})" if c.error and c.status != "Completed" else ""))
    return out.finish("ok" if ok else "failed", 0 if ok else 1, vms, skipped=skipped, source=source,
                      runbook=s.runbook, concurrency=s.concurrency)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
