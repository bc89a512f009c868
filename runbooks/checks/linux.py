"""Checks of the Linux file-system freeze cause (C12) and of the platform's wire server 168.63.129.16 (C1.wireserver): issue #14.

C12.freeze asks skip-freeze-mounts' read-only preview (linux-vmbackup-conf-get through Run Command), only for the
runbooks that list it. C1.wireserver reads nothing more than the Facts: a VM whose agent reports Ready reaches the
wire server (the agent reports through it); a silent agent may be a guest firewall blocking it, which ARM cannot
see. NSG rules that deny 168.63.129.16 are named as evidence but are not a cause: "The communication on these
ports [80/tcp, 32526/tcp] with 168.63.129.16 isn't subject to the configured network security groups"
(WIRESERVER_DOC), and the host node's services "aren't subject to the configured network security groups unless
targeted by service tags specific to each service" (NSG_DOC; AzurePlatformDNS/IMDS/LKM, none of them the wire
server), so no NSG rule, on 80, 443 or 32526, is one.
"""

from __future__ import annotations

from remediations.facts import Facts
from remediations.netaddr import ip_in, parse_net
from remediations.netrules import port_in

from ..finding import Check, Finding, guest_probe

__all__ = ["CHECKS", "NSG_DOC", "WIRESERVER", "WIRESERVER_DOC", "nsg_rules_naming_wireserver"]

WIRESERVER = "168.63.129.16"
PORTS = (80, 443, 32526)
WIRESERVER_DOC = "https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16"
NSG_DOC = "https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#azure-platform-considerations"


def nsg_rules_naming_wireserver(f: Facts) -> list[str]:
    """The outbound Deny rules (not defaults) whose destination names 168.63.129.16 on TCP 80, 443 or 32526."""
    found: list[str] = []
    for nsg in f.nsgs or ():
        for r in nsg.rules:
            if r.direction != "Outbound" or r.access != "Deny" or r.default or r.protocol not in ("Tcp", "*"):
                continue
            ports = [p for p in PORTS if any(port_in(spec, p) for spec in r.dest_ports)]
            named = any(parse_net(d) is not None and str(parse_net(d)) != "0.0.0.0/0" and ip_in(d, WIRESERVER)
                        for d in r.dest_prefixes)
            if ports and named:
                found.append(f"{nsg.scope} NSG {nsg.name} rule {r.name} (priority {r.priority}) denies TCP "
                             f"{'/'.join(map(str, ports))} to {WIRESERVER}")
    return found


def _wireserver(f: Facts) -> Finding:
    vm = f.vm
    rules = nsg_rules_naming_wireserver(f)
    note = (f"; {'; '.join(rules)}, but NSG rules do not apply to the wire server ({WIRESERVER_DOC}; {NSG_DOC}): "
            "not a cause") if rules else ""
    if not vm.running:
        return Finding("C1.wireserver", "absent", f"{vm.name} is {vm.power_state or 'not running'}; its agent is not "
                                                  f"expected to report{note}")
    if vm.agent_ready:
        return Finding("C1.wireserver", "absent", f"the guest agent reports Ready, which it does through "
                                                  f"{WIRESERVER} (TCP 80/32526){note}")
    return Finding("C1.wireserver", "unknown",
                   f"the guest agent of {vm.name} is {vm.agent_status or 'not reporting'} "
                   f"({vm.agent_message or 'no status message'}): a firewall inside the guest that blocks "
                   f"{WIRESERVER} on TCP 80 or 32526 stops the agent reporting, and ARM cannot see the guest's "
                   f"firewall (nor can Run Command run without the agent){note}")


CHECKS: dict[str, Check] = {
    "C12.freeze": guest_probe("C12.freeze", "skip-freeze-mounts",
                              "mount points that fail to freeze (MountsToSkip in /etc/azure/vmbackup.conf)", "Linux"),
    "C1.wireserver": _wireserver,
}
