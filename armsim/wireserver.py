"""The platform's wire server 168.63.129.16: what a guest firewall and NSGs do to the agent's way to it.

Sources (MicrosoftDocs/azure-docs):
- virtual-network/what-is-ip-address-168-63-129-16.md: "The VM Agent requires outbound communication over ports
  80/tcp and 32526/tcp with WireServer (168.63.129.16). These ports should be open in the local firewall on the VM.
  The communication on these ports with 168.63.129.16 isn't subject to the configured network security groups";
  and 168.63.129.16 "is a virtual IP of the host node and as such it isn't subject to user defined routes".
- virtual-network/network-security-groups-overview.md, "Azure platform considerations": the host node's services
  on 168.63.129.16 "aren't subject to the configured network security groups unless targeted by service tags
  specific to each service" (AzurePlatformDNS, AzurePlatformIMDS, AzurePlatformLKM; none is the wire server).
So armsim never lets an NSG rule or a route cut the agent from the wire server: only the guest's own firewall
(`Guest.wireserver_blocked`, the TCP ports it drops to 168.63.129.16) does. With 80 or 32526 dropped the agent
cannot report: the instance view shows it Not Ready, Run Command cannot run, and a backup fails with
UserErrorGuestAgentStatusUnavailable ("VM Agent unable to communicate with Azure Backup"; that this code, and not
another agent code, is the one reported is assumed). The troubleshooting guide also names 443; no page says what
uses 443 on 168.63.129.16, so dropping only 443 changes nothing in armsim (assumed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compute import VM

__all__ = ["AGENT_PORTS", "CODE", "WIRESERVER", "cut_off", "nsg_applies", "wireserver_error"]

WIRESERVER = "168.63.129.16"
AGENT_PORTS = (80, 32526)
CODE = "UserErrorGuestAgentStatusUnavailable"


def nsg_applies(port: int) -> bool:
    """Whether an NSG rule can filter TCP `port` to 168.63.129.16: never (host-node traffic, see the module doc)."""
    return False


def cut_off(blocked: tuple[int, ...]) -> bool:
    """Whether a guest firewall dropping these TCP ports to 168.63.129.16 cuts the agent off (80 or 32526)."""
    return any(p in blocked for p in AGENT_PORTS)


def wireserver_error(vm: VM) -> str | None:
    """The backup's error while the guest firewall cuts the agent off from the wire server, else None."""
    return CODE if cut_off(vm.guest.wireserver_blocked) else None
