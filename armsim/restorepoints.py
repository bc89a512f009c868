"""Microsoft.Compute restorePointCollections (GET, list, DELETE) and the two backup links of issue #14 they carry.

Azure Backup keeps a VM's instant restore points in a restore point collection in its own resource group,
AzureBackupRG_<Geo>_<number> (e.g. AzureBackupRG_northeurope_1), and "only 18 instant RPs can be associated with a
VM at any given time" ("Troubleshoot Azure Backup failures caused by agent or extension issues",
UserErrorRpCollectionLimitReached; lock-resources.md: "The service supports a maximum of 18 restore points. When
locked, the backup service can't clean up restore points"). Shapes follow the REST examples
RestorePointCollection_Get.json / _ListBySubscription.json (azure-rest-api-specs, Compute 2024-07-01); with
`$expand=restorePoints` the collection lists its restore points. A delete is a long-running operation. The 2018
guide deleted one with api-version 2017-03-30, the oldest served.

The causal links (`verdict`, before the power check):
1. A ReadOnly lock on the VM, its group or subscription -> UserErrorResourceIsInLockedState.
2. The VM's collection (found by its source VM id, never by name) holds RP_CAP restore points ->
   UserErrorRpCollectionLimitReached.
What a backup does to the collection (`on_backup`, assumed where the guide is silent): a backup refused at the cap
whose cleanup no lock blocks starts the cleanup, which armsim carries out at once, keeping the newest RETAINED points
(the guide: "Expect this on-demand operation to fail the first time. However, it will ensure automatic cleanup";
Azure cleans up "after few hours"). A backup that succeeds adds a restore point (creating a new collection when the
old one was deleted: "the next backup creates a new one") and, unless a lock blocks it, the cleanup keeps RETAINED.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .arm import Request, Response, iso, not_found
from .routing import Route

if TYPE_CHECKING:
    from .compute import VM
    from .locks import Lock
    from .sim import Simulator

__all__ = ["LIMIT_CODE", "LOCKED_CODE", "RETAINED", "ROUTES", "RP_CAP", "RestorePointCollection", "RestorePointModel",
           "on_backup", "seed_demo", "verdict"]

RP_CAP = 18  # instant restore points per VM (the guide; lock-resources.md)
RETAINED = 2  # kept by a cleanup: the default policy's instant-restore retention of 2 days, one backup a day (assumed)
LOCKED_CODE = "UserErrorResourceIsInLockedState"
LIMIT_CODE = "UserErrorRpCollectionLimitReached"


@dataclass
class RestorePointCollection:
    """One restore point collection of a VM, with the creation times of its restore points."""

    name: str
    group: str
    subscription: str
    location: str
    source_vm_id: str
    points: list[datetime] = field(default_factory=list)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Compute/restorePointCollections/{self.name}")

    def body(self, *, expand: bool = False) -> dict[str, Any]:
        """The collection as RestorePointCollections_Get returns it (with its restore points when expanded)."""
        props: dict[str, Any] = {"source": {"id": self.source_vm_id, "location": self.location},
                                 "restorePointCollectionId": self.uid, "provisioningState": "Succeeded"}
        if expand:
            props["restorePoints"] = [{
                "name": f"{self.name}_{i + 1}", "id": f"{self.id}/restorePoints/{self.name}_{i + 1}",
                "type": "Microsoft.Compute/restorePointCollections/restorePoints",
                "properties": {"consistencyMode": "ApplicationConsistent", "timeCreated": iso(t),
                               "provisioningState": "Succeeded"}} for i, t in enumerate(self.points)]
        return {"name": self.name, "id": self.id, "type": "Microsoft.Compute/restorePointCollections",
                "location": self.location, "tags": {}, "properties": props}


class RestorePointModel:
    """Every restore point collection of one simulator, and the VMs whose backups keep one."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.collections: dict[str, RestorePointCollection] = {}
        self.kept_for: dict[str, tuple[str, str, str, str]] = {}  # VM id -> (sub, group, location, name prefix)
        self.serial = 0

    def add(self, coll: RestorePointCollection) -> RestorePointCollection:
        """Register a collection; backups of its VM go on keeping one in that group."""
        self.collections[coll.id.lower()] = coll
        prefix = coll.name.rsplit("_", 1)[0] if coll.name.rsplit("_", 1)[-1].isdigit() else coll.name
        self.kept_for[coll.source_vm_id.lower()] = (coll.subscription, coll.group, coll.location, prefix)
        return coll

    def for_vm(self, vm_id: str) -> RestorePointCollection | None:
        """The collection whose source is this VM (the newest, if several)."""
        found = [c for c in self.collections.values() if c.source_vm_id.lower() == vm_id.lower()]
        return found[-1] if found else None

    def cleanup_blockers(self, coll: RestorePointCollection) -> list[Lock]:
        """The locks (any level) that stop the service deleting the collection's old restore points."""
        return self.sim.locks.covering(coll.id)

    def get(self, p: dict[str, str]) -> RestorePointCollection:
        """The collection named by route params, or 404."""
        rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
               f"/providers/Microsoft.Compute/restorePointCollections/{p['restorePointCollectionName']}")
        coll = self.collections.get(rid.lower())
        if coll is None:
            raise not_found("Microsoft.Compute/restorePointCollections", p["restorePointCollectionName"],
                            p["resourceGroupName"])
        return coll


def verdict(sim: Simulator, vm: VM) -> str | None:
    """The lock or restore-point code a backup of `vm` fails with now, whatever its power state; None if neither."""
    if sim.locks.read_only(vm.id):
        return LOCKED_CODE
    coll = sim.restore_points.for_vm(vm.id)
    if coll is not None and len(coll.points) >= RP_CAP:
        return LIMIT_CODE
    return None


