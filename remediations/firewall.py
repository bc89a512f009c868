"""Azure Firewall classic rules, pure: find the firewall behind an appliance IP, and judge whether its rules let a
VM's backup traffic reach its region's Storage tag.

Rule processing (learn.microsoft.com/azure/firewall/rule-processing, classic rules): network rules are processed
before application rules; within each kind, collections by priority (lower first); the first rule that matches
decides; traffic nothing matches is denied. A network rule matches the backup traffic when its protocols include
TCP (or Any), a destination port covers 443 and a destination address is `*`, `Storage`, the region's
`Storage.<Region>` tag or prefixes covering every prefix of it. An application rule matches when it carries the
`AzureBackup` FQDN tag (or target FQDN `*`). Source addresses are not compared: the VM's address is not read here,
so the deciding rule's sources are named in the evidence for a person to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .netaddr import parse_net

__all__ = ["BACKUP_FQDN_TAG", "FirewallVerdict", "find_firewall", "judge_firewall"]

BACKUP_FQDN_TAG = "AzureBackup"


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    """The first of `keys` present in `d` (REST camelCase or SDK as_dict snake_case)."""
    return next((d[k] for k in keys if d and d.get(k) is not None), None)


def _props(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """A REST item's `properties`, or the SDK's flattened item itself."""
    return _get(d, "properties") or d


@dataclass(frozen=True)
class FirewallVerdict:
    """An Azure Firewall behind an appliance IP, whether its rules allow the backup traffic, and the deciding rule."""

    name: str
    ip: str
    allows: bool
    rule: str  # the deciding rule in words, or "" when no rule matches (denied by default)
    policy: str = ""  # the Firewall Policy it is run by (its rules are there, not read): no classic rule decides

    def describe(self) -> str:
        """`Azure Firewall fw-demo (10.0.100.4)`."""
        return f"Azure Firewall {self.name} ({self.ip})"


def find_firewall(firewalls: Iterable[Mapping[str, Any]], ip: str) -> Mapping[str, Any] | None:
    """The firewall one of whose IP configurations has the private IP `ip`, if any."""
    for fw in firewalls:
        for ipc in _get(_props(fw), "ipConfigurations", "ip_configurations") or []:
            if _get(_props(ipc), "privateIPAddress", "private_ip_address") == ip:
                return fw
    return None


def _port_443(ports: Sequence[Any]) -> bool:
    for p in ports:
        s = str(p).strip()
        lo, _, hi = s.partition("-")
        if s == "*" or (lo.isdigit() and int(lo) <= 443 <= int(hi if hi.isdigit() else lo)):
            return True
    return False


def _storage_dest(dests: Sequence[Any], tag: str, prefixes: Sequence[str]) -> bool:
    names = {"*", "storage", tag.lower()}
    if any(str(d).strip().lower() in names for d in dests):
        return True
    nets = [n for n in (parse_net(str(d)) for d in dests) if n is not None]
    wanted = [n for n in (parse_net(p) for p in prefixes) if n is not None and n.version == 4]
    return bool(wanted) and all(any(w.version == n.version and w.subnet_of(n) for n in nets)  # type: ignore[arg-type]
                                for w in wanted)


def _ordered(colls: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(colls, key=lambda c: int(_get(_props(c), "priority") or 65000))


def _action(c: Mapping[str, Any]) -> str:
    action = _get(_props(c), "action") or {}
    return str(_get(action, "type") or "") if isinstance(action, Mapping) else str(action)


def judge_firewall(fw: Mapping[str, Any], ip: str, tag: str, prefixes: Sequence[str]) -> FirewallVerdict:
    """Whether the firewall's classic rules allow TCP 443 to the region's Storage tag (`tag`, its `prefixes`)."""
    props = _props(fw)
    name = str(_get(fw, "name") or "?")
    for c in _ordered(_get(props, "networkRuleCollections", "network_rule_collections") or []):
        for r in _get(_props(c), "rules") or []:
            protos = {str(p).lower() for p in _get(r, "protocols") or []}
            dests = _get(r, "destinationAddresses", "destination_addresses") or []
            if (protos & {"tcp", "any"} and _port_443(_get(r, "destinationPorts", "destination_ports") or [])
                    and _storage_dest(dests, tag, prefixes)):
                src = ", ".join(_get(r, "sourceAddresses", "source_addresses") or []) or "none"
                what = (f"network rule collection {_get(c, 'name')} ({_action(c)}, priority "
                        f"{_get(_props(c), 'priority')}) rule {_get(r, 'name')}: TCP 443 to {', '.join(dests)} "
                        f"from {src}")
                return FirewallVerdict(name, ip, _action(c).lower() == "allow", what)
    for c in _ordered(_get(props, "applicationRuleCollections", "application_rule_collections") or []):
        for r in _get(_props(c), "rules") or []:
            tags = [str(t) for t in _get(r, "fqdnTags", "fqdn_tags") or []]
            fqdns = [str(t).strip() for t in _get(r, "targetFqdns", "target_fqdns") or []]
            if any(t.lower() == BACKUP_FQDN_TAG.lower() for t in tags) or "*" in fqdns:
                src = ", ".join(_get(r, "sourceAddresses", "source_addresses") or []) or "none"
                target = f"FQDN tag {BACKUP_FQDN_TAG}" if tags else "target FQDN *"
                what = (f"application rule collection {_get(c, 'name')} ({_action(c)}, priority "
                        f"{_get(_props(c), 'priority')}) rule {_get(r, 'name')}: {target} from {src}")
                return FirewallVerdict(name, ip, _action(c).lower() == "allow", what)
    policy = _get(props, "firewallPolicy", "firewall_policy")
    policy_id = str(_get(policy, "id") or "") if policy else ""
    return FirewallVerdict(name, ip, False, "", policy=policy_id.rsplit("/", 1)[-1] if policy_id else "")
