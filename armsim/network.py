"""Microsoft.Network: NICs, subnets, NSGs and their rules (etags, locks, conflicts), service tags.

The effective-NSG and service-tag handlers live in `armsim/netviews.py`; route tables in `armsim/routes.py`,
whose route writes share this module's `held_put` / `held_delete`. Over 400 lines because the NSG write rules
(locks, etags, conflicts, limits, rollback) share one lock and one state, and the child writes that routes reuse
are defined once, here.

Write semantics copied from real NRP behaviour (docs/armsim.md, arm-fault-semantics):
- a rule write or delete holds the NSG until its operation ends; a second writer meanwhile gets
  429 RetryableError / RetryableErrorDueToAnotherOperation with Retry-After;
- two rules may not share priority and direction: 400 SecurityRuleConflict;
- an NSG's limits (4,000 prefixes per side over all rules, 1,000 rules): see `netpolicy.check_limits`;
- prefixes are stored as written, a tag in the wrong case too (Azure/azure-cli #15462);
- If-Match / If-None-Match are checked against weak etags: 412 PreconditionFailed;
- a failed or superseded (Canceled) write is rolled back: clients must re-read to know.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, new_etag, not_found
from .netpolicy import DEFAULT_RULES, check_limits, first_match
from .netviews import effective_nsgs, nic_list_all, service_tags
from .routing import Route

if TYPE_CHECKING:
    from .compute import VM
    from .sim import Simulator

__all__ = ["NIC", "NSG", "ROUTES", "NetworkModel", "Subnet", "held_delete", "held_put"]


@dataclass
class NSG:
    """A network security group with its custom rules (REST JSON, keyed by lower-case name)."""

    name: str
    group: str
    subscription: str
    location: str
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    etag: str = field(default_factory=new_etag)
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    writer: str | None = None  # the operation holding the NSG

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Network/networkSecurityGroups/{self.name}")


@dataclass
class Subnet:
    """A subnet of a virtual network, optionally with an NSG and a route table."""

    vnet: str
    name: str
    group: str
    subscription: str
    prefix: str
    nsg_id: str | None = None
    route_table_id: str | None = None  # armsim/routes.py
    etag: str = field(default_factory=new_etag)

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Network/virtualNetworks/{self.vnet}/subnets/{self.name}")


@dataclass
class NIC:
    """A network interface: private IP, subnet, optional NSG, owning VM."""

    name: str
    group: str
    subscription: str
    location: str
    private_ip: str
    subnet_id: str
    nsg_id: str | None = None
    vm_id: str | None = None
    etag: str = field(default_factory=new_etag)
    # Private IPs of further IP configurations (ipconfig2, …). They share the NIC's subnet: Azure refuses
    # "IPConfigurations on a Nic cannot belong to different subnets" (Azure/azure-sdk-for-java#1865).
    secondary_ips: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Network/networkInterfaces/{self.name}")

    def ip_configs(self) -> list[tuple[str, str]]:
        """(name, private IP) of every IP configuration, the primary (ipconfig1) first."""
        return [(f"ipconfig{i}", ip) for i, ip in enumerate([self.private_ip, *self.secondary_ips], start=1)]


def _load_tags() -> dict[str, Any]:
    return json.loads(resources.files("armsim").joinpath("data/service-tags.json").read_text())


class NetworkModel:
    """Every NIC, subnet and NSG of one simulator, and the rules for changing them."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.nsgs: dict[str, NSG] = {}
        self.subnets: dict[str, Subnet] = {}
        self.nics: dict[str, NIC] = {}
        self.tag_data = _load_tags()
        self.tags = {v["name"]: v["addressPrefixes"] for v in self.tag_data["values"]}

    def add(self, obj: NSG | Subnet | NIC) -> Any:
        """Register a network resource under its lower-case id."""
        table: dict[str, Any] = {NSG: self.nsgs, Subnet: self.subnets, NIC: self.nics}[type(obj)]  # type: ignore[assignment]
        table[obj.id.lower()] = obj
        return obj

    def _find(self, table: dict[str, Any], rid: str, kind: str, name: str, group: str) -> Any:
        obj = table.get(rid.lower())
        if obj is None:
            raise not_found(kind, name, group)
        return obj

    def nsg(self, p: dict[str, str]) -> NSG:
        """The NSG named by route params, or 404."""
        rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
               f"/providers/Microsoft.Network/networkSecurityGroups/{p['networkSecurityGroupName']}")
        return self._find(self.nsgs, rid, "Microsoft.Network/networkSecurityGroups",
                          p["networkSecurityGroupName"], p["resourceGroupName"])

    def nic(self, p: dict[str, str]) -> NIC:
        """The NIC named by route params, or 404."""
        rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
               f"/providers/Microsoft.Network/networkInterfaces/{p['networkInterfaceName']}")
        return self._find(self.nics, rid, "Microsoft.Network/networkInterfaces", p["networkInterfaceName"],
                          p["resourceGroupName"])

    # --- views -------------------------------------------------------------------------------
    def rule_json(self, nsg: NSG, rule: dict[str, Any], *, default: bool = False) -> dict[str, Any]:
        """A security rule as ARM returns it."""
        kind = "defaultSecurityRules" if default else "securityRules"
        out = copy.deepcopy(rule)
        out["id"] = f"{nsg.id}/{kind}/{rule['name']}"
        out["type"] = f"Microsoft.Network/networkSecurityGroups/{kind}"
        out.setdefault("etag", nsg.etag)
        out["properties"].setdefault("provisioningState", "Succeeded")
        return out

    def nsg_json(self, nsg: NSG) -> dict[str, Any]:
        """An NSG as ARM returns it, with its rules, default rules and associations."""
        return {
            "id": nsg.id, "name": nsg.name, "type": "Microsoft.Network/networkSecurityGroups",
            "location": nsg.location, "etag": nsg.etag,
            "properties": {
                "securityRules": [self.rule_json(nsg, r) for r in sorted(
                    nsg.rules.values(), key=lambda r: (r["properties"]["direction"], r["properties"]["priority"]))],
                "defaultSecurityRules": [self.rule_json(nsg, r, default=True) for r in DEFAULT_RULES],
                "networkInterfaces": [{"id": n.id} for n in self.nics.values() if n.nsg_id and n.nsg_id.lower() == nsg.id.lower()],
                "subnets": [{"id": s.id} for s in self.subnets.values() if s.nsg_id and s.nsg_id.lower() == nsg.id.lower()],
                "resourceGuid": nsg.guid,
                "provisioningState": "Updating" if nsg.writer else "Succeeded",
            },
        }

    def nic_json(self, nic: NIC) -> dict[str, Any]:
        """A network interface as ARM returns it."""
        props: dict[str, Any] = {
            "ipConfigurations": [{
                "name": name, "id": f"{nic.id}/ipConfigurations/{name}", "etag": nic.etag,
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "properties": {"privateIPAddress": ip, "privateIPAllocationMethod": "Dynamic",
                               "privateIPAddressVersion": "IPv4", "subnet": {"id": nic.subnet_id},
                               "primary": name == "ipconfig1", "provisioningState": "Succeeded"}}
                for name, ip in nic.ip_configs()],
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": [], "internalDomainNameSuffix":
                            f"{uuid.uuid5(uuid.NAMESPACE_URL, nic.subnet_id).hex[:26]}.bx.internal.cloudapp.net"},
            "macAddress": "00-0D-3A-1B-C7-21", "enableAcceleratedNetworking": False, "enableIPForwarding": False,
            "disableTcpStateTracking": False, "vnetEncryptionSupported": False,
            "primary": True, "provisioningState": "Succeeded", "resourceGuid": str(uuid.uuid5(uuid.NAMESPACE_URL, nic.id)),
        }
        if nic.nsg_id:
            props["networkSecurityGroup"] = {"id": nic.nsg_id}
        if nic.vm_id:
            props["virtualMachine"] = {"id": nic.vm_id}
        return {"id": nic.id, "name": nic.name, "type": "Microsoft.Network/networkInterfaces",
                "location": nic.location, "etag": nic.etag, "properties": props}

    def subnet_json(self, sn: Subnet) -> dict[str, Any]:
        """A subnet as ARM returns it."""
        props: dict[str, Any] = {"addressPrefix": sn.prefix, "provisioningState": "Succeeded",
                                 "privateEndpointNetworkPolicies": "Disabled",
                                 "privateLinkServiceNetworkPolicies": "Enabled", "delegations": [],
                                 "ipConfigurations": [{"id": f"{n.id}/ipConfigurations/{name}"}
                                                      for n in self.nics.values() if n.subnet_id.lower() == sn.id.lower()
                                                      for name, _ in n.ip_configs()]}
        if sn.nsg_id:
            props["networkSecurityGroup"] = {"id": sn.nsg_id}
        if sn.route_table_id:
            props["routeTable"] = {"id": sn.route_table_id}
        return {"id": sn.id, "name": sn.name, "etag": sn.etag, "type": "Microsoft.Network/virtualNetworks/subnets",
                "properties": props}

    # --- reachability ------------------------------------------------------------------------
    def nsgs_for(self, vm: VM) -> list[tuple[NSG, str, NIC]]:
        """The NSGs a VM's outbound traffic crosses, in Azure's order: NIC first, then subnet."""
        out: list[tuple[NSG, str, NIC]] = []
        for nic_id in vm.nic_ids:
            nic = self.nics.get(nic_id.lower())
            if nic is None:
                continue
            if nic.nsg_id and nic.nsg_id.lower() in self.nsgs:
                out.append((self.nsgs[nic.nsg_id.lower()], "networkInterface", nic))
            sn = self.subnets.get(nic.subnet_id.lower())
            if sn and sn.nsg_id and sn.nsg_id.lower() in self.nsgs:
                out.append((self.nsgs[sn.nsg_id.lower()], "subnet", nic))
        return out

    def regional_tag(self, service: str, region: str) -> str | None:
        """The name the Service Tags data gives `service`'s tag for `region` (by its `region` field), as listed."""
        want = region.replace(" ", "").lower()
        return next((v["name"] for v in self.tag_data["values"]
                     if v["name"].split(".")[0].lower() == service.lower() and v["region"].lower() == want), None)

    def storage_blocked(self, vm: VM, port: int = 443) -> str | None:
        """Why the VM cannot reach every prefix of its region's Storage tag on TCP `port`, or None when it can."""
        import ipaddress

        prefixes = self.tags.get(self.regional_tag("Storage", vm.location) or "", [])
        for nsg, scope, nic in self.nsgs_for(vm):
            for src, prefix in ((ip, p) for _, ip in nic.ip_configs() for p in prefixes):  # every IP configuration
                net = ipaddress.ip_network(prefix)
                for probe in (net.network_address + 1, net.broadcast_address - 1):
                    rule = first_match(nsg.rules.values(), direction="Outbound", protocol="Tcp",
                                       src_ip=src, dst_ip=str(probe), dst_port=port, tags=self.tags)
                    if rule["properties"]["access"] == "Deny":
                        return (f"{scope} NSG {nsg.name} rule {rule['name']} "
                                f"(priority {rule['properties']['priority']}) denies TCP {port} to {probe}")
        return None


