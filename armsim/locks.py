"""Microsoft.Authorization/locks at subscription, resource-group and resource scope, and what a lock denies.

Shapes follow the REST spec (Azure/azure-rest-api-specs specification/resources/resource-manager/
Microsoft.Authorization/locks/stable/2020-05-01, ManagementLocks_ListAtSubscriptionLevel.json and friends):
`{"id", "type": "Microsoft.Authorization/locks", "name", "properties": {"level", "notes", "owners"}}`; a delete
answers 200 (204 when there was no lock).

Semantics ("Lock your resources to protect your infrastructure", learn.microsoft.com/azure/azure-resource-manager/
management/lock-resources): a lock at a parent scope is inherited by everything under it; CanNotDelete denies
deletes, ReadOnly denies updates and deletes, and locks "prevent the POST method from sending data" (a ReadOnly lock
on a group with a VM stops starting or restarting it). A denied request gets 409 ScopeLocked with the message ARM
writes ("The scope '...' cannot perform write operation because following scope(s) are locked: '...'. Please
remove the lock and try again."). Lock operations themselves are never denied by a lock. POSTs that only read
(effective NSGs, effective routes) pass a ReadOnly lock: assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response
from .routing import Route

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["ROUTES", "Lock", "LockModel", "enforce", "lock_body"]

_READ_POSTS = frozenset({"NetworkInterfaces_ListEffectiveNetworkSecurityGroups", "NetworkInterfaces_GetEffectiveRouteTable"})
_LOCKS = "/providers/microsoft.authorization/locks"


def _norm(scope: str) -> str:
    """A scope lower-cased, one leading slash, no empty segments (ARM ignores an empty parent resource path)."""
    return "/" + "/".join(s for s in scope.lower().split("/") if s)


def _within(path: str, scope: str) -> bool:
    """Whether `path` is `scope` or lies under it, segment-wise (vm-a is not under vm)."""
    p, s = _norm(path), _norm(scope)
    return p == s or p.startswith(s + "/")


@dataclass
class Lock:
    """One management lock: its scope (a subscription, group or resource id), level, notes and owners."""

    name: str
    scope: str
    level: str = "CanNotDelete"  # CanNotDelete | ReadOnly
    notes: str = ""
    owners: list[str] = field(default_factory=list)  # applicationIds of the lock's owners

    @property
    def id(self) -> str:
        """The lock's resource id."""
        return f"{self.scope.rstrip('/')}/providers/Microsoft.Authorization/locks/{self.name}"

    @property
    def subscription(self) -> str:
        """The subscription the lock lives in."""
        return _norm(self.scope).split("/")[2]


def lock_body(lock: Lock) -> dict[str, Any]:
    """The lock as ManagementLocks_Get returns it."""
    props: dict[str, Any] = {"level": lock.level}
    if lock.notes:
        props["notes"] = lock.notes
    if lock.owners:
        props["owners"] = [{"applicationId": o} for o in lock.owners]
    return {"properties": props, "id": lock.id, "type": "Microsoft.Authorization/locks", "name": lock.name}


class LockModel:
    """Every management lock of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.locks: dict[str, Lock] = {}

    def add(self, lock: Lock) -> Lock:
        """Place a lock (replacing one of the same name at the same scope)."""
        self.locks[lock.id.lower()] = lock
        return lock

    def covering(self, path: str) -> list[Lock]:
        """The locks that apply to `path`: at its scope or any parent scope (inherited)."""
        return [lk for lk in self.locks.values() if _within(path, lk.scope)]

    def under(self, scope: str) -> list[Lock]:
        """The locks at `scope` or below it."""
        return [lk for lk in self.locks.values() if _within(lk.scope, scope)]

    def read_only(self, resource_id: str) -> list[Lock]:
        """The ReadOnly locks that apply to a resource."""
        return [lk for lk in self.covering(resource_id) if lk.level == "ReadOnly"]


def enforce(sim: Simulator, request: Request, route: Route) -> None:
    """409 ScopeLocked when a lock covering the request's path denies it (a delete, or any write under ReadOnly)."""
    path = request.path
    if not route.arm or _LOCKS in path.lower() or request.method in ("GET", "HEAD"):
        return
    if request.method == "POST" and (route.operation in _READ_POSTS or not route.is_mutating(sim, request)
                                     and route.operation != "VirtualMachines_RunCommand"):
        return
    deny = [lk for lk in sim.locks.covering(path)
            if lk.level == "ReadOnly" or (lk.level == "CanNotDelete" and request.method == "DELETE")]
    if deny:
        verb = "delete" if request.method == "DELETE" else "write"
        scopes = ",".join(f"'{lk.scope}'" for lk in deny)
        raise ArmError(409, "ScopeLocked", f"The scope '{path.split('?')[0]}' cannot perform {verb} operation because "
                                           f"following scope(s) are locked: {scopes}. Please remove the lock and try again.")


