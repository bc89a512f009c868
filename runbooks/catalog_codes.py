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
          manual=("Wait for the running backup job to end, then retry; cancel it (Backup Jobs > Cancel, or "
                  "Stop-AzRecoveryServicesBackupJob) only if it is stuck.",)),
    Cause("C7.vault", "a backup job of the VM still runs in another (old) vault",
          fixes=("cancel-backup-job",),
          manual=("Cancel the backup job still running in the old vault (the guide's step), or let it end, then "
                  "retry the backup in the new vault.",)),
    Cause("C5.stuck", "the backup extension is stuck in deletion, or left the VM in provisioning state Failed",
          fixes=("remove-backup-extension",)),
    # --- Windows guest (runbooks/checks/windows.py) ------------------------------------------------------
    # SnapshotWithoutThreads first: the guide's step after the restart, but harmless, and the restart clears the
    # "Timed out" that calls for it (remediations/actions/vss.py).
    Cause("C9.writers", "VSS writers in a bad state (not [1] Stable)",
          fixes=("set-snapshot-without-threads", "restart-vss-writers"),
          manual=("Restart the failed writers' services (or VSS) in a scheduled window: the guide warns that "
                  "these restarts affect production.",)),
    Cause("C9.service", "the Volume Shadow Copy (VSS) service in a bad state",
          fixes=("restart-vss-service",),
          manual=("Restart the VSS service (net stop VSS, net start VSS) in a scheduled window, or restart the VM "
                  "at a scheduled downtime.",)),
    Cause("C10.tls", ".NET strong cryptography off (SchUseStrongCrypto): the extension cannot open a secure channel",
          fixes=("set-strong-crypto",),
          manual=("For each .NET Framework version under HKLM\\SOFTWARE\\Microsoft\\.NETFramework (and "
                  "WOW6432Node), add SchUseStrongCrypto=dword:00000001, then retry the backup.",)),
    Cause("C10.host", "snapshot network calls time out in the guest (BcdrAgentPersistentKeys not set for host "
                      "snapshots)",
          fixes=("set-snapshot-from-host",),
          manual=("If it keeps timing out, move the backup to a quieter time or resize the VM.",)),
    Cause("C11.com", "COM+ System Application stopped, or MSDTC not running as Network Service",
          fixes=("repair-com-msdtc",),
          manual=("Start COM+ System Application (net start COMSysApp); run MSDTC as Network Service and restart "
                  "COM+ in a maintenance window (it aborts distributed transactions in flight); if MSDTC will not "
                  "restart, msdtc -uninstall then msdtc -install, and start both services.",)),
    # --- Linux guest and the wire server (runbooks/checks/linux.py) ---------------------------------------
    Cause("C12.freeze", "file systems that cannot be frozen are not in MountsToSkip (/etc/azure/vmbackup.conf)",
          fixes=("skip-freeze-mounts",),
          manual=("Unmount, check (fsck) and remount a file system in a bad state; fix duplicate mount entries.",)),
    # NSG rules do not apply to 168.63.129.16 (what-is-ip-address-168-63-129-16.md: 80/32526 "isn't subject to the
    # configured network security groups"; network-security-groups-overview.md), so only the guest's firewall is
    # a cause; with the agent cut off, Run Command cannot run either: the steps are a person's, at the console.
    Cause("C1.wireserver", "a firewall inside the guest blocks the platform's wire server 168.63.129.16 (TCP 80, "
                           "32526; the guide also names 443)",
          manual=("Reach the guest without the agent (Serial Console, or az vm repair) and allow outbound TCP 80, 443 "
                  "and 32526 to 168.63.129.16 (NSG rules do not apply to it: only the guest's firewall can block it).",
                  "Windows Firewall: list blocking rules with Get-NetFirewallRule -Direction Outbound -Action Block "
                  "-Enabled True | Get-NetFirewallAddressFilter, then disable the one whose RemoteAddress covers "
                  "168.63.129.16 (Disable-NetFirewallRule -Name <rule>): a Block rule wins over any Allow rule. "
                  "With outbound blocked by default: New-NetFirewallRule -DisplayName 'Azure WireServer' "
                  "-Direction Outbound -RemoteAddress 168.63.129.16 -Protocol TCP -RemotePort 80,443,32526 "
                  "-Action Allow.",
                  "iptables: iptables -I OUTPUT 1 -d 168.63.129.16 -p tcp -m multiport --dports 80,443,32526 "
                  "-j ACCEPT, then save it (netfilter-persistent save, or service iptables save).",
                  "nftables: nft insert rule inet filter output ip daddr 168.63.129.16 tcp dport '{ 80, 443, 32526 }' "
                  "accept (use your table and chain; list them with nft list ruleset), and add it to "
                  "/etc/nftables.conf.",
                  "firewalld: firewall-cmd --permanent --direct --add-rule ipv4 filter OUTPUT 0 -d 168.63.129.16 "
                  "-p tcp -m multiport --dports 80,443,32526 -j ACCEPT; firewall-cmd --reload.",
                  "Then check from the guest: curl http://168.63.129.16/?comp=versions (Linux) or Test-NetConnection "
                  "168.63.129.16 -Port 32526 (Windows); the agent reports Ready again within minutes.")),
    # --- codes only a person can fix (runbooks/checks/platform.py) ----------------------------------------
    Cause("C13.disksize", "a disk larger than Azure Backup supports (the guide: over 32 TB, or over 4 TB encrypted)",
          manual=("Bring every disk within the supported size by splitting its data over smaller disks (the guide: "
                  "at most 32 TB a disk, 4 TB for an encrypted one; the support matrix now says 64 TB), or leave "
                  "the large disk out of the backup (selective disk backup).",)),
    Cause("C13.bitlocker", "a drive locked by BitLocker Drive Encryption: VSS cannot snapshot it",
          manual=("Turn off BitLocker for all drives on the VM (or unlock the locked drive) in the guest, check "
                  "that the VSS error is gone, then retry the backup.",)),
    Cause("C13.config", "the backup extension cannot parse its configuration (MachineKeys permissions changed)",
          manual=("Check icacls %systemdrive%\\programdata\\microsoft\\crypto\\rsa\\machinekeys (defaults: "
                  "Everyone (R,W), BUILTIN\\Administrators (F)) and reset the permissions; delete the certificates "
                  "issued to the classic deployment model or 'Windows Azure CRP Certificate Generator' (Personal > "
                  "Certificates); then trigger a backup.",)),
    Cause("C13.snaplimit", "the disks' blob snapshot limit is reached",
          manual=("Delete the disk blob snapshots that are not needed (never the disk blobs); with soft delete on "
                  "the disks' storage accounts, shorten its retention; with Site Recovery on the VM, set "
                  "isanysnapshotfailed to false in /etc/azure/vmbackup.conf and schedule Site Recovery away from "
                  "the backup.",)),
    Cause("C13.keyvault", "Azure Backup lacks permissions on the Key Vault of an encrypted VM",
          manual=("Give the Backup Management Service access to the VM's Key Vault (access policy: keys get, "
                  "list, backup; secrets get, list, backup; or the Key Vault RBAC role), then retry after a "
                  "while.",)),
    Cause("C13.datasource", "the VM is not (actively) protected: protection stopped or paused",
          manual=("Resume protection of the VM in its vault (Backup items > the VM > Resume backup) if it should "
                  "be backed up: a person's decision, it restarts the policy's schedule, retention and billing.",)),
    Cause("C13.policy", "an Azure Policy denies the snapshot (the restore-point resources or their tags)",
          manual=("Change the policy's effect from Deny to Modify, or create the restore-point resource group "
                  "yourself with the naming schema Azure Backup requires (AzureBackupRG_<geo>_<n>) and the tags "
                  "the policy wants.",)),
)