# --- handlers --------------------------------------------------------------------------------
def _nsg_get(sim: Simulator, r: Request) -> Response:
    return Response(200, sim.network.nsg_json(sim.network.nsg(r.params)))


def _rule_list(sim: Simulator, r: Request) -> Response:
    nsg = sim.network.nsg(r.params)
    return Response(200, {"value": sim.network.nsg_json(nsg)["properties"]["securityRules"]})


def _rule_get(sim: Simulator, r: Request) -> Response:
    nsg = sim.network.nsg(r.params)
    rule = nsg.rules.get(r.params["securityRuleName"].lower())
    if rule is None:
        raise not_found("Microsoft.Network/networkSecurityGroups/securityRules",
                        f"{nsg.name}/{r.params['securityRuleName']}", nsg.group)
    return Response(200, sim.network.rule_json(nsg, rule))


def _check_lock(nsg: NSG, operation: str) -> None:
    if nsg.writer is not None:
        raise ArmError(
            429, "RetryableError", "A retryable error occurred.",
            details=[{"code": "RetryableErrorDueToAnotherOperation",
                      "message": f"Operation {operation} is blocked: operation {nsg.writer} is updating resource "
                                 f"{nsg.id}. The call can be retried in 1 seconds."}],
            headers={"Retry-After": "1"})


