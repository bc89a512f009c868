"""Microsoft.Network route tables: their routes, subnet associations, a NIC's effective routes, and why a route blocks Storage.

Shapes follow the official examples (tests/fixtures/azure-rest-examples/network/RouteTable*.json,
NetworkInterfaceEffectiveRouteTableList.json). Writes mirror the NSG rules' (armsim/network.py): a route
PUT or DELETE holds its table until the operation ends (429 to a second writer), If-Match / If-None-Match
are checked against weak etags (412), and a failed write is rolled back.

Effective routes are computed as "Virtual network traffic routing" describes: the system routes (each VNet
address prefix -> VnetLocal, 0.0.0.0/0 -> Internet, 10/8, 100.64/10, 172.16/12, 192.168/16 -> None, in the
example's order), then the subnet's user routes; a user route with a system route's prefix overrides it (that
system route is listed with state Invalid); a service-tag prefix is expanded to the tag's prefixes.
"""

from __future__ import annotations

import copy
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, new_etag, not_found
from .network import _check_preconditions, held_delete, held_put
from .routing import Route

if TYPE_CHECKING:
    from .compute import VM
    from .network import NIC
    from .sim import Simulator

__all__ = ["HOP_TYPES", "ROUTES", "RouteTable", "RouteTableModel", "storage_route_blocked"]

HOP_TYPES = {h.lower(): h for h in ("VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None")}
_RESERVED = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")  # next hop None, as listed


@dataclass
class RouteTable:
    """A route table with its routes (REST JSON, keyed by lower-case name)."""

    name: str
    group: str
    subscription: str
    location: str
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    disable_bgp: bool = False
    etag: str = field(default_factory=new_etag)
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    writer: str | None = None  # the operation holding the table

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Network/routeTables/{self.name}")


def route_body(name: str, prefix: str, hop: str, ip: str | None = None) -> dict[str, Any]:
    """A route as stored (the scenario's seed)."""
    props: dict[str, Any] = {"addressPrefix": prefix, "nextHopType": hop}
    if ip:
        props["nextHopIpAddress"] = ip
    return {"name": name, "etag": new_etag(), "properties": props}


