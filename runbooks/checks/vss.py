"""Checks of the VSS causes of the newer codes (C9.writers VSS writers, C9.service the VSS service): issue #14.

Both are in-guest: a running Windows VM whose agent answers is asked through Run Command, by the read-only preview
of the cause's first fix (`windows-vss-writers-get`: the writers as vssadmin lists them, the VSS service). The
writers' finding is present when a writer is not [1] Stable (its evidence names each one and its state); the
service's when VSS hangs in a pending state or vssadmin fails.
"""

from __future__ import annotations

from ..finding import Check, guest_probe

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {
    "C9.writers": guest_probe("C9.writers", "restart-vss-writers", "the VSS writers' states (vssadmin list writers)"),
    "C9.service": guest_probe("C9.service", "restart-vss-service", "the Volume Shadow Copy service's state"),
}
