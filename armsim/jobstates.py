"""Backup jobs that hold a VM (issue #14, E7), their cancellation, vaults listed, and the extension-state demo VMs.

- A job of the VM still running (InProgress or Cancelling) in ANY vault holds it: a backup then fails with
  UserErrorBackupOperationInProgress. The guide (azure-docs articles/backup/
  backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md, UserErrorBackupOperationInProgress): "If a backup
  job is in progress, wait for it to complete or cancel the backup job … If you have reconfigured the backup in a
  different vault, then ensure there are no backup jobs running in the old vault."
- JobCancellations_Trigger (POST …/backupJobs/{jobName}/cancel): 202 with Location …/backupJobs/{jobName}/
  operationResults/{operationId} and Retry-After (azure-rest-api-specs recoveryservicesbackup 2025-08-01
  examples/Common/TriggerCancelJob.json); JobOperationResults_Get answers 202 while the job is Cancelling, then 204
  (examples/Common/CancelJobOperationResult.json lists 200, 202, 204). The job goes InProgress -> Cancelling ->
  Cancelled (the JobStatus enum of the bms swagger); the first read after the cancel shows Cancelling, the next
  one (or CANCEL_SECONDS of simulated time) Cancelled: assumed timing.
- Vaults_ListBySubscriptionId (GET /subscriptions/{s}/providers/Microsoft.RecoveryServices/vaults), the shape of
  the vaults spec's ListBySubscriptionIds example (id, name, type, location, sku, properties.provisioningState).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response
from .compute import VM
from .routing import Route

if TYPE_CHECKING:
    from .backup import BackupModel, Item, Job, Vault
    from .network import Subnet
    from .sim import Simulator

__all__ = ["ACTIVE", "CANCEL_SECONDS", "ROUTES", "advance_cancel", "holder", "running_job", "seed_demo"]

ACTIVE = ("InProgress", "Cancelling")
CANCEL_SECONDS = 30.0  # assumed: how long a cancellation takes when nobody reads the job
_RETRY_AFTER = "60"  # the example's Retry-After


def holder(model: BackupModel, vm: VM) -> Job | None:
    """The job of this VM still running (InProgress or Cancelling) in any vault, if any."""
    for vault in model.vaults.values():
        for job in vault.jobs:
            if job.item.vm is vm and job.status in ACTIVE:
                return job
    return None


def running_job(model: BackupModel, vault: Vault, item: Item, started: datetime, seconds: float,
                polls: int = 0) -> Job:
    """Seed a backup job that began at `started` and runs `seconds` in all (`polls` reads hurry it; 0: never)."""
    from .backupjobs import Job

    sim = model.sim
    job = Job(item, None, started, polls, seconds, sim.clock.seconds_at(started), False)
    vault.jobs.append(job)
    return job


def advance_cancel(model: BackupModel, job: Job, *, poll: bool) -> None:
    """Move a Cancelling job on: the read after the one that first shows Cancelling, or time, ends it Cancelled."""
    if job.status != "Cancelling":
        return
    if poll:
        job.cancel_reads += 1
    if job.cancel_reads >= 2 or model.sim.clock() - job.cancel_mono >= CANCEL_SECONDS:
        job.status = "Cancelled"
        job.ended = model.sim.clock.now()


def _job(sim: Simulator, r: Request) -> tuple[Vault, Job]:
    vault = sim.backup.vault(r.params)
    job = next((j for j in vault.jobs if j.id == r.params["jobName"].lower()), None)
    if job is None:
        raise ArmError(404, "BMSUserErrorJobNotFound", f"Job {r.params['jobName']} not found.")
    return vault, job


def _cancel(sim: Simulator, r: Request) -> Response:
    vault, job = _job(sim, r)
    sim.backup.advance(job, poll=False)
    if job.status == "InProgress":
        job.status, job.cancel_mono, job.cancel_reads = "Cancelling", sim.clock(), 0
        job.cancel_op = str(uuid.uuid4())
    elif job.status != "Cancelling":  # assumed: Azure refuses to cancel an ended job
        raise ArmError(400, "BMSUserErrorJobNotCancellable", f"Job {job.id} is {job.status}; it cannot be cancelled.")
    base = r.headers.get("_base_url", "") + r.path.rsplit("/cancel", 1)[0]
    api = r.query.get("api-version", "")
    return Response(202, None, {"Location": f"{base}/operationResults/{job.cancel_op}?api-version={api}",
                                "Retry-After": _RETRY_AFTER})


def _cancel_result(sim: Simulator, r: Request) -> Response:
    _, job = _job(sim, r)
    if job.cancel_op is None or job.cancel_op != r.params["operationId"].lower():
        raise ArmError(404, "BMSUserErrorOperationNotFound", f"Operation {r.params['operationId']} not found.")
    sim.backup.advance(job, poll=True)
    if job.status == "Cancelling":
        return Response(202, None, {"Location": r.headers.get("_url", ""), "Retry-After": _RETRY_AFTER})
    return Response(204)


def _vaults(sim: Simulator, r: Request) -> Response:
    sub = r.params["subscriptionId"].lower()
    return Response(200, {"value": [
        {"id": v.id, "name": v.name, "type": "Microsoft.RecoveryServices/vaults", "location": v.location,
         "sku": {"name": "RS0", "tier": "Standard"}, "properties": {"provisioningState": "Succeeded"}}
        for v in sim.backup.vaults.values() if v.subscription.lower() == sub]})


_V = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.RecoveryServices/vaults/{vaultName}"
_API: dict[str, Any] = {"oldest_api": "2016-06-01", "newest_api": "2026-12-31"}

ROUTES = [
    Route("POST", _V + "/backupJobs/{jobName}/cancel", _cancel, "JobCancellations_Trigger", mutating=True,
          resource_type="vaults/backupJobs", **_API),
    Route("GET", _V + "/backupJobs/{jobName}/operationResults/{operationId}", _cancel_result,
          "JobOperationResults_Get", resource_type="vaults/backupJobs", **_API),
    Route("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.RecoveryServices/vaults", _vaults,
          "Vaults_ListBySubscriptionId", resource_type="vaults", **_API),
]


# --- the demo VMs (armsim/scenarios.py CODE_FLEETS) ---------------------------------------------------------------
def seed_demo(sim: Simulator, vault: Vault, subnet: Subnet, when: datetime) -> None:
    """E7 (a job still running: one to wait for, one stuck for 30 hours, one in an old vault), E9 and E10 VMs."""
    from .backup import REFUSED
    from .backup import Vault as VaultCls
    from .scenarios import _ubuntu, failed_at, protected_vm

    bk = sim.backup
    old = bk.add_vault(VaultCls("rsv-demo-old", vault.group, vault.subscription, vault.location))
    base = subnet.prefix.rsplit(".", 1)[0]
    names = ("vm-backup-running", "vm-backup-stuck", "vm-backup-old-vault", "vm-ext-deleting", "vm-provisioning-failed")
    for i, name in enumerate(names):
        state = {"vm-ext-deleting": "Deleting", "vm-provisioning-failed": "Failed"}.get(name, "Succeeded")
        vm, item = protected_vm(sim, vault, name, _ubuntu(), subnet, f"{base}.{10 + i}", extension=state, when=when)
        vm.failed_by_extension = name == "vm-provisioning-failed"
        at = when + timedelta(minutes=i)
        if name == "vm-backup-running":  # the scheduled backup's retry ran into a job begun 40 minutes earlier
            running_job(bk, vault, item, at - timedelta(minutes=40), 6 * 3600.0, polls=sim.settings.backup_job_polls)
        elif name == "vm-backup-stuck":  # a job stuck for 30 hours: past the day's schedule (cancel-backup-job)
            running_job(bk, vault, item, at - timedelta(hours=30), 7 * 86400.0)
        elif name == "vm-backup-old-vault":  # backup reconfigured in rsv-demo; a job still runs in the old vault
            old_item = bk.protect(old, vm)
            old_item.protection_state = "ProtectionStopped"
            running_job(bk, old, old_item, at - timedelta(hours=2), 7 * 86400.0)
        code = REFUSED if name.startswith("vm-backup-") else (
            "ExtensionStuckInDeletionState" if name == "vm-ext-deleting" else "UserErrorVmProvisioningStateFailed")
        failed_at(sim, vault, item, code, at)