class RouteTableModel:
    """Every route table of one simulator, the VNets' address spaces, and the appliances' Storage verdicts."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.tables: dict[str, RouteTable] = {}
        self.address_spaces: dict[str, list[str]] = {}  # lower-case VNet id -> its address prefixes
        self.appliances: dict[str, dict[str, bool]] = {}  # next-hop IP -> {"allows_storage": bool}; unknown blocks

    def add(self, table: RouteTable) -> RouteTable:
        """Register a route table under its lower-case id."""
        self.tables[table.id.lower()] = table
        return table

    def table(self, p: dict[str, str]) -> RouteTable:
        """The route table named by route params, or 404."""
        rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
               f"/providers/Microsoft.Network/routeTables/{p['routeTableName']}")
        t = self.tables.get(rid.lower())
        if t is None:
            raise not_found("Microsoft.Network/routeTables", p["routeTableName"], p["resourceGroupName"])
        return t

    # --- views -------------------------------------------------------------------------------
    def route_json(self, t: RouteTable, route: dict[str, Any]) -> dict[str, Any]:
        """A route as ARM returns it."""
        out = copy.deepcopy(route)
        out["id"] = f"{t.id}/routes/{route['name']}"
        out["type"] = "Microsoft.Network/routeTables/routes"
        out.setdefault("etag", t.etag)
        out["properties"].setdefault("provisioningState", "Succeeded")
        return out

    def table_json(self, t: RouteTable) -> dict[str, Any]:
        """A route table as ARM returns it, with its routes and the subnets that use it."""
        subnets = [{"id": s.id} for s in self.sim.network.subnets.values()
                   if s.route_table_id and s.route_table_id.lower() == t.id.lower()]
        return {"id": t.id, "name": t.name, "type": "Microsoft.Network/routeTables", "location": t.location,
                "etag": t.etag, "properties": {
                    "routes": [self.route_json(t, r) for r in t.routes.values()], "subnets": subnets,
                    "disableBgpRoutePropagation": t.disable_bgp, "resourceGuid": t.guid,
                    "provisioningState": "Updating" if t.writer else "Succeeded"}}

    # --- effective routes --------------------------------------------------------------------
    def effective(self, nic: NIC) -> list[dict[str, Any]]:
        """The NIC's effective routes, as NetworkInterfaces_GetEffectiveRouteTable lists them."""
        net = self.sim.network
        sn = net.subnets.get(nic.subnet_id.lower())
        vnet_id = nic.subnet_id.lower().rsplit("/subnets/", 1)[0]
        space = self.address_spaces.get(vnet_id) or [s.prefix for s in net.subnets.values()
                                                     if s.id.lower().startswith(vnet_id + "/subnets/")]
        system = [(p, "VnetLocal") for p in space] + [("0.0.0.0/0", "Internet")] + [(p, "None") for p in _RESERVED]
        table = self.tables.get(sn.route_table_id.lower()) if sn and sn.route_table_id else None
        user = [r for r in table.routes.values()
                if r["properties"].get("provisioningState", "Succeeded") == "Succeeded"] if table else []
        overridden = {_norm(r["properties"]["addressPrefix"]) for r in user}
        out: list[dict[str, Any]] = [
            {"source": "Default", "state": "Invalid" if _norm(p) in overridden else "Active",
             "addressPrefix": [p], "nextHopType": hop, "nextHopIpAddress": []} for p, hop in system]
        for r in user:
            props = r["properties"]
            ip = props.get("nextHopIpAddress")
            entry: dict[str, Any] = {
                "name": r["name"], "disableBgpRoutePropagation": bool(table and table.disable_bgp),
                "source": "User", "state": "Active", "addressPrefix": self._expand(props["addressPrefix"]),
                "nextHopType": props["nextHopType"], "nextHopIpAddress": [ip] if ip else []}
            out.append(entry)
        return out

    def _expand(self, prefix: str) -> list[str]:
        tags = self.sim.network.tags
        return next((list(v) for k, v in tags.items() if k.lower() == prefix.lower()), [prefix])


def _norm(prefix: str) -> str:
    try:
        return str(ipaddress.ip_network(prefix, strict=False))
    except ValueError:
        return prefix.lower()


def _lpm(routes: list[dict[str, Any]], ip: ipaddress.IPv4Address) -> dict[str, Any] | None:
    best: tuple[int, dict[str, Any]] | None = None
    for r in routes:
        if r["state"] != "Active":
            continue
        for p in r["addressPrefix"]:
            net = ipaddress.ip_network(p, strict=False)
            if ip in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, r)
    return best[1] if best else None


def storage_route_blocked(sim: Simulator, vm: VM) -> str | None:
    """Why the VM's effective routes keep it from every prefix of its region's Storage tag, or None when they do not.

    Longest prefix match over the primary NIC's active routes, at every boundary the routes draw inside each
    Storage prefix: next hop Internet passes; a VirtualAppliance passes only when `appliances[ip]` allows
    Storage or it is an Azure Firewall whose rules allow it (armsim/firewall.py); None, VnetLocal and VirtualNetworkGateway (forced tunnelling) block (the last two: assumed).
    """
    net, model = sim.network, sim.route_tables
    nic = net.nics.get(vm.nic_ids[0].lower()) if vm.nic_ids else None
    if nic is None:
        return None
    routes = model.effective(nic)
    nets = [ipaddress.ip_network(p, strict=False) for r in routes if r["state"] == "Active" for p in r["addressPrefix"]]
    for prefix in net.tags.get(net.regional_tag("Storage", vm.location) or "", []):
        target = ipaddress.ip_network(prefix)
        lo, hi = int(target.network_address), int(target.broadcast_address)
        points = {lo, hi}
        for n in nets:
            a, b = int(n.network_address), int(n.broadcast_address)
            points.update(x for x in (a, b + 1) if lo <= x <= hi)
        for x in sorted(points):
            ip = ipaddress.IPv4Address(x)
            r = _lpm(routes, ip)
            hop = r["nextHopType"] if r else "None"
            hop_ip = (r["nextHopIpAddress"] or [""])[0] if r else ""
            if hop == "Internet" or (hop == "VirtualAppliance" and _appliance_allows(sim, vm, nic, hop_ip)):
                continue
            what = f"{r['source'].lower()} route {r.get('name') or r['addressPrefix'][0]}" if r else "no route"
            via = f"VirtualAppliance {hop_ip}, which does not allow Storage" if hop == "VirtualAppliance" else hop
            return f"{what} sends {ip} ({prefix}, Storage) to {via}"
    return None


