"""Effective routes, pure: which route carries a VM's traffic to its region's Storage prefixes, chosen as Azure
chooses (longest prefix match), and the firewall rule a person adds where an appliance is in the way.

Azure's rules (learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview, "How Azure selects a
route"): the route whose prefix is the longest match for the destination wins; on equal prefixes a user route
beats a BGP (VirtualNetworkGateway) route, which beats a system (Default) route; and a route with an explicit
prefix beats one whose prefix comes from a service tag. Routes in state Invalid are not used. The effective
route table lists each route's prefixes (a service tag is resolved here through the Service Tags data).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .firewall import BACKUP_FQDN_TAG, FirewallVerdict
from .netaddr import TagResolver, parse_net

__all__ = ["BACKUP_FQDN_TAG", "NO_NETWORK_CODES", "Carrier", "EffectiveRoute", "PathVerdict", "RouteFacts",
           "StoragePath", "firewall_rule_text", "storage_path"]

# The codes with which the backup extension itself reports that it could not reach Storage (docs/error-codes.md).
NO_NETWORK_CODES = ("ExtensionSnapshotFailedNoNetwork", "ExtensionSnapshotFailedNoSecureNetwork")
_SOURCE_RANK = {"user": 0, "virtualnetworkgateway": 1, "default": 2}  # lower wins on an equal prefix
PathVerdict = Literal["present", "unknown", "absent"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EffectiveRoute:
    """One entry of a NIC's effective route table, as ARM returns it."""

    name: str | None
    source: str
    state: str
    prefixes: tuple[str, ...]
    next_hop_type: str
    next_hop_ips: tuple[str, ...] = ()

    @classmethod
    def from_arm(cls, d: Mapping[str, Any]) -> EffectiveRoute:
        """From one `value[]` item of NetworkInterfaces_GetEffectiveRouteTable (REST or SDK as_dict spelling)."""
        def get(*keys: str) -> Any:
            return next((d[k] for k in keys if d.get(k) is not None), None)
        prefixes = get("addressPrefix", "address_prefix") or ()
        hops = get("nextHopIpAddress", "next_hop_ip_address") or ()
        return cls(get("name"), str(get("source") or "Unknown"), str(get("state") or "Active"),
                   tuple(str(p) for p in ([prefixes] if isinstance(prefixes, str) else prefixes)),
                   str(get("nextHopType", "next_hop_type") or "None"),
                   tuple(str(h) for h in ([hops] if isinstance(hops, str) else hops)))

    @property
    def active(self) -> bool:
        """Whether Azure uses the route (an Invalid one, e.g. to an appliance that is gone, is not)."""
        return self.state.lower() != "invalid"

    def hop(self) -> str:
        """The next hop in words: `VirtualAppliance 10.0.100.4`, `Internet`, `None`."""
        return " ".join((self.next_hop_type, *self.next_hop_ips))

    def describe(self, prefix: str, table: str | None = None) -> str:
        """`route to-firewall 0.0.0.0/0 (User, route table rt-firewall) to next hop VirtualAppliance 10.0.100.4`."""
        where = ", ".join(x for x in (self.source, f"route table {table}" if table and self.source == "User"
                                       else "") if x)
        name = f"route {self.name} " if self.name else "route "
        return f"{name}{prefix} ({where}) to next hop {self.hop()}"


@dataclass(frozen=True)
class Carrier:
    """The route that carries (part of) one Storage prefix, and the route prefix that matched."""

    storage_prefix: str
    route: EffectiveRoute
    matched: str


