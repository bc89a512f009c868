"""armsim's served surface: the CLI, every served operation through the real SDK clients over HTTPS,
api-version handling, and unknown routes (issue #2, "done when" 1-2)."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import BROKEN, http
from conftest import DEMO_VMS as ALL_DEMO_VMS

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure
from remediations.errors import arm_error
from remediations.scripts import SCRIPTS, output_text, parse_result

ROOT = Path(__file__).parent.parent
RG, VAULT, ACCOUNT = "rg-demo", "rsv-demo", "aa-backup-runbooks"
DEMO_VMS = sorted(ALL_DEMO_VMS)
NSG_PATH = (f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network"
            "/networkSecurityGroups/nsg-blocked")
ALLOW_STORAGE = {"properties": {"protocol": "Tcp", "access": "Allow", "direction": "Outbound", "priority": 150,
                                "sourceAddressPrefix": "*", "sourcePortRange": "*",
                                "destinationAddressPrefix": "Storage.EastUS", "destinationPortRange": "443"}}


def _vm(armsim: Server, name: str) -> Any:
    return armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, name)]


def _item(name: str) -> tuple[str, str]:
    return f"IaasVMContainer;iaasvmcontainerv2;{RG};{name}", f"VM;iaasvmcontainerv2;{RG};{name}"


def _script(script_id: str) -> dict[str, Any]:
    s = SCRIPTS[script_id]
    return {"commandId": s.command_id, "script": s.text.splitlines()}


# --- 1. the command line -----------------------------------------------------------------------
def test_cli_prints_one_json_line_serves_https_and_exits_0_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "armsim", "--port", "0", "--scenario", "demo"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(15)
        assert line and line[0].endswith("\n"), "armsim printed no line within 15 s"
        info = json.loads(line[0])
        assert set(info) == {"endpoint", "ca_bundle"}
        assert urlparse(info["endpoint"]).scheme == "https" and urlparse(info["endpoint"]).hostname == "127.0.0.1"
        assert urlparse(info["endpoint"]).port and Path(info["ca_bundle"]).is_file()
        ctx = ssl.create_default_context(cafile=info["ca_bundle"])
        url = (f"{info['endpoint']}/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute"
               "/virtualMachines/vm-healthy?api-version=2024-07-01")
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["name"] == "vm-healthy"
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert out == "", "armsim printed more than its one JSON line"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- 2. Compute through azure-mgmt-compute ----------------------------------------------------
def test_vm_get_with_instance_view(azure: Azure) -> None:
    vm = azure.compute.virtual_machines.get(RG, "vm-win-agent-hung", expand="instanceView")
    assert vm.id.endswith("/virtualMachines/vm-win-agent-hung") and vm.location == "eastus"
    assert vm.storage_profile.os_disk.os_type == "Windows"
    assert [r.name for r in vm.resources] == ["VMSnapshot"]
    iv = vm.instance_view
    assert iv.statuses[1].code == "PowerState/running"
    assert iv.vm_agent.vm_agent_version == "Unknown" and iv.vm_agent.statuses[0].display_status == "Not Ready"
    healthy = azure.compute.virtual_machines.get(RG, "vm-healthy", expand="instanceView").instance_view
    assert healthy.vm_agent.statuses[0].display_status == "Ready" and healthy.vm_agent.vm_agent_version == "2.9.1.1"
    assert azure.compute.virtual_machines.get(RG, "vm-healthy").instance_view is None


def test_vm_instance_view_and_list(azure: Azure) -> None:
    iv = azure.compute.virtual_machines.instance_view(RG, "vm-linux-agent-old")
    assert iv.vm_agent.vm_agent_version == "2.2.10" and iv.os_name.startswith("Red Hat")
    assert iv.extensions[0].type == "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
    assert sorted(v.name for v in azure.compute.virtual_machines.list(RG)) == DEMO_VMS


def test_extensions_get_list_delete(armsim: Server, azure: Azure) -> None:
    ext = azure.compute.virtual_machine_extensions.get(RG, "vm-ext-failed", "VMSnapshotLinux")
    assert ext.properties.provisioning_state == "Failed" and ext.properties.type == "VMSnapshotLinux"
    listed = azure.compute.virtual_machine_extensions.list(RG, "vm-win-provider-disabled").value
    assert [(e.name, e.properties.publisher) for e in listed] == [("VMSnapshot", "Microsoft.Azure.RecoveryServices")]
    assert azure.compute.virtual_machine_extensions.begin_delete(RG, "vm-ext-failed", "VMSnapshotLinux").result() is None
    assert _vm(armsim, "vm-ext-failed").extensions == {}
    with pytest.raises(HttpResponseError) as e:
        azure.compute.virtual_machine_extensions.get(RG, "vm-ext-failed", "VMSnapshotLinux")
    assert e.value.status_code == 404 and arm_error(e.value).code == "ResourceNotFound"
    # absent: 204, no error
    assert azure.compute.virtual_machine_extensions.begin_delete(RG, "vm-ext-failed", "VMSnapshotLinux").result() is None


def test_run_command_runs_a_known_script(armsim: Server, azure: Azure) -> None:
    res = azure.compute.virtual_machines.begin_run_command(RG, "vm-linux-agent-old",
                                                           _script("linux-agent-status")).result()
    stdout, _ = output_text([v.as_dict() for v in res.value])
    out = parse_result(stdout)
    assert (out["version"], out["unit"], out["package_manager"]) == ("2.2.10", "waagent", "dnf")
    # a script armsim does not model: Run Command succeeds, exit 127 in stderr
    res = azure.compute.virtual_machines.begin_run_command(
        RG, "vm-healthy", {"commandId": "RunShellScript", "script": ["echo hi"]}).result()
    assert "script not understood" in res.value[0].message


@pytest.mark.parametrize(("action", "power"), [("power_off", "stopped"), ("deallocate", "deallocated")])
def test_power_off_deallocate_start(armsim: Server, azure: Azure, action: str, power: str) -> None:
    ops = azure.compute.virtual_machines
    assert getattr(ops, f"begin_{action}")(RG, "vm-healthy").result() is None
    assert _vm(armsim, "vm-healthy").power == power
    assert ops.instance_view(RG, "vm-healthy").statuses[1].code == f"PowerState/{power}"
    assert ops.begin_start(RG, "vm-healthy").result() is None
    assert _vm(armsim, "vm-healthy").power == "running"


def test_restart(armsim: Server, azure: Azure) -> None:
    assert azure.compute.virtual_machines.begin_restart(RG, "vm-win-agent-hung").result() is None
    assert _vm(armsim, "vm-win-agent-hung").power == "running"
    ops = [e["operation"] for e in armsim.sim.requests()]
    assert ops[0] == "VirtualMachines_Restart" and "Microsoft.Compute/operations/read" in ops


def test_resource_health(azure: Azure) -> None:
    rid = f"subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm-healthy"
    st = azure.health.availability_statuses.get_by_resource(rid)
    assert st.properties.availability_state == "Available" and st.name == "current"


# --- Network through azure-mgmt-network -------------------------------------------------------
def test_nic_subnet_nsg_get(azure: Azure) -> None:
    nic = azure.network.network_interfaces.get(RG, "vm-subnet-blocked-nic")
    assert nic.network_security_group is None and nic.virtual_machine.id.endswith("/vm-subnet-blocked")
    subnet_id = nic.ip_configurations[0].subnet.id
    assert subnet_id.endswith("/virtualNetworks/vnet-demo/subnets/locked")
    sn = azure.network.subnets.get(RG, "vnet-demo", "locked")
    assert sn.id == subnet_id and sn.network_security_group.id.endswith("/nsg-locked-subnet")
    nsg = azure.network.network_security_groups.get(RG, "nsg-locked-subnet")
    assert [(r.name, r.access, r.priority) for r in nsg.security_rules] == [("deny-https-out", "Deny", 250)]
    assert [s.id for s in nsg.subnets] == [subnet_id]


def test_security_rules_get_list(azure: Azure) -> None:
    rule = azure.network.security_rules.get(RG, "nsg-blocked", "deny-internet-443")
    assert (rule.destination_address_prefix, rule.destination_port_range) == ("Internet", "443")
    assert [r.name for r in azure.network.security_rules.list(RG, "nsg-blocked")] == ["deny-internet-443"]


def test_security_rule_create_with_if_match(armsim: Server, azure: Azure) -> None:
    rules = azure.network.security_rules
    created = rules.begin_create_or_update(RG, "nsg-blocked", "allow-storage", ALLOW_STORAGE).result()
    assert created.provisioning_state == "Succeeded" and created.etag.startswith('W/"')
    with pytest.raises(HttpResponseError) as e:
        rules.begin_create_or_update(RG, "nsg-blocked", "allow-storage", ALLOW_STORAGE,
                                     headers={"If-Match": 'W/"not-the-etag"'}).result()
    assert e.value.status_code == 412 and arm_error(e.value).code == "PreconditionFailedEtagMismatch"
    # the etag read back is the one that matches: seeded rules too
    for name in ("allow-storage", "deny-internet-443"):
        current = rules.get(RG, "nsg-blocked", name)
        updated = rules.begin_create_or_update(RG, "nsg-blocked", name, current,
                                               headers={"If-Match": current.etag}).result()
        assert updated.provisioning_state == "Succeeded"
    # If-Match on a rule that does not exist: 412
    with pytest.raises(HttpResponseError) as e:
        rules.begin_create_or_update(RG, "nsg-blocked", "nope", {**ALLOW_STORAGE}, headers={"If-Match": "*"}).result()
    assert e.value.status_code == 412


def test_security_rule_delete(armsim: Server, azure: Azure) -> None:
    assert azure.network.security_rules.begin_delete(RG, "nsg-blocked", "deny-internet-443").result() is None
    assert [r.name for r in azure.network.security_rules.list(RG, "nsg-blocked")] == []
    armsim.sim.clear_requests()
    assert azure.network.security_rules.begin_delete(RG, "nsg-blocked", "deny-internet-443").result() is None
    assert [e["status"] for e in armsim.sim.requests()] == [204]


def test_service_tags(azure: Azure) -> None:
    tags = {v["name"]: v["properties"]["addressPrefixes"] for v in azure.network.service_tags.list("eastus")["values"]}
    assert "Storage.EastUS" in tags and set(tags["Storage.EastUS"]) <= set(tags["Storage"])


def test_effective_network_security_groups(azure: Azure) -> None:
    res = azure.network.network_interfaces.begin_list_effective_network_security_groups(
        RG, "vm-subnet-blocked-nic").result()
    (entry,) = res.value
    assert entry.network_security_group.id.endswith("/nsg-locked-subnet")
    assert entry.association.subnet.id.endswith("/subnets/locked")
    rules = {r.name: r for r in entry.effective_security_rules}
    assert rules["securityRules/deny-https-out"].destination_port_range == "443-443"
    assert rules["defaultSecurityRules/DenyAllOutBound"].priority == 65500


def _raw(server: Server, method: str, url: str) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTPS request (url: a path on armsim, or a full URL it handed out): status, headers, body."""
    full = url if url.startswith("https://") else server.endpoint + url
    ctx = ssl.create_default_context(cafile=server.ca_bundle)
    req = urllib.request.Request(full, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, context=ctx) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def test_effective_nsgs_are_a_long_running_operation(armsim: Server, azure: Azure) -> None:
    """As NRP and its official example: 202 + Location, no body; the value when the Location answers 200."""
    nic = (f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network"
           "/networkInterfaces/vm-nsg-blocked-nic/effectiveNetworkSecurityGroups?api-version=2025-07-01")
    status, headers, body = _raw(armsim, "POST", nic)
    assert (status, body, "azure-asyncoperation" in headers) == (202, b"", False)
    location = headers["location"]
    assert re.search(rf"/subscriptions/{DEMO_SUBSCRIPTION}/providers/Microsoft.Network/locations/eastus"
                     r"/operationResults/[0-9a-f-]+\?api-version=2025-07-01$", location)
    status, _, body = _raw(armsim, "GET", location)  # lro_polls=1: the first poll ends it
    assert status == 200
    assert [v["networkSecurityGroup"]["id"].rsplit("/", 1)[1] for v in json.loads(body)["value"]] == \
        ["nsg-blocked", "nsg-app"]
    # through the SDK, with more polls: each poll of the Location is one logged read
    armsim.sim.settings.lro_polls = 3
    armsim.sim.clear_requests()
    res = azure.network.network_interfaces.begin_list_effective_network_security_groups(
        RG, "vm-nsg-blocked-nic").result()
    assert res.value[0].effective_security_rules[0].name == "securityRules/deny-internet-443"
    assert [(e["method"], e["status"], e["mutating"]) for e in armsim.sim.requests()] == \
        [("POST", 202, False), ("GET", 202, False), ("GET", 202, False), ("GET", 200, False)]
    # lro_polls=0: answered 200 at once
    armsim.sim.settings.lro_polls = 0
    status, _, body = _raw(armsim, "POST", nic)
    assert status == 200 and len(json.loads(body)["value"]) == 2


