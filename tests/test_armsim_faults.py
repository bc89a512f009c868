"""armsim's fault switches, control routes and request log, each observed through the real SDK
clients; and the client layer's read-only mode, proven by armsim's log (issue #2, "done when" 6-7)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from conftest import FAST_RETRY, http, mutating

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure, AzureConfig, RetrySettings
from remediations.errors import ReadOnlyViolation, arm_error
from remediations.scripts import SCRIPTS

RG, VAULT = "rg-demo", "rsv-demo"
VM_ID = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
ALLOW = {"properties": {"protocol": "Tcp", "access": "Allow", "direction": "Outbound", "priority": 150,
                        "sourceAddressPrefix": "*", "sourcePortRange": "*",
                        "destinationAddressPrefix": "Storage.EastUS", "destinationPortRange": "443"}}
LOG_KEYS = {"method", "path", "status", "mutating", "operation"}


def retry_after(exc: HttpResponseError) -> str | None:
    """The Retry-After header of an error answer."""
    headers: Any = getattr(exc.response, "headers", {})
    return headers.get("Retry-After")


def other_azure(armsim: Server, **kw: Any) -> Azure:
    """An Azure on the same armsim with a different configuration."""
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                             ca_bundle=armsim.ca_bundle, **{"retry": FAST_RETRY, **kw}))


def get_vm(azure: Azure) -> Any:
    return azure.compute.virtual_machines.get(RG, "vm-healthy")


def statuses(armsim: Server, operation: str) -> list[int]:
    return [e["status"] for e in armsim.sim.requests() if e["operation"] == operation]


def script_body(script_id: str) -> dict[str, Any]:
    s = SCRIPTS[script_id]
    return {"commandId": s.command_id, "script": s.text.splitlines()}


def trigger(azure: Azure, vm: str = "vm-healthy") -> None:
    azure.backup.backups.trigger(VAULT, RG, "Azure", f"IaasVMContainer;iaasvmcontainerv2;{RG};{vm}",
                                 f"VM;iaasvmcontainerv2;{RG};{vm}", {"properties": {"objectType": "IaasVMBackupRequest"}})


# --- 6. each fault kind, seen by the SDK ------------------------------------------------------
def test_throttle_is_retried_after_retry_after(armsim: Server, azure: Azure, waits: list[float]) -> None:
    armsim.sim.faults.add(kind="throttle", operation="VirtualMachines_Get", retry_after=1)
    with pytest.raises(HttpResponseError) as e:  # the SDK alone does not retry (the client layer owns retries)
        get_vm(azure)
    assert e.value.status_code == 429 and arm_error(e.value).code == "SubscriptionRequestsThrottled"
    assert retry_after(e.value) == "1"
    armsim.sim.faults.add(kind="throttle", operation="VirtualMachines_Get", retry_after=1)
    armsim.sim.clear_requests()
    assert azure.call(get_vm, azure).name == "vm-healthy"
    assert waits == [1.0]  # the wait Retry-After asked for (FAST_RETRY records it instead of sleeping it)
    assert statuses(armsim, "VirtualMachines_Get") == [429, 200]
    real = other_azure(armsim, retry=dataclasses.replace(FAST_RETRY, sleep=None))  # and once for real
    armsim.sim.faults.add(kind="throttle", operation="VirtualMachines_Get", retry_after=1)
    start = time.monotonic()
    assert real.call(get_vm, real).name == "vm-healthy"
    assert time.monotonic() - start >= 1.0


@pytest.mark.parametrize(("kind", "status", "code"), [("server_error", 500, "InternalServerError"),
                                                      ("unavailable", 503, "ServiceUnavailable"),
                                                      ("conflict", 409, "AnotherOperationInProgress")])
def test_transient_statuses_fail_once_then_succeed_under_the_retry_policy(armsim: Server, azure: Azure, kind: str,
                                                                          status: int, code: str) -> None:
    armsim.sim.faults.add(kind=kind, operation="NetworkSecurityGroups_Get")
    with pytest.raises(HttpResponseError) as e:
        azure.network.network_security_groups.get(RG, "nsg-blocked")
    assert e.value.status_code == status and arm_error(e.value).code == code
    armsim.sim.faults.add(kind=kind, operation="NetworkSecurityGroups_Get", retry_after=0)
    armsim.sim.clear_requests()
    assert azure.call(azure.network.network_security_groups.get, RG, "nsg-blocked").name == "nsg-blocked"
    assert statuses(armsim, "NetworkSecurityGroups_Get") == [status, 200]


def test_unavailable_sends_retry_after(armsim: Server, azure: Azure) -> None:
    armsim.sim.faults.add(kind="unavailable", operation="NetworkSecurityGroups_Get")
    with pytest.raises(HttpResponseError) as e:
        azure.network.network_security_groups.get(RG, "nsg-blocked")
    assert retry_after(e.value) == "1"


def test_busy_precondition_and_any_status(armsim: Server, azure: Azure) -> None:
    rules = azure.network.security_rules
    armsim.sim.faults.add(kind="busy", method="PUT", path="*/securityRules/*")
    with pytest.raises(HttpResponseError) as e:
        rules.begin_create_or_update(RG, "nsg-blocked", "allow", ALLOW).result()
    assert (e.value.status_code, arm_error(e.value).code) == (429, "RetryableErrorDueToAnotherOperation")
    armsim.sim.faults.add(kind="precondition", method="PUT", path="*/securityRules/*")
    with pytest.raises(HttpResponseError) as e:
        rules.begin_create_or_update(RG, "nsg-blocked", "allow", ALLOW).result()
    assert (e.value.status_code, arm_error(e.value).code) == (412, "PreconditionFailedEtagMismatch")
    armsim.sim.faults.add(kind="status", operation="SecurityRules_Get", status=418, code="Teapot", message="short")
    with pytest.raises(HttpResponseError) as e:
        rules.get(RG, "nsg-blocked", "deny-internet-443")
    assert (e.value.status_code, arm_error(e.value).code) == (418, "Teapot")
    assert rules.begin_create_or_update(RG, "nsg-blocked", "allow", ALLOW).result().name == "allow"  # spent


def test_reset_is_a_connection_error(armsim: Server, azure: Azure) -> None:
    once = other_azure(armsim, retry=RetrySettings(attempts=1))
    armsim.sim.faults.add(kind="reset", operation="VirtualMachines_Get")
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        once.call(get_vm, once)
    assert statuses(armsim, "VirtualMachines_Get") == [0]  # logged as never answered
    armsim.sim.faults.add(kind="reset", operation="VirtualMachines_Get")
    assert azure.call(get_vm, azure).name == "vm-healthy"  # the default policy retries it


def test_latency_holds_the_request(armsim: Server, azure: Azure) -> None:
    armsim.sim.faults.add(kind="latency", operation="VirtualMachines_Get", seconds=0.3)
    start = time.monotonic()
    assert get_vm(azure).name == "vm-healthy"
    assert time.monotonic() - start >= 0.3


def test_lro_failed_raises_with_the_code_and_changes_nothing(armsim: Server, azure: Azure) -> None:
    armsim.sim.faults.add(kind="lro_failed", operation="VirtualMachines_PowerOff")
    poller = azure.compute.virtual_machines.begin_power_off(RG, "vm-healthy")
    with pytest.raises(HttpResponseError) as e:
        poller.result()
    assert arm_error(e.value).code == "InternalOperationError"
    assert statuses(armsim, "VirtualMachines_PowerOff") == [202]  # accepted, then failed
    assert armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, "vm-healthy")].power == "running"


def test_lro_canceled_rolls_the_write_back(armsim: Server, azure: Azure) -> None:
    rules = azure.network.security_rules
    armsim.sim.faults.add(kind="lro_canceled", operation="SecurityRules_CreateOrUpdate")
    with pytest.raises(HttpResponseError) as e:
        rules.begin_create_or_update(RG, "nsg-blocked", "allow", ALLOW).result()
    err = arm_error(e.value)
    assert (err.code, err.outer_code) == ("CanceledAndSupersededDueToAnotherOperation", "Canceled")
    assert [r.name for r in rules.list(RG, "nsg-blocked")] == ["deny-internet-443"]
    before = rules.get(RG, "nsg-blocked", "deny-internet-443")
    armsim.sim.faults.add(kind="lro_canceled", operation="SecurityRules_CreateOrUpdate")
    changed = {"properties": {**before.as_dict()["properties"], "priority": 210}}
    with pytest.raises(HttpResponseError):
        rules.begin_create_or_update(RG, "nsg-blocked", "deny-internet-443", changed).result()
    assert rules.get(RG, "nsg-blocked", "deny-internet-443").priority == 200


def test_fault_matching_by_method_path_count_and_skip(armsim: Server, azure: Azure) -> None:
    f = armsim.sim.faults.add(kind="server_error", method="GET", path="*/virtualMachines/vm-healthy", count=2, skip=1)
    assert get_vm(azure).name == "vm-healthy"  # skipped
    for _ in range(2):
        with pytest.raises(HttpResponseError):
            get_vm(azure)
    assert get_vm(azure).name == "vm-healthy"  # count spent
    assert azure.compute.virtual_machines.get(RG, "vm-sql-vss").name == "vm-sql-vss"  # path did not match
    assert (f.hits, f.count) == (4, 0)


# --- control routes over HTTPS ----------------------------------------------------------------
def test_faults_over_http(armsim: Server, azure: Azure) -> None:
    status, fault = http(armsim, "POST", "/_armsim/faults", {"kind": "server_error", "operation": "Subnets_Get"})
    assert status == 201 and fault["kind"] == "server_error" and fault["count"] == 1 and "id" in fault
    status, listed = http(armsim, "GET", "/_armsim/faults")
    assert status == 200 and [f["id"] for f in listed] == [fault["id"]]
    with pytest.raises(HttpResponseError) as e:
        azure.network.subnets.get(RG, "vnet-demo", "default")
    assert e.value.status_code == 500
    http(armsim, "POST", "/_armsim/faults", {"kind": "conflict", "operation": "Subnets_Get"})
    assert http(armsim, "DELETE", "/_armsim/faults") == (204, None)
    assert http(armsim, "GET", "/_armsim/faults") == (200, [])
    assert azure.network.subnets.get(RG, "vnet-demo", "default").name == "default"
    status, body = http(armsim, "POST", "/_armsim/faults", {"kind": "gremlins"})
    assert status == 400 and body["error"]["code"] == "InvalidFault"
    status, body = http(armsim, "POST", "/_armsim/faults", {"kind": "throttle", "colour": "red"})
    assert status == 400


def test_request_log_shape_and_clear(armsim: Server, azure: Azure) -> None:
    get_vm(azure)
    status, log = http(armsim, "GET", "/_armsim/requests")
    assert status == 200 and len(log) == 1
    (entry,) = log
    assert set(entry) >= LOG_KEYS
    assert entry == {"method": "GET", "path": f"{VM_ID}/vm-healthy", "status": 200, "mutating": False,
                     "operation": "VirtualMachines_Get"}
    assert http(armsim, "DELETE", "/_armsim/requests") == (204, None)
    assert http(armsim, "GET", "/_armsim/requests") == (200, [])  # control routes are not logged


def test_reset_over_http_restores_the_scenario(armsim: Server, azure: Azure) -> None:
    azure.network.security_rules.begin_delete(RG, "nsg-blocked", "deny-internet-443").result()
    azure.compute.virtual_machines.begin_power_off(RG, "vm-healthy").result()
    armsim.sim.faults.add(kind="server_error", operation="SecurityRules_List", count=None)
    assert http(armsim, "POST", "/_armsim/reset", {}) == (200, {"scenario": "demo"})
    assert [r.name for r in azure.network.security_rules.list(RG, "nsg-blocked")] == ["deny-internet-443"]
    assert azure.compute.virtual_machines.instance_view(RG, "vm-healthy").statuses[1].code == "PowerState/running"
    assert http(armsim, "POST", "/_armsim/reset", {"scenario": "empty"}) == (200, {"scenario": "empty"})
    with pytest.raises(HttpResponseError) as e:  # nothing left: ARM no longer knows the subscription
        list(azure.compute.virtual_machines.list(RG))
    assert e.value.status_code == 404 and arm_error(e.value).code == "SubscriptionNotFound"
    http(armsim, "POST", "/_armsim/reset", {"scenario": "demo"})


def test_settings_and_state_over_http(armsim: Server) -> None:
    status, settings = http(armsim, "POST", "/_armsim/settings", {"backup_job_polls": 0})
    assert status == 200 and settings["backup_job_polls"] == 0 and armsim.sim.settings.backup_job_polls == 0
    assert http(armsim, "POST", "/_armsim/settings", {"nope": 1})[0] == 400
    status, state = http(armsim, "GET", "/_armsim/state")
    assert status == 200 and state["vm-win-agent-hung"]["guest"]["agent_hung"] is True
    assert http(armsim, "GET", "/_armsim/nothing")[0] == 501


# --- the `mutating` flag ----------------------------------------------------------------------
def test_mutating_flag(armsim: Server, azure: Azure) -> None:
    vms, net = azure.compute.virtual_machines, azure.network
    # reads
    vms.get(RG, "vm-sql-vss", expand="instanceView")
    azure.backup.backup_status.get("eastus", {"resourceId": f"{VM_ID}/vm-sql-vss", "resourceType": "VM"})
    net.network_interfaces.begin_list_effective_network_security_groups(RG, "vm-nsg-blocked-nic").result()
    vms.begin_run_command(RG, "vm-sql-vss", script_body("windows-vss-get")).result()
    assert mutating(armsim) == []
    assert {e["operation"] for e in armsim.sim.requests()} >= {
        "BackupStatus_Get", "NetworkInterfaces_ListEffectiveNetworkSecurityGroups", "VirtualMachines_RunCommand"}
    # writes
    net.security_rules.begin_create_or_update(RG, "nsg-blocked", "allow", ALLOW).result()
    net.security_rules.begin_delete(RG, "nsg-blocked", "allow").result()
    azure.compute.virtual_machine_extensions.begin_delete(RG, "vm-ext-failed", "VMSnapshotLinux").result()
    vms.begin_run_command(RG, "vm-sql-vss", script_body("windows-vss-set")).result()
    trigger(azure)
    vms.begin_power_off(RG, "vm-healthy").result()
    vms.begin_start(RG, "vm-healthy").result()
    assert [e["operation"] for e in mutating(armsim)] == [
        "SecurityRules_CreateOrUpdate", "SecurityRules_Delete", "VirtualMachineExtensions_Delete",
        "VirtualMachines_RunCommand", "Backups_Trigger", "VirtualMachines_PowerOff", "VirtualMachines_Start"]
    # an unknown script counts as a write (armsim cannot know it is harmless)
    armsim.sim.clear_requests()
    vms.begin_run_command(RG, "vm-healthy", {"commandId": "RunShellScript", "script": ["reboot"]}).result()
    assert len(mutating(armsim)) == 1


# --- 7. read-only mode of the client layer ----------------------------------------------------
WRITES = {
    "extension delete": lambda az: az.compute.virtual_machine_extensions.begin_delete(
        RG, "vm-ext-failed", "VMSnapshotLinux").result(),
    "rule put": lambda az: az.network.security_rules.begin_create_or_update(RG, "nsg-blocked", "allow", ALLOW).result(),
    "rule delete": lambda az: az.network.security_rules.begin_delete(RG, "nsg-blocked", "deny-internet-443").result(),
    "power off": lambda az: az.compute.virtual_machines.begin_power_off(RG, "vm-rdp-shutdown").result(),
    "restart": lambda az: az.compute.virtual_machines.begin_restart(RG, "vm-win-agent-hung").result(),
    "backup trigger": trigger,
    "mutating script": lambda az: az.compute.virtual_machines.begin_run_command(
        RG, "vm-sql-vss", script_body("windows-vss-set")).result(),
    "unknown script": lambda az: az.compute.virtual_machines.begin_run_command(
        RG, "vm-healthy", {"commandId": "RunShellScript", "script": ["echo hi"]}).result(),
    "automation job": lambda az: az.automation.job.create(RG, "aa-backup-runbooks", "j1",
                                                          {"properties": {"runbook": {"name": "fan_out"}}}),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_read_only_blocks_writes_before_they_reach_armsim(armsim: Server, write: str) -> None:
    ro = other_azure(armsim, read_only=True)
    with pytest.raises(ReadOnlyViolation):
        ro.call(WRITES[write], ro)
    assert armsim.sim.requests() == []


def test_read_only_lets_reads_through(armsim: Server) -> None:
    ro = other_azure(armsim, read_only=True)
    assert ro.compute.virtual_machines.get(RG, "vm-sql-vss", expand="instanceView").name == "vm-sql-vss"
    ro.network.network_security_groups.get(RG, "nsg-blocked")
    st = ro.backup.backup_status.get("eastus", {"resourceId": f"{VM_ID}/vm-sql-vss", "resourceType": "VM"})
    assert st.protection_status == "Protected"
    eff = ro.network.network_interfaces.begin_list_effective_network_security_groups(RG, "vm-nsg-blocked-nic").result()
    assert eff.value
    res = ro.compute.virtual_machines.begin_run_command(RG, "vm-sql-vss", script_body("windows-vss-get")).result()
    assert "windows-vss-get" in res.value[0].message
    log = armsim.sim.requests()
    assert log and {e["status"] for e in log} <= {200, 202}
    assert mutating(armsim) == []
