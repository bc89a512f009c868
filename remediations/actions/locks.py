"""remove-vm-lock, remove-restore-point-lock, delete-restore-point-collection: the locks and restore points of E6/E8.

Reads: every management lock of the subscription (one GET, ManagementLocks_ListAtSubscriptionLevel: it lists the
subscription's, its groups' and its resources' locks), and for the restore-point actions the subscription's restore
point collections (one GET), the VM's own found by its source VM id, never by name (the group is usually
AzureBackupRG_<Geo>_<number>, but names vary), read again with `$expand=restorePoints` to count them.

- remove-vm-lock (C8.lock): a ReadOnly lock on the VM or its group denies the writes a backup makes
  (UserErrorResourceIsInLockedState); each is removed (disruptive: someone set it on purpose; the plan names it, its
  level, scope, notes and owners). A CanNotDelete lock does not stop a backup and is left alone.
- remove-restore-point-lock (C6.lock): the VM's collection holds RP_CAP (18) restore points and a lock (any level)
  on the collection, its group or the subscription stops the service deleting old ones
  (UserErrorRpCollectionLimitReached). Each lock on the group or collection is removed (disruptive), then one
  on-demand backup is run to start the cleanup, as the guide says ("After removing the lock, trigger an on-demand
  backup ... Expect this on-demand operation to fail the first time"): that backup failing with
  UserErrorRpCollectionLimitReached is the expected first run; the re-plan checks that the collection is below the cap.
- delete-restore-point-collection (C6.collection): the fallback, planned only when the collection is at the cap and no
  lock blocks its cleanup any more (disruptive: its instant restore points go; the next backup creates a new one).
A lock on the subscription is never removed: it is a manual step for whoever owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..action import Action, ActionParams, Executed, Progress
from ..azure import Azure
from ..errors import ArmCallError
from ..model import Change, Plan
from .backup import TriggerBackup, TriggerParams

__all__ = ["RP_CAP", "DeleteRestorePointCollection", "LockView", "RemoveRestorePointLock", "RemoveVmLock",
           "RpFacts", "read_locks"]

RP_CAP = 18  # instant restore points per VM ("Troubleshoot Azure Backup failures caused by agent or extension issues")
LIMIT_CODE = "UserErrorRpCollectionLimitReached"
_LOCKS = "/providers/Microsoft.Authorization/locks/"
_READ = ("Microsoft.Authorization/locks/read",)


@dataclass(frozen=True)
class LockView:
    """One management lock: id, name, level, the scope it sits on, notes and owners (application ids)."""

    id: str
    name: str
    level: str
    notes: str
    owners: tuple[str, ...]

    @property
    def scope(self) -> str:
        """The id of what the lock sits on (a subscription, a group or a resource)."""
        return self.id[: self.id.lower().index(_LOCKS.lower())] if _LOCKS.lower() in self.id.lower() else self.id

    @property
    def kind(self) -> str:
        """subscription, resource group or resource."""
        parts = [p for p in self.scope.split("/") if p]
        return "subscription" if len(parts) <= 2 else "resource group" if len(parts) <= 4 else "resource"

    def covers(self, resource_id: str) -> bool:
        """Whether the lock applies to `resource_id` (it sits on it or on a parent: locks are inherited)."""
        s, r = self.scope.lower().rstrip("/"), resource_id.lower().rstrip("/")
        return r == s or r.startswith(s + "/")

    def where(self) -> str:
        """The scope in words, e.g. resource group AzureBackupRG_eastus_1."""
        parts = [p for p in self.scope.split("/") if p]
        return f"{self.kind} {parts[-1]}"

    def who(self) -> str:
        """Who set it, as far as ARM says (its owners)."""
        return ", ".join(self.owners) if self.owners else "no owners recorded"

    def describe(self) -> str:
        """The lock in one phrase: level, name, scope, notes and owners."""
        notes = f"; notes: {self.notes!r}" if self.notes else ""
        return f"{self.level} lock '{self.name}' on {self.where()}{notes}; owners (who set it): {self.who()}"

    def before(self) -> dict[str, Any]:
        """The lock as the plan's `before`."""
        return {"level": self.level, "scope": self.scope, "notes": self.notes, "owners": list(self.owners)}