@dataclass(frozen=True)
class StoragePath:
    """How a NIC's traffic reaches the region's Storage tag: the carrying routes, and what they say."""

    tag: str
    carriers: tuple[Carrier, ...]
    unrouted: tuple[str, ...] = ()  # Storage prefixes no route covers (Azure drops such traffic)

    def by_hop(self, hop_type: str) -> list[Carrier]:
        """The carriers whose next hop is `hop_type` (case-insensitive)."""
        return [c for c in self.carriers if c.route.next_hop_type.lower() == hop_type.lower()]

    def appliances(self) -> tuple[str, ...]:
        """The appliance IPs Storage traffic is sent to, in order."""
        ips = [ip for c in self.carriers if c.route.next_hop_type.lower().startswith("virtualappliance")
               for ip in c.route.next_hop_ips]
        return tuple(dict.fromkeys(ips))

    def verdict(self) -> PathVerdict:
        """present: some Storage traffic is dropped (None, or no route); unknown: it goes elsewhere than Internet
        (an appliance, a gateway); absent: every Storage prefix goes to Internet."""
        if self.unrouted or self.by_hop("None"):
            return "present"
        if all(c.route.next_hop_type.lower() == "internet" for c in self.carriers):
            return "absent"
        return "unknown"

    def deciding(self) -> Carrier | None:
        """The carrier the verdict rests on: a dropping route first, then an appliance or gateway, else any."""
        for test in (lambda c: c.route.next_hop_type.lower() == "none",
                     lambda c: c.route.next_hop_type.lower() != "internet"):
            hit = next((c for c in self.carriers if test(c)), None)
            if hit is not None:
                return hit
        return self.carriers[0] if self.carriers else None


@dataclass(frozen=True)
class _Entry:
    net: Network
    explicit: bool  # False: the prefix came from a service tag
    route: EffectiveRoute
    text: str


def _entries(routes: Iterable[EffectiveRoute], resolver: TagResolver | None) -> list[_Entry]:
    """Every (network, route) Azure may use; tags resolved, invalid routes and unparsable prefixes left out."""
    out: list[_Entry] = []
    for r in routes:
        if not r.active:
            continue
        for p in r.prefixes:
            net = parse_net(p)
            if net is not None:
                out.append(_Entry(net, True, r, str(net)))
            elif resolver is not None and resolver.known(p) and p.strip().lower() not in ("internet",
                                                                                           "virtualnetwork"):
                for q in resolver.prefixes(p):
                    tnet = parse_net(q)
                    if tnet is not None:
                        out.append(_Entry(tnet, False, r, p))
    return out


def _rank(e: _Entry) -> tuple[int, int, int]:
    """Sort key, best first: longest prefix, explicit over tag, User over BGP over Default."""
    return (-e.net.prefixlen, 0 if e.explicit else 1, _SOURCE_RANK.get(e.route.source.lower(), 3))


def _carriers(prefix: Network, entries: list[_Entry]) -> list[_Entry]:
    """The winners for the addresses of `prefix`: the best route covering it all, and any more specific one inside."""
    same = [e for e in entries if e.net.version == prefix.version]
    covering = sorted((e for e in same if prefix.subnet_of(e.net)), key=_rank)  # type: ignore[arg-type]
    inside = [e for e in same if e.net != prefix and e.net.subnet_of(prefix)]  # type: ignore[arg-type]
    best_inside: dict[Network, _Entry] = {}
    for e in sorted(inside, key=_rank):
        best_inside.setdefault(e.net, e)
    return covering[:1] + list(best_inside.values())


def storage_path(routes: Sequence[EffectiveRoute], tag: str, storage_prefixes: Sequence[str],
                 resolver: TagResolver | None = None) -> StoragePath:
    """The routes that carry traffic to each Storage prefix (IP versions the table routes), by longest prefix match."""
    entries = _entries(routes, resolver)
    versions = {e.net.version for e in entries}
    carriers: list[Carrier] = []
    unrouted: list[str] = []
    for p in dict.fromkeys(storage_prefixes):
        net = parse_net(p)
        if net is None or net.version not in versions:
            continue  # a family the NIC has no route for at all (IPv6 on an IPv4-only NIC) is not its path
        won = _carriers(net, entries)
        if not won or not net.subnet_of(won[0].net):  # type: ignore[arg-type]
            unrouted.append(str(net))
        carriers += [Carrier(str(net), e.route, e.text) for e in won]
    return StoragePath(tag, tuple(carriers), tuple(unrouted))


def firewall_rule_text(tag: str, firewall: str | None = None) -> str:
    """The exact rule to add to the appliance, as a manual step."""
    where = f"Azure Firewall {firewall}" if firewall else "the firewall appliance"
    return (f"On {where}, allow the backup traffic: an application rule (Allow, source the VM's subnet, protocol "
            f"Https:443, FQDN tag {BACKUP_FQDN_TAG}), or a network rule (Allow, source the VM's subnet, protocol "
            f"TCP, destination service tag {tag}, port 443).")