def _check_preconditions(r: Request, current: dict[str, Any] | None, default_etag: str | None = None) -> None:
    if_match, if_none = r.header("If-Match"), r.header("If-None-Match")
    etag = current.get("etag", default_etag) if current else None  # as rule_json shows it
    if if_match is not None and (current is None or (if_match != "*" and if_match != etag)):
        raise ArmError(412, "PreconditionFailed", "Precondition failed.",
                       details=[{"code": "PreconditionFailedEtagMismatch",
                                 "message": f"Etag provided in if-match header {if_match} does not match etag "
                                            f"{etag} of resource in NRP data store."}])
    if if_none == "*" and current is not None:
        raise ArmError(412, "PreconditionFailed", "Precondition failed: the resource already exists.")


_REQUIRED = ("protocol", "access", "direction", "priority")
_PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "esp": "Esp", "ah": "Ah", "*": "*"}


def _validate_rule(name: str, props: Any) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is required.")
    missing = [k for k in _REQUIRED if props.get(k) in (None, "")]
    if missing:
        raise ArmError(400, "InvalidRequestFormat", f"Security rule {name}: missing {', '.join(missing)}.")
    prio = props["priority"]
    if not isinstance(prio, int) or not 100 <= prio <= 4096:
        raise ArmError(400, "SecurityRuleInvalidPriority",
                       f"Security rule {name} has invalid Priority. Value provided: {prio}. "
                       "Allowed values are from 100 to 4096.")
    if str(props["protocol"]).lower() not in _PROTOCOLS:
        raise ArmError(400, "SecurityRuleInvalidProtocol", f"Security rule {name} has invalid Protocol.")
    for single, plural in (("sourceAddressPrefix", "sourceAddressPrefixes"),
                           ("destinationAddressPrefix", "destinationAddressPrefixes"),
                           ("destinationPortRange", "destinationPortRanges")):
        if not props.get(single) and not props.get(plural):
            raise ArmError(400, "SecurityRuleParameterMissing",
                           f"Security rule {name} must specify {single} or {plural}.")
    clean = {k: v for k, v in props.items() if k not in ("provisioningState",)}
    clean["protocol"] = _PROTOCOLS[str(props["protocol"]).lower()]
    clean.setdefault("sourcePortRange", "*")
    for k in ("sourceAddressPrefixes", "destinationAddressPrefixes", "sourcePortRanges", "destinationPortRanges"):
        clean.setdefault(k, [])
    return clean


