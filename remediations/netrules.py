"""Pure NSG rule logic: evaluation, backup-egress diagnosis and allow-rule planning (no I/O, no SDK).

Over 400 lines on purpose: diagnosis and the egress action must decide "blocked" with the same code;
the NSG limit check already moved to `netlimits.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .netaddr import (
    ASG_PREFIX,
    WIRESERVER_IP,
    TagResolver,
    UnknownTag,
    ip_in,
    is_wildcard,
    merged_port_ranges,
    parse_net,
    port_in,
    prefix_set,
    probe_addresses,
)
from .verdicts import BACKUP_PORTS

__all__ = [
    "DEFAULT_RULES",
    "MAX_CUSTOM_PRIORITY",
    "MIN_CUSTOM_PRIORITY",
    "WIRESERVER_IP",
    "WIRESERVER_PORTS",
    "Blocked",
    "NoFreePriority",
    "NsgView",
    "Rule",
    "TagResolver",
    "UnknownTag",
    "Verdict",
    "egress_verdicts",
    "evaluate",
    "ip_in",
    "plan_allow_rules",
    "port_in",
    "probe_addresses",
    "same_rule",
    "storage_tag",
    "unknown_tags",
    "wireserver_blocks",
]

MIN_CUSTOM_PRIORITY = 100
MAX_CUSTOM_PRIORITY = 4096
WIRESERVER_PORTS = (80, 443, 32526)
_PROTOCOLS = {p.lower(): p for p in ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")} | {"all": "*", "any": "*"}
_DIRECTIONS = {"inbound": "Inbound", "outbound": "Outbound"}
_ACCESS = {"allow": "Allow", "deny": "Deny"}


def _canon(table: Mapping[str, str], value: object, what: str) -> str:
    try:
        return table[str(value).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown NSG rule {what}: {value!r}") from None


@dataclass(frozen=True)
class Rule:
    """One NSG security rule; direction/access/protocol are canonicalised ("All" -> "*")."""

    name: str
    priority: int
    direction: str
    access: str
    protocol: str
    source_prefixes: tuple[str, ...] = ("*",)
    source_ports: tuple[str, ...] = ("*",)
    dest_prefixes: tuple[str, ...] = ("*",)
    dest_ports: tuple[str, ...] = ("*",)
    default: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "direction", _canon(_DIRECTIONS, self.direction, "direction"))
        set_(self, "access", _canon(_ACCESS, self.access, "access"))
        set_(self, "protocol", _canon(_PROTOCOLS, self.protocol, "protocol"))
        for attr in ("source_prefixes", "source_ports", "dest_prefixes", "dest_ports"):
            value = getattr(self, attr)
            set_(self, attr, (value,) if isinstance(value, str) else tuple(str(v) for v in value))

    @classmethod
    def from_arm(cls, d: Mapping[str, Any], *, default: bool | None = None) -> Rule:
        """Build from ARM JSON: ``{"name", "properties": {...}}`` or the flat effective-rule form."""
        wrapped = d.get("properties")
        p: Mapping[str, Any] = wrapped if isinstance(wrapped, Mapping) else d
        raw_name = str(d.get("name") or p.get("name") or "")
        priority = int(p.get("priority") or 0)
        if default is None:
            rid = str(d.get("id") or "").lower()
            default = (
                raw_name.lower().startswith("defaultsecurityrules/")
                or "/defaultsecurityrules/" in rid
                or priority >= 65000
            )
        return cls(
            name=raw_name.rsplit("/", 1)[-1],
            priority=priority,
            direction=p.get("direction", ""),
            access=p.get("access", ""),
            protocol=p.get("protocol", ""),
            source_prefixes=_arm_prefixes(p, "source"),
            source_ports=_arm_ports(p, "source"),
            dest_prefixes=_arm_prefixes(p, "destination"),
            dest_ports=_arm_ports(p, "destination"),
            default=default,
            description=str(p.get("description") or ""),
        )

    def to_arm(self) -> dict[str, Any]:
        """REST body ``{"properties": {...}}`` for a PUT (singular field for one value, else plural)."""
        props: dict[str, Any] = {
            "protocol": self.protocol,
            "access": self.access,
            "priority": self.priority,
            "direction": self.direction,
        }
        if self.description:
            props["description"] = self.description
        for side, prefixes, ports in (
            ("source", self.source_prefixes, self.source_ports),
            ("destination", self.dest_prefixes, self.dest_ports),
        ):
            asgs = [p[len(ASG_PREFIX) :] for p in prefixes if p.startswith(ASG_PREFIX)]
            plain = [p for p in prefixes if not p.startswith(ASG_PREFIX)]
            if asgs:
                props[f"{side}ApplicationSecurityGroups"] = [{"id": a} for a in asgs]
            if plain or not asgs:
                _one_or_many(props, f"{side}AddressPrefix", f"{side}AddressPrefixes", plain)
            _one_or_many(props, f"{side}PortRange", f"{side}PortRanges", list(ports))
        return {"properties": props}


def _arm_prefixes(p: Mapping[str, Any], side: str) -> tuple[str, ...]:
    for key in (f"expanded{side.capitalize()}AddressPrefix", f"{side}AddressPrefixes"):
        if p.get(key):
            return tuple(str(v) for v in p[key])
    if p.get(f"{side}AddressPrefix"):
        return (str(p[f"{side}AddressPrefix"]),)
    asgs = p.get(f"{side}ApplicationSecurityGroups") or []
    return tuple(ASG_PREFIX + str(a.get("id") if isinstance(a, Mapping) else a) for a in asgs)


def _arm_ports(p: Mapping[str, Any], side: str) -> tuple[str, ...]:
    if p.get(f"{side}PortRanges"):
        return tuple(str(v) for v in p[f"{side}PortRanges"])
    single = p.get(f"{side}PortRange")
    return (str(single),) if single not in (None, "") else ()


def _one_or_many(props: dict[str, Any], one: str, many: str, values: list[str]) -> None:
    if len(values) == 1:
        props[one] = values[0]
    else:
        props[many] = values


def _default(name: str, prio: int, direction: str, access: str, src: str, dst: str) -> Rule:
    return Rule(name, prio, direction, access, "*", (src,), ("*",), (dst,), ("*",), default=True)


DEFAULT_RULES: tuple[Rule, ...] = (
    _default("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    _default("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*"),
    _default("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    _default("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
)


@dataclass(frozen=True)
class Verdict:
    """Outcome of evaluating one flow: the deciding rule (None: nothing matched, allowed)."""

    allowed: bool
    rule: Rule | None
    unknown_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class NsgView:
    """An NSG as seen by the evaluator: its id, name, rules and where it is attached."""

    id: str
    name: str
    rules: tuple[Rule, ...]
    scope: Literal["nic", "subnet"] = "nic"

    @classmethod
    def from_arm(cls, d: Mapping[str, Any], scope: Literal["nic", "subnet"] = "nic") -> NsgView:
        """Build from an NSG GET body or one ``effectiveNetworkSecurityGroups`` entry."""
        if "effectiveSecurityRules" in d:
            nsg_id = str((d.get("networkSecurityGroup") or {}).get("id") or "")
            rules = [Rule.from_arm(r) for r in d["effectiveSecurityRules"] or []]
            return cls(nsg_id, nsg_id.rsplit("/", 1)[-1], tuple(rules), scope)
        props = d.get("properties") or {}
        rules = [Rule.from_arm(r) for r in props.get("securityRules") or []]
        rules += [Rule.from_arm(r, default=True) for r in props.get("defaultSecurityRules") or []]
        return cls(str(d.get("id") or ""), str(d.get("name") or ""), tuple(rules), scope)


@dataclass(frozen=True)
class Blocked:
    """A rule in one NSG that denies backup egress on ``port`` to the listed Storage prefixes."""

    nsg_id: str
    nsg_name: str
    scope: str
    port: int
    rule: Rule
    destinations: tuple[str, ...]


class NoFreePriority(ValueError):
    """No custom priority is free above (before) the blocking rule."""

    def __init__(self, nsg_name: str, blocker: Rule) -> None:
        super().__init__(
            f"NSG {nsg_name!r}: no free priority between {MIN_CUSTOM_PRIORITY} and "
            f"{blocker.priority - 1} to place an allow rule before blocking rule "
            f"{blocker.name!r} (priority {blocker.priority})"
        )
        self.nsg_name = nsg_name
        self.blocker = blocker


def _ordered(rules: Iterable[Rule], direction: str, include_defaults: bool) -> list[Rule]:
    chosen = [r for r in rules if r.direction == direction]
    if include_defaults:
        used = {r.priority for r in chosen}
        chosen += [r for r in DEFAULT_RULES if r.direction == direction and r.priority not in used]
    return sorted(chosen, key=lambda r: (r.priority, r.default))


def _addr_match(prefixes: Sequence[str], ip: str, resolver: TagResolver, unknown: list[str]) -> bool:
    for prefix in prefixes:
        hit = resolver.contains(prefix, ip)
        if hit:
            return True
        if hit is None:
            unknown.append(prefix)
    return False


def evaluate(
    rules: Sequence[Rule],
    *,
    direction: str = "Outbound",
    protocol: str = "Tcp",
    dest_ip: str,
    dest_port: int,
    src_ip: str | None = None,
    src_port: int | None = None,
    resolver: TagResolver,
    include_defaults: bool = True,
) -> Verdict:
    """First rule in priority order matching the flow decides; None src_ip/src_port match any rule."""
    want_dir = _canon(_DIRECTIONS, direction, "direction")
    want_proto = _canon(_PROTOCOLS, protocol, "protocol")
    unknown: list[str] = []
    for rule in _ordered(rules, want_dir, include_defaults):
        if rule.protocol not in ("*", want_proto):
            continue
        if not any(port_in(spec, dest_port) for spec in rule.dest_ports):
            continue
        if src_port is not None and not any(port_in(spec, src_port) for spec in rule.source_ports):
            continue
        if not _addr_match(rule.dest_prefixes, dest_ip, resolver, unknown):
            continue
        if src_ip is not None and not _addr_match(rule.source_prefixes, src_ip, resolver, unknown):
            continue
        return Verdict(rule.access == "Allow", rule, tuple(dict.fromkeys(unknown)))
    return Verdict(True, None, tuple(dict.fromkeys(unknown)))


def storage_tag(resolver: TagResolver, region: str) -> str:
    """The regional Storage service tag as the Service Tags API names it (``Storage.EastUS``); UnknownTag if none."""
    return resolver.regional("Storage", region)


def _storage_prefixes(resolver: TagResolver, region: str) -> list[str]:
    tag = storage_tag(resolver, region)
    v4 = [p for p in dict.fromkeys(resolver.prefixes(tag)) if probe_addresses(p)]
    if not v4:
        raise UnknownTag(f"service tag {tag!r} is unknown or has no IPv4 prefixes")
    return v4


def egress_verdicts(
    nsgs: Sequence[NsgView],
    *,
    region: str,
    ports: Sequence[int] = BACKUP_PORTS,
    resolver: TagResolver,
    src_ip: str | None = None,
) -> list[Blocked]:
    """Every (NSG, port, deny rule) blocking TCP egress to ``Storage.<region>``; [] means allowed."""
    targets = [(p, probe_addresses(p)) for p in _storage_prefixes(resolver, region)]
    out: list[Blocked] = []
    for nsg in nsgs:
        for port in ports:
            hits: dict[Rule, list[str]] = {}
            for prefix, probes in targets:
                for ip in probes:
                    verdict = evaluate(
                        nsg.rules, dest_ip=ip, dest_port=port, src_ip=src_ip, resolver=resolver
                    )
                    if not verdict.allowed and verdict.rule is not None:
                        dests = hits.setdefault(verdict.rule, [])
                        if prefix not in dests:
                            dests.append(prefix)
            for rule in sorted(hits, key=lambda r: r.priority):
                out.append(Blocked(nsg.id, nsg.name, nsg.scope, port, rule, tuple(hits[rule])))
    return out


def _free_priority(taken: set[int], blocker: Rule, nsg: NsgView) -> int:
    for prio in range(min(blocker.priority - 1, MAX_CUSTOM_PRIORITY), MIN_CUSTOM_PRIORITY - 1, -1):
        if prio not in taken:
            return prio
    raise NoFreePriority(nsg.name, blocker)


def plan_allow_rules(
    nsg: NsgView,
    blocked: Sequence[Blocked],
    *,
    region: str,
    mode: Literal["service-tag", "ip-ranges"] = "service-tag",
    resolver: TagResolver,
    name_prefix: str = "allow-azure-backup",
) -> list[Rule]:
    """Outbound Allow rules for ``nsg``, one per blocked port, each placed just before the rule blocking it.

    The destination is the regional Storage tag as the Service Tags API names it, or (ip-ranges) all
    of that tag's IPv4 prefixes in one rule: Azure limits the prefixes a whole NSG holds, not a rule
    (see MAX_NSG_PREFIXES and check_prefix_room).
    """
    if mode not in ("service-tag", "ip-ranges"):
        raise ValueError(f"unknown mode {mode!r}")
    blockers: dict[int, Rule] = {}
    for b in blocked:
        if b.nsg_id.lower() == nsg.id.lower():
            current = blockers.get(b.port)
            if current is None or b.rule.priority < current.priority:
                blockers[b.port] = b.rule
    if not blockers:
        return []
    tag = storage_tag(resolver, region)
    dest = (tag,) if mode == "service-tag" else tuple(_storage_prefixes(resolver, region))
    suffix = "" if mode == "service-tag" else "-01"  # "-01": the name earlier (chunked) versions gave their first rule
    names = {port: f"{name_prefix}-{port}{suffix}" for port in blockers}
    # A same-named existing rule is replaced by the PUT, so its priority is free for us.
    ours = {n.lower() for n in names.values()}
    taken = {r.priority for r in nsg.rules if r.direction == "Outbound" and r.name.lower() not in ours}
    planned: list[Rule] = []
    for port in sorted(blockers):
        prio = _free_priority(taken, blockers[port], nsg)
        taken.add(prio)
        planned.append(Rule(name=names[port], priority=prio, direction="Outbound", access="Allow", protocol="Tcp",
                            source_prefixes=("*",), source_ports=("*",), dest_prefixes=dest,
                            dest_ports=(str(port),), description=f"Azure Backup: allow TCP {port} to {tag}"))
    return planned


def _tags(prefixes: Iterable[str]) -> frozenset[str]:
    return frozenset(p.strip() for p in prefixes if not is_wildcard(p) and parse_net(p) is None)


def same_rule(a: Rule, b: Rule) -> bool:
    """Semantic equality: equal port sets, prefix sets as networks, tags spelled alike (the API's case matters)."""
    return (
        a.name.lower() == b.name.lower()
        and _tags(a.source_prefixes) == _tags(b.source_prefixes)
        and _tags(a.dest_prefixes) == _tags(b.dest_prefixes)
        and a.priority == b.priority
        and (a.direction, a.access, a.protocol) == (b.direction, b.access, b.protocol)
        and merged_port_ranges(a.source_ports) == merged_port_ranges(b.source_ports)
        and merged_port_ranges(a.dest_ports) == merged_port_ranges(b.dest_ports)
        and prefix_set(a.source_prefixes) == prefix_set(b.source_prefixes)
        and prefix_set(a.dest_prefixes) == prefix_set(b.dest_prefixes)
    )


def wireserver_blocks(
    rules: Sequence[Rule], resolver: TagResolver, *, src_ip: str | None = None
) -> list[Rule]:
    """Outbound rules that deny TCP 80/443/32526 to 168.63.129.16 before any allow (report only)."""
    found: list[Rule] = []
    for port in WIRESERVER_PORTS:
        v = evaluate(rules, dest_ip=WIRESERVER_IP, dest_port=port, src_ip=src_ip, resolver=resolver)
        if not v.allowed and v.rule is not None and v.rule not in found:
            found.append(v.rule)
    return sorted(found, key=lambda r: r.priority)


def unknown_tags(rules: Iterable[Rule], resolver: TagResolver) -> list[str]:
    """Address entries of ``rules`` that are neither literals nor tags the resolver knows."""
    seen: dict[str, None] = {}
    for rule in rules:
        for p in (*rule.source_prefixes, *rule.dest_prefixes):
            if not is_wildcard(p) and parse_net(p) is None and not resolver.known(p):
                seen.setdefault(p, None)
    return list(seen)
