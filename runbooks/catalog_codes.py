"""The runbooks of the newer error codes (issue #14): today's two troubleshooting guides, beyond the 2017 article.

Sources: "Troubleshoot Azure Backup failures caused by agent or extension issues" (GUIDE_AGENT) and
"Troubleshoot backup failures on Azure VMs" (GUIDE_VMS), both ms.date 11/12/2025; their facts, with the
commits read, are in docs/error-codes.md. Each entry's `guide` is the guide's section for its code.
"""

from __future__ import annotations

from .catalog_types import Cause, ErrorEntry

__all__ = ["GROUPS", "NEW_CAUSES", "NEW_ENTRIES"]

GUIDE_AGENT = "https://learn.microsoft.com/azure/backup/backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout"
GUIDE_VMS = "https://learn.microsoft.com/azure/backup/backup-azure-vms-troubleshoot"

NEW_CAUSES: tuple[Cause, ...] = (
    # --- restore points and locks (runbooks/checks/locks.py) ---------------------------------------------
    Cause("C6.lock", "a lock on the restore-point resource group (AzureBackupRG_<geo>_<n>) blocks the cleanup of old "
                     "restore points",
          fixes=("remove-restore-point-lock",),
          manual=("Remove the lock on the restore-point resource group (or on the subscription), then run an "
                  "on-demand backup: Azure cleans up old restore points during it; the first run may still fail.",)),
    Cause("C6.collection", "the VM's restore-point collection is at its limit and was not cleaned up",
          fixes=("delete-restore-point-collection",),
          manual=("Delete the VM's restore-point collection (AzureBackupRG_<geo>_<n> > AzureBackup_<VM>_<n>, "
                  "'Show hidden types'); the next backup creates a new one.",)),
    Cause("C8.lock", "a read-only lock on the VM or its resource group blocks the backup",
          fixes=("remove-vm-lock",),
          manual=("Remove the read-only lock on the VM or its resource group (a delete lock does not stop a "
                  "backup), or ask its owner to.",)),
    # --- jobs and extension state (runbooks/checks/jobs.py) ----------------------------------------------
    Cause("C7.job", "another backup of the VM is still running",
          fixes=("wait-backup-job", "cancel-backup-job"),
          manual=("Wait for the running backup job to end, then retry; cancel it only if it is stuck.",)),
    Cause("C7.vault", "a backup job of the VM runs in another (old) vault",
          manual=("Stop protection of the VM in the old vault (or let its job end) before backing it up in the "
                  "new one.",)),
    Cause("C5.stuck", "the backup extension is stuck in deletion, or left the VM in provisioning state Failed",
          fixes=("remove-backup-extension",)),
    # --- Windows guest (runbooks/checks/windows.py) ------------------------------------------------------
    Cause("C9.writers", "VSS writers in a bad state (not [1] Stable)",
          fixes=("restart-vss-writers", "set-snapshot-without-threads"),
          manual=("Restart the failed writers' services (or VSS) in a scheduled window: the guide warns that "
                  "these restarts affect production.",)),
    Cause("C9.service", "the Volume Shadow Copy (VSS) service in a bad state",
          fixes=("restart-vss-service",),
          manual=("Restart the VSS service (net stop VSS, net start VSS) in a scheduled window, or restart the VM "
                  "at a scheduled downtime.",)),
    Cause("C10.tls", ".NET strong cryptography off (SchUseStrongCrypto): the extension cannot open a secure channel",
          fixes=("set-strong-crypto",)),
    Cause("C10.host", "snapshot network calls time out in the guest (BcdrAgentPersistentKeys not set for host "
                      "snapshots)",
          fixes=("set-snapshot-from-host",),
          manual=("If it keeps timing out, move the backup to a quieter time or resize the VM.",)),
    Cause("C11.com", "COM+ System Application or MSDTC not running as the extension needs",
          fixes=("repair-com-msdtc",)),
    # --- Linux guest and the wire server (runbooks/checks/linux.py) ---------------------------------------
    Cause("C12.freeze", "file systems that cannot be frozen are not in MountsToSkip (/etc/azure/vmbackup.conf)",
          fixes=("skip-freeze-mounts",),
          manual=("Unmount, check (fsck) and remount a file system in a bad state; fix duplicate mount entries.",)),
    Cause("C1.wireserver", "the platform's wire server 168.63.129.16 (TCP 80, 443, 32526) is blocked",
          manual=("Allow outbound TCP 80, 443 and 32526 to 168.63.129.16 in the guest's firewall "
                  "(Windows Firewall, iptables/nftables/firewalld).",)),
    # --- codes only a person can fix (runbooks/checks/platform.py) ----------------------------------------
    Cause("C13.disksize", "a disk larger than Azure Backup supports",
          manual=("Move data to disks of a supported size (or exclude the disk from the backup).",)),
    Cause("C13.bitlocker", "a drive locked by BitLocker",
          manual=("Unlock the drive (or turn off BitLocker on it) in the guest, then retry.",)),
    Cause("C13.config", "the backup extension cannot parse its configuration (MachineKeys permissions)",
          manual=("Restore the permissions of C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys and delete the "
                  "'Windows Azure CRP Certificate Generator' certificates, as the guide says.",)),
    Cause("C13.snaplimit", "the disks' blob snapshot limit is reached",
          manual=("Delete blob snapshots that are not needed (never the blobs), and reschedule Site Recovery or "
                  "other snapshot tools away from the backup.",)),
    Cause("C13.keyvault", "Azure Backup lacks permissions on the Key Vault of an encrypted VM",
          manual=("Give the Backup Management Service access to the Key Vault (access policy: keys get, list, "
                  "backup; secrets get, list, backup; or the RBAC role).",)),
    Cause("C13.datasource", "the VM is not (actively) protected: protection stopped or paused",
          manual=("Resume protection of the VM in its vault (a person's decision: it restarts billing and "
                  "retention).",)),
    Cause("C13.policy", "an Azure Policy denies the snapshot (restore-point resources or their tags)",
          manual=("Change the policy's effect (Deny to Modify), or exempt the restore-point resource group.",)),
)

