"""In-guest fixes through Run Command: VSS copy backup, iaasvmprovider, Linux agent upgrade, agent restart.

Every read and write here is one of the fixed scripts in `remediations/scripts/` (see
docs/run-command-scripts.md); nothing is spliced into them. Run Command needs a running VM whose
guest agent answers, so when it does not, these actions plan nothing and point to
restart-guest-agent (defined in guest_agent.py, re-exported here).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..action import Action, ActionParams, Executed, Progress
from ..azure import Azure
from ..model import Change, Plan
from ..reads import read_vm
from ..verdicts import MIN_LINUX_AGENT, version_tuple
from .guest_agent import (
    GuestFacts,
    RestartGuestAgent,
    WaitParams,
    guest_gate,
    restart_time,
    script_step,
    wait_agent,
)

__all__ = ["EnableIaasVmProvider", "RestartGuestAgent", "SetVssCopyBackup", "UpgradeLinuxAgent"]

VSS_KEY = r"HKLM\SOFTWARE\Microsoft\BcdrAgent"
VSS_VALUE = "USEVSSCOPYBACKUP"
# The package per package manager when the status script does not name it (Debian's apt package is waagent,
# Ubuntu's walinuxagent: update-linux-agent.md; the status script reports which).
_PACKAGES = {"apt": "walinuxagent", "dnf": "WALinuxAgent", "yum": "WALinuxAgent", "zypper": "python-azure-agent"}
_UPDATE_DOC = "https://learn.microsoft.com/azure/virtual-machines/extensions/update-linux-agent"


class _WindowsGuestAction(Action[ActionParams, GuestFacts]):
    """A Windows action that first reads the guest through a read-only script (`probe`)."""

    Params = ActionParams
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/runCommand/action",
        "Microsoft.Compute/locations/operations/read")
    probe: str
    subject: str

    def read(self, azure: Azure, params: ActionParams) -> GuestFacts:
        """The VM; then the probe script when the VM runs Windows and its agent answers."""
        vm = read_vm(azure, params.target)
        if guest_gate(self.name, params.target, vm, "Windows", self.subject) is not None:
            return GuestFacts(vm)
        return GuestFacts(vm, script_step(azure, params.target, self.probe))

    def plan(self, facts: GuestFacts, params: ActionParams) -> Plan:
        """An empty plan with its reason when the guest could not or need not be read; else `decide`."""
        gate = guest_gate(self.name, params.target, facts.vm, "Windows", self.subject)
        if gate is not None or facts.result is None:
            return gate or Plan(action=self.name, target=str(params.target), reason="the guest was not read")
        return self.decide(facts.vm.name or params.target.name, facts.vm.id, facts.result, params)

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """The plan from what the probe script reported (pure)."""
        raise NotImplementedError


class SetVssCopyBackup(_WindowsGuestAction):
    """Set HKLM\\SOFTWARE\\Microsoft\\BcdrAgent USEVSSCOPYBACKUP = TRUE (REG_SZ) on Windows (playbook C4, SQL)."""

    name = "set-vss-copy-backup"
    summary = "make Azure Backup take a VSS copy backup (USEVSSCOPYBACKUP=TRUE) so SQL Server backups are not delayed"
    probe = "windows-vss-get"
    subject = "the VSS registry key"

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """With SQL Server in the guest (or `force`): add or change the value when absent or not TRUE."""
        value = r.get("value") if r.get("exists") else None
        where = f"{VSS_KEY}\\{VSS_VALUE}"
        if value is not None and str(value).strip().lower() == "true":
            return Plan(action=self.name, target=str(params.target),
                        reason=f"{where} on {name} is {value} ({r.get('type') or 'REG_SZ'})")
        if not r.get("sql_server") and not params.force:
            return Plan(action=self.name, target=str(params.target),
                        reason=f"SQL Server is not installed on {name}; {VSS_VALUE} is only needed with SQL Server "
                               f"(it is {value or 'not set'})")
        change = Change(
            action=self.name, kind="add" if value is None else "change",
            resource=f"{name}/registry/{where}", resource_id=vm_id,
            summary=f"set {VSS_VALUE} = TRUE (REG_SZ) under {VSS_KEY} on {name}",
            reason=(f"{VSS_VALUE} is not set" if value is None else f"{VSS_VALUE} is {value!r}, not TRUE")
                   + "; with SQL Server on the VM a VSS full backup is delayed, a VSS copy backup is not",
            before=None if value is None else {"value": value, "type": r.get("type")},
            after={"value": "TRUE", "type": "REG_SZ"}, data={"script": "windows-vss-set"})
        return Plan(action=self.name, target=str(params.target), changes=[change])

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `windows-vss-set`."""
        out = script_step(azure, params.target, "windows-vss-set")
        return Executed(f"{VSS_VALUE} {out.get('before') or '(absent)'} -> {out.get('value')} ({out.get('type')})")


