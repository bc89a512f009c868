"""remediations/firewall.py, pure: an Azure Firewall's classic rules judged for the backup traffic (network rules
first, then application rules, by priority; first match decides; default deny), and C1.route's verdict from it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from remediations.firewall import find_firewall, judge_firewall
from remediations.netaddr import TagResolver
from remediations.routes import EffectiveRoute, RouteFacts, storage_path

EXAMPLE = Path(__file__).parent / "fixtures" / "azure-rest-examples" / "network" / "AzureFirewallGet.json"
TAG = "Storage.EastUS"
STORAGE = ["20.60.0.0/16", "52.239.152.0/22"]
TAGS = TagResolver({TAG: STORAGE}, regions={TAG: "eastus"})
IP = "10.0.100.4"


def net_coll(name: str, priority: int, action: str, **rule: Any) -> dict[str, Any]:
    r = {"name": "r1", "protocols": ["TCP"], "sourceAddresses": ["*"], "destinationPorts": ["443"], **rule}
    return {"name": name, "properties": {"priority": priority, "action": {"type": action}, "rules": [r]}}


def app_coll(name: str, priority: int, action: str, **rule: Any) -> dict[str, Any]:
    r = {"name": "a1", "protocols": [{"protocolType": "Https", "port": 443}], "sourceAddresses": ["*"], **rule}
    return {"name": name, "properties": {"priority": priority, "action": {"type": action}, "rules": [r]}}


def firewall(app: Sequence[dict[str, Any]] = (), net: Sequence[dict[str, Any]] = (), ip: str = IP) -> dict[str, Any]:
    return {"name": "fw-x", "properties": {"ipConfigurations": [{"properties": {"privateIPAddress": ip}}],
                                           "applicationRuleCollections": list(app), "networkRuleCollections": list(net)}}


def test_the_official_example_is_found_by_ip_and_denies() -> None:
    fw = json.loads(EXAMPLE.read_text())["responses"]["200"]["body"]
    found = find_firewall([fw], "10.0.0.0")
    assert found is not None and found["name"] == "azurefirewall" and find_firewall([fw], IP) is None
    v = judge_firewall(fw, "10.0.0.0", TAG, STORAGE)  # its Deny network rule L4-traffic covers * on 443-444
    assert (v.name, v.allows) == ("azurefirewall", False)
    assert v.rule.startswith("network rule collection netrulecoll (Deny, priority 112) rule L4-traffic")


def test_sdk_spelling_is_read_too() -> None:
    fw = {"name": "fw-x", "ip_configurations": [{"private_ip_address": IP}], "application_rule_collections": [
        {"name": "ab", "priority": 100, "action": {"type": "Allow"}, "rules": [{"name": "b", "fqdn_tags": ["AzureBackup"],
                                                                             "source_addresses": ["10.0.0.0/16"]}]}]}
    assert find_firewall([fw], IP) == fw
    v = judge_firewall(fw, IP, TAG, STORAGE)
    assert v.allows and "FQDN tag AzureBackup from 10.0.0.0/16" in v.rule


def test_what_allows_and_what_does_not() -> None:
    def allows(**kw: Any) -> bool:
        return judge_firewall(firewall(**kw), IP, TAG, STORAGE).allows

    assert not allows()  # nothing matches: default deny
    assert allows(app=[app_coll("c", 200, "Allow", fqdnTags=["AzureBackup"])])
    assert not allows(app=[app_coll("c", 200, "Allow", fqdnTags=["WindowsUpdate"])])
    assert not allows(app=[app_coll("c", 200, "Deny", fqdnTags=["AzureBackup"])])
    for dest in (["Storage"], ["Storage.EastUS"], ["*"], ["20.0.0.0/8", "52.239.0.0/16"]):
        assert allows(net=[net_coll("n", 200, "Allow", destinationAddresses=dest)]), dest
    assert not allows(net=[net_coll("n", 200, "Allow", destinationAddresses=["20.60.0.0/16"])])  # not all prefixes
    assert not allows(net=[net_coll("n", 200, "Allow", destinationAddresses=["Storage"], destinationPorts=["80"])])
    assert allows(net=[net_coll("n", 200, "Allow", destinationAddresses=["Storage"], destinationPorts=["400-500"])])
    assert not allows(net=[net_coll("n", 200, "Allow", destinationAddresses=["Storage"], protocols=["UDP"])])
    # priority decides among collections; network rules come before application rules
    deny, allow = (net_coll("d", 100, "Deny", destinationAddresses=["*"]),
                   net_coll("a", 200, "Allow", destinationAddresses=["Storage"]))
    assert not allows(net=[allow, deny]) and allows(net=[{**deny, "properties": {**deny["properties"], "priority": 300}},
                                                         allow])
    assert not allows(net=[deny], app=[app_coll("c", 100, "Allow", fqdnTags=["AzureBackup"])])


def facts(fw: dict[str, Any] | None, no_network: str | None = "ExtensionSnapshotFailedNoNetwork") -> RouteFacts:
    path = storage_path([EffectiveRoute("to-fw", "User", "Active", ("0.0.0.0/0",), "VirtualAppliance", (IP,))],
                        TAG, STORAGE, TAGS)
    fws = (judge_firewall(fw, IP, TAG, STORAGE),) if fw else ()
    return RouteFacts(nic="nic1", path=path, no_network=no_network, firewalls=fws)


def test_c1_route_is_decided_by_the_firewall_rules() -> None:
    verdict, evidence, manual = facts(firewall()).judge()
    assert verdict == "present" and "reported" not in evidence
    assert evidence.endswith("Azure Firewall fw-x (10.0.100.4) does not let it through: no rule allows the "
                             "AzureBackup FQDN tag or Storage.EastUS:443")
    assert manual and manual[0].startswith("On Azure Firewall fw-x, allow the backup traffic")
    verdict, evidence, manual = facts(firewall(app=[app_coll("bk", 300, "Allow", fqdnTags=["AzureBackup"])]),
                                      no_network=None).judge()
    assert (verdict, manual) == ("absent", ())
    assert evidence.endswith("Azure Firewall fw-x (10.0.100.4) allows AzureBackup by application rule collection bk "
                             "(Allow, priority 300) rule a1: FQDN tag AzureBackup from *")


def test_no_firewall_or_an_unreadable_one_keeps_the_appliance_judgement() -> None:
    assert facts(None).judge()[0] == "present" and "reported ExtensionSnapshotFailedNoNetwork" in facts(None).judge()[1]
    assert facts(None, no_network=None).judge()[0] == "unknown"
    note = RouteFacts(**{**facts(None).__dict__, "firewall_note": "the Azure Firewalls were not readable (X: y)"})
    verdict, evidence, _ = note.judge()
    assert verdict == "present" and evidence.endswith("; the Azure Firewalls were not readable (X: y)")


def test_a_firewall_run_by_a_policy_is_not_judged_by_its_empty_classic_rules() -> None:
    """Rules of a Firewall Policy live in its rule collection groups (not read): no false "present"."""
    from remediations.firewall import judge_firewall

    fw = {"name": "fw-policy", "properties": {
        "ipConfigurations": [{"properties": {"privateIPAddress": "10.0.100.4"}}],
        "firewallPolicy": {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/firewallPolicies/pol"},
        "applicationRuleCollections": [], "networkRuleCollections": []}}
    v = judge_firewall(fw, "10.0.100.4", "Storage.EastUS", ["20.38.98.0/24"])
    assert (v.allows, v.rule, v.policy) == (False, "", "pol")