# Cause groups of the new codes, expanded to sub-causes in the order they are checked.
GROUPS: dict[str, tuple[str, ...]] = {
    "C6": ("C6.lock", "C6.collection"), "C7": ("C7.job", "C7.vault"), "C8": ("C8.lock",),
    "C9": ("C9.writers", "C9.service"), "C10": ("C10.tls", "C10.host"), "C11": ("C11.com",),
    "C12": ("C12.freeze",),
}

NEW_ENTRIES: tuple[ErrorEntry, ...] = (
    ErrorEntry("E6", "The Restore Point collection max limit has reached", ("UserErrorRpCollectionLimitReached",),
               ("C6",), guide=f"{GUIDE_AGENT}#usererrorrpcollectionlimitreached---the-restore-point-collection-max-limit-has-reached"),
    ErrorEntry("E7", "Unable to initiate backup as another backup operation is currently in progress",
               ("UserErrorBackupOperationInProgress",), ("C7",), guide=f"{GUIDE_AGENT}#usererrorbackupoperationinprogress---unable-to-initiate-backup-as-another-backup-operation-is-currently-in-progress"),
    ErrorEntry("E8", "The resource is in a locked state", ("UserErrorResourceIsInLockedState",), ("C8",),
               guide=f"{GUIDE_AGENT}#remove_lock_from_the_recovery_point_resource_group"),
    ErrorEntry("E9", "Extension state is not supportive to the backup operation", ("ExtensionStuckInDeletionState",),
               ("C5.stuck", "C5", "C2", "C3"), guide=f"{GUIDE_VMS}#extensionstuckindeletionstate---extension-state-is-not-supportive-to-the-backup-operation"),
    ErrorEntry("E10", "The VM is in failed provisioning state", ("UserErrorVmProvisioningStateFailed",),
               ("C5.stuck", "C5", "C4", "C2", "C3"), guide=f"{GUIDE_AGENT}#usererrorvmprovisioningstatefailed---the-vm-is-in-failed-provisioning-state"),
    ErrorEntry("E11", "The guest agent version is not supported", ("UserErrorGuestAgentVersionUnsupported",),
               ("C3", "C2", "C1"), guide=f"{GUIDE_AGENT}#the-agent-installed-in-the-vm-is-out-of-date-for-linux-vms"),
    ErrorEntry("E12", "Snapshot operation failed because VSS writers were in a bad state",
               ("ExtensionFailedVssWriterInBadState",), ("C9",), guide=f"{GUIDE_VMS}#extensionfailedvsswriterinbadstate---snapshot-operation-failed-because-vss-writers-were-in-a-bad-state"),
    ErrorEntry("E13", "Snapshot operation failed because of the VSS service in a bad state",
               ("ExtensionFailedVssServiceInBadState",), ("C9.service", "C9.writers"), guide=f"{GUIDE_VMS}#extensionfailedvssserviceinbadstate---snapshot-operation-failed-due-to-vss-volume-shadow-copy-service-in-bad-state"),
    ErrorEntry("E14", "Snapshot operation failed with a failure to create a secure network communication channel",
               ("ExtensionSnapshotFailedNoSecureNetwork",), ("C10.tls", "C1"), guide=f"{GUIDE_VMS}#extensionsnapshotfailednosecurenetwork---the-snapshot-operation-failed-because-of-failure-to-create-a-secure-network-communication-channel"),
    ErrorEntry("E15", "Snapshot operation failed due to inadequate VM resources",
               ("ExtensionFailedTimeoutVMNetworkUnresponsive",), ("C10.host", "C4.load"), guide=f"{GUIDE_VMS}#extensionfailedtimeoutvmnetworkunresponsive---snapshot-operation-failed-due-to-inadequate-vm-resources"),
    ErrorEntry("E16", "COM+ error: the backup extension could not talk to COM+ or MSDTC",
               ("ExtensionSnapshotFailedCOM", "ExtensionInstallationFailedCOM", "ExtensionInstallationFailedMDTC"),
               ("C11", "C5"), guide=f"{GUIDE_VMS}#extensionsnapshotfailedcom--extensioninstallationfailedcom--extensioninstallationfailedmdtc---extension-installationoperation-failed-due-to-a-com-error"),
    ErrorEntry("E17", "Failed to freeze one or more mount-points of the VM to take a file-system consistent snapshot",
               ("UserErrorFsFreezeFailed", "UserErrorFsFreezeTimeout"), ("C12",), guide=f"{GUIDE_VMS}#usererrorfsfreezefailed---failed-to-freeze-one-or-more-mount-points-of-the-vm-to-take-a-file-system-consistent-snapshot"),
    ErrorEntry("E18", "The configured disk size(s) is currently not supported by Azure Backup",
               ("UserErrorUnsupportedDiskSize",), ("C13.disksize",), guide=f"{GUIDE_AGENT}#usererrorunsupporteddisksize---the-configured-disk-sizes-is-currently-not-supported-by-azure-backup"),
    ErrorEntry("E19", "VSS snapshot failed: the drive is locked by BitLocker", ("ExtensionSnapshotBitlockerError",),
               ("C13.bitlocker",), guide=f"{GUIDE_VMS}#extensionsnapshotbitlockererror---the-snapshot-operation-failed-with-the-volume-shadow-copy-service-vss-operation-error"),
    ErrorEntry("E20", "Failure in parsing the config for the backup extension", ("ExtensionConfigParsingFailure",),
               ("C13.config",), guide=f"{GUIDE_VMS}#extensionconfigparsingfailure---failure-in-parsing-the-config-for-the-backup-extension"),
    ErrorEntry("E21", "Snapshot operation failed as snapshot limit is exceeded for some of the disks attached",
               ("ExtensionFailedSnapshotLimitReachedError",), ("C13.snaplimit",), guide=f"{GUIDE_VMS}#extensionfailedsnapshotlimitreachederror---snapshot-operation-failed-as-snapshot-limit-is-exceeded-for-some-of-the-disks-attached"),
    ErrorEntry("E22", "Backup doesn't have sufficient permissions to the key vault for backup of encrypted VMs",
               ("UserErrorKeyvaultPermissionsNotConfigured",), ("C13.keyvault",), guide=f"{GUIDE_AGENT}#usererrorkeyvaultpermissionsnotconfigured---backup-doesnt-have-sufficient-permissions-to-the-key-vault-for-backup-of-encrypted-vms"),
    ErrorEntry("E23", "This virtual machine is not (actively) protected by Azure Backup",
               ("UserErrorBcmDatasourceNotPresent",), ("C13.datasource",), guide=f"{GUIDE_AGENT}#usererrorbcmdatasourcenotpresent---backup-failed-this-virtual-machine-is-not-actively-protected-by-azure-backup"),
    ErrorEntry("E24", "An invalid policy is configured on the VM which is preventing Snapshot operation",
               ("UserErrorRequestDisallowedByPolicy",), ("C13.policy",), guide=f"{GUIDE_VMS}#usererrorrequestdisallowedbypolicy---an-invalid-policy-is-configured-on-the-vm-which-is-preventing-snapshot-operation"),
)
