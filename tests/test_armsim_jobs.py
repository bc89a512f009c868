"""armsim's job states (issue #14, E7/E9/E10/E11): a job holding the VM, its cancellation through the real SDK, the
vaults listed, and the extension-state verdicts."""

from __future__ import annotations

from typing import Any

from azure.core.rest import HttpRequest

from armsim.scenarios import DEMO_SUBSCRIPTION
from armsim.server import Server
from remediations.azure import Azure
from tests.conftest import http, mutating
from tests.support.demo import sim_vm

RG = "rg-demo"
VAULT = "rsv-demo"


def _running(armsim: Server, vm: str) -> Any:
    sim = armsim.sim
    return next(j for v in sim.backup.vaults.values() for j in v.jobs
                if j.item.vm.name == vm and j.status == "InProgress")


def test_a_running_job_refuses_a_backup_and_a_scheduled_refusal_is_the_items_failure(armsim: Server) -> None:
    vm = sim_vm(armsim, "vm-backup-stuck")
    assert armsim.sim.backup.verdict(vm) == "UserErrorBackupOperationInProgress"
    vault, item = armsim.sim.backup.item_for(vm)  # type: ignore[misc]
    assert vault.name == VAULT and item.last_status == "Failed"  # the scheduled backup's refusal counts


def test_cancel_goes_cancelling_then_cancelled_with_the_examples_shape(armsim: Server, azure: Azure) -> None:
    job = _running(armsim, "vm-backup-stuck")
    got: dict[str, Any] = {}
    azure.backup.job_cancellations.trigger(VAULT, RG, job.id,
                                           cls=lambda resp, _d, _h: got.update(
                                               status=resp.http_response.status_code,
                                               headers={k.lower(): v for k, v in resp.http_response.headers.items()}))
    assert got["status"] == 202
    location = got["headers"]["location"]
    assert f"/backupJobs/{job.id}/operationResults/" in location and "retry-after" in got["headers"]
    op = location.split("/operationResults/")[1].split("?")[0]
    first = azure.backup.job_details.get(VAULT, RG, job.id).as_dict()
    assert first["properties"]["status"] == "Cancelling"
    codes: list[int] = []
    azure.backup.job_operation_results.get(VAULT, RG, job.id, op,
                                           cls=lambda resp, _d, _h: codes.append(resp.http_response.status_code))
    assert codes == [204]  # this second read ended the cancellation
    after = azure.backup.job_details.get(VAULT, RG, job.id).as_dict()["properties"]
    assert after["status"] == "Cancelled" and "endTime" in after and "errorDetails" not in after
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-backup-stuck")) is None
    assert [e["path"].rsplit("/", 1)[-1] for e in mutating(armsim)] == ["cancel"]


def test_cancelling_an_ended_job_is_refused(armsim: Server) -> None:
    vault = next(v for v in armsim.sim.backup.vaults.values() if v.name == VAULT)
    done = next(j for j in vault.jobs if j.status == "Completed")
    status, body = http(armsim, "POST", f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/"
                                        f"Microsoft.RecoveryServices/vaults/{VAULT}/backupJobs/{done.id}/cancel"
                                        "?api-version=2025-08-01")
    assert status == 400 and body["error"]["code"] == "BMSUserErrorJobNotCancellable"


def test_a_job_in_an_old_vault_holds_the_vm_and_the_vaults_are_listed(armsim: Server, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-backup-old-vault")
    vault, item = armsim.sim.backup.item_for(vm)  # type: ignore[misc]
    assert vault.name == VAULT and item.protection_state == "Protected"
    old = next(v for v in armsim.sim.backup.vaults.values() if v.name == "rsv-demo-old")
    [stopped] = old.items.values()
    assert stopped.protection_state == "ProtectionStopped"
    assert armsim.sim.backup.verdict(vm) == "UserErrorBackupOperationInProgress"
    resp = azure.backup.send_request(HttpRequest(
        "GET", f"{armsim.endpoint}/subscriptions/{DEMO_SUBSCRIPTION}/providers/Microsoft.RecoveryServices/vaults"
               "?api-version=2025-08-01"))
    names = {v["name"]: v for v in resp.json()["value"]}
    assert {"rsv-demo", "rsv-demo-old"} <= set(names)
    assert names["rsv-demo-old"]["type"] == "Microsoft.RecoveryServices/vaults"


def test_extension_states_give_their_codes(armsim: Server, azure: Azure) -> None:
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-ext-deleting")) == "ExtensionStuckInDeletionState"
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-ext-failed")) == "ExtensionOperationFailedForManagedDisks"
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-linux-agent-old")) == "UserErrorGuestAgentVersionUnsupported"
    vm = azure.compute.virtual_machines.get(RG, "vm-provisioning-failed", expand="instanceView")
    assert vm.provisioning_state == "Failed"
    assert vm.instance_view.statuses[0].code == "ProvisioningState/failed"
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-provisioning-failed")) == "UserErrorVmProvisioningStateFailed"
    assert azure.compute.virtual_machines.get(RG, "vm-ext-failed").provisioning_state == "Succeeded"
    azure.compute.virtual_machine_extensions.begin_delete(RG, "vm-provisioning-failed", "VMSnapshotLinux").result()
    assert azure.compute.virtual_machines.get(RG, "vm-provisioning-failed").provisioning_state == "Succeeded"
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-provisioning-failed")) is None
