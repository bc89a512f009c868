"""The codes only a person can fix (issue #14): why armsim fails a backup with each, and how a test sets it up.

Links ARM can show, checked whatever the VM's power state (BackupModel.verdict calls `platform_code` before its
power check):
- the protected item's protectionState is not Protected (ProtectionStopped, ProtectionPaused)
  -> UserErrorBcmDatasourceNotPresent ("This virtual machine is not (actively) protected by Azure Backup");
- a disk over 32 TB (32768 GiB), or over 4 TB on a VM with Azure Disk Encryption -> UserErrorUnsupportedDiskSize
  (the guide's limits; the support matrix now says 64 TB: see runbooks/checks/platform.py for why 32);
- an Azure Policy that denies the restore-point resources (flag `policy-deny`) -> UserErrorRequestDisallowedByPolicy;
- a VM with Azure Disk Encryption (extension Microsoft.Azure.Security AzureDiskEncryption[ForLinux]) whose Key Vault
  does not let Azure Backup in (flag `keyvault-no-access`) -> UserErrorKeyvaultPermissionsNotConfigured.
Links inside the guest or the disks' storage, which only the running backup extension meets (the VM running and its
agent answering): `bitlocker-locked` (Windows) -> ExtensionSnapshotBitlockerError, `machinekeys-acl` (Windows) ->
ExtensionConfigParsingFailure, `blob-snapshot-limit` -> ExtensionFailedSnapshotLimitReachedError.
ARM shows none of the last three; the order of the links is assumed (the platform's checks before the snapshot's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .compute import VM, Extension

if TYPE_CHECKING:
    from .backup import BackupModel

__all__ = ["ADE_PUBLISHER", "ADE_TYPES", "FLAGS", "MAX_DISK_GB", "MAX_ENCRYPTED_DISK_GB", "condition",
           "encrypted", "platform_code"]

ADE_PUBLISHER = "Microsoft.Azure.Security"  # azure-disk-enc-windows.md / azure-disk-enc-linux.md
ADE_TYPES = ("AzureDiskEncryption", "AzureDiskEncryptionForLinux")
MAX_DISK_GB = 32 * 1024  # the guide: "a disk size greater than 32 TB"
MAX_ENCRYPTED_DISK_GB = 4 * 1024  # the guide: "encrypted disks greater than 4 TB in size isn't currently supported"
OS_DISK_GB = 30  # armsim's OS disk (ComputeModel._disks)

# A VM's flag -> the code its backup fails with (see the module's docstring for where each is met).
FLAGS: dict[str, str] = {
    "policy-deny": "UserErrorRequestDisallowedByPolicy",
    "keyvault-no-access": "UserErrorKeyvaultPermissionsNotConfigured",
    "bitlocker-locked": "ExtensionSnapshotBitlockerError",
    "machinekeys-acl": "ExtensionConfigParsingFailure",
    "blob-snapshot-limit": "ExtensionFailedSnapshotLimitReachedError",
}
_WINDOWS_ONLY = ("bitlocker-locked", "machinekeys-acl")


def encrypted(vm: VM) -> bool:
    """Whether the VM carries the Azure Disk Encryption extension."""
    return any(e.publisher.lower() == ADE_PUBLISHER.lower() and e.type in ADE_TYPES for e in vm.extensions.values())


def _oversized(vm: VM) -> bool:
    limit = MAX_ENCRYPTED_DISK_GB if encrypted(vm) else MAX_DISK_GB
    return any(gb > limit for gb in (OS_DISK_GB, *vm.data_disks_gb))


def platform_code(backup: BackupModel, vm: VM) -> str | None:
    """The code of the first broken link of this module (see the docstring), or None."""
    found = backup.item_for(vm)
    if found is not None and found[1].protection_state != "Protected":
        return "UserErrorBcmDatasourceNotPresent"
    if _oversized(vm):
        return "UserErrorUnsupportedDiskSize"
    if "policy-deny" in vm.flags:
        return FLAGS["policy-deny"]
    if "keyvault-no-access" in vm.flags and encrypted(vm):
        return FLAGS["keyvault-no-access"]
    if vm.power != "running" or not vm.guest.responsive:  # the backup extension does not run: nothing met inside
        return None
    for flag in ("bitlocker-locked", "machinekeys-acl", "blob-snapshot-limit"):
        if flag in vm.flags and (flag not in _WINDOWS_ONLY or vm.guest.os_type == "Windows"):
            return FLAGS[flag]
    return None


def condition(backup: BackupModel, vm: VM, code: str, *, key_vault: str = "kv-demo") -> None:
    """Set up `vm` so that its next backup fails with `code` (one of this module's codes), as tests need."""
    if code == "UserErrorBcmDatasourceNotPresent":
        found = backup.item_for(vm)
        if found is None:
            raise ValueError(f"{vm.name} is not protected")
        found[1].protection_state = "ProtectionStopped"
    elif code == "UserErrorUnsupportedDiskSize":
        vm.data_disks_gb.append(MAX_DISK_GB * 2)  # 64 TiB: an Ultra Disk or Premium SSD v2 can be that large
    elif code == "UserErrorKeyvaultPermissionsNotConfigured":
        _encrypt(vm, key_vault)
        vm.flags.add("keyvault-no-access")
    else:
        flag = next((f for f, c in FLAGS.items() if c == code), None)
        if flag is None:
            raise ValueError(f"not a code of armsim/platform_codes.py: {code}")
        vm.flags.add(flag)


def _encrypt(vm: VM, key_vault: str) -> None:
    """Give the VM the Azure Disk Encryption extension (schema v2.2, no Entra app), its Key Vault in the VM's group."""
    linux = vm.guest.os_type == "Linux"
    kind = ADE_TYPES[1] if linux else ADE_TYPES[0]
    vault_id = (f"/subscriptions/{vm.subscription}/resourceGroups/{vm.group}/providers/Microsoft.KeyVault/vaults/"
                f"{key_vault}")
    vm.extensions[kind.lower()] = Extension(kind, ADE_PUBLISHER, kind, "1.1" if linux else "2.2", settings={
        "EncryptionOperation": "EnableEncryption", "KeyVaultURL": f"https://{key_vault}.vault.azure.net/",
        "KeyVaultResourceId": vault_id, "KeyEncryptionAlgorithm": "RSA-OAEP", "VolumeType": "All"})
