"""Typed views over what ARM returns, and the reads every action shares (VM, Run Command).

Views are built from the REST JSON (`model.as_dict()`), so they do not depend on one SDK
version's attribute names (e.g. 39.x `ext.properties.type` vs older `type_properties_type`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from .azure import Azure, is_transient
from .errors import RemediationError, arm_error
from .polling import follow
from .scripts import output_text, parse_result, script
from .target import Target

__all__ = [
    "BACKUP_EXTENSION_TYPES",
    "BACKUP_PUBLISHER",
    "ExtensionView",
    "STOPPED_INTERNALLY",
    "ScriptFailed",
    "VmView",
    "read_health",
    "read_vm",
    "run_script",
    "shut_down_inside",
    "vm_view",
]

BACKUP_PUBLISHER = "Microsoft.Azure.RecoveryServices"
BACKUP_EXTENSION_TYPES = ("VMSnapshot", "VMSnapshotLinux")


class ScriptFailed(RemediationError):
    """A Run Command script ran but reported an error (its `error` key), or gave no result."""

    def __init__(self, script_id: str, code: str, detail: str = "") -> None:
        super().__init__(f"{script_id}: {code}" + (f" ({detail})" if detail else ""))
        self.script_id = script_id
        self.code = code


@dataclass(frozen=True)
class ExtensionView:
    """A VM extension: name, publisher, type, provisioning state, and its handler's status."""

    name: str
    publisher: str
    type: str
    version: str
    state: str
    handler_status: str | None = None

    @property
    def is_backup(self) -> bool:
        """Whether this is the Azure Backup snapshot extension (VMSnapshot / VMSnapshotLinux)."""
        return (self.publisher.lower() == BACKUP_PUBLISHER.lower()
                and self.type.lower() in {t.lower() for t in BACKUP_EXTENSION_TYPES})


@dataclass(frozen=True)
class VmView:
    """What the VM (with its instance view) says about power, agent and extensions."""

    id: str
    name: str
    location: str
    os_type: str
    power_state: str | None
    agent_status: str | None
    agent_version: str | None
    agent_message: str | None
    extensions: tuple[ExtensionView, ...]
    nic_ids: tuple[str, ...]
    raw: dict[str, Any]

    @property
    def running(self) -> bool:
        """Whether the platform reports the VM running."""
        return self.power_state == "running"

    @property
    def agent_ready(self) -> bool:
        """Whether the guest agent reports Ready."""
        return (self.agent_status or "").lower() == "ready"

    def backup_extension(self) -> ExtensionView | None:
        """The VMSnapshot / VMSnapshotLinux extension, whatever it is named."""
        return next((e for e in self.extensions if e.is_backup), None)


def vm_view(d: dict[str, Any]) -> VmView:
    """A VmView from the REST JSON of a VM read with $expand=instanceView."""
    props = d.get("properties") or {}
    iv = props.get("instanceView") or {}
    power = next((s["code"].split("/", 1)[1] for s in iv.get("statuses") or []
                  if str(s.get("code", "")).startswith("PowerState/")), None)
    agent = iv.get("vmAgent") or {}
    agent_status = next((s.get("displayStatus") for s in agent.get("statuses") or []), None)
    agent_message = next((s.get("message") for s in agent.get("statuses") or []), None)
    handlers = {str(h.get("type", "")).lower(): (h.get("status") or {}).get("displayStatus")
                for h in agent.get("extensionHandlers") or []}
    exts = []
    for r in d.get("resources") or []:
        p = r.get("properties") or {}
        publisher, etype = p.get("publisher") or "", p.get("type") or ""
        exts.append(ExtensionView(r.get("name") or str(r.get("id", "")).rsplit("/", 1)[-1], publisher, etype,
                                  p.get("typeHandlerVersion") or "", p.get("provisioningState") or "",
                                  handlers.get(f"{publisher}.{etype}".lower())))
    os_type = ((props.get("storageProfile") or {}).get("osDisk") or {}).get("osType") or ""
    nics = tuple(n["id"] for n in (props.get("networkProfile") or {}).get("networkInterfaces") or [] if n.get("id"))
    return VmView(d.get("id", ""), d.get("name", ""), d.get("location", ""), os_type, power, agent_status,
                  agent.get("vmAgentVersion"), agent_message, tuple(exts), nics, d)


STOPPED_INTERNALLY = "VirtualMachineStoppedInternally"
# Its description in Resource Health ("…or due to a guest activity from within the Virtual Machine");
# a stop through the platform is VirtualMachineStopInitiatedByControlPlane, whose text lacks it.
# Source: azure-monitor-docs articles/service-health/resource-health-vm-annotation.md.
_GUEST_ACTIVITY = "guest activity from within the virtual machine"


def shut_down_inside(health: dict[str, Any] | None) -> bool:
    """Resource Health carries the VirtualMachineStoppedInternally annotation: the guest was shut down from inside.

    Reads an availability status's `properties` (the annotation's description is its summary) or a
    Resource Graph `resourceannotations` record's properties (`annotationName`). A stop through the
    platform, a restart or an outage is not this.
    """
    if not health:
        return False
    if str(health.get("annotationName") or "") == STOPPED_INTERNALLY:
        return True
    text = " ".join(str(health.get(k) or "") for k in ("title", "summary", "detailedStatus")).lower()
    return STOPPED_INTERNALLY.lower() in text or _GUEST_ACTIVITY in text


def read_health(azure: Azure, vm_id: str) -> dict[str, Any]:
    """The VM's Resource Health availability status `properties`; `{"error": code}` when it cannot be read."""
    from azure.core.exceptions import HttpResponseError

    try:
        status = azure.call(azure.health.availability_statuses.get_by_resource, vm_id.lstrip("/"))
    except HttpResponseError as e:  # advisory: a transient failure is retried by the caller's policy
        if is_transient(e):
            raise
        return {"error": arm_error(e).code}
    d = status.as_dict() if hasattr(status, "as_dict") else dict(status)
    return dict(d.get("properties") or {})


def read_vm(azure: Azure, target: Target) -> VmView:
    """GET the VM with its instance view (one request)."""
    vm = azure.call(azure.compute.virtual_machines.get, target.resource_group, target.name, expand="instanceView")
    return vm_view(vm.as_dict())


def run_script(azure: Azure, target: Target, script_id: str,
               parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one of the project's fixed scripts through Run Command and return its RUNBOOKS_RESULT; values reach the
    script only as Run Command parameters (Linux: environment variables; Windows: `param()`), validated before."""
    s = script(script_id)
    body: dict[str, Any] = {"commandId": s.command_id, "script": s.text.splitlines()}
    if parameters:
        body["parameters"] = [{"name": k, "value": v} for k, v in parameters.items()]

    begin = partial(azure.compute.virtual_machines.begin_run_command, target.resource_group, target.name, body)
    result = follow(azure, begin, f"Run Command {script_id} on {target.name}")  # one POST; a poll fault resumes it
    statuses = (result.as_dict() if hasattr(result, "as_dict") else dict(result or {})).get("value") or []
    stdout, stderr = output_text(statuses)
    try:
        out = parse_result(stdout)
    except ValueError as e:
        raise ScriptFailed(script_id, "no-result", (stderr or str(e)).strip()[:300]) from None
    if out.get("error"):
        raise ScriptFailed(script_id, str(out["error"]), (stderr or "").strip()[:300])
    return out
