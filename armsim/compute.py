"""Microsoft.Compute: VMs, their instance view, extensions, Run Command and power actions.

Also routes the VM's Resource Health availability status (handler in `armsim/health.py`).

Over 300 lines on purpose: VMs, instance views, extensions and power actions are one model under one lock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .arm import ArmError, Request, Response, iso, not_found
from .guest import Guest
from .health import availability
from .routing import Route
from .runcommand import agent_time, run_command, run_command_mutates, settle_agent

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["ROUTES", "VM", "ComputeModel", "Extension"]

BACKUP_PUBLISHER = "Microsoft.Azure.RecoveryServices"


@dataclass
class Extension:
    """A VM extension and its provisioning state."""

    name: str
    publisher: str
    type: str
    version: str
    state: str = "Succeeded"  # Succeeded | Failed | Updating | Deleting
    message: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # public settings, e.g. ADE's KeyVaultURL


@dataclass
class VM:
    """A virtual machine: platform view (power, extensions, NICs) plus its guest."""

    name: str
    group: str
    subscription: str
    location: str
    guest: Guest
    nic_ids: list[str]
    size: str = "Standard_D2s_v3"
    power: str = "running"  # running | stopped | deallocated
    extensions: dict[str, Extension] = field(default_factory=dict)
    vm_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    busy: str | None = None  # a platform operation in progress
    run_command_busy: bool = False
    stopped_by_platform: bool = False
    time_created: str = field(default_factory=lambda: _now())
    data_disks_gb: list[int] = field(default_factory=list)  # LUN = index
    etag: str = '"1"'  # changes only on model writes (PUT/PATCH), which armsim does not serve
    failed_by_extension: bool = False  # its last operation failed on an extension (issue #14, E10)
    flags: set[str] = field(default_factory=set)  # conditions armsim/platform_codes.py models (FLAGS there)

    def __post_init__(self) -> None:
        """A guest shut down from inside shows PowerState/stopped (states-billing.md), not running."""
        if self.guest.shut_down_inside and self.power == "running":
            self.power = "stopped"

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Compute/virtualMachines/{self.name}")

    @property
    def provisioning_state(self) -> str:
        """Failed while an extension failure put the VM in Failed state and a Failed extension remains; else Succeeded.

        Guide (backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout.md, UserErrorVmProvisioningStateFailed):
        "an extension failure puts the VM in Failed state"; removing that extension lets it recover (assumed)."""
        failed = self.failed_by_extension and any(e.state == "Failed" for e in self.extensions.values())
        return "Failed" if failed else "Succeeded"

    def backup_extension(self) -> Extension | None:
        """The VMSnapshot / VMSnapshotLinux extension, whatever it is named."""
        for ext in self.extensions.values():
            if ext.publisher.lower() == BACKUP_PUBLISHER.lower() and ext.type.lower() in ("vmsnapshot", "vmsnapshotlinux"):
                return ext
        return None


def _now() -> str:
    return iso(datetime.now(timezone.utc))


class ComputeModel:
    """Every VM of one simulator, and ARM's rules for changing them."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.vms: dict[tuple[str, str, str], VM] = {}

    def add(self, vm: VM) -> VM:
        """Register a VM."""
        self.vms[(vm.subscription.lower(), vm.group.lower(), vm.name.lower())] = vm
        return vm

    def get(self, p: dict[str, str]) -> VM:
        """The VM named by route params, or 404."""
        vm = self.vms.get((p["subscriptionId"].lower(), p["resourceGroupName"].lower(), p["vmName"].lower()))
        if vm is None:
            raise not_found("Microsoft.Compute/virtualMachines", p["vmName"], p["resourceGroupName"])
        return vm

    def by_id(self, resource_id: str) -> VM | None:
        """The VM with this ARM id, case-insensitively."""
        return next((v for v in self.vms.values() if v.id.lower() == resource_id.lower()), None)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view of every VM's platform and guest state."""
        return {vm.name: {"power": vm.power, "extensions": {e.name: e.state for e in vm.extensions.values()},
                          "guest": vm.guest.describe()} for vm in self.vms.values()}

    # --- views -------------------------------------------------------------------------------
    def extension_json(self, vm: VM, ext: Extension, *, instance_view: bool = False) -> dict[str, Any]:
        """An extension as ARM returns it."""
        props: dict[str, Any] = {
            "publisher": ext.publisher, "type": ext.type, "typeHandlerVersion": ext.version,
            "autoUpgradeMinorVersion": True, "provisioningState": ext.state, "settings": dict(ext.settings),
        }
        if instance_view:
            props["instanceView"] = self._ext_iv(ext)
        return {"id": f"{vm.id}/extensions/{ext.name}", "name": ext.name,
                "type": "Microsoft.Compute/virtualMachines/extensions", "location": vm.location,
                "properties": props}

    def _ext_iv(self, ext: Extension) -> dict[str, Any]:
        ok = ext.state == "Succeeded"
        iv: dict[str, Any] = {
            "name": ext.name, "type": f"{ext.publisher}.{ext.type}", "typeHandlerVersion": ext.version,
            "statuses": [{"code": f"ProvisioningState/{ext.state.lower()}", "level": "Info" if ok else "Error",
                          "displayStatus": "Provisioning succeeded" if ok else f"Provisioning {ext.state.lower()}",
                          "message": ext.message or ("Enable succeeded" if ok else "Extension failed"),
                          "time": _now()}]}
        if ext.publisher.lower() == BACKUP_PUBLISHER.lower():
            # The snapshot handler reports its status report as one substatus (azure-linux-extensions
            # VMBackup/main/Utils/HandlerUtil.py substat_new_entry); the code follows Run Command's
            # ComponentStatus/<name>/<status> shape (assumed).
            iv["substatuses"] = [{"code": "ComponentStatus/VMSnapshotStatus/succeeded", "level": "Info",
                                  "displayStatus": "Provisioning succeeded",
                                  "message": '[{"version": "1.0", "status": {"status": "success"}}]', "time": _now()}]
        return iv

    def _patch_status(self, vm: VM) -> dict[str, Any]:
        """The guest's patch status: patch/assessment mode states and one earlier assessment (assumed data)."""
        ready = [{"code": f"{m}ConfigurationState/Ready", "level": "Info",
                  "displayStatus": f"Status_{m}ConfigurationState_Ready", "time": vm.time_created}
                 for m in ("PatchMode", "AssessmentMode")]
        return {"availablePatchSummary": {
                    "status": "Succeeded", "assessmentActivityId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm.vm_id)),
                    "rebootPending": False, "criticalAndSecurityPatchCount": 0, "otherPatchCount": 0,
                    "startTime": vm.time_created, "lastModifiedTime": vm.time_created, "error": None},
                "configurationStatuses": ready}

    def _disks(self, vm: VM) -> list[tuple[str, int, int | None]]:
        """(name, size GB, LUN or None for the OS disk) of every managed disk."""
        return [(f"{vm.name}_OsDisk", 30, None)] + [(f"{vm.name}_DataDisk_{lun}", gb, lun)
                                                    for lun, gb in enumerate(vm.data_disks_gb)]

    def instance_view(self, vm: VM) -> dict[str, Any]:
        """The VM's instance view: power state, agent status, extension handlers and statuses."""
        g = settle_agent(vm)
        iv: dict[str, Any] = {
            "platformUpdateDomain": 0, "platformFaultDomain": 0, "computerName": vm.name,
            "hyperVGeneration": "V2",
            "disks": [{"name": name, "statuses": [
                {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
                 "time": vm.time_created}]} for name, _, _ in self._disks(vm)],
            "bootDiagnostics": {},  # managed boot diagnostics: no blob URIs (VirtualMachineInstanceView spec)
            "isVMInStandbyPool": False,
            "statuses": [
                {"code": f"ProvisioningState/{vm.provisioning_state.lower()}",
                 "level": "Info" if vm.provisioning_state == "Succeeded" else "Error",
                 "displayStatus": f"Provisioning {vm.provisioning_state.lower()}", "time": _now()},
                {"code": f"PowerState/{vm.power}", "level": "Info",
                 "displayStatus": {"running": "VM running", "stopped": "VM stopped",
                                   "deallocated": "VM deallocated"}[vm.power]},
            ],
        }
        if vm.power == "running" and g.responsive:
            iv["osName"], iv["osVersion"] = g.os_name, g.distro_version or "10.0"
            iv["vmAgent"] = {
                "vmAgentVersion": g.agent_version,
                "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                              "message": "GuestAgent is running and processing the extensions.", "time": agent_time(vm)}],
                "extensionHandlers": [
                    {"type": f"{e.publisher}.{e.type}", "typeHandlerVersion": e.version,
                     "status": {"code": f"ProvisioningState/{e.state.lower()}",
                                "level": "Info" if e.state == "Succeeded" else "Error",
                                "displayStatus": "Ready" if e.state == "Succeeded" else "Not Ready"}}
                    for e in vm.extensions.values()],
            }
            iv["extensions"] = [self._ext_iv(e) for e in vm.extensions.values()]
            iv["patchStatus"] = self._patch_status(vm)
        elif vm.power == "running":
            iv["vmAgent"] = {
                "vmAgentVersion": "Unknown",
                "statuses": [{"code": "ProvisioningState/Unavailable", "level": "Warning",
                              "displayStatus": "Not Ready",
                              "message": "VM Agent is unresponsive.", "time": _now()}],
                "extensionHandlers": [],
            }
        return iv

    def vm_json(self, vm: VM, *, expand: str | None = None) -> dict[str, Any]:
        """A VM as ARM returns it, with `resources` (extensions) and optionally the instance view."""
        g = vm.guest
        linux = g.os_type == "Linux"
        props: dict[str, Any] = {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": {
                "imageReference": {"publisher": "Canonical" if linux else "MicrosoftWindowsServer",
                                   "offer": g.distro if linux else "WindowsServer",
                                   "sku": g.distro_version or "datacenter", "version": "latest"},
                "osDisk": {"osType": g.os_type, "name": f"{vm.name}_OsDisk", "createOption": "FromImage",
                           "caching": "ReadWrite",
                           "managedDisk": {"storageAccountType": "Premium_LRS",
                                           "id": f"/subscriptions/{vm.subscription}/resourceGroups/{vm.group}"
                                                 f"/providers/Microsoft.Compute/disks/{vm.name}_OsDisk"},
                           "diskSizeGB": 30},
                "dataDisks": [{"lun": lun, "name": name, "createOption": "Empty", "caching": "ReadOnly",
                               "managedDisk": {"storageAccountType": "Premium_LRS",
                                               "id": f"/subscriptions/{vm.subscription}/resourceGroups/{vm.group}"
                                                     f"/providers/Microsoft.Compute/disks/{name}"},
                               "diskSizeGB": gb} for name, gb, lun in self._disks(vm) if lun is not None],
            },
            "osProfile": {"computerName": vm.name, "adminUsername": "azureuser", "secrets": [],
                          ("linuxConfiguration" if linux else "windowsConfiguration"): {"provisionVMAgent": True}
                          | ({} if linux else {"enableAutomaticUpdates": True})},
            "networkProfile": {"networkInterfaces": [
                {"id": nic, "properties": {"primary": i == 0}} for i, nic in enumerate(vm.nic_ids)]},
            # Trusted Launch is the default for new Gen2 VMs (azure-compute-docs trusted-launch.md)
            "securityProfile": {"uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
                                "securityType": "TrustedLaunch"},
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
            "extensionsTimeBudget": "PT1H30M",  # the default real VMs report (spec: default 90 minutes)
            "provisioningState": vm.provisioning_state,
            "timeCreated": vm.time_created,
        }
        if expand and expand.lower() == "instanceview":
            props["instanceView"] = self.instance_view(vm)
        return {"id": vm.id, "name": vm.name, "type": "Microsoft.Compute/virtualMachines", "location": vm.location,
                "etag": vm.etag, "properties": props,
                "resources": [self.extension_json(vm, e) for e in vm.extensions.values()]}


