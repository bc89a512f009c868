"""armsim's causal model, observed only through the real SDK clients (issue #2, "done when" 4-5):
why each demo VM's backup fails, what fixes it, and the platform's rules around the fixes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
from azure.core.exceptions import HttpResponseError

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure
from remediations.errors import arm_error
from remediations.scripts import SCRIPTS, output_text, parse_result

RG, VAULT = "rg-demo", "rsv-demo"
VM_IDS = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"

# The demo table: the error each VM's backup fails with today (None: it succeeds).
DEMO_ERRORS: dict[str, str | None] = {
    "vm-healthy": None,
    "vm-nsg-blocked": "ExtensionSnapshotFailedNoNetwork",
    "vm-subnet-blocked": "ExtensionSnapshotFailedNoNetwork",
    "vm-win-agent-hung": "GuestAgentSnapshotTaskStatusError",
    "vm-linux-agent-old": "UserErrorGuestAgentVersionUnsupported",  # portal self-help: agent below the minimum
    "vm-sql-vss": "ExtensionOperationFailedForManagedDisks",
    "vm-rdp-shutdown": None,  # its guest was shut down from inside: PowerState/stopped, backed up crash-consistently
    "vm-ext-failed": "ExtensionOperationFailedForManagedDisks",
    "vm-win-provider-disabled": "BackUpOperationFailed",
    "vm-udr-blocked": "ExtensionSnapshotFailedNoNetwork",  # its subnet's 0.0.0.0/0 goes to an NVA that blocks Storage
    "vm-proxy": None,  # a healthy proxy VM (10.0.2.4:3128)
    "vm-proxy-locked": "ExtensionSnapshotFailedNoNetwork",  # a proxy VM (10.0.3.4:3128) whose NSG denies Storage
    "vm-proxy-dead": "ExtensionSnapshotFailedNoNetwork",  # its waagent.conf proxy 10.0.2.99:3128 does not answer
    "vm-proxy-egress": "ExtensionSnapshotFailedNoNetwork",  # its WinHTTP proxy is vm-proxy-locked
    "vm-vss-writer": "ExtensionFailedVssWriterInBadState",  # System Writer failed, SqlServerWriter timed out
    "vm-vss-service": "ExtensionFailedVssServiceInBadState",  # VSS hangs in StopPending
    # issue #14's codes, one family to a subnet (armsim/scenarios.py CODE_FLEETS)
    "vm-rp-locked": "UserErrorRpCollectionLimitReached",  # 18 restore points, a delete lock on AzureBackupRG_eastus_1
    "vm-locked": "UserErrorResourceIsInLockedState",  # a ReadOnly lock on the VM
    "vm-rp-full": "UserErrorRpCollectionLimitReached",  # 18 restore points, no lock left
    "vm-backup-running": "UserErrorBackupOperationInProgress",  # a job of its own still runs
    "vm-backup-stuck": "UserErrorBackupOperationInProgress",  # a job has run for over 30 hours
    "vm-backup-old-vault": "UserErrorBackupOperationInProgress",  # a job runs in its old vault
    "vm-ext-deleting": "ExtensionStuckInDeletionState",
    "vm-provisioning-failed": "UserErrorVmProvisioningStateFailed",
    "vm-tls-legacy": "ExtensionSnapshotFailedNoSecureNetwork",  # TLS 1.0/1.1 off, .NET strong crypto off
    "vm-snapshot-timeout": "ExtensionFailedTimeoutVMNetworkUnresponsive",
    "vm-com-msdtc": "ExtensionSnapshotFailedCOM",
    "vm-fsfreeze": "UserErrorFsFreezeFailed",
}
# The failed job each broken VM already has: vm-rdp-shutdown's failed while its guest was going down; the locked
# proxy VM has none (its last backup, a day ago, succeeded: the demo fixes it through vm-proxy-egress's plan).
SEEDED_ERRORS = {**DEMO_ERRORS, "vm-rdp-shutdown": "UserErrorGuestAgentStatusUnavailable", "vm-proxy-locked": None}


def retry_after(exc: HttpResponseError) -> str | None:
    """The Retry-After header of an error answer."""
    headers: Any = getattr(exc.response, "headers", {})
    return headers.get("Retry-After")


def trigger(azure: Azure, vm_name: str) -> str:
    """Look the VM up in its vault (backupStatus), trigger a backup, follow its operation; the job id."""
    st = azure.backup.backup_status.get("eastus", {"resourceId": f"{VM_IDS}/{vm_name}", "resourceType": "VM"})
    assert st.protection_status == "Protected"
    vault = urlparse(st.vault_id).path.rstrip("/").rsplit("/", 1)[-1]
    container = f"IaasVMContainer;{st.container_name}"
    headers: dict[str, str] = {}
    azure.backup.backups.trigger(vault, RG, st.fabric_name, container, st.protected_item_name,
                                 {"properties": {"objectType": "IaasVMBackupRequest"}},
                                 cls=lambda pr, _d, _h: headers.update(pr.http_response.headers))
    op_id = urlparse(headers["Azure-AsyncOperation"]).path.rsplit("/", 1)[-1]
    for _ in range(10):
        op = azure.backup.protected_item_operation_statuses.get(vault, RG, st.fabric_name, container,
                                                                st.protected_item_name, op_id)
        if op.status != "InProgress":
            break
    assert op.status == "Succeeded"
    return op.properties.job_id


def wait_job(azure: Azure, job_id: str) -> dict[str, Any]:
    """job_details.get until the job is no longer InProgress; its properties (REST JSON)."""
    for _ in range(20):
        props = azure.backup.job_details.get(VAULT, RG, job_id).properties.as_dict()
        if props["status"] != "InProgress":
            return props
    raise AssertionError(f"backup job {job_id} never ended")


def backup(azure: Azure, vm_name: str) -> str:
    """Back the VM up; 'Completed', or the errorTitle of the job's first error."""
    job = wait_job(azure, trigger(azure, vm_name))
    assert job["entityFriendlyName"] == vm_name
    if job["status"] == "Completed":
        assert "errorDetails" not in job
        return "Completed"
    assert job["status"] == "Failed"
    return job["errorDetails"][0]["errorTitle"]