class EnableIaasVmProvider(_WindowsGuestAction):
    """Set the Windows iaasvmprovider service to start Automatic and start it (playbook C5)."""

    name = "enable-iaasvmprovider"
    summary = "set the iaasvmprovider service (used by the VMSnapshot extension) to Automatic and start it"
    probe = "windows-provider-get"
    subject = "the iaasvmprovider service"

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """A change to Automatic when the start type is anything else; nothing when the service is missing."""
        plan = Plan(action=self.name, target=str(params.target))
        if not r.get("exists"):
            plan.reason = f"the iaasvmprovider service is not installed on {name}"
            plan.manual.append(f"the VMSnapshot extension installs iaasvmprovider: run remove-backup-extension on "
                               f"{name}, then an on-demand backup reinstalls the extension")
            return plan
        start = str(r.get("start_type") or "")
        if start.lower() == "automatic":
            plan.reason = f"iaasvmprovider on {name} starts Automatic ({r.get('status') or 'status unknown'})"
            return plan
        plan.changes.append(Change(
            action=self.name, kind="change", resource=f"{name}/services/iaasvmprovider", resource_id=vm_id,
            summary=f"set iaasvmprovider on {name} to start Automatic and start it",
            reason=f"iaasvmprovider starts {start or 'unknown'}; the backup extension needs it Automatic",
            before={"start_type": r.get("start_type"), "status": r.get("status")},
            after={"start_type": "Automatic", "status": "Running"}, data={"script": "windows-provider-enable"}))
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `windows-provider-enable`."""
        out = script_step(azure, params.target, "windows-provider-enable")
        return Executed(f"iaasvmprovider {out.get('before')} -> {out.get('start_type')} ({out.get('status')})")


class UpgradeParams(WaitParams):
    """Parameters of upgrade-linux-agent: the oldest agent version to accept, and the Ready wait."""

    minimum_version: str = Field(MIN_LINUX_AGENT, pattern=r"^\d+(\.\d+){1,3}$",
                                 description="the oldest Linux agent version to accept, e.g. 2.2.53.1")


class UpgradeLinuxAgent(Action[UpgradeParams, GuestFacts]):
    """Upgrade the Linux agent from the distribution repository, turn on auto-update, enable the unit (C3).

    `minimum_version` defaults to 2.2.53.1, the oldest Linux agent Azure supports: "the Linux Agent
    version on the Linux virtual machine (VM) must be later than or equal to version 2.2.53.1"
    (Minimum version support for virtual machine agents in Azure, KB 4049215, ms.date 2025-09-15:
    https://learn.microsoft.com/troubleshoot/azure/virtual-machines/windows/support-extensions-agent-version,
    source MicrosoftDocs/SupportArticles-docs support/azure/virtual-machines/windows/
    support-extensions-agent-version.md). The version compared is the one `linux-agent-status` reports
    (the running Goal State agent wins), not the instance view's, which can lag.
    """

    name = "upgrade-linux-agent"
    summary = "upgrade walinuxagent/WALinuxAgent from the distribution repository, enable auto-update and restart"
    Params = UpgradeParams
    permissions: ClassVar[tuple[str, ...]] = _WindowsGuestAction.permissions

    def read(self, azure: Azure, params: UpgradeParams) -> GuestFacts:
        """The VM; then `linux-agent-status` when the VM runs Linux and its agent answers."""
        vm = read_vm(azure, params.target)
        if guest_gate(self.name, params.target, vm, "Linux", "the Linux agent upgrade") is not None:
            return GuestFacts(vm)
        return GuestFacts(vm, script_step(azure, params.target, "linux-agent-status"))

    def plan(self, facts: GuestFacts, params: UpgradeParams) -> Plan:
        """One change when the agent is older than the minimum, auto-update is off or the unit is not enabled."""
        gate = guest_gate(self.name, params.target, facts.vm, "Linux", "the Linux agent upgrade")
        if gate is not None or facts.result is None:
            return gate or Plan(action=self.name, target=str(params.target), reason="the guest was not read")
        name = facts.vm.name or params.target.name
        r = facts.result
        plan = Plan(action=self.name, target=str(params.target))
        version, unit, pm = r.get("version"), r.get("unit"), r.get("package_manager")
        auto = r.get("auto_update") is not False  # absent from waagent.conf means on
        enabled = r.get("enabled") is not False
        minimum = params.minimum_version
        why: list[str] = []
        if not version:
            why.append("the agent version could not be read")
        elif version_tuple(version) < version_tuple(minimum):
            why.append(f"agent {version} is older than the supported minimum {minimum}")
        if not auto:
            why.append("auto-update is off in /etc/waagent.conf (AutoUpdate.UpdateToLatestVersion or "
                       "AutoUpdate.Enabled is n)")
        if unit and not enabled:
            why.append(f"the {unit} unit is not enabled (no automatic restart at boot)")
        if not why:
            plan.reason = f"the Linux agent on {name} is {version} (>= {minimum}) with auto-update on"
            return plan
        if not unit:
            plan.reason = f"no walinuxagent or waagent unit on {name}; " + "; ".join(why)
            plan.manual.append(f"install the Azure Linux agent on {name} from the distribution repository: {_UPDATE_DOC}")
            return plan
        if pm not in _PACKAGES:
            plan.reason = (f"{name} runs {r.get('distro') or 'an unknown distribution'} "
                           f"{r.get('distro_version') or ''}".rstrip()
                           + ", which the upgrade script does not support; " + "; ".join(why))
            plan.manual.append(f"update the agent on {name} with the distribution's package manager and set "
                               f"auto-update on (AutoUpdate.UpdateToLatestVersion=y, AutoUpdate.Enabled=y where set): {_UPDATE_DOC}")
            return plan
        package = str(r.get("package") or _PACKAGES[pm])
        plan.changes.append(Change(
            action=self.name, kind="change", resource=f"{name}/packages/{package}", resource_id=facts.vm.id,
            summary=f"upgrade {package} from the {pm} repository, enable auto-update and automatic restart",
            reason="; ".join(why),
            before={"version": version, "auto_update": auto},
            after={"version": f">= {minimum}", "auto_update": True},
            data={"script": "linux-agent-upgrade"}))
        return plan

    def execute(self, azure: Azure, params: UpgradeParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `linux-agent-upgrade` (it installs and restarts detached), wait until the agent reports Ready after
        the restart, then read the version it runs with `linux-agent-status`."""
        t = params.target
        out = script_step(azure, t, "linux-agent-upgrade")
        back, ready = wait_agent(azure, t, params.wait_ready_seconds, params.poll_seconds, after=restart_time(out))
        after = script_step(azure, t, "linux-agent-status").get("version") if back else None
        result = {**{k: out.get(k) for k in ("unit", "package", "package_manager", "before", "auto_update",
                                             "enabled", "how", "log")}, "after": after}
        if not back:
            ready += (f"; the upgrade runs detached in the guest (its log: {out.get('log') or 'the job log'}); "
                      f"run upgrade-linux-agent on {t.name} again once the agent reports")
        return Executed(f"{out.get('unit')} {out.get('before')} -> {after or 'unknown'} via "
                        f"{out.get('package_manager')}; {ready}", result)
