"""Azure Automation runbook (Python 3.10): before a change window, preview the fixes for a vault's failed VMs.

    python3 preview_change_window.py <Recovery Services vault resource ID> [hours=24] [client_id=<guid>]

Every VM with a failed backup job in the vault during the last `hours` is diagnosed and planned, never
changed: the clients are read-only in the HTTP pipeline, so no mutating request can leave the process.
Prints the Terraform-style plan of each VM, the combined totals, the plan as JSON, then the summary line.
Exit 1 when a VM could not be read or planned, else 0.
"""

from __future__ import annotations

import sys

from runbooks import automation as aa
from runbooks import render
from runbooks.automation import BadInput

SCRIPT = "preview_change_window"


def main(argv: list[str]) -> int:
    """Parse, authenticate read-only, plan every failed VM with the engine, report."""
    out = aa.Output(SCRIPT, mode="dry-run")
    return out.guard(lambda: _run(argv, out))


def _run(argv: list[str], out: aa.Output) -> int:
    data, given = aa.parse_argv(argv, SCRIPT)
    s = aa.resolve(SCRIPT, given)
    if data is None:
        raise BadInput("no vault: pass the Recovery Services vault resource ID as the first parameter")
    if not aa.is_vault_id(data):
        raise BadInput(f"not a Recovery Services vault resource ID: {data[:200]!r}")
    sub, group, vault = aa.resource_parts(data)
    azure = aa.connect(s, sub, read_only=True)
    targets = aa.failed_vms(azure, vault, group, hours=s.hours)
    out.say(f"{SCRIPT}: {len(targets)} VM(s) with a failed backup job in {vault} during the last {s.hours:g} h")
    reports = [aa.fix_one(azure, t, s, error=None, dry_run=True, say=out.say) for t in targets]
    style = render.Style(False)
    for r in reports:
        out.say("")
        out.lines(render.report_text(r, style))
    out.say("")
    out.say(f"Change window, {vault}: " + render.totals_line([c for r in reports for c in r.changes()]))
    out.say(render.dumps({"vault": data, "hours": s.hours, "vms": [render.report_json(r) for r in reports]}))
    failed = any(r.status == "failed" for r in reports)
    return out.finish("failed" if failed else "planned", 1 if failed else 0, [aa.vm_entry(r) for r in reports],
                      vault=data, hours=s.hours)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