def _rule_put(sim: Simulator, r: Request) -> Response:
    nsg = sim.network.nsg(r.params)
    name = r.params["securityRuleName"]
    key = name.lower()
    _check_lock(nsg, "PutSecurityRuleOperation")
    current = nsg.rules.get(key)
    _check_preconditions(r, current, nsg.etag)
    body = r.body if isinstance(r.body, dict) else {}
    props = _validate_rule(name, body.get("properties"))
    check_limits(nsg.id, [r["properties"] for k, r in nsg.rules.items() if k != key], props)
    for other in nsg.rules.values():
        op = other["properties"]
        if (other["name"].lower() != key and op["priority"] == props["priority"]
                and op["direction"].lower() == props["direction"].lower()):
            raise ArmError(400, "SecurityRuleConflict",
                           f"Security rule {name} conflicts with rule {other['name']}. "
                           "Rules cannot have the same Priority and Direction.")
    return held_put(sim, r, nsg, nsg.rules, key, name, props, current, "PutSecurityRuleOperation",
                    lambda rule: sim.network.rule_json(nsg, rule))


def held_put(sim: Simulator, r: Request, holder: Any, children: dict[str, Any], key: str, name: str,
             props: dict[str, Any], current: dict[str, Any] | None, operation: str,
             to_json: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
    """PUT of a validated child (an NSG's rule, a route): shown Updating while the holder is held by this writer;
    Succeeded when the LRO ends, else rolled back; 201 new / 200 replaced, `Azure-AsyncOperation` only."""
    previous = copy.deepcopy(current)
    child: dict[str, Any] = {"name": name, "etag": new_etag(), "properties": {**props, "provisioningState": "Updating"}}
    children[key] = child
    holder.writer = f"{operation} ({uuid.uuid4()})"

    def apply() -> None:
        child["properties"]["provisioningState"] = "Succeeded"
        holder.etag = new_etag()

    def release() -> None:
        holder.writer = None
        if child["properties"]["provisioningState"] != "Succeeded":  # failed or superseded: roll back
            if previous is None:
                children.pop(key, None)
            else:
                children[key] = previous

    op = sim.start_operation(r, polls=sim.settings.nsg_write_polls, seconds=sim.settings.nsg_write_seconds,
                             apply=apply, release=release, result=lambda: to_json(child))
    return sim.accepted(r, op, "Microsoft.Network", status=200 if current is not None else 201,
                        body=to_json(child), location=False)


def held_delete(sim: Simulator, r: Request, holder: Any, children: dict[str, Any], key: str,
                operation: str) -> Response:
    """DELETE of a child (an NSG's rule, a route table's route): 204 when absent; else the holder is held by one
    writer (429 to a second), If-Match checked (412), and the child removed when the LRO ends."""
    if key not in children:
        return Response(204)
    _check_lock(holder, operation)
    _check_preconditions(r, children[key], holder.etag)
    holder.writer = operation

    def apply() -> None:
        children.pop(key, None)
        holder.etag = new_etag()

    def release() -> None:
        holder.writer = None

    op = sim.start_operation(r, polls=sim.settings.nsg_write_polls, seconds=sim.settings.nsg_write_seconds,
                             apply=apply, release=release)
    return sim.accepted(r, op, "Microsoft.Network")


def _rule_delete(sim: Simulator, r: Request) -> Response:
    nsg = sim.network.nsg(r.params)
    return held_delete(sim, r, nsg, nsg.rules, r.params["securityRuleName"].lower(), "DeleteSecurityRuleOperation")


def _nic_get(sim: Simulator, r: Request) -> Response:
    return Response(200, sim.network.nic_json(sim.network.nic(r.params)))


def _subnet_get(sim: Simulator, r: Request) -> Response:
    p = r.params
    rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
           f"/providers/Microsoft.Network/virtualNetworks/{p['virtualNetworkName']}/subnets/{p['subnetName']}")
    sn = sim.network._find(sim.network.subnets, rid, "Microsoft.Network/virtualNetworks/subnets",
                           f"{p['virtualNetworkName']}/{p['subnetName']}", p["resourceGroupName"])
    return Response(200, sim.network.subnet_json(sn))


_RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network"
_NSG = _RG + "/networkSecurityGroups/{networkSecurityGroupName}"
_API: dict[str, Any] = {"oldest_api": "2015-06-15", "newest_api": "2026-12-31"}

ROUTES = [
    Route("GET", _NSG, _nsg_get, "NetworkSecurityGroups_Get", resource_type="networkSecurityGroups", **_API),
    Route("GET", _NSG + "/securityRules", _rule_list, "SecurityRules_List",
          resource_type="networkSecurityGroups/securityRules", **_API),
    Route("GET", _NSG + "/securityRules/{securityRuleName}", _rule_get, "SecurityRules_Get",
          resource_type="networkSecurityGroups/securityRules", **_API),
    Route("PUT", _NSG + "/securityRules/{securityRuleName}", _rule_put, "SecurityRules_CreateOrUpdate",
          mutating=True, resource_type="networkSecurityGroups/securityRules", **_API),
    Route("DELETE", _NSG + "/securityRules/{securityRuleName}", _rule_delete, "SecurityRules_Delete",
          mutating=True, resource_type="networkSecurityGroups/securityRules", **_API),
    Route("GET", _RG + "/networkInterfaces/{networkInterfaceName}", _nic_get, "NetworkInterfaces_Get",
          resource_type="networkInterfaces", **_API),
    Route("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Network/networkInterfaces", nic_list_all,
          "NetworkInterfaces_ListAll", resource_type="networkInterfaces", **_API),
    Route("POST", _RG + "/networkInterfaces/{networkInterfaceName}/effectiveNetworkSecurityGroups", effective_nsgs,
          "NetworkInterfaces_ListEffectiveNetworkSecurityGroups", resource_type="networkInterfaces", **_API),
    Route("GET", _RG + "/virtualNetworks/{virtualNetworkName}/subnets/{subnetName}", _subnet_get, "Subnets_Get",
          resource_type="virtualNetworks/subnets", **_API),
    Route("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Network/locations/{location}/serviceTags",
          service_tags, "ServiceTags_List", resource_type="locations/serviceTags", **_API),
]
