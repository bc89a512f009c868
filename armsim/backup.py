"""Microsoft.RecoveryServices backup: vaults, protected items, triggers, operations, jobs — and why a backup fails.

The causal model (`BackupModel.verdict`) walks the chain a real VM backup depends on and fails
with the error Azure reports for the FIRST broken link (playbook E1–E5):

1. VM stopped or deallocated, through the platform or from inside the guest (which shows
   PowerState/stopped) -> succeeds (crash-consistent).
2. A guest shut down from inside is case 1: the platform shows it stopped, not running (issue #9).
3. Guest agent not responding -> GuestAgentSnapshotTaskStatusError.
0. A job of the VM still running in any vault (jobstates.holder) -> UserErrorBackupOperationInProgress.
4. Linux agent older than the supported minimum -> UserErrorGuestAgentVersionUnsupported.
5. Outbound TCP 443 to Storage.<region> denied by an NSG (NIC or subnet) -> ExtensionSnapshotFailedNoNetwork.
   DHCP disabled in the guest fails the same way.
6. Backup extension stuck Deleting -> ExtensionStuckInDeletionState; the VM in provisioning state Failed because
   of it -> UserErrorVmProvisioningStateFailed; the extension Failed -> ExtensionOperationFailedForManagedDisks.
7. Windows iaasvmprovider service disabled -> BackUpOperationFailed.
8. Windows + SQL Server without USEVSSCOPYBACKUP=TRUE -> ExtensionOperationFailedForManagedDisks.
   Issue #14, Windows: COM+ System Application / MSDTC before 7 and .NET strong crypto / host snapshots after
   the VSS links (armsim/winfix.py).
Otherwise the backup succeeds, installing VMSnapshot/VMSnapshotLinux first if it is missing.

Job error details carry a numeric errorCode (armsim's own numbering, Azure's is not published),
the symbolic code as errorTitle, the message as errorString, and recommendations.

Over 300 lines on purpose: the causal model, triggers, operations and jobs read and write one backup state under one lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, iso, not_found
from .backupjobs import Job, job_get, jobs_list
from .codes import ERRORS
from .compute import BACKUP_PUBLISHER, VM, Extension
from .fsfreeze import freeze_error
from .guest import VSS_KEY, VSS_VALUE, version_tuple
from .jobstates import ROUTES as JOB_ROUTES
from .jobstates import advance_cancel, holder
from .platform_codes import platform_code
from .proxy import storage_path_blocked
from .restorepoints import on_backup as rp_on_backup
from .restorepoints import verdict as rp_verdict
from .routes import storage_route_blocked
from .routing import Route
from .vss import vss_verdict
from .winfix import com_failure, network_failure
from .wireserver import wireserver_error

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["ERRORS", "ON_DEMAND_HARD_LIMIT", "ROUTES", "BackupModel", "Item", "Job", "Vault"]

MIN_LINUX_AGENT = "2.2.53.1"  # KB 4049215: "later than or equal to version 2.2.53.1"
# Backup support matrix (MicrosoftDocs/azure-docs articles/backup/backup-support-matrix-iaas.md): "hard limit for
# on-demand backups is set to nine attempts in a 24 hour UTC period" (three a day is only the recommendation).
ON_DEMAND_HARD_LIMIT = 9
# The code and message Azure Backup documents for a 24-hour operation limit (backup-sql-server-azure-troubleshoot.md,
# backup-azure-sap-hana-database-troubleshoot.md); that a VM's tenth on-demand trigger gets exactly this is assumed.
ON_DEMAND_LIMIT_ERROR = ("CloudDosAbsoluteLimitReached",
                         "Operation is blocked as you have reached the limit on number of operations permitted in 24 hours.")

# A trigger while a backup of the item runs is accepted; its job fails with this code ("Your recent backup job failed
# because there is an existing backup job in progress", azure-docs articles/backup/
# backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md). That it fails at once is assumed.
REFUSED = "UserErrorBackupOperationInProgress"

@dataclass
class Item:
    """A protected VM in a vault."""

    vm: VM
    policy: str = "DefaultPolicy"
    protection_state: str = "Protected"  # ProtectionStopped | ProtectionPaused: not actively protected
    last_status: str = ""
    last_time: datetime | None = None

    @property
    def container(self) -> str:
        """The container name, e.g. iaasvmcontainerv2;rg-demo;vm-a."""
        return f"iaasvmcontainerv2;{self.vm.group};{self.vm.name}"

    @property
    def name(self) -> str:
        """The protected item name, e.g. VM;iaasvmcontainerv2;rg-demo;vm-a."""
        return f"VM;{self.container}"


@dataclass
class Vault:
    """A Recovery Services vault with its items and job history."""

    name: str
    group: str
    subscription: str
    location: str
    items: dict[str, Item] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.RecoveryServices/vaults/{self.name}")


class BackupModel:
    """Vaults, items and jobs of one simulator, and the causal rules deciding each backup."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.vaults: dict[str, Vault] = {}
        self.min_linux_agent = MIN_LINUX_AGENT

    def add_vault(self, vault: Vault) -> Vault:
        """Register a vault."""
        self.vaults[vault.id.lower()] = vault
        return vault

    def protect(self, vault: Vault, vm: VM) -> Item:
        """Put a VM under protection in a vault."""
        item = Item(vm)
        vault.items[item.name.lower()] = item
        return item

    def vault(self, p: dict[str, str]) -> Vault:
        """The vault named by route params, or 404."""
        rid = (f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}"
               f"/providers/Microsoft.RecoveryServices/vaults/{p['vaultName']}")
        v = self.vaults.get(rid.lower())
        if v is None:
            raise not_found("Microsoft.RecoveryServices/vaults", p["vaultName"], p["resourceGroupName"])
        return v

    def item(self, p: dict[str, str]) -> tuple[Vault, Item]:
        """The vault and protected item named by route params, or 404."""
        vault = self.vault(p)
        it = vault.items.get(p["protectedItemName"].lower())
        if it is None:
            raise ArmError(404, "BMSUserErrorItemNotFound", f"Item not found: {p['protectedItemName']}")
        if not p.get("containerName", "").lower().endswith(it.container.lower()):
            raise ArmError(404, "BMSUserErrorContainerNotFound", f"Container not found: {p.get('containerName')}")
        return vault, it

    def item_for(self, vm: VM) -> tuple[Vault, Item] | None:
        """Where a VM is protected, if anywhere."""
        for vault in self.vaults.values():
            for it in vault.items.values():
                if it.vm is vm and it.protection_state == "Protected":
                    return vault, it
        for vault in self.vaults.values():  # protected nowhere actively: where its protection stopped
            for it in vault.items.values():
                if it.vm is vm:
                    return vault, it
        return None

    # --- the causal model --------------------------------------------------------------------
    def direct_blocked(self, vm: VM) -> str | None:
        """Why the VM's own path to Storage fails (its NSGs, then its routes), or None."""
        return self.sim.network.storage_blocked(vm, 443) or storage_route_blocked(self.sim, vm)

    def verdict(self, vm: VM) -> str | None:
        """The error a backup of this VM fails with right now, or None when it would succeed."""
        g = vm.guest
        # Links that fail a backup whatever the VM's power state (issue #14: locks, restore points, platform codes)
        # come here, before the power check.
        if holder(self, vm) is not None:  # another backup of the VM still runs, in this vault or an old one
            return REFUSED
        if (lock_code := rp_verdict(self.sim, vm)) is not None:  # a ReadOnly lock; restore points at the cap
            return lock_code  # (armsim/restorepoints.py)
        if (code := platform_code(self, vm)) is not None:  # codes only a person can fix (armsim/platform_codes.py)
            return code
        if vm.power != "running":  # shut down/offline, from inside or by the platform: crash-consistent
            return None  # (backup-support-matrix-iaas.md: "Back up VMs that are shut down/offline")
        if (wire := wireserver_error(vm)) is not None:  # a guest firewall cuts the agent off (armsim/wireserver.py)
            return wire
        if g.agent_hung:
            return "GuestAgentSnapshotTaskStatusError"
        if g.os_type == "Linux" and version_tuple(g.agent_version) < version_tuple(self.min_linux_agent):
            return "UserErrorGuestAgentVersionUnsupported"  # portal self-help: agent below the supported minimum
        if not g.dhcp_enabled or storage_path_blocked(self.sim, vm, self.direct_blocked):  # through a proxy if any
            return "ExtensionSnapshotFailedNoNetwork"
        ext = vm.backup_extension()
        if ext is not None and ext.state == "Deleting":  # azure-docs backup-azure-vms-troubleshoot.md
            return "ExtensionStuckInDeletionState"
        if ext is not None and ext.state == "Failed" and vm.provisioning_state == "Failed":
            return "UserErrorVmProvisioningStateFailed"  # "an extension failure puts the VM in Failed state"
        if ext is not None and ext.state == "Failed":
            return "ExtensionOperationFailedForManagedDisks"
        if (frozen := freeze_error(vm)) is not None:  # Linux: a mount that cannot be frozen (armsim/fsfreeze.py)
            return frozen
        if g.os_type == "Windows":
            if com_code := com_failure(vm):  # COM+ System Application, then MSDTC (armsim/winfix.py)
                return com_code
            provider = g.service("iaasvmprovider")
            if provider is not None and provider.start_type == "Disabled":
                return "BackUpOperationFailed"
            vss = g.registry_value(VSS_KEY, VSS_VALUE)
            if g.sql_server and (vss is None or vss[1].strip().lower() != "true"):
                return "ExtensionOperationFailedForManagedDisks"
            if vss_code := vss_verdict(g):  # the VSS service, then its writers (armsim/vss.py)
                return vss_code
            if net_code := network_failure(g):  # .NET strong crypto, then host snapshots (armsim/winfix.py)
                return net_code
        return None

    def start_job(self, vault: Vault, item: Item, *, error: str | None = "auto", user: bool = True,
                  when: datetime | None = None, finished: bool = False) -> Job:
        """Create a backup job; `error="auto"` asks the causal model, `finished` seeds history."""
        vm = item.vm
        for j in vault.jobs:
            if j.item is item:
                self.advance(j, poll=False)
        if error == "auto":
            error = self.verdict(vm)  # a job of the VM still running in any vault refuses it (REFUSED)
            rp_on_backup(self.sim, vm, error, when or self.sim.clock.now())  # restore points added or cleaned up
            if error is None and vm.backup_extension() is None and vm.power == "running":
                linux = vm.guest.os_type == "Linux"
                name = "VMSnapshotLinux" if linux else "VMSnapshot"
                vm.extensions[name.lower()] = Extension(name, BACKUP_PUBLISHER, name, "1.0.9" if linux else "1.0.75")
        s, clock = self.sim.settings, self.sim.clock
        started = when or clock.now()
        job = Job(item, error, started, s.backup_job_polls, s.backup_job_seconds, clock.seconds_at(started), user)
        vault.jobs.append(job)
        if job.error == REFUSED:  # refused at once: the job that holds the item runs on (docs/concurrency.md)
            self._finish(job, started)
        elif finished:
            self._finish(job, job.due_end())
        else:
            self.advance(job, poll=False)
        return job

    def on_demand_today(self, vault: Vault, item: Item) -> list[Job]:
        """The item's on-demand (user-triggered) jobs started since 00:00 UTC on armsim's clock."""
        day = self.sim.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        return [j for j in vault.jobs if j.item is item and j.user_triggered and j.started >= day]

    def advance(self, job: Job, *, poll: bool) -> None:
        """Move a job on: its duration (> 0) elapsed on the clock ends it; a poll counts toward ending it sooner."""
        advance_cancel(self, job, poll=poll)
        if job.status != "InProgress":
            return
        if poll and job.polls_needed > 0:
            job.polls += 1
        clock = self.sim.clock
        if job.seconds > 0 and clock() - job.mono_start >= job.seconds:
            self._finish(job, job.due_end())
        elif (job.polls_needed > 0 and job.polls >= job.polls_needed) or (job.polls_needed <= 0 and job.seconds <= 0):
            self._finish(job, max(clock.now(), job.started))

    def tick(self) -> None:
        """Let time end every running job whose duration has elapsed (before each request)."""
        for vault in self.vaults.values():
            for job in vault.jobs:
                self.advance(job, poll=False)

    def _finish(self, job: Job, ended: datetime) -> None:
        job.status = "Failed" if job.error else "Completed"
        job.ended = ended if job.ended is None else job.ended
        if job.error != REFUSED or not job.user_triggered:  # a scheduled backup refused is the item's failure
            job.item.last_status, job.item.last_time = job.status, job.ended

    def job_json(self, vault: Vault, job: Job) -> dict[str, Any]:
        """A backup job as ARM returns it (AzureIaaSVMJob)."""
        clock = self.sim.clock
        now = clock.now()
        secs = ((job.ended or now) - job.started).total_seconds()
        props: dict[str, Any] = {
            "jobType": "AzureIaaSVMJob", "duration": f"PT{secs:.4f}S", "virtualMachineVersion": "Compute",
            "entityFriendlyName": job.item.vm.name, "backupManagementType": "AzureIaasVM", "operation": "Backup",
            "status": job.status, "startTime": iso(job.started), "activityId": job.id,
            "isUserTriggered": job.user_triggered, "containerName": job.item.container,
            "extendedInfo": {
                "tasksList": job.tasks(clock(), now),
                "propertyBag": {"VM Name": job.item.vm.name, "Backup Size": "0 MB"},
                "progressPercentage": round(100.0 * job.fraction(clock()), 1),
            },
        }
        if job.ended is not None and job.status != "InProgress":
            props["endTime"] = iso(job.ended)
        if job.error and job.error.isdigit():  # an error that carries only its number (assumed; issue #9)
            props["errorDetails"] = [{"errorCode": int(job.error)}]
        elif job.error:
            num, msg, recs = ERRORS[job.error]
            props["errorDetails"] = [{"errorCode": num, "errorTitle": job.error, "errorString": msg,
                                      "recommendations": recs}]
            props["extendedInfo"]["dynamicErrorMessage"] = f"{msg} (error code {job.error})"
        return {"id": f"/Subscriptions/{vault.subscription}/resourceGroups/{vault.group}/providers/"
                      f"Microsoft.RecoveryServices/vaults/{vault.name}/backupJobs/{job.id}",
                "name": job.id, "type": "Microsoft.RecoveryServices/vaults/backupJobs", "properties": props}

    def item_json(self, vault: Vault, item: Item) -> dict[str, Any]:
        """A protected item as ARM returns it (AzureIaaSComputeVMProtectedItem)."""
        failed = item.last_status == "Failed"
        props: dict[str, Any] = {
            "friendlyName": item.vm.name, "virtualMachineId": item.vm.id, "sourceResourceId": item.vm.id,
            "protectionStatus": "Unhealthy" if failed else "Healthy", "protectionState": item.protection_state,
            "healthStatus": "ActionRequired" if failed else "Passed",
            "lastBackupStatus": item.last_status or "Completed", "protectedItemDataId": str(abs(hash(item.name)) % 10**18),
            "protectedItemType": "Microsoft.Compute/virtualMachines", "backupManagementType": "AzureIaasVM",
            "workloadType": "VM", "containerName": item.container, "policyName": item.policy,
            "policyId": f"{vault.id}/backupPolicies/{item.policy}", "policyType": "V2",
        }
        if item.last_time:
            props["lastBackupTime"] = iso(item.last_time)
        recovered = [j.ended for j in vault.jobs if j.item is item and j.status == "Completed" and j.ended]
        if recovered:
            props["lastRecoveryPoint"] = iso(max(recovered))
        return {"id": f"{vault.id}/backupFabrics/Azure/protectionContainers/IaasVMContainer;{item.container}"
                      f"/protectedItems/{item.name}",
                "name": item.name, "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
                                          "protectedItems", "properties": props}