def _lock_view(d: Any) -> LockView:
    owners = tuple(str(getattr(o, "application_id", "") or "") for o in (getattr(d, "owners", None) or []))
    return LockView(str(d.id or ""), str(d.name or ""), str(d.level or ""), str(getattr(d, "notes", "") or ""),
                    tuple(o for o in owners if o))


def read_locks(azure: Azure) -> tuple[LockView, ...]:
    """Every management lock of the subscription (one GET, paged)."""
    return tuple(azure.call(lambda: [_lock_view(lk) for lk in azure.locks.management_locks.list_at_subscription_level()]))


def delete_lock(azure: Azure, lock_id: str) -> None:
    """DELETE one lock of a group or a resource (never a subscription's), by the scope in its id."""
    scope, name = lock_id.rsplit("/", 1)[0][: -len(_LOCKS) + 1], lock_id.rsplit("/", 1)[1]
    parts = [p for p in scope.split("/") if p]
    ops = azure.locks.management_locks
    if len(parts) == 4:
        azure.call(ops.delete_at_resource_group_level, parts[3], name)
    elif len(parts) >= 8:
        ns, rtype, rname, parent = parts[5], parts[-2], parts[-1], "/".join(parts[6:-2])
        azure.call(ops.delete_at_resource_level, parts[3], ns, parent, rtype, rname, name)
    else:
        raise ValueError(f"not removing lock {lock_id}: only group and resource locks are removed")


class RemoveVmLock(Action[ActionParams, tuple[LockView, ...]]):
    """Remove the ReadOnly locks on the VM or its resource group (a subscription's is a manual step)."""

    name = "remove-vm-lock"
    summary = "remove a ReadOnly lock on the VM or its resource group that blocks its backups"
    disruptive: ClassVar[bool] = True  # someone set the lock on purpose: removing it is their decision too
    permissions: ClassVar[tuple[str, ...]] = (*_READ, "Microsoft.Authorization/locks/delete")

    def read(self, azure: Azure, params: ActionParams) -> tuple[LockView, ...]:
        """The subscription's locks (one GET)."""
        return read_locks(azure)

    def plan(self, facts: tuple[LockView, ...], params: ActionParams) -> Plan:
        """A removal per ReadOnly lock covering the VM (on it or its group); a subscription's is a manual step."""
        t = params.target
        plan = Plan(action=self.name, target=str(t))
        ro = [lk for lk in facts if lk.covers(t.id) and lk.level == "ReadOnly"]
        others = [lk for lk in facts if lk.covers(t.id) and lk.level != "ReadOnly"]
        if others:
            plan.notes.append("left alone (a delete lock does not stop a backup): "
                              + "; ".join(lk.describe() for lk in others))
        for lk in ro:
            if lk.kind == "subscription":
                plan.manual.append(f"{lk.describe()}: it makes every resource of the subscription read-only, so "
                                   f"backups of {t.name} fail; remove it (or have its owners remove it): this tool "
                                   "never removes a subscription's lock")
                continue
            plan.changes.append(Change(
                action=self.name, kind="remove", resource=f"{lk.where()}/locks/{lk.name}", resource_id=lk.id,
                summary=f"remove ReadOnly lock '{lk.name}' from {lk.where()}", disruptive=True,
                reason=(f"{lk.describe()} denies the writes a backup of {t.name} makes "
                        "(UserErrorResourceIsInLockedState); a delete lock would protect it without blocking backups"),
                before=lk.before(), after=None, data={"lock_id": lk.id}))
        if not plan.changes:
            plan.reason = (f"no ReadOnly lock on {t.name} or its resource group" if not ro else
                           f"the ReadOnly lock on {t.name}'s subscription is a manual step")
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """DELETE the lock."""
        delete_lock(azure, change.data["lock_id"])
        return Executed(f"removed {change.before.get('level') if change.before else ''} lock {change.resource}")


