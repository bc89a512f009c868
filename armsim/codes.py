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
}