# --- handlers --------------------------------------------------------------------------------
def _backup_status(sim: Simulator, r: Request) -> Response:
    body = r.body if isinstance(r.body, dict) else {}
    rid = body.get("resourceId")
    if not rid or (body.get("resourceType") or "").upper() != "VM":
        raise ArmError(400, "BMSUserErrorInvalidInput", "resourceType 'VM' and resourceId are required.")
    vm = sim.compute.by_id(rid)
    found = sim.backup.item_for(vm) if vm else None
    if found is None:
        return Response(200, {"protectionStatus": "NotProtected", "registrationStatus": "NotRegistered"})
    vault, item = found
    return Response(200, {"protectionStatus": "Protected", "vaultId": vault.id, "fabricName": "Azure",
                          "containerName": item.container, "protectedItemName": item.name,
                          "policyName": item.policy, "registrationStatus": "Registered"})


def _items_list(sim: Simulator, r: Request) -> Response:
    vault = sim.backup.vault(r.params)
    return Response(200, {"value": [sim.backup.item_json(vault, it) for it in vault.items.values()]})


def _item_get(sim: Simulator, r: Request) -> Response:
    vault, item = sim.backup.item(r.params)
    return Response(200, sim.backup.item_json(vault, item))


def _trigger(sim: Simulator, r: Request) -> Response:
    vault, item = sim.backup.item(r.params)
    body = r.body if isinstance(r.body, dict) else {}
    props = body.get("properties") or {}
    if props.get("objectType") != "IaasVMBackupRequest":
        raise ArmError(400, "BMSUserErrorInvalidInput", "properties.objectType must be IaasVMBackupRequest.")
    if len(sim.backup.on_demand_today(vault, item)) >= ON_DEMAND_HARD_LIMIT:
        raise ArmError(400, *ON_DEMAND_LIMIT_ERROR)
    job = sim.backup.start_job(vault, item)
    op = sim.start_operation(r, result=lambda: {"jobId": job.id})
    op.extra["job_id"] = job.id
    base = r.headers.get("_base_url", "") + r.path.rsplit("/backup", 1)[0]
    api = r.query.get("api-version", "")
    headers = {"Location": f"{base}/operationResults/{op.id}?api-version={api}",
               "Azure-AsyncOperation": f"{base}/operationsStatus/{op.id}?api-version={api}"}
    if sim.settings.lro_retry_after is not None:
        headers["Retry-After"] = str(sim.settings.lro_retry_after)
    return Response(202, None, headers)


