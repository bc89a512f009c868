"""remove-backup-extension: uninstall a failed or stuck VMSnapshot / VMSnapshotLinux so the next backup reinstalls it.

Playbook C5 ("the backup extension fails to update or load"): the extension is found by publisher
`Microsoft.Azure.RecoveryServices` and type VMSnapshot / VMSnapshotLinux, never by name. It is
removed when its provisioning state is Failed or stuck transitioning, when the guest agent reports
its handler not Ready, or when `force` is given. Compute refuses extension changes while the VM is
not running (409 OperationNotAllowed), so a stopped VM gets an empty plan saying so.
"""

from __future__ import annotations

from typing import ClassVar

from ..action import Action, ActionParams, Executed, Progress
from ..azure import Azure
from ..model import Change, Plan
from ..reads import VmView, read_vm
from ..verdicts import why_remove

__all__ = ["RemoveBackupExtension"]


def _extension_type(vm: VmView) -> str:
    """The backup extension type this VM's OS uses."""
    return "VMSnapshot" if vm.os_type.lower() == "windows" else "VMSnapshotLinux"


class RemoveBackupExtension(Action[ActionParams, VmView]):
    """Delete the VM's backup snapshot extension when it is Failed, stuck or not Ready (or with force)."""

    name = "remove-backup-extension"
    summary = "uninstall a failed VMSnapshot/VMSnapshotLinux extension; the next backup reinstalls it"
    Params = ActionParams
    disruptive: ClassVar[bool] = False
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/extensions/delete",
        "Microsoft.Compute/locations/operations/read")

    def read(self, azure: Azure, params: ActionParams) -> VmView:
        """One GET of the VM with its instance view (extensions, handler statuses, power state)."""
        return read_vm(azure, params.target)

    def plan(self, facts: VmView, params: ActionParams) -> Plan:
        """A `remove` of the backup extension when it is broken (or forced); otherwise why not."""
        vm = params.target.name
        plan = Plan(action=self.name, target=str(params.target))
        ext = facts.backup_extension()
        if ext is None:
            plan.reason = f"{_extension_type(facts)} is not installed on {vm}"
            return plan
        why = why_remove(ext)
        if not facts.running:
            plan.reason = (f"extensions cannot be changed while {vm} is "
                           f"{facts.power_state or 'not running'}")
            if why or params.force:
                plan.manual.append(f"start {vm}, then run {self.name} again ({why or 'forced'})")
            return plan
        if why is None and not params.force:
            handler = ext.handler_status or "unknown (the guest agent reports no handlers)"
            plan.reason = (f"{ext.type} on {vm} is healthy: provisioning state {ext.state or 'Unknown'}, "
                           f"handler status {handler}")
            return plan
        reason = why or f"forced: {ext.type} is in provisioning state {ext.state or 'Unknown'}"
        plan.changes.append(Change(
            action=self.name, kind="remove", resource=f"{vm}/extensions/{ext.name}",
            resource_id=f"{facts.id or params.target.id}/extensions/{ext.name}",
            summary=f"uninstall {ext.type} from {vm}" + (f" (named {ext.name})" if ext.name != ext.type else ""),
            reason=f"{reason}; the next backup reinstalls it",
            before={"state": ext.state, "version": ext.version}, after=None,
            data={"extension": ext.name}))
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """DELETE the extension and wait for the long-running operation."""
        t = params.target
        name = change.data["extension"]
        azure.call(lambda: azure.compute.virtual_machine_extensions.begin_delete(
            t.resource_group, t.name, name).result())
        return Executed(f"deleted extension {name} from {t.name}")
