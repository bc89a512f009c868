"""Facts: one immutable snapshot of what ARM says about a VM, gathered with as few reads as possible.

For a running one-NIC VM the reads are: the VM with its instance view; the NIC's effective NSGs
(one POST, and its long-running-operation poll, returning the NIC's and the subnet's rules
together); the backup status lookup (vault and item); the vault's recent backup jobs. Two reads
are made only when they can change a verdict: the region's service tags (only when an outbound
rule for TCP 443 names specific prefixes or tags rather than `*`/`Internet`) and
Resource Health (only when the VM shows PowerState/stopped, to tell a guest shut down from inside,
annotated VirtualMachineStoppedInternally, from a stop through the platform). Service tags are
cached per process and region, so a fleet reads them once.
A stopped VM has no effective NSGs: then the NIC, its subnet and each NSG are read instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .azure import Azure
from .backupjobs import JobView, for_vm, job_target, job_view, jobs_filter
from .netaddr import TagResolver
from .netrules import NsgView, Rule, port_in
from .reads import VmView, read_health, read_vm
from .target import Target

__all__ = [
    "BackupItem",
    "Facts",
    "backup_item",
    "gather",
    "recent_jobs",
    "service_tags",
]

_tags_cache: dict[tuple[str, str, str], TagResolver] = {}
_tags_lock = threading.Lock()


@dataclass(frozen=True)
class BackupItem:
    """Where a VM is protected: vault (name, group, id), container and item names."""

    vault_id: str
    vault: str
    vault_group: str
    container: str
    item: str
    policy: str | None = None



@dataclass(frozen=True)
class Facts:
    """Everything diagnosis needs about one VM; cause checks read this, never Azure."""

    target: Target
    vm: VmView
    nsgs: tuple[NsgView, ...] | None
    tags: TagResolver | None
    health: dict[str, Any] | None
    backup: BackupItem | None
    jobs: tuple[JobView, ...] = ()

    @property
    def last_failed(self) -> JobView | None:
        """The VM's most recent failed backup job, a trigger refused while another backup ran excepted."""
        return next((j for j in self.jobs if j.status == "Failed" and not j.refused), None)

    @property
    def latest(self) -> JobView | None:
        """The VM's most recent backup job of any status, a trigger refused while another backup ran excepted."""
        return next((j for j in self.jobs if not j.refused), None)


def service_tags(azure: Azure, region: str) -> TagResolver:
    """The region's service tags as a resolver, read once per process (endpoint, subscription, region)."""
    key = (azure.config.endpoint, azure.subscription, region.lower())
    with _tags_lock:
        if key in _tags_cache:
            return _tags_cache[key]
    result = azure.call(azure.network.service_tags.list, region)
    resolver = TagResolver.from_service_tags(result.as_dict())
    with _tags_lock:
        _tags_cache[key] = resolver
    return resolver


def backup_item(azure: Azure, vm: VmView) -> BackupItem | None:
    """Where the VM is protected (the backup-status lookup), or None when it is not."""
    from azure.mgmt.recoveryservicesbackup.models import BackupStatusRequest

    status = azure.call(azure.backup.backup_status.get, vm.location,
                        BackupStatusRequest(resource_type="VM", resource_id=vm.id)).as_dict()
    vault_id = status.get("vaultId")
    if str(status.get("protectionStatus", "")).lower() != "protected" or not vault_id:
        return None
    parts = vault_id.split("/")
    group = parts[parts.index("resourceGroups") + 1] if "resourceGroups" in parts else ""
    return BackupItem(vault_id, parts[-1], group, status.get("containerName") or "",
                      status.get("protectedItemName") or "", status.get("policyName"))


def recent_jobs(azure: Azure, item: BackupItem, vm_name: str, *, days: int = 7) -> tuple[JobView, ...]:
    """The VM's backup jobs of the last `days` days, newest first (one list call, paged)."""
    flt = jobs_filter(datetime.now(timezone.utc), hours=24 * days)

    def fetch() -> list[JobView]:
        return [job_view(j.as_dict()) for j in azure.backup.backup_jobs.list(item.vault, item.vault_group, filter=flt)]

    return tuple(for_vm(azure.call(fetch), vm_name, item.container))


_UNIFORM = {"*", "any", "0.0.0.0/0", "internet", "virtualnetwork"}


