"""Facts for allow-backup-egress: the VM's NICs, subnets, NSGs (raw JSON with etags) and service tags.

The Service Tags API is read through `remediations.netreads.service_tags`: once per process and region,
so a run's plan, re-plans and verification share one read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from ..armid import id_part
from ..azure import Azure
from ..errors import OperationTimedOut
from ..netaddr import TagResolver
from ..netreads import service_tags
from ..polling import poll_until
from ..reads import read_vm
from ..target import Target

__all__ = ["SETTLE_SECONDS", "EgressFacts", "IpConfigFacts", "NicFacts", "NsgFacts", "SubnetFacts", "id_part", "read_egress"]

Scope = Literal["nic", "subnet"]
SETTLE_SECONDS = 60.0  # how long a read waits for another writer's operation on an NSG to end
_IN_FLIGHT = frozenset({"updating", "creating", "deleting"})


def freeze(value: Any) -> Any:
    """A read-only deep copy of REST JSON: dicts become mapping proxies, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class NsgFacts:
    """One NSG as read: where it is first met (NIC or subnet scope), its etag, rule etags and raw JSON."""

    id: str
    name: str
    resource_group: str
    scope: Scope
    etag: str
    rule_etags: Mapping[str, str]
    raw: Mapping[str, Any]

    def custom_rules(self) -> tuple[Mapping[str, Any], ...]:
        """The NSG's own (non-default) security rules, raw."""
        return tuple((self.raw.get("properties") or {}).get("securityRules") or ())

    def rule(self, name: str) -> Mapping[str, Any] | None:
        """The raw custom rule called `name` (case-insensitive), if there is one."""
        return next((r for r in self.custom_rules() if str(r.get("name", "")).lower() == name.lower()), None)

    def rule_etag(self, name: str) -> str | None:
        """The etag of the custom rule called `name`, as read."""
        return self.rule_etags.get(name.lower())


@dataclass(frozen=True)
class IpConfigFacts:
    """One IP configuration of a NIC: its private IP and subnet."""

    private_ip: str
    subnet_id: str


@dataclass(frozen=True)
class NicFacts:
    """A NIC of the VM: its NSG (if any) and IP configurations."""

    id: str
    name: str
    nsg_id: str | None
    ip_configs: tuple[IpConfigFacts, ...]


@dataclass(frozen=True)
class SubnetFacts:
    """A subnet one of the NICs is in: its prefixes and NSG (if any)."""

    id: str
    vnet: str
    name: str
    prefixes: tuple[str, ...]
    nsg_id: str | None


@dataclass(frozen=True)
class EgressFacts:
    """Everything the egress plan needs, read once; immutable."""

    vm_name: str
    vm_id: str
    location: str
    nics: tuple[NicFacts, ...]
    subnets: tuple[SubnetFacts, ...]
    nsgs: tuple[NsgFacts, ...]
    service_tags: TagResolver

    def nsg(self, nsg_id: str | None) -> NsgFacts | None:
        """The NSG with this id, if it was read."""
        if not nsg_id:
            return None
        return next((n for n in self.nsgs if n.id.lower() == nsg_id.lower()), None)

    def subnet(self, subnet_id: str) -> SubnetFacts | None:
        """The subnet with this id, if it was read."""
        return next((s for s in self.subnets if s.id.lower() == subnet_id.lower()), None)

    def chains(self) -> list[tuple[str, tuple[tuple[NsgFacts, Scope], ...]]]:
        """Per IP configuration: its private IP and the NSGs its outbound traffic crosses, NIC first."""
        out: list[tuple[str, tuple[tuple[NsgFacts, Scope], ...]]] = []
        for nic in self.nics:
            for ipc in nic.ip_configs:
                chain: list[tuple[NsgFacts, Scope]] = []
                nic_nsg = self.nsg(nic.nsg_id)
                if nic_nsg is not None:
                    chain.append((nic_nsg, "nic"))
                subnet = self.subnet(ipc.subnet_id)
                sub_nsg = self.nsg(subnet.nsg_id if subnet else None)
                if sub_nsg is not None:
                    chain.append((sub_nsg, "subnet"))
                out.append((ipc.private_ip, tuple(chain)))
        return out

    def vnet_prefixes(self) -> tuple[str, ...]:
        """The address prefixes of the subnets read (the part of VirtualNetwork we know)."""
        return tuple(p for s in self.subnets for p in s.prefixes)

    def resolver(self) -> TagResolver:
        """The region's service tags, with the subnets read as the VirtualNetwork tag."""
        return self.service_tags.with_virtual_network(self.vnet_prefixes())


