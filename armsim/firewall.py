"""Microsoft.Network Azure Firewalls (classic rules): GET, list by group and subscription, PUT; and whether one lets
a VM's backup traffic reach its region's Storage.

Shapes follow the official example (tests/fixtures/azure-rest-examples/network/AzureFirewallGet.json):
`properties.ipConfigurations[].properties.privateIPAddress`, `applicationRuleCollections[]` and
`networkRuleCollections[]` with `properties.{priority, action.type, rules[]}`.

Rule processing ("Azure Firewall rule processing logic", learn.microsoft.com/azure/firewall/rule-processing, classic
rules): network rules first, then application rules; within each kind, collections by priority (lower first), the
first rule that matches decides; nothing matching is denied. A network rule matches the backup traffic when its
protocols include TCP (or Any), a destination port covers 443, a destination address is `*`, the `Storage` tag,
the region's `Storage.<Region>` tag or a prefix covering every prefix of that tag, and a source address covers the
VM's private IP. An application rule matches when it has the `AzureBackup` FQDN tag (or target FQDN `*`) and a
source covering the VM.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, new_etag, not_found
from .routing import Route

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["ROUTES", "AzureFirewall", "FirewallModel", "firewall_body", "firewall_allows_storage"]


@dataclass
class AzureFirewall:
    """One Azure Firewall: its private IP and its classic rule collections (REST JSON)."""

    name: str
    group: str
    subscription: str
    location: str
    private_ip: str
    application_rules: list[dict[str, Any]] = field(default_factory=list)
    network_rules: list[dict[str, Any]] = field(default_factory=list)
    vnet: str = "vnet-hub"  # the virtual network of its AzureFirewallSubnet
    etag: str = field(default_factory=new_etag)

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Network/azureFirewalls/{self.name}")


def firewall_body(fw: AzureFirewall) -> dict[str, Any]:
    """The firewall as AzureFirewalls_Get returns it."""
    def coll(kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = copy.deepcopy(items)
        for c in out:
            c["id"] = f"{fw.id}/{kind}/{c.get('name')}"
            c.setdefault("etag", fw.etag)
            c.setdefault("properties", {}).setdefault("provisioningState", "Succeeded")
        return out
    vnet = f"/subscriptions/{fw.subscription}/resourceGroups/{fw.group}/providers/Microsoft.Network/virtualNetworks"
    pip = f"/subscriptions/{fw.subscription}/resourceGroups/{fw.group}/providers/Microsoft.Network/publicIPAddresses"
    return {"name": fw.name, "id": fw.id, "type": "Microsoft.Network/azureFirewalls", "etag": fw.etag,
            "location": fw.location, "zones": [], "tags": {}, "properties": {
                "provisioningState": "Succeeded", "sku": {"name": "AZFW_VNet", "tier": "Standard"},
                "threatIntelMode": "Alert",
                "ipConfigurations": [{
                    "name": "azureFirewallIpConfiguration", "etag": fw.etag,
                    "id": f"{fw.id}/ipConfigurations/azureFirewallIpConfiguration",
                    "properties": {"provisioningState": "Succeeded", "privateIPAddress": fw.private_ip,
                                   "subnet": {"id": f"{vnet}/{fw.vnet}/subnets/AzureFirewallSubnet"},
                                   "publicIPAddress": {"id": f"{pip}/{fw.name}-pip"}}}],
                "applicationRuleCollections": coll("applicationRuleCollections", fw.application_rules),
                "natRuleCollections": [],
                "networkRuleCollections": coll("networkRuleCollections", fw.network_rules),
                "ipGroups": [], "additionalProperties": {}}}


class FirewallModel:
    """Every Azure Firewall of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.firewalls: dict[str, AzureFirewall] = {}

    def add(self, fw: AzureFirewall) -> AzureFirewall:
        """Register a firewall under its lower-case id."""
        self.firewalls[fw.id.lower()] = fw
        return fw

    def by_ip(self, ip: str) -> AzureFirewall | None:
        """The firewall whose private IP is `ip`, if any."""
        return next((f for f in self.firewalls.values() if f.private_ip == ip), None)

    def get(self, p: dict[str, str]) -> AzureFirewall:
        """The firewall named by route params, or 404."""
        rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
               f"/providers/Microsoft.Network/azureFirewalls/{p['azureFirewallName']}")
        fw = self.firewalls.get(rid.lower())
        if fw is None:
            raise not_found("Microsoft.Network/azureFirewalls", p["azureFirewallName"], p["resourceGroupName"])
        return fw


# --- the causal model --------------------------------------------------------------------------
def _covers_ip(entries: list[Any], ip: str) -> bool:
    for e in entries or []:
        s = str(e).strip()
        if s == "*":
            return True
        try:
            if "-" in s:
                lo, hi = (int(ipaddress.ip_address(x.strip())) for x in s.split("-", 1))
                if lo <= int(ipaddress.ip_address(ip)) <= hi:
                    return True
            elif ipaddress.ip_address(ip) in ipaddress.ip_network(s, strict=False):
                return True
        except ValueError:
            continue
    return False


