"""The `storm` scenario (issue #13): one NSG change fails the backups of 150 VMs at once; the demo fleet beside them.

The demo (its Automation account, relay and runbooks included), plus 150 Linux VMs in rg-storm behind three
NSGs (VM i on nsg-storm-(i % 3), each NSG denying outbound 443 to Internet: the change that broke them), all
protected in rsv-storm-(i % 3) with a good backup a day old and one failed job ExtensionSnapshotFailedNoNetwork each;
the first TWICE of them failed twice (two scheduled jobs an hour apart), as a VM whose retry also failed does,
so they raise two alerts. Deterministic, so a test can count exactly. The shape is assumed (an outage of this
kind is the issue's example); each piece is the demo's (COVERAGE.md cites those).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .backup import Vault
from .network import NSG, Subnet

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["STORM_ERROR", "STORM_GROUP", "STORM_NSGS", "STORM_VAULT", "STORM_VMS", "TWICE", "storm", "storm_vm"]

STORM_VMS = 150
STORM_NSGS = 3
TWICE = 20  # VMs with two failed jobs (two alerts)
STORM_GROUP = "rg-storm"
STORM_VAULT = "rsv-storm-{}"  # .format(k) for k in range(STORM_NSGS)
STORM_ERROR = "ExtensionSnapshotFailedNoNetwork"


def storm_vm(i: int) -> str:
    """The name of storm VM i."""
    return f"vm-storm-{i:03d}"


def storm(sim: Simulator) -> None:
    """The demo fleet, then the storm's 150 VMs, 3 NSGs and vault."""
    from .compute import VM
    from .network import NIC
    from .scenarios import (
        DEMO_SUBSCRIPTION,
        REGION,
        _deny_internet_443,
        _snapshot_ext,
        _ubuntu,
        demo,
        failed_at,
    )

    demo(sim)
    sub, net = DEMO_SUBSCRIPTION, sim.network
    nsgs = [net.add(NSG(f"nsg-storm-{k}", STORM_GROUP, sub, REGION, rules={"deny-internet-443": _deny_internet_443()}))
            for k in range(STORM_NSGS)]
    vaults = [sim.backup.add_vault(Vault(STORM_VAULT.format(k), STORM_GROUP, sub, REGION)) for k in range(STORM_NSGS)]
    seeded = datetime.now(timezone.utc) - timedelta(hours=2)
    subnets = [net.add(Subnet("vnet-storm", f"storm-{b}", STORM_GROUP, sub, f"10.20.{b}.0/24", None))
               for b in range((STORM_VMS + 99) // 100)]
    for i in range(STORM_VMS):
        subnet = subnets[i // 100]
        nic = net.add(NIC(f"{storm_vm(i)}-nic", STORM_GROUP, sub, REGION, f"10.20.{i // 100}.{4 + i % 100}", subnet.id,
                          nsgs[i % STORM_NSGS].id))
        vm = sim.compute.add(VM(storm_vm(i), STORM_GROUP, sub, REGION, _ubuntu(), [nic.id]))
        nic.vm_id = vm.id
        vm.extensions["vmsnapshotlinux"] = _snapshot_ext(True)
        vault = vaults[i % STORM_NSGS]
        item = sim.backup.protect(vault, vm)
        sim.backup.start_job(vault, item, error=None, user=False, when=seeded - timedelta(days=1), finished=True)
        if i < TWICE:
            failed_at(sim, vault, item, STORM_ERROR, seeded - timedelta(hours=1) + timedelta(seconds=i))
        failed_at(sim, vault, item, STORM_ERROR, seeded + timedelta(seconds=i))
