"""The `fleet:N` scenario (issue #13): N VMs across two subscriptions, several resource groups and vaults, some
behind shared NSGs, with a realistic mix of the playbook's causes, each broken VM with one failed backup job.

Deterministic (VM i's cause is a function of i), so counts can be asserted: `FLEET_MIX` says which share of the
fleet gets which cause. The NSG cause comes from three NSGs per subscription that the subnets share (one of them
denies outbound 443 to Internet), as an outage from one NSG change would; the other causes are per VM. The mix
is assumed (no public statistics of backup failure causes exist); the causes and codes are the demo's.
`fleet-failing:N` is the same fleet without the healthy share: every VM has a cause and a failed job (the
benchmark's 500 failing VMs, benchmarks/fleet.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .backup import Vault
from .compute import VM
from .network import NIC, NSG, Subnet

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["FLEET_MIX", "FLEET_SUBSCRIPTIONS", "fleet", "fleet_size", "slots"]

FLEET_SUBSCRIPTIONS = ("00000000-0000-0000-0000-000000000000", "11111111-2222-3333-4444-555555555555")
REGION = "eastus"
GROUPS_PER_SUBSCRIPTION = 3
MAX_VMS = 5000
# cause -> share of every 20 VMs (VM i gets the cause of slot i % 20)
FLEET_MIX: dict[str, int] = {"nsg": 8, "extension": 3, "agent-old": 2, "agent-hung": 2, "healthy": 5}
_SLOTS = [cause for cause, n in FLEET_MIX.items() for _ in range(n)]
_FAILING_SLOTS = [cause for cause in _SLOTS if cause != "healthy"]
_ERROR = {"nsg": "ExtensionSnapshotFailedNoNetwork", "extension": "ExtensionOperationFailedForManagedDisks",
          "agent-old": "UserErrorGuestAgentVersionUnsupported", "agent-hung": "GuestAgentSnapshotTaskStatusError",
          "healthy": None}


def fleet_size(name: str) -> int | None:
    """N for a scenario name `fleet:N` or `fleet-failing:N` (1..5000); None for any other name; ValueError for a
    bad N."""
    m = re.fullmatch(r"(fleet|fleet-failing):(\S*)", name)
    if m is None:
        return None
    if not m.group(2).isdigit() or not 1 <= int(m.group(2)) <= MAX_VMS:
        raise ValueError(f"scenario {name!r}: want {m.group(1)}:N with N from 1 to {MAX_VMS}")
    return int(m.group(2))


def slots(failing: bool) -> list[str]:
    """The cause of each VM by i % len(slots): FLEET_MIX in order, without the healthy share when `failing`."""
    return list(_FAILING_SLOTS if failing else _SLOTS)


def fleet(sim: Simulator, n: int, *, failing: bool | None = None) -> None:
    """Populate `sim` with the N-VM fleet; `failing` (default: the scenario is fleet-failing:N) leaves out the
    healthy VMs."""
    if failing is None:
        failing = sim.scenario_name.startswith("fleet-failing:")
    mix = slots(failing)
    from .scenarios import _deny_internet_443, _snapshot_ext, _ubuntu, _windows  # the demo's builders

    net, comp, bk = sim.network, sim.compute, sim.backup
    seeded = datetime.now(timezone.utc) - timedelta(hours=2)
    shared: dict[str, list[NSG]] = {}
    vaults: dict[tuple[str, str], Vault] = {}
    subnets: dict[tuple[str, str, int], Subnet] = {}
    for sub in FLEET_SUBSCRIPTIONS:
        group = "rg-fleet-net"
        shared[sub] = [net.add(NSG(f"nsg-fleet-{k}", group, sub, REGION,
                                   rules={"deny-internet-443": _deny_internet_443()} if k == 0 else {}))
                       for k in range(3)]
    for i in range(n):
        sub = FLEET_SUBSCRIPTIONS[i % len(FLEET_SUBSCRIPTIONS)]
        s = i % len(FLEET_SUBSCRIPTIONS)
        group = f"rg-fleet-{(i // len(FLEET_SUBSCRIPTIONS)) % GROUPS_PER_SUBSCRIPTION}"
        cause = mix[i % len(mix)]
        block = i // 250  # 250 hosts to a subnet
        g = int(group.rsplit("-", 1)[1])
        nsgs = shared[sub]
        key = (sub, group, block)
        if key not in subnets:  # the subnet's NSG: the denying one for the NSG cause's subnets, else an open one
            subnets[key] = net.add(Subnet("vnet-fleet", f"{group}-{block}", "rg-fleet-net", sub,
                                          f"10.{s}.{g * 32 + block}.0/24", None))
        subnet = subnets[key]
        nic = net.add(NIC(f"vm-fleet-{i:04d}-nic", group, sub, REGION, f"{subnet.prefix.rsplit('.', 1)[0]}.{4 + i % 250}",
                          subnet.id, (nsgs[0] if cause == "nsg" else nsgs[1 + i % 2]).id))
        linux = cause != "agent-hung"
        guest = _ubuntu() if linux else _windows("Windows Server 2022 Datacenter", agent_hung=True)
        if cause == "agent-old":
            guest.agent_version = "2.2.10"
        vm = comp.add(VM(f"vm-fleet-{i:04d}", group, sub, REGION, guest, [nic.id]))
        nic.vm_id = vm.id
        vm.extensions["vmsnapshotlinux" if linux else "vmsnapshot"] = _snapshot_ext(
            linux, "Failed" if cause == "extension" else "Succeeded")
        vkey = (sub, group)
        if vkey not in vaults:
            vaults[vkey] = bk.add_vault(Vault(f"rsv-{group}", group, sub, REGION))
        item = bk.protect(vaults[vkey], vm)
        bk.start_job(vaults[vkey], item, error=None, user=False, when=seeded - timedelta(days=1), finished=True)
        error = _ERROR[cause]
        assert bk.verdict(vm) == error, f"fleet seed drifted: VM {i} ({cause}) would fail with {bk.verdict(vm)}"
        if error:
            bk.start_job(vaults[vkey], item, error=error, user=False, when=seeded + timedelta(seconds=i),
                         finished=True)
