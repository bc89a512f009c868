"""Azure Firewalls in armsim (GET, list, PUT of classic rules) over HTTPS with the real SDK, the causal model that
derives an appliance's verdict from a firewall's rules, and C1.route judged by those rules in a diagnosis."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from conftest import FAST_RETRY

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.routes import storage_route_blocked
from remediations.azure import Azure, AzureConfig
from remediations.target import Target
from runbooks.engine import Options, investigate

RG, VM = "rg-demo", "vm-udr-blocked"
BACKUP_RULE = {"name": "allow-backup", "properties": {"priority": 300, "action": {"type": "Allow"}, "rules": [
    {"name": "azure-backup", "fqdnTags": ["AzureBackup"], "protocols": [{"protocolType": "Https", "port": 443}],
     "sourceAddresses": ["10.0.4.0/24"]}]}}


def read_only(server: Server) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint,
                             ca_bundle=server.ca_bundle, read_only=True, retry=FAST_RETRY))


def blocked(server: Server) -> str | None:
    return storage_route_blocked(server.sim, server.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, VM)])


def c1_route(server: Server) -> tuple[str, str]:
    inv = investigate(read_only(server), Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name=VM), Options())
    f = next(f for f in inv.findings if f.cause == "C1.route")
    return f.verdict, f.evidence


def ops(server: Server) -> list[str]:
    return [e["operation"] for e in server.sim.requests()]


def test_get_and_list(armsim: Server, azure: Azure) -> None:
    fw = azure.network.azure_firewalls.get(RG, "fw-demo")
    assert (fw.ip_configurations[0].private_ip_address, fw.sku.name) == ("10.0.100.4", "AZFW_VNet")
    assert [f.name for f in azure.network.azure_firewalls.list(RG)] == ["fw-demo"]
    assert [f.name for f in azure.network.azure_firewalls.list_all()] == ["fw-demo"]
    with pytest.raises(ResourceNotFoundError):
        azure.network.azure_firewalls.get(RG, "fw-nope")


def test_a_rule_put_through_arm_lets_storage_through(armsim: Server, azure: Azure) -> None:
    assert "VirtualAppliance 10.0.100.4, which does not allow Storage" in (blocked(armsim) or "")
    fw = azure.network.azure_firewalls.get(RG, "fw-demo").as_dict()
    body: dict[str, Any] = {"location": fw["location"], "properties": {
        "applicationRuleCollections": [*armsim_rules(armsim, "application_rules"), BACKUP_RULE],
        "networkRuleCollections": armsim_rules(armsim, "network_rules")}}
    done = azure.network.azure_firewalls.begin_create_or_update(RG, "fw-demo", body).result()
    assert [c.name for c in done.application_rule_collections] == ["allow-updates", "allow-backup"]
    assert blocked(armsim) is None


def armsim_rules(server: Server, kind: str) -> list[dict[str, Any]]:
    return list(getattr(server.sim.firewalls.by_ip("10.0.100.4"), kind))


def test_diagnosis_names_the_firewall_that_blocks(armsim: Server) -> None:
    verdict, evidence = c1_route(armsim)
    assert verdict == "present", evidence
    assert evidence.endswith("Azure Firewall fw-demo (10.0.100.4) does not let it through: no rule allows the "
                             "AzureBackup FQDN tag or Storage.EastUS:443") and "reported" not in evidence
    assert ops(armsim).count("AzureFirewalls_ListAll") == 1


def test_a_firewall_that_allows_backup_makes_c1_route_absent(armsim: Server) -> None:
    armsim.sim.firewalls.by_ip("10.0.100.4").application_rules.append(BACKUP_RULE)  # type: ignore[union-attr]
    verdict, evidence = c1_route(armsim)
    assert verdict == "absent", evidence
    assert evidence.endswith("Azure Firewall fw-demo (10.0.100.4) allows AzureBackup by application rule collection "
                             "allow-backup (Allow, priority 300) rule azure-backup: FQDN tag AzureBackup from 10.0.4.0/24")


def test_a_refused_firewall_list_keeps_the_judgement_and_says_so(armsim: Server) -> None:
    armsim.sim.faults.add(kind="status", status=403, code="AuthorizationFailed", operation="AzureFirewalls_ListAll",
                          message="no Microsoft.Network/azureFirewalls/read")
    verdict, evidence = c1_route(armsim)
    assert verdict == "present" and "reported ExtensionSnapshotFailedNoNetwork" in evidence  # by elimination
    assert evidence.endswith("; the Azure Firewalls were not readable (AuthorizationFailed: no "
                             "Microsoft.Network/azureFirewalls/read)")


def test_a_vm_that_reads_no_routes_reads_no_firewalls(armsim: Server) -> None:
    investigate(read_only(armsim), Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name="vm-nsg-blocked"),
                Options())
    assert "AzureFirewalls_ListAll" not in ops(armsim)