# --- handlers --------------------------------------------------------------------------------
def _scope(p: dict[str, str]) -> str:
    scope = f"/subscriptions/{p['subscriptionId']}"
    if "resourceGroupName" in p:
        scope += f"/resourceGroups/{p['resourceGroupName']}"
    if "resourceName" in p:
        parent = f"/{p['parentResourcePath']}" if p.get("parentResourcePath") else ""
        scope += f"/providers/{p['ns']}{parent}/{p['resourceType']}/{p['resourceName']}"
    return scope


def _find(sim: Simulator, p: dict[str, str]) -> Lock | None:
    want = _norm(_scope(p))
    return next((lk for lk in sim.locks.locks.values()
                 if _norm(lk.scope) == want and lk.name.lower() == p["lockName"].lower()), None)


def _get(sim: Simulator, r: Request) -> Response:
    lock = _find(sim, r.params)
    if lock is None:
        raise ArmError(404, "LockNotFound", f"The lock '{r.params['lockName']}' could not be found.")
    return Response(200, lock_body(lock))


def _delete(sim: Simulator, r: Request) -> Response:
    lock = _find(sim, r.params)
    if lock is None:
        return Response(204)
    del sim.locks.locks[lock.id.lower()]
    return Response(200)


def _list(sim: Simulator, r: Request) -> Response:
    """Locks at the scope and below it (a subscription's list holds its groups' and resources' locks, as the
    ListAtSubscriptionLevel example shows a group's lock); a resource's list also holds the locks it inherits."""
    scope = _scope(r.params)
    found = {lk.id.lower(): lk for lk in sim.locks.under(scope)}
    if "resourceName" in r.params:
        found.update({lk.id.lower(): lk for lk in sim.locks.covering(scope)})
    return Response(200, {"value": [lock_body(lk) for lk in found.values()]})


_SUB = "/subscriptions/{subscriptionId}"
_RG = _SUB + "/resourceGroups/{resourceGroupName}"
_RES = _RG + "/providers/{ns}/{resourceType}/{resourceName}"
_RES2 = _RG + "/providers/{ns}//{resourceType}/{resourceName}"  # the SDK's empty parentResourcePath
_RES3 = _RG + "/providers/{ns}/{parentResourcePath}/{resourceType}/{resourceName}"
_L = "/providers/Microsoft.Authorization/locks"
_API: dict[str, Any] = {"oldest_api": "2015-01-01", "newest_api": "2026-12-31", "resource_type": "locks"}

ROUTES: list[Route] = []
for _base, _level in ((_SUB, "SubscriptionLevel"), (_RG, "ResourceGroupLevel"), (_RES, "ResourceLevel"),
                      (_RES2, "ResourceLevel"), (_RES3, "ResourceLevel")):
    ROUTES += [
        Route("GET", _base + _L, _list, f"ManagementLocks_ListAt{_level}", **_API),
        Route("GET", _base + _L + "/{lockName}", _get, f"ManagementLocks_GetAt{_level}", **_API),
        Route("DELETE", _base + _L + "/{lockName}", _delete, f"ManagementLocks_DeleteAt{_level}", mutating=True,
              **_API),
    ]
