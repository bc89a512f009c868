"""The error codes armsim's backups fail with: code -> (armsim's own error number, message, recommendations).

Numbers are armsim's (Azure does not publish its numeric codes); messages are the guides' (docs/error-codes.md).
Ranges: 400235-400299 the 2017 article's; 400300-400369 the newer codes of issue #14, by family.
"""

from __future__ import annotations

__all__ = ["ERRORS"]

ERRORS: dict[str, tuple[int, str, list[str]]] = {
    "UserErrorGuestAgentStatusUnavailable": (
        400235, "VM Agent unable to communicate with Azure Backup",
        ["Ensure the VM agent is installed, running and up to date, and the VM has network connectivity."]),
    "GuestAgentSnapshotTaskStatusError": (
        400236, "Could not communicate with the VM agent for snapshot status",
        ["Restart the VM agent, or reinstall it if it does not respond."]),
    "ExtensionSnapshotFailedNoNetwork": (
        400237, "Snapshot operation failed due to no network connectivity on the virtual machine",
        ["Allow outbound access to Azure Storage in the VM's region (service tag Storage.<region>)."]),
    "ExtensionOperationFailedForManagedDisks": (
        400238, "VMSnapshot extension operation failed",
        ["Uninstall the VMSnapshot extension to force a reload, then retry the backup."]),
    "BackUpOperationFailed": (
        400239, "Backup failed with an internal error - Please retry the operation in a few minutes",
        ["Retry the operation in a few minutes."]),
    "UserErrorBackupOperationInProgress": (
        400240, "Unable to initiate backup as another backup operation is currently in progress",
        ["Wait until the previous backup operation is complete."]),
    # restore points and locks (issue #14, H1; armsim/restorepoints.py, armsim/locks.py)
    "UserErrorRpCollectionLimitReached": (
        400300, "The Restore Point collection max limit has reached.",
        ["Remove the lock on the restore point resource group (AzureBackupRG_<Geo>_<number>), or on the "
         "subscription, and retry the operation to trigger clean-up; only 18 instant restore points can be "
         "associated with a VM at any given time.",
         "If the clean-up does not happen, delete the VM's restore point collection and retry the backup."]),
    "UserErrorResourceIsInLockedState": (
        400301, "The resource is in a locked state",
        ["Remove the read-only lock on the virtual machine (or on its resource group), then retry the backup."]),
    # jobs and extension state (issue #14, H2): messages and recommendations of the guides (docs/error-codes.md)
    "ExtensionStuckInDeletionState": (
        400310, "Extension state is not supportive to the backup operation",
        ["Uninstall the VMSnapshot (VMSnapshotLinux) extension, then retry the backup: the next backup "
         "reinstalls it."]),
    "UserErrorVmProvisioningStateFailed": (
        400311, "The VM is in failed provisioning state",
        ["An extension failure puts the VM in Failed state: go to the VM's extensions and fix the failed one "
         "(uninstall a failed VMSnapshot extension), then retry the backup."]),
    "UserErrorGuestAgentVersionUnsupported": (
        400312, "The guest agent version is not supported",
        ["Update the Linux VM agent to at least the minimum supported version through the distribution's "
         "repository, then retry the backup."]),
    "ExtensionFailedVssWriterInBadState": (
        400320, "Snapshot operation failed because VSS writers were in a bad state",
        ["Restart the services of the VSS writers that are not [1] Stable (vssadmin list writers) at a scheduled "
         "downtime; if that does not help, set SnapshotWithoutThreads = True under "
         "HKLM\\SOFTWARE\\Microsoft\\BcdrAgentPersistentKeys."]),
    "ExtensionFailedVssServiceInBadState": (
        400321, "Snapshot operation failed due to VSS (Volume Shadow Copy) service in bad state",
        ["Restart the Volume Shadow Copy service (net stop VSS, net start VSS); if the issue persists, restart the VM "
         "at the scheduled downtime."]),
    # --- Linux file-system freeze (armsim/fsfreeze.py): backup-azure-vms-troubleshoot.md's message and steps ---
    "UserErrorFsFreezeFailed": (
        400340, "Failed to freeze one or more mount-points of the VM to take a file-system consistent snapshot.",
        ["Unmount the devices whose file system state was not cleaned (umount), check them (fsck) and mount them "
         "again; if they cannot be unmounted, add their mount points to MountsToSkip under [SnapshotThread] in "
         "/etc/azure/vmbackup.conf (copy it from the extension's main/tempPlugin/vmbackup.conf when missing).",
         "Check the output of 'mount' for duplicate entries of the mount points that failed to freeze."]),
    "UserErrorFsFreezeTimeout": (
        400341, "Failed to freeze one or more mount-points of the VM to take a file-system consistent snapshot.",
        ["As for UserErrorFsFreezeFailed: skip the mount points that cannot be frozen (MountsToSkip)."]),
    # --- codes only a person can fix (armsim/platform_codes.py): the guides' messages and recommended actions ---
    "UserErrorUnsupportedDiskSize": (
        400350, "The configured disk size(s) is currently not supported by Azure Backup.",
        ["Ensure that the disk size(s) is less than or equal to the supported limit by splitting the disk(s)."]),
    "ExtensionSnapshotBitlockerError": (
        400351, "The snapshot operation failed with the Volume Shadow Copy Service (VSS) operation error This drive "
                "is locked by BitLocker Drive Encryption. You must unlock this drive from the Control Panel.",
        ["Turn off BitLocker for all drives on the VM and check if the VSS issue is resolved."]),
    "ExtensionConfigParsingFailure": (
        400352, "Failure in parsing the config for the backup extension.",
        ["Verify that permissions on the MachineKeys directory (%systemdrive%\\programdata\\microsoft\\crypto\\rsa"
         "\\machinekeys) are the default ones; correct them, delete the certificates issued to "
         "Windows Azure CRP Certificate Generator, and trigger the backup."]),
    "ExtensionFailedSnapshotLimitReachedError": (
        400353, "Snapshot operation failed as snapshot limit is exceeded for some of the disks attached",
        ["Delete the disk blob-snapshots that aren't required (not the disk blobs); configure soft-delete retention "
         "so existing snapshots are less than the maximum allowed; schedule Azure Site Recovery at a different "
         "time."]),
    "UserErrorKeyvaultPermissionsNotConfigured": (
        400354, "Backup doesn't have sufficient permissions to the key vault for backup of encrypted VMs.",
        ["For a backup operation to succeed on encrypted VMs, it must have permissions to access the key vault. If "
         "the required permissions have already been set, retry the operation after a little while."]),
    "UserErrorBcmDatasourceNotPresent": (
        400355, "Backup failed: This virtual machine is not (actively) protected by Azure Backup.",
        ["Check if the given virtual machine is actively (not in pause state) protected by Azure Backup. To "
         "overcome this issue, ensure the virtual machine is active and then retry the operation."]),
    "UserErrorRequestDisallowedByPolicy": (
        400356, "An invalid policy is configured on the VM which is preventing Snapshot operation.",
        ["Change the Azure Policy from a Deny effect to a Modify effect, or create the resource group manually "
         "according to the naming schema required by Azure Backup."]),
    "ExtensionSnapshotFailedNoSecureNetwork": (
        400330, "The snapshot operation failed because of failure to create a secure network communication channel.",
        ["For each .NET Framework version under HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\.NETFramework (and "
         "WOW6432Node), add SchUseStrongCrypto=dword:00000001."]),
    "ExtensionFailedTimeoutVMNetworkUnresponsive": (
        400331, "Snapshot operation failed due to inadequate VM resources.",
        ["Create the snapshot through the host: REG ADD \"HKLM\\SOFTWARE\\Microsoft\\BcdrAgentPersistentKeys\" /v "
         "SnapshotMethod /t REG_SZ /d firstHostThenGuest /f and /v CalculateSnapshotTimeFromHost /t REG_SZ /d True /f; "
         "retry the backup.",
         "If the issue persists, change the backup schedule to a time when the VM is under less load.",
         "Try increasing the size of the VM and retry the operation."]),
    "ExtensionSnapshotFailedCOM": (
        400332, "Snapshot operation failed due to COM+ error",
        ["Start the COM+ System Application service (net start COMSysApp); make sure the Distributed Transaction "
         "Coordinator runs as Network Service, then trigger a backup."]),
    "ExtensionInstallationFailedCOM": (
        400333, "Extension installation/operation failed due to a COM+ error",
        ["Start the COM+ System Application service (net start COMSysApp); make sure the Distributed Transaction "
         "Coordinator runs as Network Service, then trigger a backup."]),
    "ExtensionInstallationFailedMDTC": (
        400334, "Extension installation failed with the error \"COM+ was unable to talk to the Microsoft Distributed "
                "Transaction Coordinator\"",
        ["Run the Distributed Transaction Coordinator service as Network Service and restart COM+ System "
         "Application; if it cannot restart, reinstall MSDTC (msdtc -uninstall, msdtc -install) and start it."]),
}
