"""Azure Automation runbook (Python 3.10): fan a many-VM trigger out to one child job per VM.

    python3 fan_out.py <alert JSON | WebhookData JSON | JSON list of VM IDs | VM ID> automation_account=<ID> [...]
    python3 fan_out.py vault=<vault resource ID> [hours=24] automation_account=<ID> [concurrency=5] [...]

Each child is a job of `runbook` (default fix_backup_failure) started with azure-mgmt-automation
(jobs create) with the VM's resource ID and the forwarded settings (mode, allow_disruptive, client_id,
…) as its parameters. At most `concurrency` children are unfinished at any time: the next starts only
when one ends. Error budget (SSM's MaxErrors): once more than `max_errors` children failed (default 10;
a count, or a percentage of the VMs such as 10%; 100% never stops), no new child starts and the rest
are NotStarted. Run again (restarted), it starts no second child for a VM: it follows the jobs of
`runbook` an earlier run started (unfinished, or created in the last `hours` with the same parameters).
Exit 1 when a child did not complete (or could not start), else 0.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from runbooks import automation as aa
from runbooks.automation import BadInput

SCRIPT = "fan_out"


def main(argv: list[str]) -> int:
    """Parse, authenticate, start and follow the child jobs, report."""
    out = aa.Output(SCRIPT)
    return out.guard(lambda: _run(argv, out))


def _run(argv: list[str], out: aa.Output) -> int:
    data, given, s = aa.start(argv, SCRIPT, out)
    if not s.automation_account:
        raise BadInput("no automation_account: pass automation_account=<Automation account resource ID> "
                       "(or set RUNBOOKS_AUTOMATION_ACCOUNT)")
    if data is not None and "vault" in given:
        raise BadInput("give the data (alert or VM IDs) or vault=<ID>, not both")
    if data is None and not s.vault:
        raise BadInput("no VMs: pass an alert or a JSON list of VM resource IDs, or vault=<vault resource ID>")
    if data is not None:
        trigger = aa.read_trigger(data)
        if trigger.ignored:
            out.say(f"ignored: {trigger.ignored}")
            return out.finish("ignored", 0, reason=trigger.ignored)
        targets, source = list(trigger.targets), trigger.source
    else:
        vsub, vgroup, vault = aa.resource_parts(s.vault or "")
        targets = aa.failed_vms(aa.connect(s, vsub, read_only=True), vault, vgroup, hours=s.hours)
        source = f"failed backup jobs of {vault} during the last {s.hours:g} h"
    out.say(f"{SCRIPT}: {len(targets)} VM(s) from {source}; child runbook {s.runbook}, mode {s.mode}, "
            f"at most {s.concurrency} at once, max_errors {s.max_errors}")
    if not targets:
        return out.finish("ok", 0, source=source)
    sub = aa.resource_parts(s.automation_account)[0]
    since = datetime.now(timezone.utc) - timedelta(hours=s.hours)  # a rerun adopts the children started since
    children = aa.fan_out(aa.connect(s, sub, read_only=False), s.automation_account, s, targets, out.say,
                          resume_since=since)
    vms = [{"vm": c.target.name, "id": c.target.id, "job": c.job, "status": c.status, "error": c.error,
            "adopted": c.adopted} for c in children]
    ok = all(c.status == "Completed" for c in children)
    for c in children:
        out.say(f"{c.target.name}: {c.status}" + (f" ({c.error})" if c.error and c.status != "Completed" else ""))
    return out.finish("ok" if ok else "failed", 0 if ok else 1, vms, source=source, runbook=s.runbook,
                      concurrency=s.concurrency, max_errors=s.max_errors)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
