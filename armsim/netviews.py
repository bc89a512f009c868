"""Microsoft.Network read views computed from the model: a NIC's effective NSGs and the service tags.

Effective NSGs answer like real NRP (and its official example): 202 with a `Location` header and
no body; polling the Location (`Simulator._op_result`) returns 202 until the operation ends after
`Settings.lro_polls` polls, then 200 with `{"value": [...]}`. With `lro_polls=0` the answer is 200 at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response
from .netpolicy import DEFAULT_RULES

if TYPE_CHECKING:
    from .compute import VM
    from .network import NIC, NSG
    from .sim import Simulator

__all__ = ["effective_nsgs", "nic_list_all", "service_tags"]


def nic_list_all(sim: Simulator, r: Request) -> Response:
    """NetworkInterfaces_ListAll: every NIC of the subscription, one page, each as NetworkInterfaces_Get shows it
    (azure-rest-api-specs network networkInterface.json, example NetworkInterfaceListAll.json)."""
    sub = r.params["subscriptionId"].lower()
    return Response(200, {"value": [sim.network.nic_json(n) for n in sim.network.nics.values()
                                    if n.subscription.lower() == sub]})


def service_tags(sim: Simulator, r: Request) -> Response:
    """ServiceTags_List: the bundled public service tags, one page."""
    sub = r.params["subscriptionId"]
    data = sim.network.tag_data
    return Response(200, {
        "name": "public", "id": f"/subscriptions/{sub}/providers/Microsoft.Network/serviceTags/public",
        "type": "Microsoft.Network/serviceTags", "changeNumber": data["changeNumber"], "cloud": data["cloud"],
        "values": [{"name": v["name"], "id": v["name"], "properties": {
            "changeNumber": "1", "region": v["region"], "systemService": v["systemService"],
            "addressPrefixes": v["addressPrefixes"]}} for v in data["values"]],
    })


def _effective_rule(nsg: NSG, rule: dict[str, Any], default: bool, tags: dict[str, list[str]]) -> dict[str, Any]:
    p = rule["properties"]
    kind = "defaultSecurityRules" if default else "securityRules"

    def ports(single: str, plural: str) -> list[str]:
        vals = list(p.get(plural) or []) + ([p[single]] if p.get(single) else [])
        return ["0-65535" if v == "*" else (v if "-" in v else f"{v}-{v}") for v in vals]

    out: dict[str, Any] = {"name": f"{kind}/{rule['name']}",
                           "protocol": "All" if p["protocol"] == "*" else p["protocol"],
                           "access": p["access"], "priority": p["priority"], "direction": p["direction"]}
    for single, plural in (("sourcePortRange", "sourcePortRanges"), ("destinationPortRange", "destinationPortRanges")):
        vals = ports(single, plural)
        out[single if len(vals) == 1 else plural] = vals[0] if len(vals) == 1 else vals
    for single, plural in (("sourceAddressPrefix", "sourceAddressPrefixes"),
                           ("destinationAddressPrefix", "destinationAddressPrefixes")):
        vals = ["0.0.0.0/0" if v == "*" else v for v in list(p.get(plural) or []) + ([p[single]] if p.get(single) else [])]
        out[single if len(vals) == 1 else plural] = vals[0] if len(vals) == 1 else vals
        expanded = [x for v in vals for t, pre in tags.items() if t.lower() == v.lower() for x in pre]
        if expanded:
            out["expanded" + single[0].upper() + single[1:]] = expanded
    return out


def _running_vm(sim: Simulator, nic: NIC) -> VM:
    vm = sim.compute.by_id(nic.vm_id or "")
    if vm is None or vm.power != "running":
        raise ArmError(400, "VirtualMachineNotRunning",
                       "Effective security rules can be retrieved only when the virtual machine is running.")
    return vm


def _effective_value(sim: Simulator, nic: NIC) -> dict[str, Any]:
    """The `{"value": [...]}` body: one entry per NSG the NIC's traffic crosses (NIC first, then subnet)."""
    net = sim.network
    value = []
    for nsg, scope, owner in net.nsgs_for(_running_vm(sim, nic)):
        if owner.id.lower() != nic.id.lower():
            continue
        assoc = {"networkInterface": {"id": nic.id}} if scope == "networkInterface" else {"subnet": {"id": nic.subnet_id}}
        rules = [_effective_rule(nsg, x, False, net.tags) for x in nsg.rules.values()]
        rules += [_effective_rule(nsg, x, True, net.tags) for x in DEFAULT_RULES]
        value.append({"networkSecurityGroup": {"id": nsg.id}, "association": assoc,
                      "effectiveSecurityRules": rules})
    return {"value": value}


def effective_nsgs(sim: Simulator, r: Request) -> Response:
    """NetworkInterfaces_ListEffectiveNetworkSecurityGroups: 202 + Location, the rules at the end of the LRO."""
    nic = sim.network.nic(r.params)
    _running_vm(sim, nic)  # a stopped VM is refused at once (400), as NRP does
    op = sim.start_operation(r, result=lambda: _effective_value(sim, nic))
    if op.status != "InProgress":  # lro_polls=0: the answer at once
        return sim.operation_result(op)
    return sim.accepted(r, op, "Microsoft.Network", async_operation=False)