def test_effective_nsgs_need_a_running_vm(azure: Azure) -> None:
    azure.compute.virtual_machines.begin_deallocate(RG, "vm-nsg-blocked").result()
    with pytest.raises(HttpResponseError) as e:
        azure.network.network_interfaces.begin_list_effective_network_security_groups(RG, "vm-nsg-blocked-nic").result()
    assert arm_error(e.value).code == "VirtualMachineNotRunning"


# --- Backup through azure-mgmt-recoveryservicesbackup -----------------------------------------
def _trigger(azure: Azure, vm: str) -> str:
    """backups.trigger (202); the operation id from its Azure-AsyncOperation header."""
    headers: dict[str, str] = {}
    container, item = _item(vm)
    result = azure.backup.backups.trigger(VAULT, RG, "Azure", container, item,
                                          {"properties": {"objectType": "IaasVMBackupRequest"}},
                                          cls=lambda pr, _d, _h: headers.update(status=str(pr.http_response.status_code),
                                                                                **pr.http_response.headers))
    assert result is None and headers["status"] == "202"
    assert "/operationResults/" in headers["Location"]
    return urlparse(headers["Azure-AsyncOperation"]).path.rsplit("/", 1)[-1]


def test_backup_status_item_and_list(azure: Azure) -> None:
    vm = azure.compute.virtual_machines.get(RG, "vm-sql-vss")
    st = azure.backup.backup_status.get("eastus", {"resourceId": vm.id, "resourceType": "VM"})
    assert st.protection_status == "Protected" and st.vault_id.endswith(f"/vaults/{VAULT}")
    assert (st.container_name, st.protected_item_name) == ("iaasvmcontainerv2;rg-demo;vm-sql-vss",
                                                           "VM;iaasvmcontainerv2;rg-demo;vm-sql-vss")
    item = azure.backup.protected_items.get(VAULT, RG, st.fabric_name, f"IaasVMContainer;{st.container_name}",
                                            st.protected_item_name)
    props = item.properties.as_dict()
    assert props["lastBackupStatus"] == "Failed" and props["healthStatus"] == "ActionRequired"
    assert item.properties.source_resource_id == vm.id
    names = [i.name for i in azure.backup.backup_protected_items.list(VAULT, RG)]
    assert len(names) == len(DEMO_VMS) and "VM;iaasvmcontainerv2;rg-demo;vm-healthy" in names
    other = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/nope"
    assert azure.backup.backup_status.get("eastus", {"resourceId": other, "resourceType": "VM"}).protection_status \
        == "NotProtected"


