"""Network reads shared by diagnosis and the egress action: the region's service tags (read once per process
and region, so a fleet and a run's re-plans share one read) and the NSGs a NIC's outbound traffic crosses."""

from __future__ import annotations

import threading
from typing import Any, Literal

from .armid import parse_resource_id
from .azure import Azure
from .netaddr import TagResolver
from .netrules import NsgView
from .routes import EffectiveRoute

__all__ = ["effective_routes", "nsgs_by_get", "nsgs_effective", "service_tags"]

Scope = Literal["nic", "subnet"]
_NIC = "Microsoft.Network/networkInterfaces"
_SUBNET = "Microsoft.Network/virtualNetworks/subnets"
_NSG = "Microsoft.Network/networkSecurityGroups"

_tags_cache: dict[tuple[str, str, str], TagResolver] = {}
_tags_lock = threading.Lock()


def service_tags(azure: Azure, region: str) -> TagResolver:
    """The region's service tags as a resolver, read once per process (endpoint, subscription, region)."""
    key = (azure.config.endpoint, azure.subscription, region.lower())
    with _tags_lock:
        if key in _tags_cache:
            return _tags_cache[key]
    result = azure.call(azure.network.service_tags.list, region)
    resolver = TagResolver.from_service_tags(result.as_dict())
    with _tags_lock:
        _tags_cache[key] = resolver
    return resolver


def _scope(association: dict[str, Any]) -> Scope:
    return "subnet" if "subnet" in association and "networkInterface" not in association else "nic"


def nsgs_effective(azure: Azure, nic_id: str) -> tuple[NsgView, ...]:
    """A running VM's NIC: its effective NSGs (one POST and its long-running-operation poll), NIC and subnet."""
    nic = parse_resource_id(nic_id, type=_NIC)

    def fetch() -> Any:
        return azure.network.network_interfaces.begin_list_effective_network_security_groups(
            nic.resource_group, nic.name).result()

    value = (azure.call(fetch).as_dict() or {}).get("value") or []
    return tuple(NsgView.from_arm(v, _scope(v.get("association") or {})) for v in value)


def effective_routes(azure: Azure, nic_id: str) -> tuple[EffectiveRoute, ...]:
    """A running VM's NIC: its effective routes (one POST, a read on the read-only allow-list, and its LRO poll)."""
    nic = parse_resource_id(nic_id, type=_NIC)

    def fetch() -> Any:
        return azure.network.network_interfaces.begin_get_effective_route_table(nic.resource_group, nic.name).result()

    value = (azure.call(fetch).as_dict() or {}).get("value") or []
    return tuple(EffectiveRoute.from_arm(v) for v in value)


def nsgs_by_get(azure: Azure, nic_id: str) -> tuple[NsgView, ...]:
    """A NIC read by GET (a stopped VM has no effective NSGs): its NSG, then the NSG of every IP configuration's subnet.

    Each subnet and each NSG is read once; an NSG met on the NIC and on a subnet keeps the NIC scope.
    """
    nic = parse_resource_id(nic_id, type=_NIC)
    props = azure.call(azure.network.network_interfaces.get, nic.resource_group, nic.name).as_dict().get(
        "properties") or {}
    wanted: dict[str, tuple[str, Scope]] = {}
    if (props.get("networkSecurityGroup") or {}).get("id"):
        nsg_id = props["networkSecurityGroup"]["id"]
        wanted[nsg_id.lower()] = (nsg_id, "nic")
    subnets: set[str] = set()
    for ipc in props.get("ipConfigurations") or []:  # every IP configuration: each may sit in another subnet
        sid = ((ipc.get("properties") or {}).get("subnet") or {}).get("id")
        if not sid or sid.lower() in subnets:
            continue
        subnets.add(sid.lower())
        sn = parse_resource_id(sid, type=_SUBNET)
        subnet = azure.call(azure.network.subnets.get, sn.resource_group, sn.part("virtualNetworks"),
                            sn.name).as_dict()
        nsg_id = ((subnet.get("properties") or {}).get("networkSecurityGroup") or {}).get("id")
        if nsg_id:
            wanted.setdefault(nsg_id.lower(), (nsg_id, "subnet"))
    views = []
    for nsg_id, scope in wanted.values():
        p = parse_resource_id(nsg_id, type=_NSG)
        views.append(NsgView.from_arm(
            azure.call(azure.network.network_security_groups.get, p.resource_group, p.name).as_dict(), scope))
    return tuple(views)
