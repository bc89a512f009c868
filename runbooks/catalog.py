"""The runbooks, as data: for each error (E1–E5 and its codes), the causes to check in the article's order,
and for each cause the actions that fix it or the steps a person must take.

Source: the troubleshooting article (2017, Korean; digest in docs/playbook.md) and the newer error
codes Azure Backup reports for the same failures (docs/error-codes.md).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .catalog_codes import GROUPS as NEW_GROUPS
from .catalog_codes import NEW_CAUSES, NEW_ENTRIES
from .catalog_types import GROUPS, Cause, ErrorEntry

__all__ = ["BY_HAND", "CATALOG", "CAUSES", "EVERY", "GROUPS", "VERIFY", "Cause", "ErrorEntry", "lookup", "match_error"]


CAUSES: dict[str, Cause] = {c.id: c for c in (
    Cause("C1", "no outbound access from the VM to Azure Storage (NSG on the NIC or subnet)",
          fixes=("allow-backup-egress",),
          manual=("If traffic leaves through an HTTP proxy or a firewall appliance, allow the Storage.<region>, "
                  "AzureBackup and AzureActiveDirectory destinations there (not automated).",)),
    # A user-defined route (0.0.0.0/0 to a firewall appliance, or to None) takes Storage traffic off its way to the
    # Internet; the effective route table says which route carries it (remediations/routes.py, longest prefix match).
    Cause("C1.route", "a user-defined route sends Storage traffic to None or to an appliance",
          fixes=("allow-backup-route",),
          manual=("Let the backup traffic through the firewall appliance the route leads to: on an Azure Firewall, "
                  "an application rule (Allow, source the VM's subnet, Https:443, FQDN tag AzureBackup), or a "
                  "network rule (Allow, TCP, destination service tag Storage.<Region>, port 443); or route "
                  "Storage.<Region> to Internet in the subnet's route table (allow-backup-route, disruptive).",)),
    Cause("C1.proxy", "the guest's HTTP proxy is unreachable, or cannot reach Storage",
          fixes=("set-guest-proxy",),
          manual=("Point the guest at a working proxy (set-guest-proxy with --proxy http://host:port), or let the "
                  "proxy reach the Storage.<region>, AzureBackup and AzureActiveDirectory destinations on 443 "
                  "(its NSG, firewall or allow-list).",)),
    Cause("C2", "Windows guest agent installed but not responding",
          fixes=("restart-guest-agent",),
          manual=("If restarting does not help, reinstall the latest Windows guest agent MSI in the guest "
                  "(needs admin and .NET 4.5 or later): https://go.microsoft.com/fwlink/?LinkID=394789",
                  "Offline repair when the guest is unreachable: az vm repair create / run --run-id win-GA-fix / "
                  "restore.")),
    Cause("C3", "Linux guest agent (walinuxagent/waagent) out of date or stopped",
          fixes=("upgrade-linux-agent", "restart-guest-agent"),
          manual=("If it keeps failing, collect /var/lib/waagent/*.xml, /var/log/waagent.log and /var/log/azure/* "
                  "with Logs.Verbose=y in /etc/waagent.conf.",)),
    # Azure shows such a VM PowerState/stopped (states-billing.md) and annotates it
    # VirtualMachineStoppedInternally (resource-health-vm-annotation.md): the 2017 fix, a platform
    # power-off, is already done; a backup of it is crash-consistent. What remains is a person's choice.
    Cause("C4.shutdown", "guest shut down from inside (RDP/SSH): the VM is stopped but still allocated",
          manual=("Start the VM through the platform (az vm start) if it should run: application-consistent "
                  "backups need it running. If it should stay off, deallocate it (az vm deallocate): a stopped VM "
                  "is still billed. Shut VMs down through the platform, not from inside the guest.",)),
    Cause("C4.sql", "SQL Server on Windows delays the VSS full backup (USEVSSCOPYBACKUP not set)",
          fixes=("set-vss-copy-backup",)),
    Cause("C4.schedule", "many VMs backed up in the same schedule slot",
          manual=("Spread the backup policies' start times so no more than four VMs start together, "
                  "at least an hour apart.",)),
    Cause("C4.load", "CPU or memory above 90% during the snapshot",
          manual=("Take the on-demand backup at a quieter time, or add capacity to the VM.",)),
    Cause("C4.dhcp", "DHCP disabled inside the guest",
          manual=("Enable DHCP on the guest's network adapter; set any static private IP through Azure "
                  "(NIC IP configuration), not inside the guest.",)),
    Cause("C5.extension", "backup extension (VMSnapshot/VMSnapshotLinux) failed or stuck",
          fixes=("remove-backup-extension",)),
    Cause("C5.provider", "Windows iaasvmprovider service not enabled (start type must be Automatic)",
          fixes=("enable-iaasvmprovider",)),
    *NEW_CAUSES,
)}

# The action that verifies every fix: an on-demand backup that must succeed (runbooks/engine.py).
VERIFY = "trigger-backup"
# Actions no runbook plans, run only by hand (python -m runbooks action NAME ... --force): power-off, since a
# guest shut down from inside is already stopped (C4.shutdown), so the Automation role does not grant it.
BY_HAND: tuple[str, ...] = ("power-off",)

# Cause groups in the article, expanded to sub-causes in the order they are checked.
GROUPS.update({
    "C1": ("C1", "C1.route", "C1.proxy", "C1.wireserver"), "C2": ("C2",), "C3": ("C3",),
    "C4": ("C4.shutdown", "C4.sql", "C4.load", "C4.schedule", "C4.dhcp"),
    "C5": ("C5.extension", "C5.provider"),
    **NEW_GROUPS,
})


CATALOG: tuple[ErrorEntry, ...] = (
    ErrorEntry("E1", "VM agent unable to communicate with Azure Backup",
               ("UserErrorGuestAgentStatusUnavailable",),
               ("C1", "C2", "C3", "C4", "C5")),
    ErrorEntry("E2", "Snapshot operation failed due to no network connectivity on the virtual machine",
               ("ExtensionSnapshotFailedNoNetwork",), ("C1", "C4", "C5")),
    # ExtensionInstallationFailed: the backup extension did not install (C5; its COM+/MSDTC variants are E16).
    ErrorEntry("E3", "VMSnapshot extension operation failed",
               ("ExtensionOperationFailedForManagedDisks", "ExtensionOperationFailed", "ExtentionOperationFailed",
                "ExtensionInstallationFailed"),
               ("C4", "C5", "C1", "C2", "C3")),
    ErrorEntry("E4", "Unable to perform the operation as the VM agent is not responsive",
               ("GuestAgentSnapshotTaskStatusError",), ("C2", "C3", "C1"),
               ("Could not communicate with the VM agent for snapshot status",)),
    ErrorEntry("E5", "Backup failed with an internal error - Please retry the operation in a few minutes",
               ("BackUpOperationFailed", "BackUpOperationFailedV2"), ("C1", "C2", "C3", "C4", "C5")),
    *NEW_ENTRIES,  # the newer codes (runbooks/catalog_codes.py)
)
# A cause in no group is its own (C5.stuck, C13.*): an entry names it alone.
GROUPS.update({c: (c,) for c in CAUSES if not any(c in subs for subs in GROUPS.values())})
# `--error all`: every cause of every runbook, each once, in the catalog's order (an operator's full check).
EVERY = ErrorEntry("all", "every cause of every runbook is checked", (),
                   tuple(dict.fromkeys(c for e in CATALOG for c in e.causes)))

UNKNOWN = ErrorEntry("E5", "unrecognised error: every cause is checked in the E5 order", (), CATALOG[4].groups)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def lookup(key: str) -> ErrorEntry | None:
    """The entry for an id (E1…E5) or a code, case-insensitively."""
    k = key.strip().lower()
    if k == EVERY.id:
        return EVERY
    for e in CATALOG:
        if k == e.id.lower() or k in (c.lower() for c in e.codes):
            return e
    return None


def match_error(*texts: str | int | None) -> tuple[ErrorEntry, str]:
    """The runbook for a job's error: by code (title or any text naming one), then by message; else E5 order."""
    strings = [str(t) for t in texts if t not in (None, "")]
    numbers = [s for s in strings if s.strip().isdigit()]
    if numbers and len(numbers) == len(strings):  # a bare error number names no runbook: say so, check all
        seen = f"only the error number {numbers[0]} was reported (no code or message)"
        return (replace(UNKNOWN, message=f"{seen}: every cause is checked in the E5 order"),
                f"{seen}; no runbook is known for a number")
    for s in strings:
        if (e := lookup(s)) is not None:
            return e, f"code {s}"
    for s in strings:
        for e in CATALOG:
            for code in e.codes:
                if re.search(rf"\b{re.escape(code)}\b", s, re.IGNORECASE):
                    return e, f"code {code} in {s!r}"
    for s in strings:
        n = _norm(s)
        for e in CATALOG:
            for msg in (e.message, *e.old_messages):
                if _norm(msg) and (_norm(msg) in n or n in _norm(msg)) and len(n) > 10:
                    return e, f"message {s!r}"
    return UNKNOWN, "unrecognised error" + (f" {strings[0]!r}" if strings else "")