def test_backup_trigger_operation_status_result_and_job(azure: Azure) -> None:
    container, item = _item("vm-healthy")
    op_id = _trigger(azure, "vm-healthy")
    st = azure.backup.protected_item_operation_statuses.get(VAULT, RG, "Azure", container, item, op_id)
    assert st.status == "Succeeded" and st.properties.object_type == "OperationStatusJobExtendedInfo"
    job_id = st.properties.job_id
    res = azure.backup.protected_item_operation_results.get(VAULT, RG, "Azure", container, item, op_id)
    assert res.name == item
    assert azure.backup.backup_operation_statuses.get(VAULT, RG, op_id).properties.job_id == job_id
    job = azure.backup.job_details.get(VAULT, RG, job_id)
    assert (job.properties.entity_friendly_name, job.properties.operation) == ("vm-healthy", "Backup")
    statuses = [job.properties.status]
    while statuses[-1] == "InProgress" and len(statuses) < 10:
        statuses.append(azure.backup.job_details.get(VAULT, RG, job_id).properties.status)
    assert statuses[0] == "InProgress" and statuses[-1] == "Completed"


def _jobs(azure: Azure, flt: str | None = None) -> list[Any]:
    return list(azure.backup.backup_jobs.list(VAULT, RG, filter=flt))