def _nic_facts(d: Mapping[str, Any]) -> NicFacts:
    props = d.get("properties") or {}
    ipcs = tuple(IpConfigFacts(str(p.get("privateIPAddress") or ""), str((p.get("subnet") or {}).get("id") or ""))
                 for c in props.get("ipConfigurations") or () for p in [c.get("properties") or {}]
                 if (p.get("subnet") or {}).get("id"))
    return NicFacts(str(d.get("id") or ""), str(d.get("name") or ""),
                    (props.get("networkSecurityGroup") or {}).get("id"), ipcs)


def _subnet_facts(d: Mapping[str, Any], subnet_id: str) -> SubnetFacts:
    props = d.get("properties") or {}
    prefixes = tuple(props.get("addressPrefixes") or ()) or ((props["addressPrefix"],) if props.get("addressPrefix")
                                                              else ())
    return SubnetFacts(str(d.get("id") or subnet_id), id_part(subnet_id, "virtualNetworks"),
                       id_part(subnet_id, "subnets"), tuple(str(p) for p in prefixes),
                       (props.get("networkSecurityGroup") or {}).get("id"))


def _nsg_facts(d: Mapping[str, Any], nsg_id: str, scope: Scope) -> NsgFacts:
    raw = freeze(d)
    rules = (raw.get("properties") or {}).get("securityRules") or ()
    etags = {str(r.get("name", "")).lower(): str(r["etag"]) for r in rules if r.get("etag")}
    return NsgFacts(str(raw.get("id") or nsg_id), str(raw.get("name") or id_part(nsg_id, "networkSecurityGroups")),
                    id_part(nsg_id, "resourceGroups"), scope, str(raw.get("etag") or ""),
                    MappingProxyType(etags), raw)


def _settled(d: Mapping[str, Any]) -> bool:
    """Whether neither the NSG nor any of its rules is in the middle of a write (Failed counts as ended)."""
    props = d.get("properties") or {}
    states = [props.get("provisioningState")]
    states += [(r.get("properties") or {}).get("provisioningState") for r in props.get("securityRules") or ()]
    return not any(str(s or "").lower() in _IN_FLIGHT for s in states)


def _settled_nsg(azure: Azure, nsg_id: str) -> dict[str, Any]:
    """GET the NSG, re-GET while another writer's operation on it is in flight, up to SETTLE_SECONDS."""
    # Planning from a half-written NSG would either trust a rule that may yet be rolled back, or rewrite
    # it under the other writer (and fail that writer's verification). Past the bound the caller gets what
    # there is; the plan then rewrites unsettled rules of ours, guarded by If-Match.
    group, name = id_part(nsg_id, "resourceGroups"), id_part(nsg_id, "networkSecurityGroups")
    interval = azure.config.polling_interval
    if interval is None:
        interval = 0.05 if azure.config.loopback else 2.0
    last: list[dict[str, Any]] = []

    def read() -> dict[str, Any]:
        d: dict[str, Any] = azure.call(azure.network.network_security_groups.get, group, name).as_dict()
        last[:] = [d]
        return d

    try:
        return poll_until(read, _settled, name=f"the writes on NSG {name}", interval=interval, seconds=SETTLE_SECONDS,
                          cap=azure.config.retry.retry_after_cap)
    except OperationTimedOut:
        if last:
            return last[0]
        raise


def read_egress(azure: Azure, target: Target) -> EgressFacts:
    """GET the VM, each NIC, each NIC's subnet, each distinct NSG (NIC scope first); the region's tags (cached)."""
    vm = read_vm(azure, target)
    net = azure.network
    nics: list[NicFacts] = []
    for nic_id in vm.nic_ids:
        nic = azure.call(net.network_interfaces.get, id_part(nic_id, "resourceGroups"),
                         id_part(nic_id, "networkInterfaces"))
        nics.append(_nic_facts(nic.as_dict()))
    subnets: dict[str, SubnetFacts] = {}
    for ipc in (c for n in nics for c in n.ip_configs):
        key = ipc.subnet_id.lower()
        if key not in subnets:
            sn = azure.call(net.subnets.get, id_part(ipc.subnet_id, "resourceGroups"),
                            id_part(ipc.subnet_id, "virtualNetworks"), id_part(ipc.subnet_id, "subnets"))
            subnets[key] = _subnet_facts(sn.as_dict(), ipc.subnet_id)
    wanted: dict[str, tuple[str, Scope]] = {}
    for nic in nics:
        if nic.nsg_id:
            wanted.setdefault(nic.nsg_id.lower(), (nic.nsg_id, "nic"))
    for sn in subnets.values():
        if sn.nsg_id:
            wanted.setdefault(sn.nsg_id.lower(), (sn.nsg_id, "subnet"))
    nsgs = [_nsg_facts(_settled_nsg(azure, nsg_id), nsg_id, scope) for nsg_id, scope in wanted.values()]
    return EgressFacts(vm.name, vm.id, vm.location, tuple(nics), tuple(subnets.values()), tuple(nsgs),
                       service_tags(azure, vm.location))
