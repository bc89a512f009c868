"""Shared judgements of "broken": diagnosis and the actions decide with these same rules and constants.

Facts about Azure that both rooms need live here, so that diagnosis never imports an action module.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: this module stays free of I/O imports (netrules, pure, uses it)
    from .reads import ExtensionView

__all__ = ["BACKUP_PORTS", "MIN_LINUX_AGENT", "TRANSITIONING", "version_tuple", "why_remove"]

# The oldest Linux agent Azure supports (KB 4049215: "later than or equal to version 2.2.53.1"); the
# default of upgrade-linux-agent's `minimum_version`.
MIN_LINUX_AGENT = "2.2.53.1"
# Outbound ports Azure Backup's snapshot extension needs to Storage: 443 only (8443 is obsolete).
BACKUP_PORTS: tuple[int, ...] = (443,)
TRANSITIONING = ("updating", "creating", "deleting", "transitioning")


def version_tuple(v: str | None) -> tuple[int, ...]:
    """'2.2.53.1' -> (2, 2, 53, 1); unknown -> ()."""
    return tuple(int(p) for p in re.findall(r"\d+", v or ""))


def why_remove(ext: ExtensionView) -> str | None:
    """Why this backup extension is broken (state or handler status), or None when it looks healthy."""
    state = ext.state or "Unknown"
    if state.lower() == "failed":
        return f"{ext.type} is in provisioning state {state}"
    if state.lower() in TRANSITIONING:
        return f"{ext.type} is stuck in provisioning state {state}"
    if ext.handler_status is not None and ext.handler_status.lower() != "ready":
        return f"the guest agent reports the {ext.type} handler {ext.handler_status}"
    return None
