"""Automation test helpers: the demo deployment's IDs, sample payloads templated for a VM, and checks on runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from armsim import DEMO_SUBSCRIPTION, Server
from support.demo import RG, vm_id
from support.runs import AA_DIR, Run

__all__ = ["ACCOUNT_ID", "FIX", "PREVIEW", "RG", "SAMPLES", "SAMPLE_JOB", "SAMPLE_VM", "VAULT_ID", "clean",
           "failed_job", "proved", "sample", "vm_id"]

SAMPLES = AA_DIR / "samples"
SAMPLE_VM = "vm-nsg-blocked"
SAMPLE_JOB = "11111111-2222-3333-4444-555555555555"
VAULT_ID = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/rsv-demo"
ACCOUNT_ID = (f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Automation/"
              "automationAccounts/aa-backup-runbooks")
FIX = "fix_backup_failure.py"
PREVIEW = "preview_change_window.py"


def failed_job(server: Server, vm: str) -> str:
    """The id of the VM's latest failed backup job in armsim."""
    vault = server.sim.backup.vaults[VAULT_ID.lower()]
    return next(j.id for j in reversed(vault.jobs) if j.item.vm.name == vm and j.status == "Failed")


def sample(name: str, vm: str = SAMPLE_VM, job: str = SAMPLE_JOB) -> str:
    """A sample payload's text, templated for one VM and job."""
    return (SAMPLES / name).read_text(encoding="utf-8").replace(SAMPLE_VM, vm).replace(SAMPLE_JOB, job)


def proved(server: Server, vm: str, since: datetime) -> list[Any]:
    """The succeeded on-demand backup jobs of `vm` that started after `since`."""
    vault = server.sim.backup.vaults[VAULT_ID.lower()]
    return [j for j in vault.jobs if j.item.vm.name == vm and j.user_triggered and j.status == "Completed"
            and j.started >= since]


def clean(run: Run) -> None:
    """Automation has no stderr stream for Python: nothing may go there; the summary line is well-formed."""
    assert run.stderr == "", run.stderr
    assert {"status", "script", "mode", "vms", "exit_code"} <= set(run.summary)
    assert run.summary["exit_code"] == run.code
