"""Pure address, port and service-tag helpers for NSG evaluation (stdlib ``ipaddress`` only)."""

from __future__ import annotations

import copy
import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ASG_PREFIX",
    "WIRESERVER_IP",
    "TagResolver",
    "UnknownTag",
    "ip_in",
    "is_wildcard",
    "merged_port_ranges",
    "parse_net",
    "port_in",
    "port_ranges",
    "prefix_set",
    "probe_addresses",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Marker for application-security-group references kept in a rule's prefix tuple ("asg:<id>").
ASG_PREFIX = "asg:"
#: The Azure host virtual IP (WireServer); part of the ``VirtualNetwork`` tag, never ``Internet``.
WIRESERVER_IP = "168.63.129.16"
_WILDCARDS = frozenset({"*", "any"})
_SPECIAL = frozenset({"virtualnetwork", "internet"})


class UnknownTag(ValueError):
    """A service tag that the resolver has no prefixes for."""


def is_wildcard(prefix: str) -> bool:
    """True for the ``*`` / ``Any`` address or port wildcard."""
    return prefix.strip().lower() in _WILDCARDS


def parse_net(prefix: str) -> Network | None:
    """Parse a CIDR or single IP (host bits allowed); None when it is not an address literal."""
    try:
        return ipaddress.ip_network(prefix.strip(), strict=False)
    except ValueError:
        return None


def ip_in(prefix: str, ip: str) -> bool:
    """Whether ``ip`` lies in the literal ``prefix`` (CIDR, single IP or ``*``); ValueError for a tag."""
    if is_wildcard(prefix):
        return True
    net = parse_net(prefix)
    if net is None:
        raise ValueError(f"not an address prefix: {prefix!r}")
    addr = ipaddress.ip_address(ip.strip())
    return addr.version == net.version and addr in net


def port_ranges(spec: str) -> list[tuple[int, int]]:
    """Parse a port spec ("*", "443", "400-500", "80,443") into inclusive (low, high) ranges."""
    out: list[tuple[int, int]] = []
    for part in str(spec).split(","):
        part = part.strip()
        if part.lower() in _WILDCARDS:
            out.append((0, 65535))
            continue
        low_s, sep, high_s = part.partition("-")
        try:
            low = int(low_s)
            high = int(high_s) if sep else low
        except ValueError:
            raise ValueError(f"invalid port spec: {spec!r}") from None
        if not 0 <= low <= high <= 65535:
            raise ValueError(f"invalid port spec: {spec!r}")
        out.append((low, high))
    return out


def port_in(port_spec: str, port: int) -> bool:
    """Whether ``port`` is covered by ``port_spec``."""
    return any(low <= port <= high for low, high in port_ranges(port_spec))