def _covers_443(ports: list[Any]) -> bool:
    for p in ports or []:
        s = str(p).strip()
        if s == "*":
            return True
        lo, _, hi = s.partition("-")
        if lo.isdigit() and int(lo) <= 443 <= int(hi or lo):
            return True
    return False


def _covers_storage(dests: list[Any], tag: str, prefixes: list[str]) -> bool:
    names = {"*", "storage", tag.lower()}
    nets = []
    for d in dests or []:
        s = str(d).strip()
        if s.lower() in names:
            return True
        try:
            nets.append(ipaddress.ip_network(s, strict=False))
        except ValueError:
            continue
    wanted = [ipaddress.ip_network(p) for p in prefixes if ":" not in p]
    return bool(wanted) and all(any(w.version == n.version and w.subnet_of(n) for n in nets)  # type: ignore[arg-type]
                                for w in wanted)


def firewall_allows_storage(sim: Simulator, fw: AzureFirewall, source_ip: str, region: str) -> bool:
    """Whether the firewall's classic rules let `source_ip` reach every prefix of the region's Storage tag on 443."""
    net = sim.network
    tag = net.regional_tag("Storage", region) or "Storage"
    prefixes = list(net.tags.get(tag, []))

    def ordered(colls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(colls, key=lambda c: int((c.get("properties") or {}).get("priority") or 65000))

    for c in ordered(fw.network_rules):
        props = c.get("properties") or {}
        for rule in props.get("rules") or []:
            protos = {str(p).lower() for p in rule.get("protocols") or []}
            if (protos & {"tcp", "any"} and _covers_443(rule.get("destinationPorts") or [])
                    and _covers_storage(rule.get("destinationAddresses") or [], tag, prefixes)
                    and _covers_ip(rule.get("sourceAddresses") or [], source_ip)):
                return str((props.get("action") or {}).get("type") or "").lower() == "allow"
    for c in ordered(fw.application_rules):
        props = c.get("properties") or {}
        for rule in props.get("rules") or []:
            tags = {str(t).lower() for t in rule.get("fqdnTags") or []}
            fqdns = {str(t).strip() for t in rule.get("targetFqdns") or []}
            if ("azurebackup" in tags or "*" in fqdns) and _covers_ip(rule.get("sourceAddresses") or [], source_ip):
                return str((props.get("action") or {}).get("type") or "").lower() == "allow"
    return False


# --- handlers --------------------------------------------------------------------------------
def _get(sim: Simulator, r: Request) -> Response:
    return Response(200, firewall_body(sim.firewalls.get(r.params)))


def _list_group(sim: Simulator, r: Request) -> Response:
    p = r.params
    return Response(200, {"value": [firewall_body(f) for f in sim.firewalls.firewalls.values()
                                    if f.subscription.lower() == p["subscriptionId"].lower()
                                    and f.group.lower() == p["resourceGroupName"].lower()]})


def _list_all(sim: Simulator, r: Request) -> Response:
    sub = r.params["subscriptionId"].lower()
    return Response(200, {"value": [firewall_body(f) for f in sim.firewalls.firewalls.values()
                                    if f.subscription.lower() == sub]})


def _put(sim: Simulator, r: Request) -> Response:
    """AzureFirewalls_CreateOrUpdate of an existing firewall's rule collections (creation is not modelled)."""
    fw = sim.firewalls.get(r.params)
    body = r.body if isinstance(r.body, dict) else {}
    props = body.get("properties")
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is required.")

    def colls(key: str) -> list[dict[str, Any]]:
        items = props.get(key) or []
        if not isinstance(items, list) or not all(isinstance(c, dict) and isinstance(c.get("properties"), dict)
                                                  for c in items):
            raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request: '{key}' is malformed.")
        return [{"name": c.get("name"), "properties": {k: v for k, v in c["properties"].items()
                                                       if k != "provisioningState"}} for c in items]

    app, netr = colls("applicationRuleCollections"), colls("networkRuleCollections")

    def apply() -> None:
        fw.application_rules, fw.network_rules, fw.etag = app, netr, new_etag()

    op = sim.start_operation(r, apply=apply, result=lambda: firewall_body(fw))
    return sim.accepted(r, op, "Microsoft.Network", status=200, body=firewall_body(fw), location=False)


_FW = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/azureFirewalls"
_API: dict[str, Any] = {"oldest_api": "2018-04-01", "newest_api": "2026-12-31"}

ROUTES = [
    Route("GET", _FW + "/{azureFirewallName}", _get, "AzureFirewalls_Get", resource_type="azureFirewalls", **_API),
    Route("PUT", _FW + "/{azureFirewallName}", _put, "AzureFirewalls_CreateOrUpdate", mutating=True,
          resource_type="azureFirewalls", **_API),
    Route("GET", _FW, _list_group, "AzureFirewalls_List", resource_type="azureFirewalls", **_API),
    Route("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Network/azureFirewalls", _list_all,
          "AzureFirewalls_ListAll", resource_type="azureFirewalls", **_API),
]