def run_script(azure: Azure, vm_name: str, script_id: str) -> dict[str, Any]:
    s = SCRIPTS[script_id]
    res = azure.compute.virtual_machines.begin_run_command(
        RG, vm_name, {"commandId": s.command_id, "script": s.text.splitlines()}).result()
    return parse_result(output_text([v.as_dict() for v in res.value])[0])


def health(azure: Azure, vm_name: str) -> Any:
    return azure.health.availability_statuses.get_by_resource(f"{VM_IDS}/{vm_name}".lstrip("/")).properties


def allow_storage(priority: int) -> dict[str, Any]:
    return {"properties": {"protocol": "Tcp", "access": "Allow", "direction": "Outbound", "priority": priority,
                           "sourceAddressPrefix": "*", "sourcePortRange": "*",
                           "destinationAddressPrefix": "Storage.EastUS", "destinationPortRange": "443"}}


# --- 4. every demo VM fails with its error; vm-healthy succeeds -------------------------------
@pytest.mark.parametrize("vm_name", sorted(DEMO_ERRORS))
def test_demo_backup_outcome(azure: Azure, vm_name: str) -> None:
    assert backup(azure, vm_name) == (DEMO_ERRORS[vm_name] or "Completed")


def test_each_broken_vm_already_has_one_failed_job_with_its_error(azure: Azure) -> None:
    failed = [j.properties.as_dict() for j in azure.backup.backup_jobs.list(VAULT, RG, filter="status eq 'Failed'")]
    by_vm = {j["entityFriendlyName"]: [d["errorTitle"] for d in j["errorDetails"]] for j in failed}
    assert len(failed) == len(by_vm) == len([e for e in SEEDED_ERRORS.values() if e])
    assert by_vm == {vm: [err] for vm, err in SEEDED_ERRORS.items() if err}


# --- 5. the causal model ----------------------------------------------------------------------
def test_a_guest_shut_down_from_inside_shows_stopped_and_backs_up_crash_consistently(azure: Azure) -> None:
    # states-billing.md: "Stopped … can be the result of invoking the PowerOff API or shutdown from within
    # the guest OS" (still allocated, still billed); the old armsim said PowerState/running.
    iv = azure.compute.virtual_machines.instance_view(RG, "vm-rdp-shutdown")
    assert [s.code for s in iv.statuses] == ["ProvisioningState/succeeded", "PowerState/stopped"]
    assert iv.vm_agent is None  # a stopped guest reports no agent
    assert backup(azure, "vm-rdp-shutdown") == "Completed"  # backup-support-matrix-iaas.md: shut down/offline VMs
    azure.compute.virtual_machines.begin_start(RG, "vm-rdp-shutdown").result()  # booted through the platform
    assert health(azure, "vm-rdp-shutdown").availability_state == "Available"
    assert azure.compute.virtual_machines.instance_view(RG, "vm-rdp-shutdown").vm_agent.statuses[0].display_status \
        == "Ready"
    assert backup(azure, "vm-rdp-shutdown") == "Completed"


