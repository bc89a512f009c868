"""Checks of the codes only a person can fix (C13: disk size, BitLocker, extension config, snapshot limit, Key Vault,
protection, policy): issue #14. Each reads the Facts snapshot (the VM model in `vm.raw`, the backup item, the failed
job); what ARM cannot show is `unknown` with the reason, so the cause's manual steps are shown.

Disk size: the guide (UserErrorUnsupportedDiskSize, ms.date 11/12/2025) says a disk over 32 TB, or an encrypted one
over 4 TB, fails; the support matrix (backup-support-matrix-iaas.md, newest mirror) says "up to 64 TB". The check
uses the guide's limits: it explains a failure that already carries this code, whose own section names 32 TB, so a
disk between 32 and 64 TB is named as the likely cause (with the matrix's 64 TB in the evidence) rather than missed.
"""

from __future__ import annotations

from typing import Any

from remediations.facts import Facts

from ..finding import Check, Finding, not_observable

__all__ = ["BLOCKS_BACKUP", "CHECKS", "MAX_DISK_GB", "MAX_ENCRYPTED_DISK_GB", "disks", "encryption"]

MAX_DISK_GB = 32 * 1024  # the guide's 32 TB (diskSizeGB is in GiB)
MAX_ENCRYPTED_DISK_GB = 4 * 1024  # the guide's 4 TB for an encrypted disk
MATRIX_DISK_GB = 64 * 1024  # the support matrix's 64 TB
ADE_PUBLISHER = "microsoft.azure.security"
ADE_TYPES = ("azurediskencryption", "azurediskencryptionforlinux")
NOT_ACTIVE = {"protectionstopped", "protectionpaused"}  # not actively protected (the guide: "not in pause state")


def disks(raw: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(name, diskSizeGB or None when the model does not say) of the OS disk and each data disk of a VM's JSON."""
    storage = (raw.get("properties") or {}).get("storageProfile") or {}
    found = [storage.get("osDisk") or {}] + list(storage.get("dataDisks") or [])
    return [(d.get("name") or f"LUN {d.get('lun')}", d.get("diskSizeGB")) for d in found if d]


def encryption(raw: dict[str, Any]) -> str | None:
    """How the VM model shows Azure Disk Encryption (the ADE extension and its Key Vault, or the OS disk's
    encryptionSettings), or None when it shows none."""
    for r in raw.get("resources") or []:
        p = r.get("properties") or {}
        if str(p.get("publisher", "")).lower() == ADE_PUBLISHER and str(p.get("type", "")).lower() in ADE_TYPES:
            kv = (p.get("settings") or {}).get("KeyVaultURL")
            return f"extension {r.get('name') or p.get('type')} (Azure Disk Encryption)" + (f", Key Vault {kv}"
                                                                                           if kv else "")
    os_disk = ((raw.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {}
    settings = os_disk.get("encryptionSettings") or {}
    if settings.get("enabled"):
        vault = ((settings.get("diskEncryptionKey") or {}).get("sourceVault") or {}).get("id", "")
        return "osDisk.encryptionSettings enabled" + (f", Key Vault {vault.rsplit('/', 1)[-1]}" if vault else "")
    return None


def _tb(gb: int) -> str:
    return f"{gb} GiB ({gb / 1024:.1f} TB)"


def _disk_size(f: Facts) -> Finding:
    found = disks(f.vm.raw)
    if not found:
        return Finding("C13.disksize", "unknown", f"{f.vm.name}'s model lists no disks")
    enc = encryption(f.vm.raw)
    limit = MAX_ENCRYPTED_DISK_GB if enc else MAX_DISK_GB
    over = [(n, gb) for n, gb in found if gb is not None and gb > limit]
    if over:
        names = ", ".join(f"{n} {_tb(gb)}" for n, gb in over)
        why = f"over the guide's {limit // 1024} TB" + (f" for an encrypted disk ({enc})" if enc else "")
        beyond = all(gb > MATRIX_DISK_GB for _, gb in over)
        note = "" if enc or beyond else "; the support matrix allows up to 64 TB, the guide 32 TB"
        return Finding("C13.disksize", "present", f"{names}: {why}{note}")
    unsized = [n for n, gb in found if gb is None]
    if unsized:
        return Finding("C13.disksize", "unknown", f"the VM model gives no size for {', '.join(unsized)}")
    largest = max(gb for _, gb in found if gb is not None)
    return Finding("C13.disksize", "absent", f"{len(found)} disks, the largest {_tb(largest)}, within the guide's "
                                             f"{limit // 1024} TB" + (" for encrypted disks" if enc else ""))


def _key_vault(f: Facts) -> Finding:
    enc = encryption(f.vm.raw)
    if enc is None:
        return Finding("C13.keyvault", "absent", f"{f.vm.name} shows no Azure Disk Encryption (no AzureDiskEncryption "
                                                 "extension, no osDisk.encryptionSettings): no Key Vault to reach")
    return Finding("C13.keyvault", "present", f"{f.vm.name} is encrypted: {enc}; Azure Backup needs access to that "
                                              "Key Vault (its access policies are not read)")


def _datasource(f: Facts) -> Finding:
    item = f.backup
    if item is None:
        return Finding("C13.datasource", "present", f"{f.vm.name} is not protected in any vault")
    if item.state is None:
        return Finding("C13.datasource", "unknown", f"{item.item}'s protectionState was not read (read only when "
                                                    "the failed job says UserErrorBcmDatasourceNotPresent)")
    where = f"{item.item} in vault {item.vault}: protectionState {item.state}"
    return Finding("C13.datasource", "present" if item.state.lower() in NOT_ACTIVE else "absent", where)


def _policy(f: Facts) -> Finding:
    job = f.last_failed
    if job is not None and (job.error_title or "") == "UserErrorRequestDisallowedByPolicy":
        said = job.error_message or "(no message)"
        return Finding("C13.policy", "present", f"backup job {job.id[:8]}… failed: {said}")
    return Finding("C13.policy", "unknown", "Azure Policy assignments are not read; the failed job names a denial "
                                            "(UserErrorRequestDisallowedByPolicy) when a policy blocks the snapshot")


# Causes that fail every backup until a person acts: the engine (runbooks/engine.py) triggers no verification
# backup when one is found and no fix is planned (the run ends "manual", exit 3).
BLOCKS_BACKUP = frozenset({"C13.disksize", "C13.bitlocker", "C13.config", "C13.snaplimit", "C13.keyvault",
                           "C13.datasource", "C13.policy"})

CHECKS: dict[str, Check] = {
    "C13.disksize": _disk_size,
    "C13.bitlocker": not_observable("C13.bitlocker", "a drive's BitLocker lock is inside the guest (manage-bde); "
                                                     "ARM does not show it"),
    "C13.config": not_observable("C13.config", "the MachineKeys permissions and certificates are inside the guest; "
                                               "ARM does not show them"),
    "C13.snaplimit": not_observable("C13.snaplimit", "the disks' blob snapshots are in Azure Storage (data plane), "
                                                     "not in ARM"),
    "C13.keyvault": _key_vault,
    "C13.datasource": _datasource,
    "C13.policy": _policy,
}
