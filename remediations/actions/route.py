"""allow-backup-route: route the region's Storage service tag to Internet in the VM's subnet's route table.

Read the VM, its primary NIC, that NIC's subnet and the subnet's route table (with each route's etag) and the
region's service tags; judge with `remediations.routes` (longest prefix match, as Azure does) which route
carries Storage traffic; plan one route `allow-azure-backup-storage` (address prefix the regional Storage tag as
the Service Tags API names it, e.g. `Storage.EastUS`; next hop Internet) and never touch another route. The
route bypasses the firewall or appliance for Storage traffic, a security decision: the change is disruptive and
is withheld without consent. The write is a child-route PUT guarded by If-None-Match / If-Match; a stale etag
(412) or a superseded write re-reads and re-plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..action import Action, ActionParams, Executed, Progress
from ..armid import id_part
from ..azure import Azure
from ..errors import arm_error
from ..model import Change, Plan
from ..netaddr import TagResolver, UnknownTag
from ..netreads import service_tags
from ..netrules import storage_tag
from ..reads import read_vm
from ..routes import EffectiveRoute, StoragePath, firewall_rule_text, storage_path
from .egress_read import freeze

__all__ = ["ROUTE_NAME", "AllowBackupRoute", "RouteTableFacts"]

ROUTE_NAME = "allow-azure-backup-storage"
_REPLAN_CODES = frozenset({"preconditionfailed", "preconditionfailedetagmismatch", "canceled",
                           "canceledandsupersededduetoanotheroperation", "operationpreempted",
                           "anotheroperationinprogress", "retryableerror", "retryableerrorduetoanotheroperation"})
_SYSTEM_DEFAULT = EffectiveRoute(None, "Default", "Active", ("0.0.0.0/0",), "Internet")  # unless a user route overrides


@dataclass(frozen=True)
class RouteTableFacts:
    """What the plan needs: the VM, its primary NIC's subnet, that subnet's route table (raw, None: none) and tags."""

    vm_name: str
    location: str
    subnet: str
    table: Mapping[str, Any] | None
    tags: TagResolver

    @property
    def table_name(self) -> str:
        """The route table's name."""
        return str((self.table or {}).get("name") or "")

    def routes(self) -> tuple[Mapping[str, Any], ...]:
        """The table's routes, raw."""
        return tuple(((self.table or {}).get("properties") or {}).get("routes") or ())

    def route(self, name: str) -> Mapping[str, Any] | None:
        """The raw route called `name` (case-insensitive), if there is one."""
        return next((r for r in self.routes() if str(r.get("name", "")).lower() == name.lower()), None)


def _props(route: Mapping[str, Any]) -> Mapping[str, Any]:
    return route.get("properties") or {}


def _as_effective(route: Mapping[str, Any]) -> EffectiveRoute:
    """A route of the table as the effective route it becomes (a User route)."""
    p = _props(route)
    hop_ip = p.get("nextHopIpAddress")
    return EffectiveRoute(str(route.get("name") or ""), "User", "Active", (str(p.get("addressPrefix") or ""),),
                          str(p.get("nextHopType") or "None"), (str(hop_ip),) if hop_ip else ())


def _path(routes: list[EffectiveRoute], tag: str, tags: TagResolver) -> StoragePath:
    """The table's routes and the system default route, judged for the Storage tag's prefixes."""
    return storage_path([*routes, _SYSTEM_DEFAULT], tag, tags.prefixes(tag), tags)


def _settled(route: Mapping[str, Any]) -> bool:
    return _props(route).get("provisioningState") in (None, "", "Succeeded")


