"""Which VMs to work on: those with a failed backup job in a vault, or every VM of a resource group."""

from __future__ import annotations

from .azure import Azure
from .backupjobs import job_target
from .backupreads import vault_jobs
from .target import Target

__all__ = ["failed_vms", "list_vms"]


def failed_vms(azure: Azure, vault: str, group: str, *, hours: float = 24) -> list[Target]:
    """The VMs with a failed backup job in the vault during the last `hours`, from the job list.

    A trigger refused because another backup of the item was running (JobView.refused) is no failure of the VM's:
    a VM whose only failures are such is left out, as Resource Graph discovery leaves it out (discovery.py)."""
    seen: dict[str, Target] = {}
    for job in vault_jobs(azure, vault, group, hours=hours, status="Failed"):
        if job.refused:
            continue
        if (t := job_target(job, azure.subscription, group)) is not None:
            seen.setdefault(t.id.lower(), t)
    return list(seen.values())


def list_vms(azure: Azure, group: str) -> list[Target]:
    """Every VM in a resource group."""
    names = azure.call(lambda: [vm.name for vm in azure.compute.virtual_machines.list(group)])
    return [Target(subscription=azure.subscription, resource_group=group, name=n) for n in names]