# --- handlers --------------------------------------------------------------------------------
def _vm_get(sim: Simulator, r: Request) -> Response:
    vm = sim.compute.get(r.params)
    expand = r.query.get("$expand")
    if expand is not None and expand.lower() not in ("instanceview", "userdata", "resiliencyview"):
        raise ArmError(400, "InvalidParameter", f"The value '{expand}' of parameter '$expand' is invalid.")
    return Response(200, sim.compute.vm_json(vm, expand=expand))


def _vm_instance_view(sim: Simulator, r: Request) -> Response:
    return Response(200, sim.compute.instance_view(sim.compute.get(r.params)))


def _vm_list(sim: Simulator, r: Request) -> Response:
    group = r.params["resourceGroupName"].lower()
    sub = r.params["subscriptionId"].lower()
    vms = [sim.compute.vm_json(v) for (s, g, _), v in sorted(sim.compute.vms.items()) if s == sub and g == group]
    return Response(200, {"value": vms})


def _ext_get(sim: Simulator, r: Request) -> Response:
    vm = sim.compute.get(r.params)
    ext = vm.extensions.get(r.params["vmExtensionName"].lower())
    if ext is None:
        raise not_found("Microsoft.Compute/virtualMachines/extensions", f"{vm.name}/{r.params['vmExtensionName']}",
                        vm.group)
    expand = (r.query.get("$expand") or "").lower() == "instanceview"
    return Response(200, sim.compute.extension_json(vm, ext, instance_view=expand))


