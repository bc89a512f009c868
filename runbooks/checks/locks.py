"""Checks of the lock and restore-point causes (C6 restore-point collection limit, C8 a lock on the VM): issue #14.

Each asks its fix's read-only preview (the engine's probe): the locks and restore point collections are read only
for the runbooks that list these causes, and the finding's evidence is the plan's (the lock by name, level, scope,
notes and owners; the collection and its count of restore points).
"""

from __future__ import annotations

from remediations.facts import Facts

from ..finding import Check, Finding

__all__ = ["CHECKS"]


def _probe(cause: str, action: str, what: str) -> Check:
    """A check that leaves the verdict to `action`'s preview (present iff it plans a change)."""
    def check(f: Facts) -> Finding:
        if f.backup is None:
            return Finding(cause, "unknown", f"{f.vm.name} is not protected by Azure Backup: {what} not read")
        return Finding(cause, "unknown", f"{what}: read from ARM", probe=action)
    return check


CHECKS: dict[str, Check] = {
    "C6.lock": _probe("C6.lock", "remove-restore-point-lock",
                      "the VM's restore point collection and the locks that block its cleanup"),
    "C6.collection": _probe("C6.collection", "delete-restore-point-collection",
                            "the VM's restore point collection (full, and no lock blocking its cleanup)"),
    "C8.lock": _probe("C8.lock", "remove-vm-lock", "ReadOnly locks on the VM and its resource group"),
}