def test_restart_revives_the_hung_agent(azure: Azure) -> None:
    azure.compute.virtual_machines.begin_restart(RG, "vm-win-agent-hung").result()
    iv = azure.compute.virtual_machines.instance_view(RG, "vm-win-agent-hung")
    assert iv.vm_agent.statuses[0].display_status == "Ready"
    assert backup(azure, "vm-win-agent-hung") == "Completed"


def test_restart_does_not_upgrade_an_old_linux_agent_but_the_upgrade_script_does(armsim: Server,
                                                                                  azure: Azure) -> None:
    azure.compute.virtual_machines.begin_restart(RG, "vm-linux-agent-old").result()
    assert azure.compute.virtual_machines.instance_view(RG, "vm-linux-agent-old").vm_agent.vm_agent_version == "2.2.10"
    assert backup(azure, "vm-linux-agent-old") == "UserErrorGuestAgentVersionUnsupported"
    armsim.sim.settings.extra["agent_restart_seconds"] = 0  # the detached install and restart land at once
    out = run_script(azure, "vm-linux-agent-old", "linux-agent-upgrade")
    assert (out["before"], out["scheduled"], out["package_manager"]) == ("2.2.10", True, "dnf")
    assert azure.compute.virtual_machines.instance_view(RG, "vm-linux-agent-old").vm_agent.vm_agent_version == "2.7.0.6"
    assert backup(azure, "vm-linux-agent-old") == "Completed"


def test_deleting_the_failed_extension_lets_the_backup_reinstall_it(armsim: Server, azure: Azure) -> None:
    exts = azure.compute.virtual_machine_extensions
    exts.begin_delete(RG, "vm-ext-failed", "VMSnapshotLinux").result()
    assert exts.list(RG, "vm-ext-failed").value == []
    assert backup(azure, "vm-ext-failed") == "Completed"
    (ext,) = exts.list(RG, "vm-ext-failed").value
    assert (ext.name, ext.properties.provisioning_state) == ("VMSnapshotLinux", "Succeeded")


@pytest.mark.parametrize(("vm_name", "script_id"), [("vm-sql-vss", "windows-vss-set"),
                                                    ("vm-win-provider-disabled", "windows-provider-enable")])
def test_guest_fixes_make_the_backup_succeed(azure: Azure, vm_name: str, script_id: str) -> None:
    run_script(azure, vm_name, script_id)
    assert backup(azure, vm_name) == "Completed"


def test_run_command_fails_on_a_hung_agent(azure: Azure) -> None:
    with pytest.raises(HttpResponseError) as e:
        run_script(azure, "vm-win-agent-hung", "windows-agent-restart")
    assert arm_error(e.value).code == "VMAgentStatusCommunicationError"


def test_run_command_on_a_stopped_vm_is_409(azure: Azure) -> None:
    azure.compute.virtual_machines.begin_power_off(RG, "vm-healthy").result()
    with pytest.raises(HttpResponseError) as e:
        run_script(azure, "vm-healthy", "linux-agent-status")
    assert e.value.status_code == 409 and arm_error(e.value).code == "OperationNotAllowed"


def test_resource_health_annotates_who_stopped_the_vm(azure: Azure) -> None:
    # resource-health-vm-annotation.md: VirtualMachineStoppedInternally ("…due to a guest activity from within
    # the Virtual Machine") vs VirtualMachineStopInitiatedByControlPlane / VirtualMachineDeallocationInitiated.
    down = health(azure, "vm-rdp-shutdown")
    assert (down.availability_state, down.reason_type, down.context, down.category) == (
        "Unavailable", "Customer Initiated", "Customer Initiated", "Not Applicable")
    assert "due to a guest activity from within the Virtual Machine" in down.summary
    assert "shut down from inside" not in down.summary  # the summary armsim used to invent
    azure.compute.virtual_machines.begin_power_off(RG, "vm-healthy").result()
    platform = health(azure, "vm-healthy")
    assert platform.availability_state == "Unavailable" and "guest activity" not in platform.summary
    assert platform.summary.startswith("The Virtual Machine is stopping as requested by an authorized user or process.")
    azure.compute.virtual_machines.begin_deallocate(RG, "vm-healthy").result()
    assert "stopped and deallocated" in health(azure, "vm-healthy").summary


