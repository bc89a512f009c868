"""Network reads shared by diagnosis and the egress action: the region's service tags (read once per process
and region, so a fleet and a run's re-plans share one read) and the NSGs a NIC's outbound traffic crosses."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from .armid import parse_resource_id
from .azure import Azure
from .errors import arm_error
from .firewall import find_firewall, judge_firewall
from .netaddr import TagResolver
from .netrules import NsgView
from .routes import EffectiveRoute, RouteFacts

__all__ = ["azure_firewalls", "effective_routes", "nsgs_by_get", "nsgs_effective", "service_tags", "with_firewalls"]

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


def _as_dict(result: Any) -> dict[str, Any]:
    """A long-running POST's result as JSON: the SDK model's as_dict(), or the dict the poller sometimes hands back
    (seen once in CI for effective NSGs; reads.run_script guards the Run Command result the same way)."""
    d = result.as_dict() if hasattr(result, "as_dict") else result
    return dict(d or {})


def _scope(association: dict[str, Any]) -> Scope:
    return "subnet" if "subnet" in association and "networkInterface" not in association else "nic"


def nsgs_effective(azure: Azure, nic_id: str) -> tuple[NsgView, ...]:
    """A running VM's NIC: its effective NSGs (one POST and its long-running-operation poll), NIC and subnet."""
    nic = parse_resource_id(nic_id, type=_NIC)

    def fetch() -> Any:
        return azure.network.network_interfaces.begin_list_effective_network_security_groups(
            nic.resource_group, nic.name).result()

    value = _as_dict(azure.call(fetch)).get("value") or []
    return tuple(NsgView.from_arm(v, _scope(v.get("association") or {})) for v in value)


def effective_routes(azure: Azure, nic_id: str) -> tuple[EffectiveRoute, ...]:
    """A running VM's NIC: its effective routes (one POST, a read on the read-only allow-list, and its LRO poll)."""
    nic = parse_resource_id(nic_id, type=_NIC)

    def fetch() -> Any:
        return azure.network.network_interfaces.begin_get_effective_route_table(nic.resource_group, nic.name).result()

    value = _as_dict(azure.call(fetch)).get("value") or []
    return tuple(EffectiveRoute.from_arm(v) for v in value)


def azure_firewalls(azure: Azure) -> tuple[dict[str, Any], ...]:
    """Every Azure Firewall of the subscription with its classic rules (one list read; its pages)."""
    return tuple(fw.as_dict() for fw in azure.call(lambda: list(azure.network.azure_firewalls.list_all())))


def with_firewalls(azure: Azure, facts: RouteFacts, prefixes: Sequence[str]) -> RouteFacts:
    """Route facts whose Storage path goes to appliances, with the Azure Firewalls among them judged by their rules.

    One list read of the subscription's firewalls, only when an appliance carries Storage traffic; a refusal (403)
    or other ARM error leaves the judgement to the appliance rule and says the firewalls were not readable.
    """
    ips = facts.path.appliances() if facts.path else ()
    if not ips or facts.path is None:
        return facts
    try:
        found = azure_firewalls(azure)
    except Exception as e:
        if not type(e).__module__.startswith("azure."):
            raise
        err = arm_error(e)
        return replace(facts, firewall_note=f"the Azure Firewalls were not readable ({err.code}: {err.message})")
    verdicts = []
    for ip in ips:
        fw = find_firewall(found, ip)
        if fw is not None:
            verdicts.append(judge_firewall(fw, ip, facts.path.tag, prefixes))
    ruled_by_policy = [v for v in verdicts if v.policy and not v.rule]
    note = "; ".join(f"{v.describe()} is run by Firewall Policy {v.policy}, whose rules were not read"
                     for v in ruled_by_policy)
    return replace(facts, firewalls=tuple(verdicts), firewall_note=note or facts.firewall_note)


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