@dataclass(frozen=True)
class RpFacts:
    """The VM's restore point collection (None: none found), how many restore points it holds, and the locks."""

    vm_id: str
    collection_id: str | None
    points: int
    locks: tuple[LockView, ...]

    @property
    def collection(self) -> str:
        """The collection's name."""
        return (self.collection_id or "").rsplit("/", 1)[-1]

    @property
    def group(self) -> str:
        """The collection's resource group."""
        parts = (self.collection_id or "").split("/")
        return parts[4] if len(parts) > 4 else ""

    def blockers(self) -> list[LockView]:
        """The locks (any level) that stop the service deleting the collection's old restore points."""
        return [lk for lk in self.locks if self.collection_id and lk.covers(self.collection_id)]

    def at_cap(self) -> bool:
        """Whether the collection holds RP_CAP restore points (no new one can be made)."""
        return self.collection_id is not None and self.points >= RP_CAP


def read_restore_points(azure: Azure, params: ActionParams) -> RpFacts:
    """The subscription's collections (one GET), the VM's by source id with its restore points (one GET), the locks."""
    vm_id = params.target.id
    rpc = azure.compute.restore_point_collections

    def source(c: Any) -> str:
        d = c.as_dict()
        return str(((d.get("properties") or {}).get("source") or d.get("source") or {}).get("id") or "")

    def find() -> Any:
        return next((c for c in rpc.list_all() if source(c).lower() == vm_id.lower()), None)

    found = azure.call(find)
    if found is None:
        return RpFacts(vm_id, None, 0, read_locks(azure))
    group = str(found.id).split("/")[4]
    full = azure.call(rpc.get, group, found.name, expand="restorePoints")
    return RpFacts(vm_id, str(found.id), len(full.restore_points or []), read_locks(azure))


def _rp_state(facts: RpFacts, vm: str) -> str | None:
    """Why nothing about restore points is needed, or None when the collection is at the cap."""
    if facts.collection_id is None:
        return f"no restore point collection has {vm} as its source"
    if not facts.at_cap():
        return f"restore point collection {facts.collection} holds {facts.points} of {RP_CAP} restore points"
    return None


_RP_READ = (*_READ, "Microsoft.Compute/restorePointCollections/read")


class _RestorePointAction(Action[ActionParams, RpFacts]):
    """An action on the VM's restore point collection: both read it the same way (read_restore_points)."""

    def read(self, azure: Azure, params: ActionParams) -> RpFacts:
        """The VM's collection, its restore points, and the subscription's locks."""
        return read_restore_points(azure, params)


