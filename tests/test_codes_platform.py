"""The codes only a person can fix (issue #14, C13): armsim fails a backup with each, the engine recognises it, judges
it with evidence where ARM shows it (through the real SDK), and ends "manual" (exit 3) with the guide's section and
the manual steps, triggering no backup that would only fail again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import mutating
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.compute import VM
from armsim.platform_codes import MAX_ENCRYPTED_DISK_GB, condition
from remediations.azure import Azure
from remediations.facts import gather
from remediations.target import Target
from runbooks.catalog import CAUSES, lookup
from runbooks.diagnose import check
from runbooks.engine import Options, run
from runbooks.render import Style, report_json, report_text

RG = "rg-demo"
LINUX, WINDOWS = "vm-healthy", "vm-win-provider-disabled"
# code -> (runbook, cause, the VM it is set up on, the verdict ARM allows, a phrase of the evidence)
CODES = {
    "UserErrorUnsupportedDiskSize": ("E18", "C13.disksize", LINUX, "present", "65536 GiB (64.0 TB): over the guide's 32 TB"),
    "ExtensionSnapshotBitlockerError": ("E19", "C13.bitlocker", WINDOWS, "unknown", "inside the guest"),
    "ExtensionConfigParsingFailure": ("E20", "C13.config", WINDOWS, "unknown", "MachineKeys"),
    "ExtensionFailedSnapshotLimitReachedError": ("E21", "C13.snaplimit", LINUX, "unknown", "Azure Storage"),
    "UserErrorKeyvaultPermissionsNotConfigured": ("E22", "C13.keyvault", LINUX, "present",
                                                  "AzureDiskEncryptionForLinux (Azure Disk Encryption), Key Vault "
                                                  "https://kv-demo.vault.azure.net/"),
    "UserErrorBcmDatasourceNotPresent": ("E23", "C13.datasource", LINUX, "present", "protectionState ProtectionStopped"),
    "UserErrorRequestDisallowedByPolicy": ("E24", "C13.policy", LINUX, "present",
                                           "An invalid policy is configured on the VM which is preventing Snapshot"),
}


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name=name)


def sim_vm(server: Server, name: str) -> VM:
    return next(v for v in server.sim.compute.vms.values() if v.name == name)


def fail_with(server: Server, name: str, code: str) -> VM:
    """Set the VM up for `code` and seed its failed backup job (as a scheduled backup would have failed)."""
    vm = sim_vm(server, name)
    condition(server.sim.backup, vm, code)
    assert server.sim.backup.verdict(vm) == code
    found = server.sim.backup.item_for(vm)
    assert found is not None
    job = server.sim.backup.start_job(*found, finished=True, user=False)
    assert job.status == "Failed" and job.error == code
    server.sim.clear_requests()
    return vm


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_code_is_diagnosed_with_its_guide_section_and_manual_steps(armsim: Server, azure: Azure,
                                                                         code: str) -> None:
    entry_id, cause, name, verdict, evidence = CODES[code]
    fail_with(armsim, name, code)
    r = run(azure, target(name), Options(backup_poll_seconds=0.05))
    inv = r.investigation
    assert inv is not None and inv.entry.id == entry_id and inv.error_code == code
    f = next(f for f in inv.findings if f.cause == cause)
    assert f.verdict == verdict and evidence in f.evidence, f.evidence
    assert r.status == "manual" and r.exit_code == 3
    assert r.manual == list(CAUSES[cause].manual)
    text = "\n".join(report_text(r, Style(False)))
    entry = lookup(code)
    assert entry is not None and entry.guide.startswith("https://learn.microsoft.com/azure/backup/")
    assert f"Guide   {entry.guide}" in text and CAUSES[cause].manual[0] in text
    assert "a backup fails again until a person acts on " + cause in r.message
    assert report_json(r)["error"]["guide"] == entry.guide
    assert mutating(armsim) == []  # no backup wasted on a failure only a person can end


def test_the_protection_state_is_read_only_when_the_job_says_not_protected(armsim: Server, azure: Azure) -> None:
    fail_with(armsim, LINUX, "UserErrorBcmDatasourceNotPresent")
    facts = gather(azure, target(LINUX))
    assert facts.backup is not None and facts.backup.state == "ProtectionStopped"
    assert "ProtectedItems_Get" in [e["operation"] for e in armsim.sim.requests()]
    armsim.sim.clear_requests()
    other = gather(azure, target("vm-nsg-blocked"))  # its failure says nothing about protection: no item read
    assert other.backup is not None and other.backup.state is None
    assert "ProtectedItems_Get" not in [e["operation"] for e in armsim.sim.requests()]
    assert check("C13.datasource", other).verdict == "unknown"


def test_a_stopped_vm_fails_for_its_protection_state_too(armsim: Server) -> None:
    vm = sim_vm(armsim, LINUX)
    vm.power = "deallocated"  # platform links come before the power check (a stopped VM otherwise backs up)
    condition(armsim.sim.backup, vm, "UserErrorBcmDatasourceNotPresent")
    assert armsim.sim.backup.verdict(vm) == "UserErrorBcmDatasourceNotPresent"


def test_guest_conditions_wait_for_the_extension_and_windows(armsim: Server) -> None:
    linux = sim_vm(armsim, LINUX)
    linux.flags.add("bitlocker-locked")  # BitLocker is Windows': a Linux guest is not failed by it
    assert armsim.sim.backup.verdict(linux) is None
    win = sim_vm(armsim, "vm-win-agent-hung")
    win.flags.add("bitlocker-locked")  # a hung agent runs no extension: its own error comes first
    assert armsim.sim.backup.verdict(win) == "GuestAgentSnapshotTaskStatusError"


def test_disk_sizes_within_the_limits_are_absent_and_an_encrypted_one_has_4_tb(armsim: Server, azure: Azure) -> None:
    facts = gather(azure, target(LINUX))
    f = check("C13.disksize", facts)
    assert f.verdict == "absent" and "within the guide's 32 TB" in f.evidence
    assert check("C13.keyvault", facts).verdict == "absent"
    vm = sim_vm(armsim, LINUX)
    vm.data_disks_gb.append(MAX_ENCRYPTED_DISK_GB * 2)  # 8 TB: fine unencrypted
    assert armsim.sim.backup.verdict(vm) is None
    condition(armsim.sim.backup, vm, "UserErrorKeyvaultPermissionsNotConfigured")  # now encrypted
    assert armsim.sim.backup.verdict(vm) == "UserErrorUnsupportedDiskSize"
    f = check("C13.disksize", gather(azure, target(LINUX)))
    assert f.verdict == "present" and "8192 GiB (8.0 TB): over the guide's 4 TB for an encrypted disk" in f.evidence


def test_the_cli_ends_manual_with_exit_3_and_the_guide(armsim: Server, tmp_path: Path) -> None:
    fail_with(armsim, LINUX, "UserErrorUnsupportedDiskSize")
    r = cli(armsim, "fix", LINUX, "-g", RG, "--yes", "-o", "json", tmp=tmp_path)
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads(r.stdout)
    vm = doc["vms"][0] if "vms" in doc else doc
    assert vm["status"] == "manual" and vm["error"]["runbook"] == "E18"
    assert vm["error"]["guide"].endswith("#usererrorunsupporteddisksize---the-configured-disk-sizes-is-currently-not-"
                                         "supported-by-azure-backup")
    assert mutating(armsim) == []