# Cause groups of the new codes, expanded to sub-causes in the order they are checked.
GROUPS: dict[str, tuple[str, ...]] = {
    "C6": ("C6.lock", "C6.collection"), "C7": ("C7.job", "C7.vault"), "C8": ("C8.lock",),
    "C9": ("C9.writers", "C9.service"), "C10": ("C10.tls", "C10.host"), "C11": ("C11.com",),
    "C12": ("C12.freeze",),
}

NEW_ENTRIES: tuple[ErrorEntry, ...] = (
    ErrorEntry("E6", "The Restore Point collection max limit has reached", ("UserErrorRpCollectionLimitReached",),
               ("C6",), guide=GUIDE_AGENT),
    ErrorEntry("E7", "Unable to initiate backup as another backup operation is currently in progress",
               ("UserErrorBackupOperationInProgress",), ("C7",), guide=GUIDE_AGENT),
    ErrorEntry("E8", "The resource is in a locked state", ("UserErrorResourceIsInLockedState",), ("C8",),
               guide=GUIDE_VMS),
    ErrorEntry("E9", "Extension state is not supportive to the backup operation", ("ExtensionStuckInDeletionState",),
               ("C5.stuck", "C5", "C2", "C3"), guide=GUIDE_VMS),
    ErrorEntry("E10", "The VM is in failed provisioning state", ("UserErrorVmProvisioningStateFailed",),
               ("C5.stuck", "C5", "C4", "C2", "C3"), guide=GUIDE_AGENT),
    ErrorEntry("E11", "The guest agent version is not supported", ("UserErrorGuestAgentVersionUnsupported",),
               ("C3", "C2", "C1"), guide=GUIDE_AGENT),
    ErrorEntry("E12", "Snapshot operation failed because VSS writers were in a bad state",
               ("ExtensionFailedVssWriterInBadState",), ("C9",), guide=GUIDE_VMS),
    ErrorEntry("E13", "Snapshot operation failed because of the VSS service in a bad state",
               ("ExtensionFailedVssServiceInBadState",), ("C9.service", "C9.writers"), guide=GUIDE_VMS),
    ErrorEntry("E14", "Snapshot operation failed with a failure to create a secure network communication channel",
               ("ExtensionSnapshotFailedNoSecureNetwork",), ("C10.tls", "C1"), guide=GUIDE_VMS),
    ErrorEntry("E15", "Snapshot operation failed due to inadequate VM resources",
               ("ExtensionFailedTimeoutVMNetworkUnresponsive",), ("C10.host", "C4.load"), guide=GUIDE_VMS),
    ErrorEntry("E16", "COM+ error: the backup extension could not talk to COM+ or MSDTC",
               ("ExtensionSnapshotFailedCOM", "ExtensionInstallationFailedCOM", "ExtensionInstallationFailedMDTC"),
               ("C11", "C5"), guide=GUIDE_VMS),
    ErrorEntry("E17", "Failed to freeze one or more mount-points of the VM to take a file-system consistent snapshot",
               ("UserErrorFsFreezeFailed", "UserErrorFsFreezeTimeout"), ("C12",), guide=GUIDE_VMS),
    ErrorEntry("E18", "The configured disk size(s) is currently not supported by Azure Backup",
               ("UserErrorUnsupportedDiskSize",), ("C13.disksize",), guide=GUIDE_AGENT),
    ErrorEntry("E19", "VSS snapshot failed: the drive is locked by BitLocker", ("ExtensionSnapshotBitlockerError",),
               ("C13.bitlocker",), guide=GUIDE_VMS),
    ErrorEntry("E20", "Failure in parsing the config for the backup extension", ("ExtensionConfigParsingFailure",),
               ("C13.config",), guide=GUIDE_VMS),
    ErrorEntry("E21", "Snapshot operation failed as snapshot limit is exceeded for some of the disks attached",
               ("ExtensionFailedSnapshotLimitReachedError",), ("C13.snaplimit",), guide=GUIDE_VMS),
    ErrorEntry("E22", "Backup doesn't have sufficient permissions to the key vault for backup of encrypted VMs",
               ("UserErrorKeyvaultPermissionsNotConfigured",), ("C13.keyvault",), guide=GUIDE_AGENT),
    ErrorEntry("E23", "This virtual machine is not (actively) protected by Azure Backup",
               ("UserErrorBcmDatasourceNotPresent",), ("C13.datasource",), guide=GUIDE_AGENT),
    ErrorEntry("E24", "An invalid policy is configured on the VM which is preventing Snapshot operation",
               ("UserErrorRequestDisallowedByPolicy",), ("C13.policy",), guide=GUIDE_VMS),
)