def _ext_list(sim: Simulator, r: Request) -> Response:
    vm = sim.compute.get(r.params)
    expand = (r.query.get("$expand") or "").lower() == "instanceview"
    return Response(200, {"value": [sim.compute.extension_json(vm, e, instance_view=expand)
                                    for e in vm.extensions.values()]})


def _require_running(vm: VM, what: str) -> None:
    if vm.power != "running":
        raise ArmError(409, "OperationNotAllowed", "Cannot modify extensions in the VM when the VM is not running."
                       if what == "extension" else "The operation requires the VM to be running (or set to run).")


def _lock_vm(vm: VM, operation: str) -> None:
    if vm.busy is not None:
        raise ArmError(409, "OperationNotAllowed",
                       f"Operation '{operation}' is not allowed on VM '{vm.name}' since another operation "
                       f"('{vm.busy}') is in progress.")
    vm.busy = operation


def _release(vm: VM) -> Any:
    def release() -> None:
        vm.busy = None
    return release


def _ext_delete(sim: Simulator, r: Request) -> Response:
    vm = sim.compute.get(r.params)
    key = r.params["vmExtensionName"].lower()
    ext = vm.extensions.get(key)
    if ext is None:
        return Response(204)
    _require_running(vm, "extension")
    _lock_vm(vm, "deleteExtension")
    previous = ext.state
    ext.state = "Deleting"

    def undo() -> None:
        vm.busy = None
        if key in vm.extensions and vm.extensions[key].state == "Deleting":
            vm.extensions[key].state = previous  # a failed delete leaves the extension as it was

    op = sim.start_operation(r, apply=lambda: vm.extensions.pop(key, None), release=undo)
    return sim.accepted(r, op, "Microsoft.Compute")


