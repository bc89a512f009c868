"""Unit tests for the pure NSG logic in remediations.netrules (no I/O beyond reading fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remediations.netrules import (
    DEFAULT_RULES,
    WIRESERVER_IP,
    Blocked,
    NoFreePriority,
    NsgView,
    Rule,
    TagResolver,
    UnknownTag,
    egress_verdicts,
    evaluate,
    ip_in,
    plan_allow_rules,
    port_in,
    probe_addresses,
    same_rule,
    storage_tag,
    unknown_tags,
    wireserver_blocks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "azure-rest-examples" / "network"

STORAGE_EASTUS = ["20.38.98.0/24", "52.239.152.0/22"]
TAGS = {
    "Storage.EastUS": STORAGE_EASTUS,
    "Storage": [*STORAGE_EASTUS, "20.60.0.0/16", "52.239.200.0/22"],
    "AzureCloud": ["20.0.0.0/8", "52.0.0.0/8", "13.64.0.0/11"],
    "AzureCloud.eastus": ["20.38.0.0/16", "52.239.0.0/16"],
    "AzureBackup": ["20.38.99.0/27"],
    "AzureActiveDirectory": ["20.190.128.0/18"],
}
VNET = ["10.0.0.0/16"]
VM_IP = "10.0.1.4"
NIC_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nic-nsg"
SUBNET_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/subnet-nsg"


@pytest.fixture
def resolver() -> TagResolver:
    return TagResolver(TAGS, VNET)


def out_rule(
    name: str, priority: int, access: str, dest: str | tuple[str, ...], ports: str = "443", **kw
) -> Rule:
    dests = (dest,) if isinstance(dest, str) else dest
    return Rule(
        name,
        priority,
        "Outbound",
        access,
        kw.pop("protocol", "Tcp"),
        dest_prefixes=dests,
        dest_ports=tuple(ports.split(",")),
        **kw,
    )


def nsg(rules: list[Rule], scope: str = "nic") -> NsgView:
    nsg_id = NIC_ID if scope == "nic" else SUBNET_ID
    return NsgView(nsg_id, nsg_id.rsplit("/", 1)[-1], tuple(rules), scope)  # type: ignore[arg-type]


def apply(view: NsgView, new: list[Rule]) -> NsgView:
    return NsgView(view.id, view.name, view.rules + tuple(new), view.scope)


def verdict(rules: list[Rule], resolver: TagResolver, ip: str = "20.38.98.1", port: int = 443):
    return evaluate(
        rules,
        direction="Outbound",
        protocol="Tcp",
        dest_ip=ip,
        dest_port=port,
        src_ip=VM_IP,
        resolver=resolver,
    )


# --- small helpers -------------------------------------------------------------------------------


def test_ip_in_and_port_in() -> None:
    assert ip_in("10.0.0.0/16", "10.0.255.1")
    assert ip_in("10.0.0.5", "10.0.0.5") and not ip_in("10.0.0.5", "10.0.0.6")
    assert ip_in("*", "1.2.3.4") and ip_in("0.0.0.0/0", "1.2.3.4")
    assert not ip_in("0.0.0.0/0", "2001:db8::1")
    assert ip_in("10.0.0.7/24", "10.0.0.200")  # host bits tolerated
    with pytest.raises(ValueError):
        ip_in("Storage", "1.2.3.4")
    assert port_in("*", 8443) and port_in("443", 443) and not port_in("443", 8443)
    assert port_in("400-500", 443) and port_in("0-65535", 1) and port_in("80, 443", 443)
    for bad in ("abc", "500-400", "70000"):
        with pytest.raises(ValueError):
            port_in(bad, 1)


def test_storage_tag_is_the_service_tags_api_name_never_built_from_the_region(resolver: TagResolver) -> None:
    # The API's name as listed, whatever case the region is given in; never "Storage." + a lower-case region.
    assert storage_tag(resolver, "eastus") == storage_tag(resolver, "EastUS") == storage_tag(resolver, "East US")
    assert storage_tag(resolver, "eastus") == "Storage.EastUS"
    # Matched by the API's properties.region, so a tag name that is not "<service>.<region>" is still found.
    odd = TagResolver.from_service_tags({"values": [
        {"name": "Storage.USEast", "properties": {"region": "eastus", "addressPrefixes": ["20.38.98.0/24"]}},
        {"name": "Storage", "properties": {"region": "", "addressPrefixes": ["20.38.98.0/24"]}}]})
    assert storage_tag(odd, "eastus") == "Storage.USEast"
    assert odd.with_virtual_network(VNET).regional("Storage", "East US") == "Storage.USEast"
    with pytest.raises(UnknownTag, match="no Storage tag for region 'westus'"):
        storage_tag(odd, "westus")
    assert probe_addresses("20.38.98.0/24") == ("20.38.98.1", "20.38.98.254")
    assert probe_addresses("1.2.3.4/32") == ("1.2.3.4",)
    assert probe_addresses("1.2.3.4/31") == ("1.2.3.4", "1.2.3.5")
    assert probe_addresses("2603:1030::/48") == ()


def test_tag_resolver(resolver: TagResolver) -> None:
    assert resolver.contains("Storage.eastus", "52.239.155.255")
    assert resolver.contains("STORAGE.EASTUS", "20.38.98.7")
    assert resolver.contains("Storage.EastUS", "20.60.1.1") is False
    assert resolver.contains("VirtualNetwork", VM_IP) and not resolver.contains("Internet", VM_IP)
    assert resolver.contains("Internet", "20.38.98.1") and not resolver.contains(
        "VirtualNetwork", "20.38.98.1"
    )
    assert resolver.contains("VirtualNetwork", WIRESERVER_IP) and not resolver.contains(
        "Internet", WIRESERVER_IP
    )
    assert resolver.contains("Storage.NowhereLand", "20.38.98.1") is None
    assert resolver.prefixes("storage.EASTUS") == STORAGE_EASTUS
    assert resolver.prefixes("nope") == [] and not resolver.known("nope") and resolver.known("internet")
    with pytest.raises(ValueError):
        resolver.prefixes("Internet")


def test_tag_resolver_from_service_tags_fixture() -> None:
    body = json.loads((FIXTURES / "ServiceTagsList.json").read_text())["responses"]["200"]["body"]
    r = TagResolver.from_service_tags(body, VNET)
    assert r.prefixes("servicebus.eastus2") == ["13.68.110.36/32", "40.70.146.64/29"]
    assert r.contains("ServiceBus.EastUS2", "40.70.146.70") and not r.contains(
        "ServiceBus.EastUS2", "40.70.146.72"
    )


# --- evaluation ----------------------------------------------------------------------------------


def test_first_match_wins(resolver: TagResolver) -> None:
    allow = out_rule("allow-443", 300, "Allow", "*")
    deny = out_rule("deny-all", 400, "Deny", "*", ports="*")
    v = verdict([allow, deny], resolver)
    assert v.allowed and v.rule == allow
    assert not verdict([allow, deny], resolver, port=80).allowed  # allow does not match port 80
    early_deny = out_rule("deny-all", 150, "Deny", "*", ports="*")
    v = verdict([allow, early_deny], resolver)
    assert not v.allowed and v.rule == early_deny


def test_priority_order_not_list_order(resolver: TagResolver) -> None:
    rules = [
        out_rule("c", 900, "Allow", "*"),
        out_rule("a", 110, "Deny", "Internet"),
        out_rule("b", 120, "Allow", "*"),
    ]
    assert verdict(rules, resolver).rule.name == "a"  # type: ignore[union-attr]
    assert verdict(list(reversed(rules)), resolver).rule.name == "a"  # type: ignore[union-attr]


def test_direction_and_protocol_filtering(resolver: TagResolver) -> None:
    inbound = Rule("deny-in", 100, "Inbound", "Deny", "*")
    udp = out_rule("deny-udp", 110, "Deny", "*", protocol="Udp")
    v = verdict([inbound, udp], resolver)
    assert v.allowed and v.rule is not None and v.rule.name == "AllowInternetOutBound"


def test_default_rules(resolver: TagResolver) -> None:
    assert [r.name for r in DEFAULT_RULES] == [
        "AllowVnetInBound",
        "AllowAzureLoadBalancerInBound",
        "DenyAllInBound",
        "AllowVnetOutBound",
        "AllowInternetOutBound",
        "DenyAllOutBound",
    ]
    assert all(r.default for r in DEFAULT_RULES)
    v = verdict([], resolver)
    assert v.allowed and v.rule is not None and v.rule.name == "AllowInternetOutBound" and v.rule.default
    v = verdict([], resolver, ip="10.0.9.9")
    assert v.rule is not None and v.rule.name == "AllowVnetOutBound"
    none = evaluate([], dest_ip="20.38.98.1", dest_port=443, resolver=resolver, include_defaults=False)
    assert none.allowed and none.rule is None


def test_source_address_and_port(resolver: TagResolver) -> None:
    other_subnet = out_rule("deny-other", 100, "Deny", "*", source_prefixes=("10.0.2.0/24",))
    assert verdict([other_subnet], resolver).allowed
    unknown_src = evaluate([other_subnet], dest_ip="20.38.98.1", dest_port=443, resolver=resolver)
    assert not unknown_src.allowed  # src_ip=None: the source condition is not checked (conservative)
    sport = out_rule("deny-sport", 100, "Deny", "*", source_ports=("1000-2000",))
    assert evaluate([sport], dest_ip="20.38.98.1", dest_port=443, src_port=50000, resolver=resolver).allowed


def test_unknown_tag_matches_nothing_and_is_reported(resolver: TagResolver) -> None:
    deny = out_rule("deny-weu", 100, "Deny", ("Storage.WestEurope", "AzureMonitor"))
    v = verdict([deny], resolver)
    assert v.allowed and v.rule is not None and v.rule.name == "AllowInternetOutBound"
    assert v.unknown_tags == ("Storage.WestEurope", "AzureMonitor")
    assert unknown_tags([deny, out_rule("x", 200, "Allow", "Storage")], resolver) == [
        "Storage.WestEurope",
        "AzureMonitor",
    ]


# --- egress diagnosis + planning -----------------------------------------------------------------


def test_nothing_blocks_default_allows(resolver: TagResolver) -> None:
    views = [
        nsg([Rule("allow-rdp", 1000, "Inbound", "Allow", "Tcp", dest_ports=("3389",))]),
        nsg([], "subnet"),
    ]
    assert egress_verdicts(views, region="eastus", ports=(443, 8443), resolver=resolver, src_ip=VM_IP) == []


def test_nic_deny_internet_blocks_and_plan_service_tag(resolver: TagResolver) -> None:
    deny = out_rule("deny-internet", 200, "Deny", "Internet")
    nic = nsg([deny])
    blocked = egress_verdicts([nic], region="eastus", resolver=resolver, src_ip=VM_IP)
    assert blocked == [Blocked(NIC_ID, "nic-nsg", "nic", 443, deny, tuple(STORAGE_EASTUS))]
    plan = plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)
    assert len(plan) == 1
    new = plan[0]
    assert (new.name, new.priority, new.direction, new.access, new.protocol) == (
        "allow-azure-backup-443",
        199,
        "Outbound",
        "Allow",
        "Tcp",
    )
    assert new.dest_prefixes == ("Storage.EastUS",) and new.source_prefixes == ("*",)
    assert new.source_ports == ("*",) and new.dest_ports == ("443",)
    body = new.to_arm()["properties"]
    assert body["destinationAddressPrefix"] == "Storage.EastUS" and body["destinationPortRange"] == "443"
    assert egress_verdicts([apply(nic, plan)], region="eastus", resolver=resolver, src_ip=VM_IP) == []


def test_subnet_scope_blocker(resolver: TagResolver) -> None:
    nic, subnet = nsg([]), nsg([out_rule("deny-storage", 310, "Deny", "Storage")], "subnet")
    blocked = egress_verdicts([nic, subnet], region="eastus", resolver=resolver, src_ip=VM_IP)
    assert [(b.scope, b.nsg_name, b.rule.name, b.port) for b in blocked] == [
        ("subnet", "subnet-nsg", "deny-storage", 443)
    ]
    assert plan_allow_rules(nic, blocked, region="eastus", resolver=resolver) == []
    plan = plan_allow_rules(subnet, blocked, region="eastus", resolver=resolver)
    assert [(r.name, r.priority) for r in plan] == [("allow-azure-backup-443", 309)]


def test_both_nsgs_block_and_8443(resolver: TagResolver) -> None:
    nic = nsg([out_rule("deny-web", 200, "Deny", "Internet", ports="443,8443")])
    subnet = nsg([out_rule("deny-all", 4000, "Deny", "*", ports="*")], "subnet")
    blocked = egress_verdicts(
        [nic, subnet], region="eastus", ports=(443, 8443), resolver=resolver, src_ip=VM_IP
    )
    assert [(b.scope, b.port, b.rule.name) for b in blocked] == [
        ("nic", 443, "deny-web"),
        ("nic", 8443, "deny-web"),
        ("subnet", 443, "deny-all"),
        ("subnet", 8443, "deny-all"),
    ]
    nic_plan = plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)
    assert [(r.name, r.priority) for r in nic_plan] == [
        ("allow-azure-backup-443", 199),
        ("allow-azure-backup-8443", 198),
    ]
    sub_plan = plan_allow_rules(subnet, blocked, region="eastus", resolver=resolver)
    assert [(r.name, r.priority) for r in sub_plan] == [
        ("allow-azure-backup-443", 3999),
        ("allow-azure-backup-8443", 3998),
    ]
    fixed = [apply(nic, nic_plan), apply(subnet, sub_plan)]
    assert egress_verdicts(fixed, region="eastus", ports=(443, 8443), resolver=resolver, src_ip=VM_IP) == []


def test_only_8443_blocked(resolver: TagResolver) -> None:
    nic = nsg([out_rule("deny-8443", 500, "Deny", "*", ports="8000-9000")])
    blocked = egress_verdicts([nic], region="eastus", ports=(443, 8443), resolver=resolver, src_ip=VM_IP)
    assert [(b.port, b.rule.name) for b in blocked] == [(8443, "deny-8443")]
    assert [r.name for r in plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)] == [
        "allow-azure-backup-8443"
    ]


def test_blocker_at_100_has_no_free_priority(resolver: TagResolver) -> None:
    nic = nsg([out_rule("deny-internet", 100, "Deny", "Internet")])
    blocked = egress_verdicts([nic], region="eastus", resolver=resolver, src_ip=VM_IP)
    with pytest.raises(NoFreePriority) as err:
        plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)
    assert isinstance(err.value, ValueError)
    assert (
        "nic-nsg" in str(err.value)
        and "deny-internet" in str(err.value)
        and err.value.blocker.priority == 100
    )


def test_no_free_priority_when_all_taken(resolver: TagResolver) -> None:
    nic = nsg(
        [out_rule("deny", 103, "Deny", "*")]
        + [out_rule(f"r{p}", p, "Allow", "1.1.1.1") for p in (100, 101, 102)]
    )
    blocked = egress_verdicts([nic], region="eastus", resolver=resolver, src_ip=VM_IP)
    with pytest.raises(NoFreePriority):
        plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)


def test_taken_priority_skipped_inbound_ignored(resolver: TagResolver) -> None:
    deny = out_rule("deny-internet", 200, "Deny", "Internet")
    taken = nsg([deny, out_rule("allow-dns", 199, "Allow", "8.8.8.8", ports="53")])
    blocked = egress_verdicts([taken], region="eastus", resolver=resolver, src_ip=VM_IP)
    assert plan_allow_rules(taken, blocked, region="eastus", resolver=resolver)[0].priority == 198
    inbound = nsg([deny, Rule("allow-ssh", 199, "Inbound", "Allow", "Tcp", dest_ports=("22",))])
    blocked = egress_verdicts([inbound], region="eastus", resolver=resolver, src_ip=VM_IP)
    assert plan_allow_rules(inbound, blocked, region="eastus", resolver=resolver)[0].priority == 199


def test_stale_same_named_rule_priority_is_reused(resolver: TagResolver) -> None:
    stale = out_rule("Allow-Azure-Backup-443", 199, "Allow", "Storage.eastus", ports="80")
    nic = nsg([out_rule("deny-internet", 200, "Deny", "Internet"), stale])
    blocked = egress_verdicts([nic], region="eastus", resolver=resolver, src_ip=VM_IP)
    plan = plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)
    assert [(r.name, r.priority) for r in plan] == [("allow-azure-backup-443", 199)]


def test_default_blocker_caps_priority_at_4096(resolver: TagResolver) -> None:
    default_deny = next(r for r in DEFAULT_RULES if r.name == "DenyAllOutBound")
    nic = nsg([])
    blocked = [Blocked(NIC_ID.upper(), "nic-nsg", "nic", 443, default_deny, ("20.38.98.0/24",))]
    assert plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)[0].priority == 4096
    other = [Blocked(SUBNET_ID, "subnet-nsg", "subnet", 443, default_deny, ("20.38.98.0/24",))]
    assert plan_allow_rules(nic, other, region="eastus", resolver=resolver) == []


def test_ip_ranges_mode_one_rule_per_port_with_every_prefix() -> None:
    five = [
        "20.38.98.0/24",
        "52.239.152.0/22",
        "20.60.0.0/16",
        "20.150.1.0/25",
        "52.241.88.0/21",
        "2603:1030::/48",
    ]
    resolver = TagResolver({"Storage.EastUS": five}, VNET)
    nic = nsg([out_rule("deny-internet", 200, "Deny", "Internet", ports="*")])
    blocked = egress_verdicts([nic], region="EastUS", ports=(443, 8443), resolver=resolver, src_ip=VM_IP)
    assert [b.destinations for b in blocked] == [tuple(five[:5])] * 2  # IPv6 prefix skipped
    plan = plan_allow_rules(nic, blocked, region="EastUS", mode="ip-ranges", resolver=resolver)
    # No per-rule chunking: Azure's limit is on the whole NSG (netlimits), not on one rule.
    assert [(r.name, r.priority, len(r.dest_prefixes)) for r in plan] == [
        ("allow-azure-backup-443-01", 199, 5),
        ("allow-azure-backup-8443-01", 198, 5),
    ]
    assert plan[0].to_arm()["properties"]["destinationAddressPrefixes"] == five[:5]
    assert plan[0].description == "Azure Backup: allow TCP 443 to Storage.EastUS"
    assert (
        egress_verdicts(
            [apply(nic, plan)], region="eastus", ports=(443, 8443), resolver=resolver, src_ip=VM_IP
        )
        == []
    )


def test_deny_for_one_of_several_prefixes(resolver: TagResolver) -> None:
    nic = nsg([out_rule("deny-one", 500, "Deny", "52.239.152.0/22")])
    blocked = egress_verdicts([nic], region="eastus", resolver=resolver, src_ip=VM_IP)
    assert [(b.rule.name, b.destinations) for b in blocked] == [("deny-one", ("52.239.152.0/22",))]
    edge = nsg([out_rule("deny-last-ip", 500, "Deny", "20.38.98.254")])  # only the last usable address
    blocked = egress_verdicts([edge], region="eastus", resolver=resolver, src_ip=VM_IP)
    assert [b.destinations for b in blocked] == [("20.38.98.0/24",)]


def test_multiple_blockers_for_one_port(resolver: TagResolver) -> None:
    nic = nsg(
        [out_rule("deny-a", 300, "Deny", "20.38.98.0/24"), out_rule("deny-b", 250, "Deny", "52.239.152.0/22")]
    )
    blocked = egress_verdicts([nic], region="eastus", resolver=resolver, src_ip=VM_IP)
    assert [(b.rule.name, b.destinations) for b in blocked] == [
        ("deny-b", ("52.239.152.0/22",)),
        ("deny-a", ("20.38.98.0/24",)),
    ]
    assert [r.priority for r in plan_allow_rules(nic, blocked, region="eastus", resolver=resolver)] == [249]


def test_same_rule_tells_a_wrong_case_tag_apart(resolver: TagResolver) -> None:
    ours = out_rule("allow-azure-backup-443", 199, "Allow", "Storage.EastUS")
    old = out_rule("allow-azure-backup-443", 199, "Allow", "Storage.eastus")  # what earlier versions wrote
    assert not same_rule(ours, old) and same_rule(ours, out_rule("ALLOW-azure-backup-443", 199, "Allow",
                                                                 "Storage.EastUS"))
    assert same_rule(out_rule("a", 1, "Allow", ("10.0.0.0/25", "10.0.0.128/25")), out_rule("a", 1, "Allow", "10.0.0.0/24"))


def test_service_tag_case_insensitive(resolver: TagResolver) -> None:
    nic = nsg([out_rule("deny-storage", 200, "Deny", "storage.EASTUS")])
    blocked = egress_verdicts([nic], region="EastUS", resolver=resolver, src_ip=VM_IP)
    assert len(blocked) == 1 and blocked[0].destinations == tuple(STORAGE_EASTUS)
    allow = out_rule("allow", 100, "Allow", "Storage.EastUS")
    assert egress_verdicts([apply(nic, [allow])], region="eastus", resolver=resolver, src_ip=VM_IP) == []


def test_unknown_region_raises(resolver: TagResolver) -> None:
    with pytest.raises(UnknownTag):
        egress_verdicts([nsg([])], region="marsnorth", resolver=resolver, src_ip=VM_IP)
    with pytest.raises(UnknownTag):
        plan_allow_rules(
            nsg([]),
            [Blocked(NIC_ID, "n", "nic", 443, DEFAULT_RULES[5], ())],
            region="marsnorth",
            mode="ip-ranges",
            resolver=resolver,
        )


# --- ARM shapes ----------------------------------------------------------------------------------

EXAMPLE: dict[str, Any] = {
    "name": "rule1",
    "properties": {
        "protocol": "*",
        "sourceAddressPrefix": "10.0.0.0/8",
        "destinationAddressPrefix": "11.0.0.0/8",
        "sourcePortRange": "*",
        "destinationPortRange": "8080",
        "access": "Deny",
        "priority": 100,
        "direction": "Outbound",
        "provisioningState": "Succeeded",
    },
}


def test_from_arm_to_arm_round_trip() -> None:
    rule = Rule.from_arm(EXAMPLE)
    assert rule == Rule(
        "rule1", 100, "Outbound", "Deny", "*", ("10.0.0.0/8",), ("*",), ("11.0.0.0/8",), ("8080",)
    )
    body = rule.to_arm()
    expected = {k: v for k, v in EXAMPLE["properties"].items() if k != "provisioningState"}
    assert body == {"properties": expected}
    assert Rule.from_arm({"name": "rule1", **body}) == rule
    create = json.loads((FIXTURES / "NetworkSecurityGroupRuleCreate.json").read_text())
    assert Rule.from_arm({"name": "rule1", **create["parameters"]["securityRuleParameters"]}) == rule


def test_plural_fields(resolver: TagResolver) -> None:
    d = {
        "name": "deny-many",
        "properties": {
            "protocol": "Tcp",
            "access": "Deny",
            "priority": 150,
            "direction": "Outbound",
            "sourceAddressPrefix": "*",
            "sourceAddressPrefixes": [],
            "sourcePortRange": "*",
            "destinationAddressPrefixes": ["1.1.1.1/32", "Storage.eastus"],
            "destinationPortRanges": ["80", "443"],
        },
    }
    rule = Rule.from_arm(d)
    assert rule.dest_prefixes == ("1.1.1.1/32", "Storage.eastus") and rule.dest_ports == ("80", "443")
    assert rule.source_prefixes == ("*",)
    props = rule.to_arm()["properties"]
    assert props["destinationAddressPrefixes"] == ["1.1.1.1/32", "Storage.eastus"]
    assert props["destinationPortRanges"] == ["80", "443"] and props["sourceAddressPrefix"] == "*"
    assert Rule.from_arm({"name": rule.name, **rule.to_arm()}) == rule
    assert egress_verdicts([nsg([rule])], region="eastus", resolver=resolver, src_ip=VM_IP)[0].rule == rule


def test_application_security_groups_round_trip(resolver: TagResolver) -> None:
    asg = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"
    d = {
        "name": "deny-asg",
        "properties": {
            "protocol": "Tcp",
            "access": "Deny",
            "priority": 120,
            "direction": "Outbound",
            "sourceApplicationSecurityGroups": [{"id": asg}],
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": "443",
        },
    }
    rule = Rule.from_arm(d)
    assert rule.source_prefixes == (f"asg:{asg}",)
    assert rule.to_arm()["properties"]["sourceApplicationSecurityGroups"] == [{"id": asg}]
    assert verdict([rule], resolver).allowed  # membership unknown -> matches nothing
    members = TagResolver({**TAGS, f"asg:{asg}": [f"{VM_IP}/32"]}, VNET)
    assert not verdict([rule], members).allowed


def test_effective_rule_form(resolver: TagResolver) -> None:
    entry = {
        "networkSecurityGroup": {"id": SUBNET_ID},
        "effectiveSecurityRules": [
            {
                "name": "securityRules/deny-storage",
                "protocol": "All",
                "sourcePortRange": "0-65535",
                "destinationPortRange": "0-65535",
                "sourceAddressPrefix": "0.0.0.0/0",
                "destinationAddressPrefix": "Storage.EastUS",
                "expandedDestinationAddressPrefix": STORAGE_EASTUS,
                "access": "Deny",
                "priority": 210,
                "direction": "Outbound",
            },
            {
                "name": "defaultSecurityRules/AllowInternetOutBound",
                "protocol": "All",
                "sourcePortRange": "0-65535",
                "destinationPortRange": "0-65535",
                "sourceAddressPrefix": "0.0.0.0/0",
                "destinationAddressPrefix": "Internet",
                "expandedDestinationAddressPrefix": ["0.0.0.0/1", "128.0.0.0/1"],
                "access": "Allow",
                "priority": 65001,
                "direction": "Outbound",
            },
        ],
    }
    view = NsgView.from_arm(entry, "subnet")
    assert view.name == "subnet-nsg" and view.scope == "subnet"
    deny, default = view.rules
    assert (deny.name, deny.protocol, deny.default, deny.dest_prefixes) == (
        "deny-storage",
        "*",
        False,
        tuple(STORAGE_EASTUS),
    )
    assert (default.name, default.default) == ("AllowInternetOutBound", True)
    blocked = egress_verdicts([view], region="eastus", ports=(443, 8443), resolver=resolver, src_ip=VM_IP)
    assert [(b.port, b.rule.name, b.scope) for b in blocked] == [
        (443, "deny-storage", "subnet"),
        (8443, "deny-storage", "subnet"),
    ]
    plan = plan_allow_rules(view, blocked, region="eastus", resolver=resolver)
    assert [(r.name, r.priority) for r in plan] == [
        ("allow-azure-backup-443", 209),
        ("allow-azure-backup-8443", 208),
    ]


def test_effective_fixture_and_nsg_get_fixture() -> None:
    eff = json.loads((FIXTURES / "NetworkInterfaceEffectiveNSGList.json").read_text())
    view = NsgView.from_arm(eff["responses"]["200"]["body"]["value"][0])
    assert [r.name for r in view.rules] == ["rule1", "default-allow-rdp", "AllowInternetOutBound"]
    assert (
        view.rules[2].protocol == "*"
        and view.rules[2].default
        and view.rules[2].dest_prefixes[0] == "32.0.0.0/3"
    )
    get = json.loads((FIXTURES / "NetworkSecurityGroupGet.json").read_text())["responses"]["200"]["body"]
    view = NsgView.from_arm(get)
    assert view.name == "testnsg" and len(view.rules) == 7
    assert [r.name for r in view.rules if r.default] == [r.name for r in DEFAULT_RULES]
    for parsed, builtin in zip([r for r in view.rules if r.default], DEFAULT_RULES, strict=True):
        assert same_rule(parsed, builtin)


def test_same_rule_edge_cases() -> None:
    base = out_rule("Allow-Azure-Backup-443", 199, "Allow", "Storage.EastUS")
    assert same_rule(
        base, out_rule("allow-azure-backup-443", 199, "allow", "Storage.EastUS", ports="443-443")
    )
    # A tag spelled in another case than the Service Tags API's is a different rule: it gets rewritten.
    assert not same_rule(base, out_rule("allow-azure-backup-443", 199, "Allow", "storage.eastus"))
    assert same_rule(
        base,
        Rule(
            "allow-azure-backup-443",
            199,
            "outbound",
            "ALLOW",
            "tcp",
            ("0.0.0.0/0",),
            ("0-65535",),
            ("Storage.EastUS",),
            ("443",),
        ),
    )
    assert not same_rule(base, out_rule("allow-azure-backup-443", 198, "Allow", "Storage.EastUS"))
    assert not same_rule(base, out_rule("allow-azure-backup-443", 199, "Deny", "Storage.EastUS"))
    assert not same_rule(
        base, out_rule("allow-azure-backup-443", 199, "Allow", "Storage.EastUS", ports="8443")
    )
    assert not same_rule(
        base, out_rule("allow-azure-backup-443", 199, "Allow", "Storage.EastUS", protocol="*")
    )
    assert not same_rule(base, out_rule("allow-azure-backup-443", 199, "Allow", "Storage"))
    assert not same_rule(base, out_rule("other-name", 199, "Allow", "Storage.EastUS"))
    nets = out_rule("n", 300, "Allow", ("10.0.0.0/25", "10.0.0.128/25", "1.2.3.4"), ports="443,80")
    assert same_rule(nets, out_rule("n", 300, "Allow", ("1.2.3.4/32", "10.0.0.0/24"), ports="80-80,443"))
    assert not same_rule(nets, out_rule("n", 300, "Allow", ("10.0.0.0/24",), ports="80,443"))
    assert same_rule(Rule("x", 100, "Outbound", "Deny", "All"), Rule("x", 100, "Outbound", "Deny", "*"))


def test_wireserver_blocks(resolver: TagResolver) -> None:
    assert wireserver_blocks([], resolver) == []
    internet = out_rule("deny-internet", 100, "Deny", "Internet", ports="*")
    assert wireserver_blocks([internet], resolver) == []  # 168.63.129.16 belongs to VirtualNetwork
    ws = out_rule("deny-ws", 120, "Deny", "168.63.129.16", ports="32526")
    everything = out_rule("deny-all", 130, "Deny", "*", ports="*")
    assert wireserver_blocks([everything, ws, internet], resolver) == [ws, everything]
    allow = out_rule("allow-ws", 110, "Allow", "168.63.129.16/32", ports="*")
    assert wireserver_blocks([allow, ws, everything], resolver) == []
    inbound = Rule("deny-in", 100, "Inbound", "Deny", "*")
    assert wireserver_blocks([inbound], resolver) == []


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        Rule("x", 100, "Sideways", "Allow", "Tcp")
    with pytest.raises(ValueError):
        Rule("x", 100, "Outbound", "Maybe", "Tcp")
    rule = Rule("x", 100, "outbound", "allow", "all", dest_prefixes="Storage")  # type: ignore[arg-type]
    assert (rule.direction, rule.access, rule.protocol, rule.dest_prefixes) == (
        "Outbound",
        "Allow",
        "*",
        ("Storage",),
    )