def _needs_tags(nsgs: tuple[NsgView, ...], ports: tuple[int, ...]) -> bool:
    """Whether the verdict on Storage egress depends on which public address: only then are tags read.

    Storage addresses are public. A rule whose destinations are all `*`/`Internet`/`VirtualNetwork`
    treats every public address alike, so such rules decide without the Service Tags API.
    """
    def depends(r: Rule) -> bool:
        return (r.direction == "Outbound" and not r.default and r.protocol in ("Tcp", "*")
                and any(port_in(spec, p) for spec in r.dest_ports for p in ports)
                and any(d.lower() not in _UNIFORM for d in r.dest_prefixes))
    return any(depends(r) for n in nsgs for r in n.rules)


def _nsgs_effective(azure: Azure, nic_id: str) -> tuple[NsgView, ...]:
    group, name = nic_id.split("/")[4], nic_id.rsplit("/", 1)[-1]

    def fetch() -> Any:
        return azure.network.network_interfaces.begin_list_effective_network_security_groups(group, name).result()

    value = (azure.call(fetch).as_dict() or {}).get("value") or []
    return tuple(NsgView.from_arm(v, "subnet" if "subnet" in (v.get("association") or {})
                                  and "networkInterface" not in (v.get("association") or {}) else "nic")
                 for v in value)


def _nsgs_by_get(azure: Azure, nic_id: str) -> tuple[NsgView, ...]:
    group, name = nic_id.split("/")[4], nic_id.rsplit("/", 1)[-1]
    nic = azure.call(azure.network.network_interfaces.get, group, name).as_dict()
    props = nic.get("properties") or {}
    ids: list[tuple[str, str]] = []
    if (props.get("networkSecurityGroup") or {}).get("id"):
        ids.append((props["networkSecurityGroup"]["id"], "nic"))
    for ipc in props.get("ipConfigurations") or []:
        sid = ((ipc.get("properties") or {}).get("subnet") or {}).get("id")
        if sid:
            s = sid.split("/")
            subnet = azure.call(azure.network.subnets.get, s[4], s[8], s[10]).as_dict()
            nsg = ((subnet.get("properties") or {}).get("networkSecurityGroup") or {}).get("id")
            if nsg and all(nsg.lower() != i.lower() for i, _ in ids):
                ids.append((nsg, "subnet"))
            break
    views = []
    for nsg_id, scope in ids:
        p = nsg_id.split("/")
        views.append(NsgView.from_arm(azure.call(azure.network.network_security_groups.get, p[4], p[8]).as_dict(),
                                      scope))  # type: ignore[arg-type]
    return tuple(views)


def gather(azure: Azure, target: Target, *, jobs: bool = True, ports: tuple[int, ...] = (443,)) -> Facts:
    """Read the VM, its NSGs, (conditionally) tags and health, and its backup item and jobs."""
    vm = read_vm(azure, target)
    nsgs: tuple[NsgView, ...] | None = None
    if vm.nic_ids:
        seen: dict[str, NsgView] = {}
        for nic in vm.nic_ids:  # every NIC: backup traffic may leave through any of them
            for view in (_nsgs_effective(azure, nic) if vm.running else _nsgs_by_get(azure, nic)):
                seen.setdefault(view.id.lower(), view)
        nsgs = tuple(seen.values())
    tags = service_tags(azure, vm.location) if nsgs and _needs_tags(nsgs, ports) else None
    health = None
    if vm.power_state == "stopped":  # from inside the guest or through the platform: Resource Health says which
        health = read_health(azure, vm.id)
    item = backup_item(azure, vm)
    history = recent_jobs(azure, item, vm.name) if item and jobs else ()
    return Facts(target, vm, nsgs, tags, health, item, history)


def failed_vms(azure: Azure, vault: str, group: str, *, hours: float = 24) -> list[Target]:
    """The VMs with a failed backup job in the vault during the last `hours`, from the job list."""
    flt = jobs_filter(datetime.now(timezone.utc), hours=hours, status="Failed")

    def fetch() -> list[JobView]:
        return [job_view(j.as_dict()) for j in azure.backup.backup_jobs.list(vault, group, filter=flt)]

    seen: dict[str, Target] = {}
    for job in azure.call(fetch):
        if (t := job_target(job, azure.subscription, group)) is not None:
            seen.setdefault(t.id.lower(), t)
    return list(seen.values())


def list_vms(azure: Azure, group: str) -> list[Target]:
    """Every VM in a resource group."""
    names = azure.call(lambda: [vm.name for vm in azure.compute.virtual_machines.list(group)])
    return [Target(subscription=azure.subscription, resource_group=group, name=n) for n in names]