class AllowBackupRoute(Action[ActionParams, RouteTableFacts]):
    """A route for the region's Storage tag with next hop Internet, in the route table of the VM's subnet."""

    name: ClassVar[str] = "allow-backup-route"
    summary: ClassVar[str] = "route the region's Storage tag to Internet in the subnet's route table (bypasses the firewall)"
    disruptive: ClassVar[bool] = True  # it takes Storage traffic past the firewall or appliance: a security decision
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Network/networkInterfaces/read",
        "Microsoft.Network/virtualNetworks/subnets/read", "Microsoft.Network/routeTables/read",
        "Microsoft.Network/locations/serviceTags/read", "Microsoft.Network/routeTables/routes/write",
        "Microsoft.Network/routeTables/routes/read", "Microsoft.Network/locations/operations/read")

    def read(self, azure: Azure, params: ActionParams) -> RouteTableFacts:
        """GET the VM, its primary NIC, that NIC's subnet and the subnet's route table; the region's tags (cached)."""
        vm = read_vm(azure, params.target)
        net = azure.network
        refs = ((vm.raw.get("properties") or {}).get("networkProfile") or {}).get("networkInterfaces") or []
        primary = [r["id"] for r in refs if r.get("id") and (r.get("properties") or {}).get("primary")]
        nic_ids = primary or list(vm.nic_ids)
        tags = service_tags(azure, vm.location)
        if not nic_ids:
            return RouteTableFacts(vm.name, vm.location, "", None, tags)
        nic_id = nic_ids[0]
        nic = azure.call(net.network_interfaces.get, id_part(nic_id, "resourceGroups"),
                         id_part(nic_id, "networkInterfaces")).as_dict()
        ipcs = (nic.get("properties") or {}).get("ipConfigurations") or []
        subnet_id = next((s for c in ipcs if (s := ((c.get("properties") or {}).get("subnet") or {}).get("id"))), "")
        if not subnet_id:
            return RouteTableFacts(vm.name, vm.location, "", None, tags)
        subnet = azure.call(net.subnets.get, id_part(subnet_id, "resourceGroups"), id_part(subnet_id, "virtualNetworks"),
                            id_part(subnet_id, "subnets")).as_dict()
        table_id = ((subnet.get("properties") or {}).get("routeTable") or {}).get("id")
        table = None
        if table_id:
            table = freeze(azure.call(net.route_tables.get, id_part(table_id, "resourceGroups"),
                                      id_part(table_id, "routeTables")).as_dict())
        return RouteTableFacts(vm.name, vm.location, id_part(subnet_id, "subnets"), table, tags)

    def plan(self, facts: RouteTableFacts, params: ActionParams) -> Plan:
        """One route (add or correct) when the table keeps Storage traffic from going to Internet; pure."""
        target = str(params.target)

        def empty(reason: str, manual: list[str] | None = None, notes: list[str] | None = None) -> Plan:
            return Plan(action=self.name, target=target, reason=reason, manual=manual or [], notes=notes or [])

        if facts.table is None:
            where = f"subnet {facts.subnet}" if facts.subnet else f"{facts.vm_name}'s NIC"
            return empty(f"no route table on {where}: its traffic follows the system routes (0.0.0.0/0 to Internet)")
        try:
            tag = storage_tag(facts.tags, facts.location)
        except UnknownTag as e:
            return empty(f"cannot judge the routes to the region's Storage: {e}",
                         [f"check that the Service Tags API lists a Storage tag for region {facts.location!r}"])
        table = facts.table_name
        others = [_as_effective(r) for r in facts.routes()
                  if str(r.get("name", "")).lower() != ROUTE_NAME and _settled(r)]
        ours = facts.route(ROUTE_NAME)
        now = _path([*others, *([_as_effective(ours)] if ours is not None and _settled(ours) else [])], tag, facts.tags)
        if now.verdict() == "absent":
            c = now.deciding()
            by = c.route.describe(c.matched, table) if c else "the system route"
            return empty(f"{tag} traffic from subnet {facts.subnet} goes to Internet ({by})")
        wanted = {"addressPrefix": tag, "nextHopType": "Internet"}
        after = _path([*others, _as_effective({"name": ROUTE_NAME, "properties": wanted})], tag, facts.tags)
        c = now.deciding()
        blocker = c.route.describe(c.matched, table) if c else "no route"
        if after.verdict() != "absent":
            left = after.deciding()
            still = left.route.describe(left.matched, table) if left else "no route"
            return empty(f"a route for {tag} to Internet would not carry all of it: {still} is more specific",
                         [f"in route table {table}, change or remove {still} so that {tag} reaches Internet",
                          firewall_rule_text(tag)])
        before = dict(_props(ours)) if ours is not None else None
        via = ", ".join(now.appliances()) or "its next hop"
        reason = (f"{tag} traffic from subnet {facts.subnet} goes by {blocker}; this route sends it to Internet "
                  f"(to Azure Storage over the Azure backbone) instead, bypassing {via} for Storage: a security "
                  "decision, so it needs consent")
        resource = f"{table}/routes/{ROUTE_NAME}"
        table_id = str(facts.table.get("id") or "")
        change = Change(
            action=self.name, kind="add" if ours is None else "change", resource=resource,
            resource_id=f"{table_id}/routes/{ROUTE_NAME}", disruptive=True,
            summary=f"route {tag} → Internet in {table}" + (f" (was {before.get('addressPrefix')} → "
                                                           f"{before.get('nextHopType')})" if before else ""),
            reason=reason, before=before, after=wanted,
            data={"resource_group": id_part(table_id, "resourceGroups"), "table": table, "route": ROUTE_NAME,
                  "body": {"properties": wanted}, "etag": str(ours.get("etag") or "") if ours is not None else None})
        notes = [f"to keep Storage traffic through the appliance instead: {firewall_rule_text(tag)}"]
        return Plan(action=self.name, target=target, changes=[change], notes=notes)

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """PUT the route (If-None-Match: * to add, If-Match: <route etag> to change) and wait for it."""
        d = change.data
        headers = {"If-None-Match": "*"} if change.kind == "add" else {"If-Match": d.get("etag") or "*"}

        def put() -> Any:
            return azure.network.routes.begin_create_or_update(d["resource_group"], d["table"], d["route"], d["body"],
                                                               headers=headers).result()

        azure.call(put)
        return Executed(f"{change.resource} {'created' if change.kind == 'add' else 'updated'}: "
                        f"{d['body']['properties']['addressPrefix']} → Internet")

    def also_retry(self, exc: BaseException) -> bool:
        """A stale etag (412), a superseded or preempted write: re-read and re-plan."""
        from azure.core.exceptions import HttpResponseError

        if not isinstance(exc, HttpResponseError):
            return False
        e = arm_error(exc)
        return e.status == 412 or e.code.lower() in _REPLAN_CODES or (e.outer_code or "").lower() in _REPLAN_CODES
