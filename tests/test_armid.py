"""remediations.armid: the one ARM resource ID parser (and GUID check) every room uses."""

from __future__ import annotations

import pytest

from remediations.armid import GUID, ResourceId, id_part, is_guid, parse_resource_id
from remediations.errors import BadInput
from remediations.target import parse_target

SUB = "00000000-0000-0000-0000-000000000000"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-demo"
SUBNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-demo/subnets/locked"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-1"


def test_a_top_level_resource() -> None:
    rid = parse_resource_id(VM)
    assert (rid.subscription, rid.resource_group, rid.namespace) == (SUB, "rg-demo", "Microsoft.Compute")
    assert rid.types == (("virtualMachines", "vm-1"),)
    assert (rid.name, rid.type) == ("vm-1", "Microsoft.Compute/virtualMachines")
    assert str(rid) == VM


def test_a_child_resource_names_every_level() -> None:
    rid = parse_resource_id(SUBNET)
    assert rid.types == (("virtualNetworks", "vnet-demo"), ("subnets", "locked"))
    assert rid.name == "locked" and rid.part("virtualNetworks") == "vnet-demo"
    assert rid.type == "Microsoft.Network/virtualNetworks/subnets"
    rule = parse_resource_id(f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg/securityRules/r1")
    assert (rule.part("networkSecurityGroups"), rule.name) == ("nsg", "r1")
    assert str(rid) == SUBNET


def test_keys_are_case_insensitive_and_values_keep_their_case() -> None:
    odd = f"/SUBSCRIPTIONS/{SUB}/resourcegroups/RG-Demo/PROVIDERS/microsoft.network/VIRTUALNETWORKS/Vnet/SUBNETS/Sn"
    rid = parse_resource_id(odd, type="Microsoft.Network/virtualNetworks/subnets")
    assert (rid.resource_group, rid.part("virtualnetworks"), rid.part("Subnets"), rid.name) == ("RG-Demo", "Vnet",
                                                                                                 "Sn", "Sn")
    assert rid.part("ResourceGroups") == "RG-Demo" and rid.part("SUBSCRIPTIONS") == SUB
    assert id_part(odd, "resourceGroups") == "RG-Demo"


@pytest.mark.parametrize("text", [VM + "/", "  " + VM + " ", VM.lstrip("/")])
def test_a_trailing_slash_surrounding_space_or_missing_leading_slash_is_the_same_id(text: str) -> None:
    assert parse_resource_id(text) == parse_resource_id(VM)


@pytest.mark.parametrize("text", [
    "",
    "/",
    "vm-1",
    f"/subscriptions/{SUB}",
    RG,  # a resource group is not a provider resource
    f"{RG}/providers/Microsoft.Compute",  # no type and name
    f"{RG}/providers/Microsoft.Compute/virtualMachines",  # a type without a name
    f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-1/extensions",  # a child type without a name
    f"{RG}/providers/Microsoft.Compute/virtualMachines//x",  # an empty segment
    "/subscriptions//resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1",
    f"/subscriptions/{SUB}/resourceGroups/rg-demo/Microsoft.Compute/virtualMachines/vm-1",  # no providers
    "/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-1",  # no subscription
])
def test_malformed_ids_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="not an ARM resource ID"):
        parse_resource_id(text)


def test_the_type_check_names_the_wanted_type_and_ignores_case() -> None:
    assert parse_resource_id(VM, type="microsoft.compute/VIRTUALMACHINES").name == "vm-1"
    with pytest.raises(ValueError, match="not a Microsoft.Network/networkInterfaces ID"):
        parse_resource_id(VM, type="Microsoft.Network/networkInterfaces")
    with pytest.raises(ValueError, match="not a Microsoft.Network/virtualNetworks ID"):
        parse_resource_id(SUBNET, type="Microsoft.Network/virtualNetworks")  # the child is not its parent


def test_a_missing_segment_is_a_key_error_from_part_and_a_value_error_from_id_part() -> None:
    with pytest.raises(KeyError):
        parse_resource_id(VM).part("subnets")
    with pytest.raises(ValueError, match="has no 'subnets' segment"):
        id_part(VM, "subnets")
    with pytest.raises(ValueError, match="not an ARM resource ID"):
        id_part("not/an/id", "subnets")


def test_the_resource_id_value_is_immutable() -> None:
    rid = parse_resource_id(VM)
    with pytest.raises(AttributeError):
        rid.subscription = "x"  # type: ignore[misc]
    assert isinstance(rid, ResourceId) and hash(rid) == hash(parse_resource_id(VM))


@pytest.mark.parametrize(("text", "ok"), [
    (SUB, True), ("AbCdEf01-2345-6789-abcd-ef0123456789", True), (SUB + "\n", False), ("{" + SUB + "}", False),
    (SUB[:-1], False), (SUB.replace("-", ""), False), ("", False), ("g" * 8 + SUB[8:], False),
])
def test_a_guid_is_exactly_one_guid(text: str, ok: bool) -> None:
    assert is_guid(text) is ok


def test_the_guid_pattern_finds_one_inside_text() -> None:
    m = GUID.search(f"job {SUB} failed")
    assert m is not None and m.group(0) == SUB


def test_parse_target_uses_the_one_parser() -> None:
    t = parse_target(f"/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/RG-Demo/PROVIDERS/microsoft.compute/VIRTUALMACHINES/vm-1/")
    assert (t.subscription, t.resource_group, t.name) == (SUB, "RG-Demo", "vm-1")
    for bad in (SUBNET, VM + "/extensions/x", f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/s"):
        with pytest.raises(BadInput, match="not a VM resource ID"):
            parse_target(bad)
    with pytest.raises(BadInput, match="is not a GUID"):
        parse_target(VM.replace(SUB, "not-a-guid"))
    with pytest.raises(BadInput, match="contradicts the resource group"):
        parse_target(VM, resource_group="rg-other")