def _power(action: str) -> Any:
    def handler(sim: Simulator, r: Request) -> Response:
        vm = sim.compute.get(r.params)
        if action in ("powerOff", "restart") and vm.power == "deallocated":
            raise ArmError(409, "OperationNotAllowed",
                           f"Operation '{action}' is not allowed on VM '{vm.name}' since the VM is either "
                           "deallocated or marked to be deallocated.")
        if action == "restart" and vm.power != "running":
            raise ArmError(409, "OperationNotAllowed", "The operation requires the VM to be running (or set to run).")
        _lock_vm(vm, action)
        op = sim.start_operation(r, apply=lambda: _apply_power(vm, action), release=_release(vm))
        return sim.accepted(r, op, "Microsoft.Compute")
    return handler


def _apply_power(vm: VM, action: str) -> None:
    g = vm.guest
    if action in ("powerOff", "deallocate"):
        vm.power = "stopped" if action == "powerOff" else "deallocated"
        vm.stopped_by_platform = True
        g.shut_down_inside = False
        g.agent_hung = False  # the guest is off; on the next boot the agent starts fresh
    elif action == "start" and vm.power == "running":
        return  # starting a running VM changes nothing (the guest is not rebooted)
    elif action in ("start", "restart"):
        vm.power = "running"
        vm.stopped_by_platform = False
        g.shut_down_inside = False
        g.agent_hung = False  # a reboot revives a hung agent; an outdated one stays outdated


_VM = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines"
_API: dict[str, Any] = {"oldest_api": "2015-06-15", "newest_api": "2026-12-31", "resource_type": "virtualMachines"}

ROUTES = [
    Route("GET", _VM, _vm_list, "VirtualMachines_List", **_API),
    Route("GET", _VM + "/{vmName}", _vm_get, "VirtualMachines_Get", **_API),
    Route("GET", _VM + "/{vmName}/instanceView", _vm_instance_view, "VirtualMachines_InstanceView", **_API),
    Route("GET", _VM + "/{vmName}/extensions", _ext_list, "VirtualMachineExtensions_List", **_API),
    Route("GET", _VM + "/{vmName}/extensions/{vmExtensionName}", _ext_get, "VirtualMachineExtensions_Get", **_API),
    Route("DELETE", _VM + "/{vmName}/extensions/{vmExtensionName}", _ext_delete, "VirtualMachineExtensions_Delete",
          mutating=True, **_API),
    Route("POST", _VM + "/{vmName}/runCommand", run_command, "VirtualMachines_RunCommand",
          mutating=run_command_mutates, **_API),
    Route("POST", _VM + "/{vmName}/powerOff", _power("powerOff"), "VirtualMachines_PowerOff", mutating=True, **_API),
    Route("POST", _VM + "/{vmName}/deallocate", _power("deallocate"), "VirtualMachines_Deallocate", mutating=True,
          **_API),
    Route("POST", _VM + "/{vmName}/start", _power("start"), "VirtualMachines_Start", mutating=True, **_API),
    Route("POST", _VM + "/{vmName}/restart", _power("restart"), "VirtualMachines_Restart", mutating=True, **_API),
    Route("GET", _VM + "/{vmName}/providers/Microsoft.ResourceHealth/availabilityStatuses/current", availability,
          "AvailabilityStatuses_GetByResource", oldest_api="2015-01-01", newest_api="2026-12-31",
          resource_type="availabilityStatuses"),
]
