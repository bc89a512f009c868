"""Azure Automation runbook (Python 3.10, hourly schedule): the backstop for lost or missing alerts.

    python3 sweep_backup_failures.py vaults=<vault ID>[,<vault ID>...] automation_account=<ID> [hours=24]
                                     [concurrency=5] [mode=apply|dry-run] [allow_disruptive=true|false] [...]
    python3 sweep_backup_failures.py all_subscriptions=true automation_account=<ID> [vaults=<fallback IDs>] [...]

With all_subscriptions=true the failed jobs come from one paged Azure Resource Graph query over every
subscription the identity can read (remediations/discovery.py); when Resource Graph refuses it, the named
vaults' job lists are read instead (one line says so), and without vaults the sweep fails with that line.
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
    if not s.vaults and not s.all_subscriptions:
        raise BadInput("no vaults: pass vaults=<vault resource ID>[,<vault resource ID>...] or all_subscriptions=true "
                       "(or RUNBOOKS_VAULTS / RUNBOOKS_ALL_SUBSCRIPTIONS)")
    if not s.automation_account:
        raise BadInput("no automation_account: pass automation_account=<Automation account resource ID> "
                       "(or set RUNBOOKS_AUTOMATION_ACCOUNT)")
    sub = aa.resource_parts(s.automation_account)[0]
    vault_ids = list(dict.fromkeys(v.rstrip("/") for v in s.vaults.split(","))) if s.vaults else []
    if s.all_subscriptions:
        jobs, source = sweep.everywhere(lambda v_sub: aa.connect(s, v_sub, read_only=True), sub, s.hours, vault_ids,
                                        out.say)
    else:
        jobs = []
        for vault_id in vault_ids:
            jobs += sweep.backup_jobs(aa.connect(s, aa.resource_parts(vault_id)[0], read_only=True), vault_id, s.hours)
        source = f"failed backup jobs of {len(vault_ids)} vault(s) during the last {s.hours:g} h"
    automation = aa.connect(s, sub, read_only=False)
    since = datetime.now(timezone.utc) - timedelta(hours=s.hours)
    fixes = sweep.fix_jobs(automation, s.automation_account, s.runbook, since)
    plan = sweep.plan(jobs, fixes, s.runbook)
    out.say(f"{SCRIPT}: {len(plan.fix)} VM(s) to fix, {len(plan.skipped)} skipped, from {source}; child runbook "
            f"{s.runbook}, mode {s.mode}, at most {s.concurrency} at once")
    sweep.describe(plan, out.say)
    skipped = [{"vm": k.target.name, "id": k.target.id, "reason": k.reason} for k in plan.skipped]
    if not plan.fix:
        return out.finish("ok", 0, skipped=skipped, source=source)
    children = aa.fan_out(automation, s.automation_account, s, [t for t, _ in plan.fix], out.say,
                          known=[f for f in fixes if not f.finished])  # the list read once (no resume_since: a new
    # failure after a finished fix must be fixed again)
    vms = [{"vm": c.target.name, "id": c.target.id, "job": c.job, "status": c.status, "error": c.error}
           for c in children]
    ok = all(c.status == "Completed" for c in children)
    for c in children:
        out.say(f"{c.target.name}: {c.status}" + (f" ({c.error})" if c.error and c.status != "Completed" else ""))
    return out.finish("ok" if ok else "failed", 0 if ok else 1, vms, skipped=skipped, source=source,
                      runbook=s.runbook, concurrency=s.concurrency)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
