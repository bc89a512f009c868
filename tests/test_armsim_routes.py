"""armsim's route tables, routes, subnet associations and effective routes (issue #15), through the real SDK over HTTPS,
and the causal model's route check: vm-udr-blocked fails until Storage.EastUS is routed to the Internet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from conftest import http

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.routes import storage_route_blocked
from remediations.azure import Azure
from remediations.errors import arm_error

RG = "rg-demo"
NET = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network"
API = "?api-version=2025-07-01"
STORAGE_TO_INTERNET = {"properties": {"addressPrefix": "Storage.EastUS", "nextHopType": "Internet"}}
EXAMPLES = Path(__file__).parent / "fixtures" / "azure-rest-examples" / "network"
STORAGE_EASTUS = ["20.38.98.0/24", "20.47.1.0/24", "20.60.0.0/16", "52.239.152.0/22", "52.240.48.0/20"]


def _vm(armsim: Server, name: str) -> Any:
    return armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, name)]


def _effective(azure: Azure, nic: str) -> list[dict[str, Any]]:
    """The NIC's effective routes read through the SDK's models (attribute names)."""
    value = azure.network.network_interfaces.begin_get_effective_route_table(RG, nic).result().value
    keys = ("name", "source", "state", "address_prefix", "next_hop_type", "next_hop_ip_address")
    return [{k: getattr(r, k) for k in keys} for r in value]


def _put(azure: Azure, name: str, body: dict[str, Any], **kw: Any) -> Any:
    return azure.network.routes.begin_create_or_update(RG, "rt-firewall", name, body, **kw).result()


# --- CRUD, etags ---------------------------------------------------------------------------------
def test_route_table_get_lists_routes_and_subnets(azure: Azure) -> None:
    rt = azure.network.route_tables.get(RG, "rt-firewall")
    assert rt.etag.startswith('W/"') and rt.provisioning_state == "Succeeded" and rt.location == "eastus"
    [route] = rt.routes
    assert (route.name, route.address_prefix, route.next_hop_type, route.next_hop_ip_address) == (
        "default-to-firewall", "0.0.0.0/0", "VirtualAppliance", "10.0.100.4")
    assert [s.id.rsplit("/", 1)[-1] for s in rt.subnets] == ["firewalled"]
    sn = azure.network.subnets.get(RG, "vnet-demo", "firewalled")
    assert sn.route_table.id == rt.id
    assert azure.network.subnets.get(RG, "vnet-demo", "default").route_table is None


def test_route_put_is_an_lro_with_etags_and_if_match(armsim: Server, azure: Azure) -> None:
    before = azure.network.route_tables.get(RG, "rt-firewall").etag
    created = _put(azure, "storage-direct", STORAGE_TO_INTERNET)
    assert (created.address_prefix, created.next_hop_type, created.provisioning_state) == (
        "Storage.EastUS", "Internet", "Succeeded")
    statuses = [(e["method"], e["status"]) for e in armsim.sim.requests() if "storage-direct" in e["path"]]
    assert statuses == [("PUT", 201), ("GET", 200)]  # the SDK polls Azure-AsyncOperation, then reads the route
    assert azure.network.route_tables.get(RG, "rt-firewall").etag != before
    with pytest.raises(HttpResponseError) as e:
        _put(azure, "storage-direct", STORAGE_TO_INTERNET, headers={"If-Match": 'W/"not-the-etag"'})
    assert e.value.status_code == 412 and arm_error(e.value).code == "PreconditionFailedEtagMismatch"
    current = azure.network.routes.get(RG, "rt-firewall", "storage-direct")
    assert _put(azure, "storage-direct", current, headers={"If-Match": current.etag}).provisioning_state == "Succeeded"
    with pytest.raises(HttpResponseError) as e:  # If-Match on a route that does not exist
        _put(azure, "nope", STORAGE_TO_INTERNET, headers={"If-Match": "*"})
    assert e.value.status_code == 412
    with pytest.raises(HttpResponseError) as e:  # If-None-Match * on one that does
        _put(azure, "storage-direct", STORAGE_TO_INTERNET, headers={"If-None-Match": "*"})
    assert e.value.status_code == 412
    assert [r.name for r in azure.network.routes.list(RG, "rt-firewall")] == ["default-to-firewall", "storage-direct"]


def test_route_delete_and_missing(armsim: Server, azure: Azure) -> None:
    assert azure.network.routes.begin_delete(RG, "rt-firewall", "default-to-firewall").result() is None
    assert list(azure.network.routes.list(RG, "rt-firewall")) == []
    with pytest.raises(ResourceNotFoundError):
        azure.network.routes.get(RG, "rt-firewall", "default-to-firewall")
    armsim.sim.clear_requests()
    assert azure.network.routes.begin_delete(RG, "rt-firewall", "default-to-firewall").result() is None
    assert [e["status"] for e in armsim.sim.requests()] == [204]
    with pytest.raises(ResourceNotFoundError):
        azure.network.route_tables.get(RG, "rt-nope")


def test_a_second_writer_waits_and_bad_routes_are_refused(armsim: Server, azure: Azure) -> None:
    status, _ = http(armsim, "PUT", f"{NET}/routeTables/rt-firewall/routes/r1{API}", STORAGE_TO_INTERNET)
    assert status == 201  # its operation is still running: the table is held
    status, body = http(armsim, "PUT", f"{NET}/routeTables/rt-firewall/routes/r2{API}", STORAGE_TO_INTERNET)
    assert status == 429 and body["error"]["details"][0]["code"] == "RetryableErrorDueToAnotherOperation"
    armsim.sim.reset("demo")
    for props, code in (({"addressPrefix": "Storage.Nowhere", "nextHopType": "Internet"}, "InvalidRouteAddressPrefix"),
                        ({"addressPrefix": "0.0.0.0/0", "nextHopType": "Firewall"}, "InvalidRequestFormat"),
                        ({"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance"},
                         "InvalidRouteNextHopIpAddress")):
        status, body = http(armsim, "PUT", f"{NET}/routeTables/rt-firewall/routes/bad{API}", {"properties": props})
        assert (status, body["error"]["code"]) == (400, code)
    assert [r["name"] for r in armsim.sim.route_tables.table_json(
        next(iter(armsim.sim.route_tables.tables.values())))["properties"]["routes"]] == ["default-to-firewall"]


def test_a_failed_route_write_is_rolled_back(armsim: Server, azure: Azure) -> None:
    armsim.sim.faults.add(kind="lro_failed", operation="Routes_CreateOrUpdate", count=1)
    with pytest.raises(HttpResponseError):
        _put(azure, "storage-direct", STORAGE_TO_INTERNET)
    assert [r.name for r in azure.network.routes.list(RG, "rt-firewall")] == ["default-to-firewall"]
    assert storage_route_blocked(armsim.sim, _vm(armsim, "vm-udr-blocked")) is not None


def test_route_table_create_and_delete(armsim: Server, azure: Azure) -> None:
    rt = azure.network.route_tables.begin_create_or_update(RG, "rt-new", {"location": "eastus", "properties": {
        "routes": [{"name": "blackhole", "properties": {"addressPrefix": "203.0.113.0/24", "nextHopType": "None"}}]}}).result()
    assert [(r.name, r.next_hop_type) for r in rt.routes] == [("blackhole", "None")] and rt.subnets == []
    assert azure.network.route_tables.begin_delete(RG, "rt-new").result() is None
    with pytest.raises(ResourceNotFoundError):
        azure.network.route_tables.get(RG, "rt-new")
    with pytest.raises(HttpResponseError) as e:  # still associated with a subnet
        azure.network.route_tables.begin_delete(RG, "rt-firewall").result()
    assert arm_error(e.value).code == "InUseRouteTableCannotBeDeleted"


# --- effective routes --------------------------------------------------------------------------
def test_effective_routes_of_a_subnet_without_a_route_table(azure: Azure) -> None:
    routes = _effective(azure, "vm-healthy-nic")
    assert [(r["source"], r["state"], r["address_prefix"], r["next_hop_type"]) for r in routes] == [
        ("Default", "Active", ["10.0.0.0/16"], "VnetLocal"), ("Default", "Active", ["0.0.0.0/0"], "Internet"),
        ("Default", "Active", ["10.0.0.0/8"], "None"), ("Default", "Active", ["100.64.0.0/10"], "None"),
        ("Default", "Active", ["172.16.0.0/12"], "None"), ("Default", "Active", ["192.168.0.0/16"], "None")]
    assert all(r["next_hop_ip_address"] == [] for r in routes)


def test_a_udr_overrides_the_system_route_and_a_tag_is_expanded(armsim: Server, azure: Azure) -> None:
    routes = _effective(azure, "vm-udr-blocked-nic")
    default = [r for r in routes if r["address_prefix"] == ["0.0.0.0/0"]]
    assert [(r["source"], r["state"], r["next_hop_type"]) for r in default] == [
        ("Default", "Invalid", "Internet"), ("User", "Active", "VirtualAppliance")]
    assert default[1]["next_hop_ip_address"] == ["10.0.100.4"] and default[1]["name"] == "default-to-firewall"
    _put(azure, "storage-direct", STORAGE_TO_INTERNET)
    [tagged] = [r for r in _effective(azure, "vm-udr-blocked-nic") if r["name"] == "storage-direct"]
    assert (tagged["source"], tagged["state"], tagged["next_hop_type"]) == ("User", "Active", "Internet")
    assert tagged["address_prefix"] == STORAGE_EASTUS


def test_effective_routes_lro_shape(armsim: Server) -> None:
    status, body = http(armsim, "POST", f"{NET}/networkInterfaces/vm-udr-blocked-nic/effectiveRouteTable{API}")
    assert (status, body) == (202, None)
    armsim.sim.settings.lro_polls = 0
    status, body = http(armsim, "POST", f"{NET}/networkInterfaces/vm-udr-blocked-nic/effectiveRouteTable{API}")
    assert status == 200 and body["value"][-1]["nextHopType"] == "VirtualAppliance"
    _vm(armsim, "vm-udr-blocked").power = "deallocated"
    status, body = http(armsim, "POST", f"{NET}/networkInterfaces/vm-udr-blocked-nic/effectiveRouteTable{API}")
    assert (status, body["error"]["code"]) == (400, "VirtualMachineNotRunning")


# --- the causal model --------------------------------------------------------------------------
def test_longest_prefix_match_decides(armsim: Server, azure: Azure) -> None:
    vm = _vm(armsim, "vm-udr-blocked")
    assert "VirtualAppliance 10.0.100.4" in (storage_route_blocked(armsim.sim, vm) or "")
    _put(azure, "part", {"properties": {"addressPrefix": "20.60.0.0/17", "nextHopType": "Internet"}})
    assert "20.38.98.0" in (storage_route_blocked(armsim.sim, vm) or "")  # the other prefixes still go to the NVA
    for i, prefix in enumerate(STORAGE_EASTUS):
        _put(azure, f"s{i}", {"properties": {"addressPrefix": prefix, "nextHopType": "Internet"}})
    assert storage_route_blocked(armsim.sim, vm) is None
    _put(azure, "hole", {"properties": {"addressPrefix": "52.239.154.0/24", "nextHopType": "None"}})
    assert "user route hole sends 52.239.154.0" in (storage_route_blocked(armsim.sim, vm) or "")
    armsim.sim.route_tables.appliances["10.0.100.4"]["allows_storage"] = True  # an NVA that lets Storage through
    _put(azure, "hole", {"properties": {"addressPrefix": "52.239.154.0/24", "nextHopType": "VirtualAppliance",
                                        "nextHopIpAddress": "10.0.100.4"}})
    assert storage_route_blocked(armsim.sim, vm) is None


def _trigger(azure: Azure, vm: str) -> str:
    """Back the VM up on demand and wait for the job; its status, or the errorTitle of a failed one."""
    container, item = f"IaasVMContainer;iaasvmcontainerv2;{RG};{vm}", f"VM;iaasvmcontainerv2;{RG};{vm}"
    headers: dict[str, str] = {}
    azure.backup.backups.trigger("rsv-demo", RG, "Azure", container, item,
                                 {"properties": {"objectType": "IaasVMBackupRequest"}},
                                 cls=lambda pr, _d, _h: headers.update(pr.http_response.headers))
    op_id = headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
    for _ in range(10):
        op = azure.backup.protected_item_operation_statuses.get("rsv-demo", RG, "Azure", container, item, op_id)
        if op.status != "InProgress":
            break
    for _ in range(20):
        props = azure.backup.job_details.get("rsv-demo", RG, op.properties.job_id).properties.as_dict()
        if props["status"] != "InProgress":
            return props["status"] if props["status"] == "Completed" else props["errorDetails"][0]["errorTitle"]
    raise AssertionError("the backup job never ended")


def test_vm_udr_blocked_fails_until_storage_is_routed_to_the_internet(armsim: Server, azure: Azure) -> None:
    failed = [j for v in armsim.sim.backup.vaults.values() for j in v.jobs
              if j.item.vm.name == "vm-udr-blocked" and j.status == "Failed"]
    assert [j.error for j in failed] == ["ExtensionSnapshotFailedNoNetwork"]  # the seeded history
    assert _trigger(azure, "vm-udr-blocked") == "ExtensionSnapshotFailedNoNetwork"
    _put(azure, "storage-direct", STORAGE_TO_INTERNET)
    assert _trigger(azure, "vm-udr-blocked") == "Completed"


# --- the official examples' JSON types (test_armsim_examples.py checks their keys) ------------------
def type_mismatches(example: Any, actual: Any, path: str = "") -> list[str]:
    """Key paths where `actual` holds a value of another JSON type than `example` (lists: first items)."""
    if type(example) is not type(actual):
        return [f"{path}: {type(example).__name__} in the example, {type(actual).__name__} in armsim"]
    out: list[str] = []
    if isinstance(example, dict):
        for key, value in example.items():
            if key in actual:
                out += type_mismatches(value, actual[key], f"{path}.{key}" if path else key)
    elif isinstance(example, list) and example and actual:
        out += type_mismatches(example[0], actual[0], f"{path}[]")
    return out


@pytest.mark.parametrize(("name", "method", "path", "body"), [
    ("RouteTableGet.json", "GET", "routeTables/rt-firewall", None),
    ("RouteTableCreate.json", "PUT", "routeTables/testrt", {"location": "eastus"}),
    ("RouteTableRouteGet.json", "GET", "routeTables/rt-firewall/routes/default-to-firewall", None),
    ("RouteTableRouteCreate.json", "PUT", "routeTables/rt-firewall/routes/route1",
     {"properties": {"addressPrefix": "10.0.3.0/24", "nextHopType": "VirtualNetworkGateway"}}),
    ("RouteTableRouteList.json", "GET", "routeTables/rt-firewall/routes", None),
    ("NetworkInterfaceEffectiveRouteTableList.json", "POST", "networkInterfaces/vm-udr-blocked-nic/effectiveRouteTable",
     None),
])
def test_answers_have_the_examples_json_types(armsim: Server, name: str, method: str, path: str, body: Any) -> None:
    example = json.loads((EXAMPLES / name).read_text())
    armsim.sim.settings.lro_polls = 0  # the effective routes at once (their 202 has no body)
    status, got = http(armsim, method, f"{NET}/{path}?api-version={example['parameters']['api-version']}", body)
    assert str(status) in example["responses"], (status, got)
    assert type_mismatches(example["responses"][str(status)]["body"], got) == []