def _appliance_allows(sim: Simulator, vm: VM, nic: NIC, ip: str) -> bool:
    """An appliance lets Storage through when the allow-list says so, or when it is an Azure Firewall whose rules do."""
    from .firewall import firewall_allows_storage

    if sim.route_tables.appliances.get(ip, {}).get("allows_storage"):
        return True
    fw = sim.firewalls.by_ip(ip)
    return fw is not None and firewall_allows_storage(sim, fw, nic.private_ip, vm.location)


# --- handlers --------------------------------------------------------------------------------
def _check_lock(t: RouteTable, operation: str) -> None:
    if t.writer is not None:
        raise ArmError(
            429, "RetryableError", "A retryable error occurred.",
            details=[{"code": "RetryableErrorDueToAnotherOperation",
                      "message": f"Operation {operation} is blocked: operation {t.writer} is updating resource "
                                 f"{t.id}. The call can be retried in 1 seconds."}],
            headers={"Retry-After": "1"})


def _validate_route(sim: Simulator, name: str, props: Any) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is required.")
    prefix, hop = props.get("addressPrefix"), str(props.get("nextHopType") or "")
    if not isinstance(prefix, str) or not prefix:
        raise ArmError(400, "InvalidRequestFormat", f"Route {name}: addressPrefix is required.")
    try:
        ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        if not any(t.lower() == prefix.lower() for t in sim.network.tags):  # a service tag is accepted
            raise ArmError(400, "InvalidRouteAddressPrefix",
                           f"Route {name} has an invalid AddressPrefix {prefix}: not a CIDR nor a known service tag.") from None
    if hop.lower() not in HOP_TYPES:
        raise ArmError(400, "InvalidRequestFormat", f"Route {name}: nextHopType {hop!r} is not one of "
                       f"{', '.join(HOP_TYPES.values())}.")
    hop = HOP_TYPES[hop.lower()]
    ip = props.get("nextHopIpAddress")
    if (hop == "VirtualAppliance") != bool(ip):
        raise ArmError(400, "InvalidRouteNextHopIpAddress",
                       f"Route {name}: nextHopIpAddress is required for, and only for, next hop type VirtualAppliance.")
    out: dict[str, Any] = {"addressPrefix": prefix, "nextHopType": hop}
    if ip:
        out["nextHopIpAddress"] = ip
    return out


def _table_get(sim: Simulator, r: Request) -> Response:
    return Response(200, sim.route_tables.table_json(sim.route_tables.table(r.params)))


def _table_put(sim: Simulator, r: Request) -> Response:
    p, model = r.params, sim.route_tables
    body = r.body if isinstance(r.body, dict) else {}
    try:
        t: RouteTable | None = model.table(p)
    except ArmError:
        t = None
    if t is not None:
        _check_lock(t, "PutRouteTableOperation")
    _check_preconditions(r, {"etag": t.etag} if t else None)
    props = body.get("properties") or {}
    routes = {}
    for item in props.get("routes") or []:
        routes[str(item.get("name", "")).lower()] = {"name": item.get("name"), "etag": new_etag(),
                                                     "properties": _validate_route(sim, item.get("name"), item.get("properties"))}
    created = t is None
    if t is None:
        t = model.add(RouteTable(p["routeTableName"], p["resourceGroupName"], p["subscriptionId"],
                                 str(body.get("location") or "eastus")))
    t.routes, t.disable_bgp, t.etag = routes, bool(props.get("disableBgpRoutePropagation", False)), new_etag()
    op = sim.start_operation(r, result=lambda: model.table_json(t))
    return sim.accepted(r, op, "Microsoft.Network", status=201 if created else 200, body=model.table_json(t),
                        location=False)