@dataclass(frozen=True)
class RouteFacts:
    """A NIC's path to Storage as its effective routes say (None: not read, `skipped` says why), and the error
    code with which the backup extension reported no network, if it did (it decides an appliance's verdict)."""

    nic: str | None = None
    path: StoragePath | None = None
    skipped: str = ""
    no_network: str | None = None
    firewalls: tuple[FirewallVerdict, ...] = ()  # the Azure Firewalls among the appliances, judged by their rules
    firewall_note: str = ""  # why the Azure Firewalls could not be read, if they could not

    def _firewall_judge(self, path: StoragePath, c: Carrier, via: str) -> tuple[PathVerdict, str, tuple[str, ...]] | None:
        """The verdict an Azure Firewall behind the appliance IPs gives, when its rules decide; else None."""
        # a firewall run by a Firewall Policy whose classic rules decide nothing is not judged here (its rules are in
        # the policy's rule collection groups, not read): the appliance rules as before, the note says why
        fws = {f.ip: f for f in self.firewalls if f.rule or not f.policy}
        ips = path.appliances()
        blocking = [fws[ip] for ip in ips if ip in fws and not fws[ip].allows]
        if blocking:
            f = blocking[0]
            why = (f"it is denied by {f.rule}" if f.rule else
                   f"no rule allows the {BACKUP_FQDN_TAG} FQDN tag or {path.tag}:443")
            return "present", (f"{path.tag} ({c.storage_prefix}) goes by {via}; {f.describe()} does not let it "
                               f"through: {why}"), (firewall_rule_text(path.tag, f.name),)
        def passes(x: Carrier) -> bool:
            hop = x.route.next_hop_type.lower()
            return hop == "internet" or (hop.startswith("virtualappliance") and bool(x.route.next_hop_ips) and all(
                ip in fws and fws[ip].allows for ip in x.route.next_hop_ips))
        if ips and all(passes(x) for x in path.carriers):
            f = fws[ips[0]]
            return "absent", (f"{path.tag} ({c.storage_prefix}) goes by {via}; {f.describe()} allows "
                              f"{BACKUP_FQDN_TAG} by {f.rule}"), ()
        return None

    def judge(self) -> tuple[PathVerdict, str, tuple[str, ...]]:
        """C1.route's verdict, its evidence, and the manual steps particular to it (the firewall rule to add).

        Next hop None (or no route) drops the traffic: present. Internet for every Storage prefix: absent. An
        appliance decides by its own rules, which ARM does not show: unknown, unless the backup extension itself
        reported no network while the NSGs allow Storage (the engine reads routes only then), which leaves the
        appliance as what drops it: present. An appliance that is a readable Azure Firewall is judged by its rules
        (remediations/firewall.py): present when they do not allow the traffic, absent when they do. A gateway
        (forced tunnelling) or other hop: unknown.
        """
        path = self.path
        if path is None:
            return "unknown", f"effective routes not read: {self.skipped or 'not needed'}", ()
        on = f" of {self.nic}" if self.nic else ""
        if path.unrouted:
            return "present", f"no effective route{on} matches {path.unrouted[0]} ({path.tag}): Azure drops it", ()
        c = path.deciding()
        if c is None:
            return "unknown", f"the effective routes{on} route no {path.tag} prefix", ()
        via = c.route.describe(c.matched)
        verdict = path.verdict()
        if verdict == "absent":
            return "absent", f"{path.tag} ({c.storage_prefix}) goes by {via}", ()
        if verdict == "present":
            return "present", f"{path.tag} traffic is dropped: {c.storage_prefix} goes by {via}", ()
        ips = path.appliances()
        if not ips:
            return "unknown", f"{path.tag} ({c.storage_prefix}) goes by {via}; where that hop leads is not visible", ()
        decided = self._firewall_judge(path, c, via)
        if decided is not None:
            return decided
        depends = f"{path.tag} ({c.storage_prefix}) goes by {via}, so it depends on the appliance {', '.join(ips)}"
        note = f"; {self.firewall_note}" if self.firewall_note else ""
        steps = (firewall_rule_text(path.tag),)
        if self.no_network:
            return "present", (f"{depends}; the backup extension reported {self.no_network} while the NSGs allow "
                               f"{path.tag}, so the appliance does not let it through{note}"), steps
        return "unknown", f"{depends} (its rules are not visible through ARM){note}", steps
