"""Facts: one immutable snapshot of what ARM says about a VM, gathered with as few reads as possible.

For a running one-NIC VM the reads are: the VM with its instance view; the NIC's effective NSGs
(one POST, and its long-running-operation poll, returning the NIC's and the subnet's rules
together); the backup status lookup (vault and item); the vault's recent backup jobs. Two reads
are made only when they can change a verdict: the region's service tags (only when an outbound
rule for a backup port names specific prefixes or tags rather than `*`/`Internet`) and
Resource Health (only when the VM shows PowerState/stopped, to tell a guest shut down from inside,
annotated VirtualMachineStoppedInternally, from a stop through the platform). Service tags are
cached per process and region, so a fleet reads them once.
A stopped VM has no effective NSGs: then each NIC, the subnet of each of its IP configurations and
each NSG are read instead. The reads themselves are shared: `netreads`, `backupreads`, `reads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .azure import Azure
from .backupjobs import JobView
from .backupreads import BackupItem, backup_item, recent_jobs
from .netaddr import TagResolver
from .netreads import nsgs_by_get, nsgs_effective, service_tags
from .netrules import NsgView, Rule, port_in
from .reads import VmView, read_health, read_vm
from .target import Target
from .verdicts import BACKUP_PORTS

__all__ = ["Facts", "gather"]


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


def gather(azure: Azure, target: Target, *, jobs: bool = True, ports: tuple[int, ...] = BACKUP_PORTS) -> Facts:
    """Read the VM, its NSGs, (conditionally) tags and health, and its backup item and jobs."""
    vm = read_vm(azure, target)
    nsgs: tuple[NsgView, ...] | None = None
    if vm.nic_ids:
        seen: dict[str, NsgView] = {}
        for nic in vm.nic_ids:  # every NIC: backup traffic may leave through any of them
            for view in (nsgs_effective(azure, nic) if vm.running else nsgs_by_get(azure, nic)):
                seen.setdefault(view.id.lower(), view)
        nsgs = tuple(seen.values())
    tags = service_tags(azure, vm.location) if nsgs and _needs_tags(nsgs, ports) else None
    health = None
    if vm.power_state == "stopped":  # from inside the guest or through the platform: Resource Health says which
        health = read_health(azure, vm.id)
    item = backup_item(azure, vm)
    history = recent_jobs(azure, item, vm.name) if item and jobs else ()
    return Facts(target, vm, nsgs, tags, health, item, history)