class RemoveRestorePointLock(_RestorePointAction):
    """Remove the locks that block the cleanup of the VM's full restore point collection, then run the cleanup backup."""

    name = "remove-restore-point-lock"
    summary = "remove a lock on the restore-point resource group blocking the cleanup, then back up once to clean up"
    disruptive: ClassVar[bool] = True  # someone set the lock on purpose: removing it is their decision too
    permissions: ClassVar[tuple[str, ...]] = tuple(dict.fromkeys(
        (*_RP_READ, "Microsoft.Authorization/locks/delete", *TriggerBackup.permissions)))

    def plan(self, facts: RpFacts, params: ActionParams) -> Plan:
        """At the cap with removable locks blocking: remove each, then one cleanup backup; else why not."""
        t = params.target
        plan = Plan(action=self.name, target=str(t))
        idle = _rp_state(facts, t.name)
        blockers = facts.blockers()
        if idle is not None:
            plan.reason = idle + ": nothing to clean up"
            if blockers:
                plan.notes.append("it will block the cleanup when the collection fills: "
                                  + "; ".join(lk.describe() for lk in blockers))
            return plan
        if not blockers:
            plan.reason = (f"no lock blocks the cleanup of {facts.collection} ({facts.points} of {RP_CAP} restore "
                           "points)")
            return plan
        subs = [lk for lk in blockers if lk.kind == "subscription"]
        if subs:
            plan.reason = "a lock on the subscription blocks the cleanup; this tool never removes a subscription's lock"
            plan.manual += [f"{lk.describe()}: remove it (or have its owners remove it), then run an on-demand "
                            "backup to start the cleanup (the guide: the first run may still fail)" for lk in subs]
            plan.notes += [f"also blocking: {lk.describe()}" for lk in blockers if lk.kind != "subscription"]
            return plan
        full = f"{facts.collection} in {facts.group} holds {facts.points} of {RP_CAP} restore points"
        for lk in blockers:
            plan.changes.append(Change(
                action=self.name, kind="remove", resource=f"{lk.where()}/locks/{lk.name}", resource_id=lk.id,
                summary=f"remove {lk.level} lock '{lk.name}' from {lk.where()}", disruptive=True,
                reason=(f"{lk.describe()} stops Azure Backup deleting old restore points: {full} "
                        "(UserErrorRpCollectionLimitReached)"),
                before=lk.before(), after=None, data={"lock_id": lk.id}))
        plan.changes.append(Change(
            action=self.name, kind="run", resource=f"{t.name}/backup (cleanup)", resource_id=facts.collection_id or "",
            summary=f"run one on-demand backup of {t.name} to clean up {facts.collection}",
            reason=("the guide: after removing the lock, trigger an on-demand backup; it cleans up the old restore "
                    "points and is expected to fail the first time"),
            before={"restore_points": facts.points}, after={"restore_points": f"below {RP_CAP}"}))
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """DELETE a lock, or trigger the cleanup backup and follow it (its UserErrorRpCollectionLimitReached is expected)."""
        if change.kind == "remove":
            delete_lock(azure, change.data["lock_id"])
            return Executed(f"removed lock {change.resource}")
        backup = TriggerBackup()
        poll = azure.config.polling_interval or (0.05 if azure.config.loopback else 15.0)
        trigger = TriggerParams.model_validate({"target": params.target, "wait": True, "poll_seconds": poll})
        out = backup.apply(azure, trigger, consent=True, progress=progress)
        job = out.result.get("job_id")
        if out.status == "failed" and out.error_code != LIMIT_CODE:
            raise ArmCallError(out.error_status, out.error_code or "BackupFailed", out.reason)
        how = ("failed with UserErrorRpCollectionLimitReached, as the guide expects of the first run"
               if out.status == "failed" else out.status)
        return Executed(f"cleanup backup job {job or '(none)'} {how}", {"cleanup_job": job})


class DeleteRestorePointCollection(_RestorePointAction):
    """Delete the VM's restore point collection when it is full and no lock blocks its cleanup (the fallback)."""

    name = "delete-restore-point-collection"
    summary = "delete the VM's full restore point collection (the next backup creates a new one)"
    disruptive: ClassVar[bool] = True  # the collection's instant restore points go with it
    permissions: ClassVar[tuple[str, ...]] = (*_RP_READ, "Microsoft.Compute/restorePointCollections/delete",
                                              "Microsoft.Compute/locations/operations/read")

    def plan(self, facts: RpFacts, params: ActionParams) -> Plan:
        """Delete the collection when at the cap with nothing blocking its cleanup; else why not."""
        t = params.target
        plan = Plan(action=self.name, target=str(t))
        idle = _rp_state(facts, t.name)
        if idle is not None:
            plan.reason = idle
            return plan
        blockers = facts.blockers()
        if blockers:
            plan.reason = ("a lock blocks the cleanup (remove-restore-point-lock comes first): "
                           + "; ".join(lk.describe() for lk in blockers))
            return plan
        plan.changes.append(Change(
            action=self.name, kind="remove", resource=f"{facts.group}/restorePointCollections/{facts.collection}",
            resource_id=facts.collection_id or "", disruptive=True,
            summary=f"delete restore point collection {facts.collection} of {t.name}",
            reason=(f"{facts.collection} holds {facts.points} of {RP_CAP} restore points and was not cleaned up though "
                    "no lock blocks it; the guide's fallback deletes it (its instant restore points go; recovery "
                    "points in the vault stay) and the next backup creates a new one"),
            before={"restore_points": facts.points}, after=None,
            data={"group": facts.group, "collection": facts.collection}))
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """DELETE the collection and wait for its long-running operation."""
        d = change.data
        azure.call(lambda: azure.compute.restore_point_collections.begin_delete(d["group"], d["collection"]).result())
        return Executed(f"deleted restore point collection {d['collection']}")
