"""Facts: one immutable snapshot of what ARM says about a VM, gathered with as few reads as possible.

For a running one-NIC VM the reads are: the VM with its instance view; the NIC's effective NSGs
(one POST, and its long-running-operation poll, returning the NIC's and the subnet's rules
together); the backup status lookup (vault and item); the vault's recent backup jobs. Two reads
are made only when they can change a verdict: the region's service tags (only when an outbound
rule for a backup port names specific prefixes or tags rather than `*`/`Internet`) and
Resource Health (only when the VM shows PowerState/stopped, to tell a guest shut down from inside,
annotated VirtualMachineStoppedInternally, from a stop through the platform). Service tags are
cached per process and region, so a fleet reads them once. The protected item (its protectionState) is
read only when the latest failed job says the VM is not actively protected (UserErrorBcmDatasourceNotPresent).
A stopped VM has no effective NSGs: then each NIC, the subnet of each of its IP configurations and
each NSG are read instead. The reads themselves are shared: `netreads`, `backupreads`, `reads`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .azure import Azure
from .backupjobs import JobView, latest_failure
from .backupreads import BackupItem, backup_item, protection_state, recent_jobs
from .errors import arm_error
from .netaddr import TagResolver, UnknownTag
from .netreads import effective_routes, nsgs_by_get, nsgs_effective, service_tags
from .netrules import NsgView, Rule, port_in, storage_tag
from .reads import VmView, read_health, read_vm
from .routes import RouteFacts, storage_path
from .target import Target
from .verdicts import BACKUP_PORTS

if TYPE_CHECKING:  # the guest proxy probe (Run Command) is made by the engine, only for runbooks that need it
    from .actions.proxy import ProxyProbe

__all__ = ["NOT_ACTIVE_CODES", "Facts", "Guest", "gather", "read_routes"]

# A failed job with this code makes gather read the protected item's protectionState (one GET, else never made).
NOT_ACTIVE_CODES = frozenset({"UserErrorBcmDatasourceNotPresent"})


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
    proxy: ProxyProbe | None = None  # the guest's proxy (C1.proxy); None: not probed
    routes: RouteFacts | None = None  # the NIC's path to Storage (C1.route); None: not read (see read_routes)

    @property
    def last_failed(self) -> JobView | None:
        """The VM's most recent failed backup job, a trigger refused while another backup ran excepted."""
        return latest_failure(self.jobs)

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


Guest = Callable[[VmView, "tuple[JobView, ...]"], "ProxyProbe | None"]


def gather(azure: Azure, target: Target, *, jobs: bool = True, ports: tuple[int, ...] = BACKUP_PORTS,
           guest: Guest | None = None) -> Facts:
    """Read the VM, then at once its NSGs (and, conditionally, tags), its backup item and jobs, and (stopped) health.

    The critical path: only the VM read is needed before the others start, so they run concurrently (three threads
    at most, each request within the process's ARM budget: budget.py) and the SDK modules they use load while the
    VM read is in flight (Azure.warm). The reads made are the same as one after the other.
    `guest` (the engine's in-guest probe, which needs the failed job's error but never the NSGs) is called with the
    VM and its jobs as soon as the backup reads end, beside the network reads still in flight; it answers Facts.proxy.
    """
    azure.compute  # noqa: B018 - its SDK loads first: the VM read is the first request
    azure.warm("backup", "network")
    vm = read_vm(azure, target)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gather") as pool:
        network = pool.submit(contextvars.copy_context().run, _network, azure, vm, ports)
        stopped = pool.submit(contextvars.copy_context().run, read_health, azure, vm.id) \
            if vm.power_state == "stopped" else None  # from inside the guest or through the platform: it says which
        item, history = _backup(azure, vm, jobs=jobs)
        proxy = guest(vm, history) if guest is not None else None
        nsgs, tags = network.result()
        health = stopped.result() if stopped is not None else None
    return Facts(target, vm, nsgs, tags, health, item, history, proxy)


def _network(azure: Azure, vm: VmView, ports: tuple[int, ...]) -> tuple[tuple[NsgView, ...] | None, TagResolver | None]:
    """The NSGs on the VM's way out (every NIC: backup traffic may leave through any), and the tags if they matter."""
    if not vm.nic_ids:
        return None, None
    seen: dict[str, NsgView] = {}
    for nic in vm.nic_ids:
        for view in (nsgs_effective(azure, nic) if vm.running else nsgs_by_get(azure, nic)):
            seen.setdefault(view.id.lower(), view)
    nsgs = tuple(seen.values())
    return nsgs, service_tags(azure, vm.location) if nsgs and _needs_tags(nsgs, ports) else None


def _backup(azure: Azure, vm: VmView, *, jobs: bool) -> tuple[BackupItem | None, tuple[JobView, ...]]:
    """Where the VM is protected, its recent jobs, and (only when the latest failure says so) its protectionState."""
    item = backup_item(azure, vm)
    history = recent_jobs(azure, item, vm.name) if item and jobs else ()
    failed = latest_failure(history)
    if item is not None and failed is not None and failed.error_code in NOT_ACTIVE_CODES:  # C13.datasource's evidence
        item = replace(item, state=protection_state(azure, item))
    return item, history


def read_routes(azure: Azure, facts: Facts, *, no_network: str | None = None) -> RouteFacts:
    """The primary NIC's effective routes (one POST and its poll) judged for the region's Storage tag (cached read).

    Made only when a runbook needs it (runbooks/engine.py): a VM whose NSG check explains its failure is spared.
    `no_network` is the error code with which the backup extension reported that it could not reach Storage.
    """
    vm = facts.vm
    if not vm.nic_ids:
        return RouteFacts(skipped=f"{vm.name} has no network interface", no_network=no_network)
    refs = ((vm.raw.get("properties") or {}).get("networkProfile") or {}).get("networkInterfaces") or []
    primary = [r["id"] for r in refs if r.get("id") and (r.get("properties") or {}).get("primary")]
    nic = (primary or list(vm.nic_ids))[0]  # traffic to the Internet leaves by the primary NIC (its default gateway)
    resolver = facts.tags or service_tags(azure, vm.location)
    try:
        tag = storage_tag(resolver, vm.location)
    except UnknownTag as e:
        return RouteFacts(skipped=f"cannot judge the routes to Storage: {e}", no_network=no_network)
    name = nic.rsplit("/", 1)[-1]
    try:
        routes = effective_routes(azure, nic)
    except Exception as e:  # refused (403), or the VM stopped meanwhile: C1.route stays unknown, with the reason
        if not type(e).__module__.startswith("azure."):
            raise
        err = arm_error(e)
        return RouteFacts(nic=name, skipped=f"the effective routes of {name} could not be read ({err.code}: "
                                            f"{err.message})", no_network=no_network)
    return RouteFacts(nic=name, path=storage_path(routes, tag, resolver.prefixes(tag), resolver), no_network=no_network)
