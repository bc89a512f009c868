"""remediations/routes.py, pure: the route that carries Storage traffic, chosen by longest prefix match as Azure does
(virtual-networks-udr-overview, "How Azure selects a route"), and C1.route's verdict from it."""

from __future__ import annotations

import json
from pathlib import Path

from remediations.netaddr import TagResolver
from remediations.routes import EffectiveRoute, RouteFacts, storage_path

EXAMPLES = Path(__file__).parent / "fixtures" / "azure-rest-examples" / "network"
TAG = "Storage.EastUS"
STORAGE = ["20.60.0.0/16", "52.239.152.0/22"]
TAGS = TagResolver({TAG: STORAGE, "Storage": [*STORAGE, "13.88.144.0/23"]}, regions={TAG: "eastus"})


def route(prefix: str, hop: str, *, source: str = "User", name: str | None = "r", state: str = "Active",
          ip: str | None = None) -> EffectiveRoute:
    return EffectiveRoute(name, source, state, (prefix,), hop, (ip,) if ip else ())


DEFAULTS = [route("10.0.0.0/16", "VnetLocal", source="Default", name=None),
            route("0.0.0.0/0", "Internet", source="Default", name=None),
            route("10.0.0.0/8", "None", source="Default", name=None)]


def test_the_official_example_sends_storage_to_internet() -> None:
    body = json.loads((EXAMPLES / "NetworkInterfaceEffectiveRouteTableList.json").read_text())["responses"]["200"]
    routes = [EffectiveRoute.from_arm(v) for v in body["body"]["value"]]
    assert [r.next_hop_type for r in routes][:3] == ["VnetLocal", "Internet", "None"]
    path = storage_path(routes, TAG, STORAGE, TAGS)
    assert path.verdict() == "absent" and {c.matched for c in path.carriers} == {"0.0.0.0/0"}
    verdict, evidence, manual = RouteFacts(nic="nic1", path=path).judge()
    assert (verdict, manual) == ("absent", ())
    assert evidence == "Storage.EastUS (20.60.0.0/16) goes by route 0.0.0.0/0 (Default) to next hop Internet"


def test_sdk_spelling_is_read_too() -> None:
    r = EffectiveRoute.from_arm({"address_prefix": ["0.0.0.0/0"], "next_hop_type": "VirtualAppliance",
                                 "next_hop_ip_address": ["10.0.100.4"], "source": "User", "name": "x"})
    assert (r.prefixes, r.hop(), r.active) == (("0.0.0.0/0",), "VirtualAppliance 10.0.100.4", True)


def test_the_longer_prefix_wins_whatever_the_order() -> None:
    udr = route("0.0.0.0/0", "VirtualAppliance", name="to-fw", ip="10.0.100.4")
    specific = route("20.60.0.0/16", "Internet", name="storage-direct")
    for routes in ([*DEFAULTS, udr, specific], [specific, udr, *DEFAULTS]):
        path = storage_path(routes, TAG, STORAGE, TAGS)
        got = {c.storage_prefix: (c.route.name, c.matched) for c in path.carriers}
        assert got == {"20.60.0.0/16": ("storage-direct", "20.60.0.0/16"), "52.239.152.0/22": ("to-fw", "0.0.0.0/0")}
        assert path.verdict() == "unknown" and path.appliances() == ("10.0.100.4",)


def test_a_more_specific_route_inside_a_storage_prefix_carries_part_of_it() -> None:
    path = storage_path([*DEFAULTS, route("20.60.128.0/17", "None", name="sinkhole")], TAG, STORAGE, TAGS)
    assert path.verdict() == "present"
    verdict, evidence, _ = RouteFacts(path=path).judge()
    assert verdict == "present" and "route sinkhole 20.60.128.0/17 (User) to next hop None" in evidence


