"""Backup reads shared by diagnosis, trigger-backup and the Automation adapter: where a VM is protected, its
recent backup jobs, a vault's jobs, one job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .armid import parse_resource_id
from .azure import Azure
from .backupjobs import JobView, arm_container, for_vm, job_view, jobs_filter
from .reads import VmView

__all__ = ["BackupItem", "backup_item", "backup_job", "protection_state", "recent_jobs", "vault_jobs"]


@dataclass(frozen=True)
class BackupItem:
    """Where a VM is protected: vault (name, group, id), container and item names."""

    vault_id: str
    vault: str
    vault_group: str
    container: str
    item: str
    policy: str | None = None
    state: str | None = None  # the protected item's protectionState; read only when a verdict needs it (facts.py)


def backup_item(azure: Azure, vm: VmView) -> BackupItem | None:
    """Where the VM is protected (the backup-status lookup), or None when it is not."""
    client = azure.backup  # first: its SDK may still be loading in another thread (Azure.warm); then its models
    from azure.mgmt.recoveryservicesbackup.models import BackupStatusRequest

    status = azure.call(client.backup_status.get, vm.location,
                        BackupStatusRequest(resource_type="VM", resource_id=vm.id)).as_dict()
    vault_id = status.get("vaultId")
    if str(status.get("protectionStatus", "")).lower() != "protected" or not vault_id:
        return None
    vault = parse_resource_id(vault_id, type="Microsoft.RecoveryServices/vaults")
    return BackupItem(vault_id, vault.name, vault.resource_group, status.get("containerName") or "",
                      status.get("protectedItemName") or "", status.get("policyName"))


def protection_state(azure: Azure, item: BackupItem) -> str | None:
    """The protected item's protectionState (Protected, ProtectionStopped, ProtectionPaused, ...): one GET."""
    it = azure.call(azure.backup.protected_items.get, item.vault, item.vault_group, "Azure",
                    arm_container(item.container), item.item).as_dict()
    return (it.get("properties") or {}).get("protectionState")


def recent_jobs(azure: Azure, item: BackupItem, vm_name: str, *, days: int = 7) -> tuple[JobView, ...]:
    """The VM's backup jobs of the last `days` days, newest first (one list call, paged)."""
    return tuple(for_vm(vault_jobs(azure, item.vault, item.vault_group, hours=24 * days), vm_name, item.container))


def vault_jobs(azure: Azure, vault: str, group: str, *, hours: float = 24, status: str | None = None,
               now: datetime | None = None) -> list[JobView]:
    """The vault's IaaS VM backup jobs started in the `hours` before `now` (optionally of one status), all pages."""
    flt = jobs_filter(now or datetime.now(timezone.utc), hours=hours, status=status)
    return azure.call(lambda: [job_view(j.as_dict()) for j in azure.backup.backup_jobs.list(vault, group, filter=flt)])


def backup_job(azure: Azure, vault: str, group: str, job_id: str) -> JobView:
    """One backup job (JobDetails_Get) as a JobView; its REST JSON (operation, …) is in `.raw`."""
    return job_view(azure.call(azure.backup.job_details.get, vault, group, job_id).as_dict())