def test_backup_jobs_list_filters(azure: Azure) -> None:
    everything = _jobs(azure)
    running = _jobs(azure, "status eq 'InProgress'")  # vm-backup-running's and vm-backup-stuck's own jobs
    assert sorted(j.properties.entity_friendly_name for j in running) == ["vm-backup-running", "vm-backup-stuck"]
    # a completed job a day ago for every VM, a failed one for each broken one, and the two that still run
    seeded = len(DEMO_VMS) + len(BROKEN) + len(running)
    assert len(everything) == seeded
    failed = _jobs(azure, "status eq 'Failed'")
    assert len(failed) == len(BROKEN) and {j.properties.status for j in failed} == {"Failed"}
    assert len(_jobs(azure, "status eq 'Completed'")) == len(DEMO_VMS)
    assert len(_jobs(azure, "operation eq 'Backup' and backupManagementType eq 'AzureIaasVM'")) == seeded
    assert _jobs(azure, "operation eq 'Restore'") == []
    # azure-cli's time format: '%Y-%m-%d %I:%M:%S %p' (UTC)
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%d %I:%M:%S %p"
    window = (f"startTime eq '{(now - timedelta(hours=12)).strftime(fmt)}' and "
              f"endTime eq '{now.strftime(fmt)}'")
    recent = _jobs(azure, f"backupManagementType eq 'AzureIaasVM' and operation eq 'Backup' and {window}")
    # the failed jobs, and vm-backup-running's own job, begun 40 minutes before its failure and still running
    assert sorted(j.properties.entity_friendly_name for j in recent if j.properties.status != "Failed") == \
        ["vm-backup-running"]
    assert len(recent) == len(BROKEN) + 1
    assert len(_jobs(azure, f"status eq 'Completed' and {window}")) == 0


