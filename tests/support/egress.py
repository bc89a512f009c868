"""allow-backup-egress test helpers: its params for a demo VM, and NSG rules read or written in armsim's model."""

from __future__ import annotations

import uuid
from typing import Any

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.actions.egress import EgressParams
from support.demo import RG, target

__all__ = ["NO_NETWORK", "nsg_id", "params", "put_rule", "raw_rule", "rules", "sim_nsg"]

NO_NETWORK = "ExtensionSnapshotFailedNoNetwork"


def params(vm: str, **kw: Any) -> EgressParams:
    """allow-backup-egress's params for a demo VM."""
    return EgressParams(target=target(vm), **kw)


def nsg_id(name: str) -> str:
    """A demo NSG's resource ID."""
    return f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network/networkSecurityGroups/{name}"


def sim_nsg(server: Server, name: str) -> Any:
    """armsim's model of a demo NSG."""
    return server.sim.network.nsgs[nsg_id(name).lower()]


def raw_rule(name: str, priority: int, dest: str, ports: str | list[str] = "443", access: str = "Deny",
             source: str = "*") -> dict[str, Any]:
    """An outbound TCP rule as ARM stores it."""
    many = isinstance(ports, list)
    return {"name": name, "etag": f'W/"{uuid.uuid4()}"', "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "" if many else ports,
        "sourceAddressPrefix": source, "destinationAddressPrefix": dest, "access": access, "priority": priority,
        "direction": "Outbound", "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
        "sourcePortRanges": [], "destinationPortRanges": ports if many else [], "provisioningState": "Succeeded"}}


def put_rule(server: Server, nsg: str, rule: dict[str, Any]) -> None:
    """Change armsim state directly, as another writer behind the action's back would."""
    with server.sim.lock:
        sim_nsg(server, nsg).rules[rule["name"].lower()] = rule


def rules(server: Server, nsg: str) -> dict[str, tuple[int, str]]:
    """name -> (priority, access) of the NSG's custom rules, checking none is half-applied."""
    n = sim_nsg(server, nsg)
    assert n.writer is None, f"{nsg} still held by {n.writer}"
    out = {}
    for r in n.rules.values():
        p = r["properties"]
        assert p.get("provisioningState", "Succeeded") == "Succeeded", r
        out[r["name"]] = (p["priority"], p["access"])
    outbound = [p for p, _ in out.values()]
    assert len(outbound) == len(set(outbound)), f"duplicate priorities in {nsg}: {out}"
    return out