def on_backup(sim: Simulator, vm: VM, error: str | None, when: datetime) -> None:
    """What a backup job started at `when` does to the VM's restore points (see the module docstring)."""
    model = sim.restore_points
    coll = model.for_vm(vm.id)
    if error == LIMIT_CODE:
        if coll is not None and not model.cleanup_blockers(coll):
            coll.points = sorted(coll.points)[-RETAINED:]  # the first run fails; its cleanup runs
        return
    if error is not None:
        return
    if coll is None:
        kept = model.kept_for.get(vm.id.lower())
        if kept is None:
            return  # armsim models collections only for VMs seeded with one
        sub, group, location, prefix = kept
        model.serial += 1
        coll = model.add(RestorePointCollection(f"{prefix}_{model.serial}", group, sub, location, vm.id))
    coll.points.append(when)
    if not model.cleanup_blockers(coll):
        coll.points = sorted(coll.points)[-RETAINED:]


def seed_points(n: int, newest: datetime) -> list[datetime]:
    """`n` restore points, one every 8 hours up to `newest` (several backups a day: how a VM reaches the cap)."""
    return [newest - timedelta(hours=8 * (n - 1 - i)) for i in range(n)]


RP_GROUP = "AzureBackupRG_{region}_1"  # the guide's naming of Azure Backup's own resource group
OWNER_APP = "3c1f5b6e-8e0a-4b8f-9d2a-0d5e6f7a8b9c"  # a lock owner's applicationId (armsim's own)


def seed_demo(sim: Simulator, vault: Any, subnet: Any, when: datetime) -> None:
    """vm-rp-locked (18 restore points; a CanNotDelete lock on AzureBackupRG_eastus_1 blocks their cleanup) and
    vm-locked (a ReadOnly lock on the VM) and vm-rp-full (18 restore points, no lock left, not cleaned up): each protected with a good backup a day old, then one failed job at
    `when` (+i minutes)."""
    from .locks import Lock
    from .scenarios import DEMO_SUBSCRIPTION, REGION, _ubuntu, failed_at, protected_vm

    sub, prefix = DEMO_SUBSCRIPTION, subnet.prefix.rsplit(".", 1)[0]
    specs = [("vm-rp-locked", LIMIT_CODE), ("vm-locked", LOCKED_CODE), ("vm-rp-full", LIMIT_CODE)]
    for i, (name, code) in enumerate(specs):
        vm, item = protected_vm(sim, vault, name, _ubuntu(), subnet, f"{prefix}.{10 + i}", when=when)
        group = RP_GROUP.format(region=REGION)
        if name == "vm-rp-locked":  # several backups a day while the group was locked: the cap is reached
            sim.restore_points.add(RestorePointCollection(f"AzureBackup_{name}_1", group, sub, REGION, vm.id,
                                                          seed_points(RP_CAP, when - timedelta(hours=1))))
            sim.locks.add(Lock("backup-rg-nodelete", f"/subscriptions/{sub}/resourceGroups/{group}", "CanNotDelete",
                               "Keep backup snapshots (change CHG-1042)", [OWNER_APP]))
        elif name == "vm-locked":
            sim.restore_points.add(RestorePointCollection(f"AzureBackup_{name}_1", group, sub, REGION, vm.id,
                                                          seed_points(RETAINED, when - timedelta(days=1))))
            sim.locks.add(Lock("freeze-for-audit", vm.id, "ReadOnly", "Frozen for the quarterly audit",
                               [OWNER_APP]))
        else:  # full, its group's lock since removed by hand, and not cleaned up: the guide's fallback deletes it
            group = RP_GROUP.format(region=REGION).replace("_1", "_2")  # another of the service's groups
            sim.restore_points.add(RestorePointCollection(f"AzureBackup_{name}_1", group, sub, REGION, vm.id,
                                                          seed_points(RP_CAP, when - timedelta(hours=2))))
        failed_at(sim, vault, item, code, when + timedelta(minutes=i))


# --- handlers --------------------------------------------------------------------------------
def _get(sim: Simulator, r: Request) -> Response:
    expand = (r.query.get("$expand") or "").lower() == "restorepoints"
    return Response(200, sim.restore_points.get(r.params).body(expand=expand))


def _list(sim: Simulator, r: Request) -> Response:
    p = r.params
    sub, group = p["subscriptionId"].lower(), (p.get("resourceGroupName") or "").lower()
    return Response(200, {"value": [c.body() for c in sim.restore_points.collections.values()
                                    if c.subscription.lower() == sub and (not group or c.group.lower() == group)]})


def _delete(sim: Simulator, r: Request) -> Response:
    model = sim.restore_points
    try:
        coll = model.get(r.params)
    except Exception:
        return Response(204)
    op = sim.start_operation(r, apply=lambda: model.collections.pop(coll.id.lower(), None))
    return sim.accepted(r, op, "Microsoft.Compute")


_RPC = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/restorePointCollections"
_API: dict[str, Any] = {"oldest_api": "2017-03-30", "newest_api": "2026-12-31", "resource_type": "restorePointCollections"}

ROUTES = [
    Route("GET", _RPC, _list, "RestorePointCollections_List", **_API),
    Route("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/restorePointCollections", _list,
          "RestorePointCollections_ListAll", **_API),
    Route("GET", _RPC + "/{restorePointCollectionName}", _get, "RestorePointCollections_Get", **_API),
    Route("DELETE", _RPC + "/{restorePointCollectionName}", _delete, "RestorePointCollections_Delete", mutating=True,
          **_API),
]
