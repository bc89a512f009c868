"""How Azure decides whether an NSG lets a packet out (priority order, first match, default rules), and its limits.

armsim keeps its own evaluator (it imports nothing from the project under test), so the
remediation's planner and this judge of reachability are two independent implementations.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from .arm import ArmError

__all__ = ["DEFAULT_RULES", "MAX_PREFIXES_PER_NSG", "MAX_RULES_PER_NSG", "address_matches", "check_limits", "first_match",
           "port_matches"]

_VNET = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def _default(name: str, prio: int, direction: str, access: str, src: str, dst: str) -> dict[str, Any]:
    return {"name": name, "properties": {
        "description": "armsim default rule", "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
        "sourceAddressPrefix": src, "destinationAddressPrefix": dst, "access": access, "priority": prio,
        "direction": direction, "provisioningState": "Succeeded",
        "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
        "sourcePortRanges": [], "destinationPortRanges": []}}


DEFAULT_RULES = (
    _default("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    _default("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*"),
    _default("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    _default("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
)


def _in_any(ip: ipaddress.IPv4Address, prefixes: Iterable[str]) -> bool:
    for p in prefixes:
        try:
            if ip in ipaddress.ip_network(p, strict=False):
                return True
        except ValueError:
            continue
    return False


def address_matches(spec: str, ip: str, tags: Mapping[str, list[str]]) -> bool:
    """Whether `ip` falls in a rule's address spec: `*`, a CIDR/IP, or a service tag."""
    addr = ipaddress.ip_address(ip)
    s = spec.strip()
    if s in ("*", "0.0.0.0/0", "Any"):
        return True
    low = s.lower()
    if low == "virtualnetwork":
        return _in_any(addr, _VNET)  # type: ignore[arg-type]
    if low == "internet":
        return not _in_any(addr, _VNET) and not addr.is_private  # type: ignore[arg-type]
    if low == "azureloadbalancer":
        return str(addr) == "168.63.129.16"
    for tag, prefixes in tags.items():
        if tag.lower() == low:
            return _in_any(addr, prefixes)  # type: ignore[arg-type]
    try:
        return addr in ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False  # an unknown tag matches nothing


def port_matches(spec: str, port: int) -> bool:
    """Whether `port` falls in a port spec: `*`, `443`, or `400-500`."""
    s = spec.strip()
    if s == "*":
        return True
    if "-" in s:
        lo, hi = s.split("-", 1)
        return int(lo) <= port <= int(hi)
    return int(s) == port


def _values(props: Mapping[str, Any], singular: str, plural: str) -> list[str]:
    many = props.get(plural) or []
    one = props.get(singular)
    return list(many) + ([one] if one else [])


def first_match(rules: Iterable[Mapping[str, Any]], *, direction: str, protocol: str, src_ip: str, dst_ip: str,
                dst_port: int, tags: Mapping[str, list[str]]) -> Mapping[str, Any]:
    """The rule (custom or default) that decides this flow: lowest priority number that matches."""
    ordered = sorted([*rules, *DEFAULT_RULES], key=lambda r: r["properties"]["priority"])
    for rule in ordered:
        p = rule["properties"]
        if p["direction"].lower() != direction.lower():
            continue
        if p["protocol"] not in ("*", "All") and p["protocol"].lower() != protocol.lower():
            continue
        if not any(address_matches(s, src_ip, tags) for s in _values(p, "sourceAddressPrefix", "sourceAddressPrefixes")):
            continue
        if not any(address_matches(d, dst_ip, tags)
                   for d in _values(p, "destinationAddressPrefix", "destinationAddressPrefixes")):
            continue
        if not any(port_matches(d, dst_port) for d in _values(p, "destinationPortRange", "destinationPortRanges")):
            continue
        return rule
    raise AssertionError("the default DenyAll rules always match")


# Per NSG, not per rule; source and destination counted separately (MicrosoftDocs/azure-docs
# includes/azure-virtual-network-limits.md). Errors: SecurityRuleAddressesOrPortsPerSecurityGroupLimitReached
# (kubernetes-sigs/cloud-provider-azure issue #2725), SecurityRuleCountLimitReached (azure-rest-api-specs #3003).
MAX_PREFIXES_PER_NSG = 4000
MAX_RULES_PER_NSG = 1000


def _entries(props: Mapping[str, Any], side: str) -> int:
    """How many addresses/prefixes a rule lists on one side (every entry counts, a tag or `*` too: assumed)."""
    return len(props.get(f"{side}AddressPrefixes") or []) + (1 if props.get(f"{side}AddressPrefix") else 0)


def check_limits(nsg_id: str, others: list[Mapping[str, Any]], props: Mapping[str, Any]) -> None:
    """400 when an NSG holding `others` and this rule would pass its rule count or its per-side prefix limit."""
    if len(others) + 1 > MAX_RULES_PER_NSG:
        raise ArmError(400, "SecurityRuleCountLimitReached",
                       f"A security group cannot have more than {MAX_RULES_PER_NSG} security rules.")
    for side, label in (("source", "SourceAddressPrefixes"), ("destination", "DestinationAddressPrefixes")):
        total = sum(_entries(p, side) for p in others) + _entries(props, side)
        if total > MAX_PREFIXES_PER_NSG:
            raise ArmError(400, "SecurityRuleAddressesOrPortsPerSecurityGroupLimitReached",
                           f"Network security group {nsg_id} has {total} {label}. A security group cannot have "
                           f"more than {MAX_PREFIXES_PER_NSG} {label} as per the limit "
                           "MaxSecurityRuleAddressesOrPortsPerSecurityGroup.")