@pytest.mark.parametrize("flt", ["itemType eq 'VM'", "status ne 'Failed'", "startTime eq 'yesterday'"])
def test_backup_jobs_unsupported_filter_is_400(azure: Azure, flt: str) -> None:
    with pytest.raises(HttpResponseError) as e:
        _jobs(azure, flt)
    assert e.value.status_code == 400 and arm_error(e.value).code == "BMSUserErrorInvalidFilter"


# --- Automation through azure-mgmt-automation -------------------------------------------------
def test_automation_job_create_get(azure: Azure) -> None:
    job = azure.automation.job.create(RG, ACCOUNT, "child-1", {"properties": {
        "runbook": {"name": "fix_backup_failure"}, "parameters": {"vm": "vm-healthy"}}})
    assert (job.status, job.runbook.name, job.parameters) == ("New", "fix_backup_failure", {"vm": "vm-healthy"})
    seen = [azure.automation.job.get(RG, ACCOUNT, "child-1").status for _ in range(4)]
    assert seen == ["Running", "Running", "Completed", "Completed"]
    assert [j.name for j in azure.automation.job.list_by_automation_account(RG, ACCOUNT)] == ["child-1"]
    with pytest.raises(HttpResponseError) as e:
        azure.automation.job.create(RG, ACCOUNT, "child-2", {"properties": {"runbook": {"name": "no-such"}}})
    assert e.value.status_code == 404


# --- api-version and unknown routes (raw HTTPS) -----------------------------------------------
def test_api_version_missing_malformed_and_old_but_valid(armsim: Server) -> None:
    status, body = http(armsim, "GET", NSG_PATH)
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")
    status, body = http(armsim, "GET", NSG_PATH + "?api-version=2022-1-1")
    assert (status, body["error"]["code"]) == (400, "InvalidApiVersionParameter")
    assert "2022-1-1" in body["error"]["message"]
    status, body = http(armsim, "GET", NSG_PATH + "?api-version=2022-01-01")  # what az CLI sends for NSGs
    assert status == 200 and body["name"] == "nsg-blocked"
    status, body = http(armsim, "GET", NSG_PATH + "?api-version=2014-01-01")
    assert (status, body["error"]["code"]) == (400, "NoRegisteredProviderFound")


def test_unknown_route_is_501_named_and_logged(armsim: Server) -> None:
    path = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/d1"
    status, body = http(armsim, "GET", path + "?api-version=2024-03-02")
    assert status == 501 and body["error"]["code"] == "NotImplemented"
    assert f"GET {path}" in body["error"]["message"]
    assert armsim.sim.requests()[-1] == {"method": "GET", "path": path, "status": 501, "mutating": False,
                                         "operation": None}
    status, _ = http(armsim, "PUT", path + "?api-version=2024-03-02", {"location": "eastus"})
    assert status == 501 and armsim.sim.requests()[-1]["mutating"] is True