def test_a_hung_agent_on_a_running_vm_is_not_a_shutdown(azure: Azure) -> None:
    iv = azure.compute.virtual_machines.instance_view(RG, "vm-win-agent-hung")
    assert iv.statuses[1].code == "PowerState/running" and iv.vm_agent.statuses[0].display_status == "Not Ready"
    assert health(azure, "vm-win-agent-hung").availability_state == "Available"


def test_allow_rule_ahead_of_the_deny_fixes_the_nsg_blocked_vm(azure: Azure) -> None:
    azure.network.security_rules.begin_create_or_update(RG, "nsg-blocked", "allow-storage-443",
                                                        allow_storage(150)).result()
    assert backup(azure, "vm-nsg-blocked") == "Completed"


def test_allow_rule_behind_the_deny_does_not(azure: Azure) -> None:
    azure.network.security_rules.begin_create_or_update(RG, "nsg-blocked", "allow-storage-443",
                                                        allow_storage(300)).result()
    assert backup(azure, "vm-nsg-blocked") == "ExtensionSnapshotFailedNoNetwork"


def test_subnet_nsg_is_evaluated_too(azure: Azure) -> None:
    azure.network.security_rules.begin_create_or_update(RG, "nsg-locked-subnet", "allow-storage-443",
                                                        allow_storage(240)).result()
    assert backup(azure, "vm-subnet-blocked") == "Completed"


def test_a_second_backup_while_one_is_in_progress_fails(azure: Azure) -> None:
    first = trigger(azure, "vm-healthy")
    second = trigger(azure, "vm-healthy")
    assert wait_job(azure, second)["errorDetails"][0]["errorTitle"] == "UserErrorBackupOperationInProgress"
    assert wait_job(azure, first)["status"] == "Completed"
    assert backup(azure, "vm-healthy") == "Completed"


def test_extension_delete_on_a_stopped_vm_is_409(armsim: Server, azure: Azure) -> None:
    azure.compute.virtual_machines.begin_power_off(RG, "vm-ext-failed").result()
    with pytest.raises(HttpResponseError) as e:
        azure.compute.virtual_machine_extensions.begin_delete(RG, "vm-ext-failed", "VMSnapshotLinux").result()
    assert e.value.status_code == 409 and arm_error(e.value).code == "OperationNotAllowed"
    assert "VMSnapshotLinux" in [x.name for x in azure.compute.virtual_machine_extensions.list(RG, "vm-ext-failed").value]


def test_same_priority_and_direction_is_a_security_rule_conflict(azure: Azure) -> None:
    with pytest.raises(HttpResponseError) as e:
        azure.network.security_rules.begin_create_or_update(RG, "nsg-blocked", "allow-storage-443",
                                                            allow_storage(200)).result()
    assert e.value.status_code == 400 and arm_error(e.value).code == "SecurityRuleConflict"
    inbound = {**allow_storage(200)["properties"], "direction": "Inbound"}
    azure.network.security_rules.begin_create_or_update(RG, "nsg-blocked", "same-priority-inbound",
                                                        {"properties": inbound}).result()


def test_a_rule_write_while_another_is_in_progress_is_429(armsim: Server, azure: Azure) -> None:
    armsim.sim.settings.nsg_write_polls = 10  # the first write holds the NSG for 10 status polls
    rules = azure.network.security_rules
    first = rules.begin_create_or_update(RG, "nsg-blocked", "allow-storage-443", allow_storage(150))
    with pytest.raises(HttpResponseError) as e:
        rules.begin_create_or_update(RG, "nsg-blocked", "other", allow_storage(160)).result()
    err = arm_error(e.value)
    assert (e.value.status_code, err.outer_code, err.code) == (429, "RetryableError",
                                                               "RetryableErrorDueToAnotherOperation")
    assert retry_after(e.value) == "1"
    armsim.sim.settings.nsg_write_polls = 1
    assert first.result().provisioning_state == "Succeeded"
    assert rules.begin_create_or_update(RG, "nsg-blocked", "other", allow_storage(160)).result().priority == 160


def test_a_script_with_a_known_id_but_the_wrong_body_is_refused(armsim: Server, azure: Azure) -> None:
    body = {"commandId": "RunPowerShellScript",
            "script": ["# runbooks-script: windows-vss-set", "Restart-Computer -Force"]}
    result = azure.compute.virtual_machines.begin_run_command("rg-demo", "vm-sql-vss", body).result()
    out, err = output_text(result.as_dict()["value"])
    assert "RUNBOOKS_RESULT" not in out and "lacks what its effect needs" in err
    vm = armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", "vm-sql-vss")]
    assert vm.guest.registry_value(r"HKLM\SOFTWARE\Microsoft\BcdrAgent", "USEVSSCOPYBACKUP") is None