def _table_delete(sim: Simulator, r: Request) -> Response:
    model = sim.route_tables
    try:
        t = model.table(r.params)
    except ArmError:
        return Response(204)
    if any(s.route_table_id and s.route_table_id.lower() == t.id.lower() for s in sim.network.subnets.values()):
        raise ArmError(400, "InUseRouteTableCannotBeDeleted",
                       f"Route table {t.id} is in use and cannot be deleted.")
    _check_lock(t, "DeleteRouteTableOperation")
    _check_preconditions(r, {"etag": t.etag})
    op = sim.start_operation(r, apply=lambda: model.tables.pop(t.id.lower(), None))
    return sim.accepted(r, op, "Microsoft.Network")


def _route_list(sim: Simulator, r: Request) -> Response:
    return Response(200, {"value": sim.route_tables.table_json(sim.route_tables.table(r.params))["properties"]["routes"]})


def _route_get(sim: Simulator, r: Request) -> Response:
    t = sim.route_tables.table(r.params)
    route = t.routes.get(r.params["routeName"].lower())
    if route is None:
        raise not_found("Microsoft.Network/routeTables/routes", f"{t.name}/{r.params['routeName']}", t.group)
    return Response(200, sim.route_tables.route_json(t, route))


def _route_put(sim: Simulator, r: Request) -> Response:
    model = sim.route_tables
    t = model.table(r.params)
    name = r.params["routeName"]
    key = name.lower()
    _check_lock(t, "PutRouteOperation")
    current = t.routes.get(key)
    _check_preconditions(r, current, t.etag)
    body = r.body if isinstance(r.body, dict) else {}
    props = _validate_route(sim, name, body.get("properties"))
    return held_put(sim, r, t, t.routes, key, name, props, current, "PutRouteOperation",
                    lambda route: model.route_json(t, route))


def _route_delete(sim: Simulator, r: Request) -> Response:
    t = sim.route_tables.table(r.params)
    return held_delete(sim, r, t, t.routes, r.params["routeName"].lower(), "DeleteRouteOperation")


def _effective_routes(sim: Simulator, r: Request) -> Response:
    """NetworkInterfaces_GetEffectiveRouteTable: 202 + Location, `{"value": [...]}` at the end of the LRO."""
    nic = sim.network.nic(r.params)
    vm = sim.compute.by_id(nic.vm_id or "")
    if vm is None or vm.power != "running":
        raise ArmError(400, "VirtualMachineNotRunning",
                       "Effective routes can be retrieved only when the virtual machine is running.")
    op = sim.start_operation(r, result=lambda: {"value": sim.route_tables.effective(nic)})
    if op.status != "InProgress":  # lro_polls=0: the answer at once
        return sim.operation_result(op)
    return sim.accepted(r, op, "Microsoft.Network", async_operation=False)


_RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network"
_RT = _RG + "/routeTables/{routeTableName}"
_API: dict[str, Any] = {"oldest_api": "2015-06-15", "newest_api": "2026-12-31"}

ROUTES = [
    Route("GET", _RT, _table_get, "RouteTables_Get", resource_type="routeTables", **_API),
    Route("PUT", _RT, _table_put, "RouteTables_CreateOrUpdate", mutating=True, resource_type="routeTables", **_API),
    Route("DELETE", _RT, _table_delete, "RouteTables_Delete", mutating=True, resource_type="routeTables", **_API),
    Route("GET", _RT + "/routes", _route_list, "Routes_List", resource_type="routeTables/routes", **_API),
    Route("GET", _RT + "/routes/{routeName}", _route_get, "Routes_Get", resource_type="routeTables/routes", **_API),
    Route("PUT", _RT + "/routes/{routeName}", _route_put, "Routes_CreateOrUpdate", mutating=True,
          resource_type="routeTables/routes", **_API),
    Route("DELETE", _RT + "/routes/{routeName}", _route_delete, "Routes_Delete", mutating=True,
          resource_type="routeTables/routes", **_API),
    Route("POST", _RG + "/networkInterfaces/{networkInterfaceName}/effectiveRouteTable", _effective_routes,
          "NetworkInterfaces_GetEffectiveRouteTable", resource_type="networkInterfaces", **_API),
]