def merged_port_ranges(specs: Iterable[str]) -> tuple[tuple[int, int], ...]:
    """Union of several port specs as sorted, merged inclusive ranges ("443" == "443-443")."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(r for spec in specs for r in port_ranges(spec)):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def probe_addresses(prefix: str) -> tuple[str, ...]:
    """First and last usable address of an IPv4 prefix; () for IPv6 or non-literal prefixes."""
    net = parse_net(prefix)
    if net is None or net.version != 4:
        return ()
    if net.num_addresses <= 2:
        return tuple(dict.fromkeys((str(net[0]), str(net[-1]))))
    return (str(net[1]), str(net[-2]))


def prefix_set(prefixes: Iterable[str]) -> frozenset[str]:
    """Canonical prefix set: tags lower-cased, ``*``/``0.0.0.0/0`` alike, networks collapsed."""
    tokens: set[str] = set()
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for p in prefixes:
        net = parse_net(p)
        if is_wildcard(p) or (net is not None and net.prefixlen == 0):
            tokens.add("*")
        elif net is None:
            tokens.add(p.strip().lower())
        elif isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
        else:
            v6.append(net)
    tokens.update(str(n) for n in ipaddress.collapse_addresses(v4))
    tokens.update(str(n) for n in ipaddress.collapse_addresses(v6))
    return frozenset(tokens)


class _Intervals:
    """Sorted, merged integer intervals per IP version for O(log n) membership."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, nets: Iterable[Network]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for net in nets:
            spans[net.version].append((int(net.network_address), int(net.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, items in spans.items():
            starts: list[int] = []
            ends: list[int] = []
            for low, high in sorted(items):
                if ends and low <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], high)
                else:
                    starts.append(low)
                    ends.append(high)
            self._starts[version], self._ends[version] = starts, ends

    def has(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether ``addr`` is inside one of the intervals."""
        starts, value = self._starts[addr.version], int(addr)
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[addr.version][i]


class TagResolver:
    """Resolve service tags (case-insensitive) and literal prefixes to address membership."""

    def __init__(
        self,
        tags: Mapping[str, Sequence[str]] | None = None,
        virtual_network: Sequence[str] = (),
        regions: Mapping[str, str] | None = None,
    ) -> None:
        self._tags: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}  # lower-case key -> the name as the Service Tags API spells it
        for name, prefixes in (tags or {}).items():
            key = name.strip().lower()
            self._tags.setdefault(key, []).extend(str(p) for p in prefixes)
            self._names.setdefault(key, name.strip())
        self._regions = {k.strip().lower(): v.replace(" ", "").lower() for k, v in (regions or {}).items() if v}
        self._vnet = [str(p) for p in virtual_network]
        self._cache: dict[str, _Intervals] = {}

    @classmethod
    def from_service_tags(
        cls, payload: Mapping[str, Any], virtual_network: Sequence[str] = ()
    ) -> TagResolver:
        """Build from a Service Tags API body (``values[].name`` / ``properties.addressPrefixes``)."""
        tags: dict[str, list[str]] = {}
        regions: dict[str, str] = {}
        for value in payload.get("values") or []:
            props = value.get("properties") or {}
            name = str(value.get("name") or value.get("id"))
            tags.setdefault(name, []).extend(props.get("addressPrefixes") or [])
            if props.get("region"):
                regions[name] = str(props["region"])
        return cls(tags, virtual_network, regions)

    def with_virtual_network(self, virtual_network: Sequence[str]) -> TagResolver:
        """The same service tags (shared, not copied) with ``virtual_network`` as the VirtualNetwork prefixes."""
        clone = copy.copy(self)
        clone._vnet, clone._cache = [str(p) for p in virtual_network], {}
        return clone

    def regional(self, service: str, region: str) -> str:
        """The name the Service Tags API gives ``service``'s tag for ``region`` (``Storage.EastUS``); UnknownTag if none.

        The name is taken as listed, never built from the region: the API spells regions in its
        own case (``Storage.EastUS`` but ``AzureCloud.eastus``), and the portal cannot map a
        wrong-case tag in a rule (Azure/azure-cli issue #15462). A tag is matched by the API's
        ``properties.region``; a resolver built without regions matches ``<service>.<region>``.
        """
        want, base = region.replace(" ", "").lower(), service.strip().lower()
        for key, name in self._names.items():
            head, dot, tail = key.partition(".")
            if head == base and (self._regions.get(key) or (tail if dot else None)) == want:
                return name
        raise UnknownTag(f"the Service Tags API lists no {service} tag for region {region!r}")

    def known(self, tag: str) -> bool:
        """Whether ``tag`` is a tag this resolver can evaluate (VirtualNetwork/Internet always are)."""
        key = tag.strip().lower()
        return key in _SPECIAL or key in self._tags

    def prefixes(self, tag: str) -> list[str]:
        """The prefixes behind ``tag`` ([] when unknown); ValueError for the non-enumerable Internet."""
        key = tag.strip().lower()
        if key == "internet":
            raise ValueError("the Internet tag is the complement of VirtualNetwork; it has no prefix list")
        if key == "virtualnetwork":
            return [*self._vnet, f"{WIRESERVER_IP}/32"]
        return list(self._tags.get(key, []))

    def _intervals(self, key: str) -> _Intervals:
        if key not in self._cache:
            nets = (parse_net(p) for p in self.prefixes(key))
            self._cache[key] = _Intervals(n for n in nets if n is not None)
        return self._cache[key]

    def contains(self, prefix_or_tag: str, ip: str) -> bool | None:
        """Whether ``ip`` is in the prefix or tag; None when the tag is unknown (matches nothing)."""
        token = prefix_or_tag.strip()
        if is_wildcard(token):
            return True
        if parse_net(token) is not None:
            return ip_in(token, ip)
        key = token.lower()
        if not self.known(key):
            return None
        addr = ipaddress.ip_address(ip.strip())
        if key == "internet":
            return not self._intervals("virtualnetwork").has(addr)
        return self._intervals(key).has(addr)