def _op_status_json(sim: Simulator, op: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": op.id, "name": op.id, "status": op.status, "startTime": iso(sim.clock.now())}
    if op.status != "InProgress":
        body["endTime"] = body["startTime"]
    if op.error:
        body["error"] = op.error
    if "job_id" in op.extra:
        body["properties"] = {"objectType": "OperationStatusJobExtendedInfo", "jobId": op.extra["job_id"]}
    return body


def _operation(sim: Simulator, r: Request) -> Any:
    op = sim.ops.get(r.params["operationId"])
    if op is None:
        raise ArmError(404, "BMSUserErrorOperationNotFound", f"Operation {r.params['operationId']} not found.")
    return op


def _item_op_status(sim: Simulator, r: Request) -> Response:
    sim.backup.item(r.params)
    return Response(200, _op_status_json(sim, _operation(sim, r)))


def _item_op_result(sim: Simulator, r: Request) -> Response:
    vault, item = sim.backup.item(r.params)
    op = _operation(sim, r)
    if op.status == "InProgress":
        return Response(202, None, {"Location": r.headers.get("_url", "")})
    return Response(200, sim.backup.item_json(vault, item))


def _vault_op_status(sim: Simulator, r: Request) -> Response:
    sim.backup.vault(r.params)
    return Response(200, _op_status_json(sim, _operation(sim, r)))


_V = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.RecoveryServices/vaults/{vaultName}"
_ITEM = _V + "/backupFabrics/{fabricName}/protectionContainers/{containerName}/protectedItems/{protectedItemName}"
_API: dict[str, Any] = {"oldest_api": "2016-06-01", "newest_api": "2026-12-31"}

ROUTES = [
    Route("POST", "/subscriptions/{subscriptionId}/providers/Microsoft.RecoveryServices/locations/{azureRegion}/backupStatus",
          _backup_status, "BackupStatus_Get", resource_type="locations/backupStatus", **_API),
    Route("GET", _V + "/backupProtectedItems", _items_list, "BackupProtectedItems_List",
          resource_type="vaults/backupProtectedItems", **_API),
    Route("GET", _ITEM, _item_get, "ProtectedItems_Get", resource_type="vaults/protectedItems", **_API),
    Route("POST", _ITEM + "/backup", _trigger, "Backups_Trigger", mutating=True, resource_type="vaults/backup", **_API),
    Route("GET", _ITEM + "/operationsStatus/{operationId}", _item_op_status, "ProtectedItemOperationStatuses_Get",
          resource_type="vaults/operationsStatus", **_API),
    Route("GET", _ITEM + "/operationResults/{operationId}", _item_op_result, "ProtectedItemOperationResults_Get",
          resource_type="vaults/operationResults", **_API),
    Route("GET", _V + "/backupOperations/{operationId}", _vault_op_status, "BackupOperationStatuses_Get",
          resource_type="vaults/backupOperations", **_API),
    Route("GET", _V + "/backupJobs", jobs_list, "BackupJobs_List", resource_type="vaults/backupJobs", **_API),
    Route("GET", _V + "/backupJobs/{jobName}", job_get, "JobDetails_Get", resource_type="vaults/backupJobs", **_API),
    *JOB_ROUTES,  # job cancellation, its operation result, vaults listed (armsim/jobstates.py)
]