def test_on_an_equal_prefix_user_beats_bgp_beats_default() -> None:
    bgp = route("0.0.0.0/0", "VirtualNetworkGateway", source="VirtualNetworkGateway", name=None, ip="10.9.0.1")
    user = route("0.0.0.0/0", "None", name="blackhole")
    assert storage_path([*DEFAULTS, bgp], TAG, STORAGE, TAGS).carriers[0].route is bgp
    assert storage_path([user, *DEFAULTS, bgp], TAG, STORAGE, TAGS).carriers[0].route is user


def test_an_explicit_prefix_beats_a_service_tag_of_the_same_length() -> None:
    tagged = route(TAG, "Internet", name="storage-tag")
    explicit = route("20.60.0.0/16", "VirtualAppliance", name="inspect", ip="10.0.100.4")
    path = storage_path([*DEFAULTS, tagged, explicit], TAG, STORAGE, TAGS)
    got = {c.storage_prefix: (c.route.name, c.matched) for c in path.carriers}
    assert got == {"20.60.0.0/16": ("inspect", "20.60.0.0/16"), "52.239.152.0/22": ("storage-tag", TAG)}


def test_none_internet_and_appliance_verdicts() -> None:
    def judged(hop: str, ip: str | None = None, no_network: str | None = None) -> tuple[str, str]:
        path = storage_path([*DEFAULTS, route("0.0.0.0/0", hop, name="dflt", ip=ip)], TAG, STORAGE, TAGS)
        verdict, evidence, _ = RouteFacts(nic="nic1", path=path, no_network=no_network).judge()
        return verdict, evidence

    assert judged("None") == ("present", "Storage.EastUS traffic is dropped: 20.60.0.0/16 goes by route dflt "
                                         "0.0.0.0/0 (User) to next hop None")
    assert judged("Internet")[0] == "absent"
    verdict, evidence = judged("VirtualAppliance", "10.0.100.4")
    assert verdict == "unknown" and "depends on the appliance 10.0.100.4" in evidence
    verdict, evidence = judged("VirtualAppliance", "10.0.100.4", "ExtensionSnapshotFailedNoNetwork")
    assert verdict == "present" and "reported ExtensionSnapshotFailedNoNetwork" in evidence
    assert judged("VirtualNetworkGateway")[0] == "unknown"


def test_the_appliance_verdict_names_the_firewall_rule_to_add() -> None:
    path = storage_path([route("0.0.0.0/0", "VirtualAppliance", ip="10.0.100.4")], TAG, STORAGE, TAGS)
    _, _, manual = RouteFacts(path=path).judge()
    assert len(manual) == 1 and "FQDN tag AzureBackup" in manual[0] and "Storage.EastUS, port 443" in manual[0]


def test_invalid_and_unparsable_routes_are_ignored() -> None:
    overridden = route("0.0.0.0/0", "Internet", source="Default", name=None, state="Invalid")
    garbage = route("not-a-prefix", "None", name="junk")
    unknown_tag = route("Nope.Tag", "None", name="typo")
    path = storage_path([overridden, garbage, unknown_tag, route("0.0.0.0/0", "None", name="udr")], TAG, STORAGE,
                        TAGS)
    assert {c.route.name for c in path.carriers} == {"udr"}


def test_no_matching_route_drops_the_traffic_and_other_families_are_skipped() -> None:
    routes = [route("10.0.0.0/8", "VnetLocal", source="Default", name=None)]
    path = storage_path(routes, TAG, [*STORAGE, "2603:1030::/48"], TAGS)
    assert path.unrouted == ("20.60.0.0/16", "52.239.152.0/22")  # the IPv6 prefix: no IPv6 route at all
    verdict, evidence, _ = RouteFacts(nic="nic1", path=path).judge()
    assert verdict == "present" and evidence.startswith("no effective route of nic1 matches 20.60.0.0/16")


def test_not_read_is_unknown_with_the_reason() -> None:
    assert RouteFacts(skipped="C1 already explains the failure").judge() == (
        "unknown", "effective routes not read: C1 already explains the failure", ())
