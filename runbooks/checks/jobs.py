"""Checks of the job and extension-state causes (C7 a backup already in progress, C5.stuck an extension stuck in deletion or a VM in provisioning state Failed): issue #14."""

from __future__ import annotations

from datetime import datetime, timezone

from remediations.backupjobs import when
from remediations.facts import Facts

from ..finding import Check, Finding

__all__ = ["CHECKS"]


def _hours(start: datetime | None) -> str:
    if start is None:
        return "for an unknown time"
    return f"for {max((datetime.now(timezone.utc) - start).total_seconds() / 3600.0, 0.0):.1f} h"


def _c7_job(f: Facts) -> Finding:
    """Present when a backup job of the VM still runs (InProgress or Cancelling) in the vault protecting it."""
    if f.backup is None:
        return Finding("C7.job", "absent", f"{f.vm.name} is not protected by Azure Backup")
    job = next((j for j in f.jobs if j.active), None)
    if job is None:
        return Finding("C7.job", "absent", f"no backup job of {f.vm.name} is running in vault {f.backup.vault}")
    return Finding("C7.job", "present", f"backup job {job.id} of {f.vm.name} is {job.status} in vault "
                                        f"{f.backup.vault}: started {when(job.start)}, running {_hours(job.start)}")


def _c7_vault(f: Facts) -> Finding:
    """Present when a job of the VM still runs in another (old) vault: cancel-backup-job's preview reads the vaults."""
    if f.backup is None:
        return Finding("C7.vault", "absent", f"{f.vm.name} is not protected by Azure Backup")
    own = next((j for j in f.jobs if j.active), None)
    if own is not None:
        return Finding("C7.vault", "absent", f"the job holding {f.vm.name} ({own.id}) runs in its own vault "
                                             f"{f.backup.vault} (C7.job)")
    return Finding("C7.vault", "unknown", f"no backup job of {f.vm.name} runs in vault {f.backup.vault}: the "
                                          "subscription's other vaults are read for one", probe="cancel-backup-job")


def _c5_stuck(f: Facts) -> Finding:
    """Present when the backup extension is stuck Deleting, or the VM is in provisioning state Failed with it Failed."""
    vm = f.vm
    ext = vm.backup_extension()
    vm_state = str((vm.raw.get("properties") or {}).get("provisioningState") or "Unknown")
    if ext is None:
        extra = (f"; {vm.name} is in provisioning state {vm_state}: another extension's failure, to be fixed there"
                 if vm_state.lower() == "failed" else "")
        return Finding("C5.stuck", "absent", f"backup extension not installed{extra}")
    state = ext.state or "Unknown"
    said = f"{ext.name} ({ext.type} {ext.version}) provisioning state {state}; {vm.name} provisioning state {vm_state}"
    if state.lower() == "deleting":
        return Finding("C5.stuck", "present", f"{said}: the extension is stuck in deletion")
    if vm_state.lower() == "failed" and state.lower() == "failed":
        return Finding("C5.stuck", "present", f"{said}: the backup extension's failure put the VM in Failed state")
    if vm_state.lower() == "failed":
        return Finding("C5.stuck", "absent", f"{said}: the backup extension is not what failed; fix the failed "
                                             "extension named in the VM's instance view")
    return Finding("C5.stuck", "absent", said)


CHECKS: dict[str, Check] = {"C7.job": _c7_job, "C7.vault": _c7_vault, "C5.stuck": _c5_stuck}
