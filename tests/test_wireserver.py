"""The wire server 168.63.129.16 (C1.wireserver): NSG rules do not apply to it (the issue's assumption, proved
wrong against what-is-ip-address-168-63-129-16.md); a guest firewall that blocks it silences the agent, and the
diagnosis says so with ARM's evidence and the manual steps, making no extra request on a healthy VM."""

from __future__ import annotations

from typing import Any

from azure.mgmt.network.models import SecurityRule
from support.demo import RG, sim_vm, target

from remediations.azure import Azure
from remediations.facts import gather
from runbooks.catalog import CAUSES, GROUPS
from runbooks.diagnose import check
from runbooks.engine import Options, _unchecked, investigate

VM = "vm-healthy"


def _deny_wireserver(azure: Azure) -> None:
    """An outbound NSG rule on vm-healthy's subnet denying 168.63.129.16 on 80, 443 and 32526 (through the SDK)."""
    rule = SecurityRule(protocol="Tcp", source_port_range="*", destination_port_ranges=["80", "443", "32526"],
                        source_address_prefix="*", destination_address_prefix="168.63.129.16/32", access="Deny",
                        priority=100, direction="Outbound")
    azure.network.security_rules.begin_create_or_update(RG, "nsg-app", "deny-wireserver", rule).result()


def test_every_runbook_with_c1_checks_the_wire_server() -> None:
    assert GROUPS["C1"][-1] == "C1.wireserver"


def test_an_nsg_rule_does_not_block_the_wire_server(armsim: Any, azure: Azure) -> None:
    _deny_wireserver(azure)
    vm = sim_vm(armsim, VM)
    assert armsim.sim.backup.verdict(vm) is None  # the agent still reports and the backup succeeds
    facts = gather(azure, target(VM))
    assert facts.vm.agent_ready
    armsim.sim.clear_requests()
    f = check("C1.wireserver", facts)
    assert armsim.sim.requests() == []  # judged from the facts alone
    assert f.verdict == "absent", f
    assert "deny-wireserver" in f.evidence and "not a cause" in f.evidence and "168-63-129-16" in f.evidence, f


def test_a_guest_firewall_silences_the_agent(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, VM)
    vm.guest.wireserver_blocked = (32526,)
    assert armsim.sim.backup.verdict(vm) == "UserErrorGuestAgentStatusUnavailable"
    inv = investigate(azure, target(VM), Options(error="UserErrorGuestAgentStatusUnavailable"))
    [f] = [f for f in inv.findings if f.cause == "C1.wireserver"]
    assert f.verdict == "unknown" and "Not Ready" in f.evidence and "firewall inside the guest" in f.evidence, f
    steps = " ".join(_unchecked(inv))
    assert "iptables -I OUTPUT" in steps and "New-NetFirewallRule" in steps and "firewall-cmd" in steps
    assert "nft insert rule" in steps and not CAUSES["C1.wireserver"].fixes


def test_only_443_dropped_in_the_guest_leaves_the_agent_reporting(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, VM)
    vm.guest.wireserver_blocked = (443,)  # assumed: no page says what uses 443 on 168.63.129.16
    assert armsim.sim.backup.verdict(vm) is None
    assert gather(azure, target(VM)).vm.agent_ready
