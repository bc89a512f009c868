"""The catalog of actions, by name; modules are imported only when an action is asked for."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["ACTION_NAMES", "get_action"]

# name -> (module under remediations.actions, class)
_WHERE: dict[str, tuple[str, str]] = {
    "remove-backup-extension": ("extension", "RemoveBackupExtension"),
    "allow-backup-egress": ("egress", "AllowBackupEgress"),
    "set-vss-copy-backup": ("guest", "SetVssCopyBackup"),
    "restart-guest-agent": ("guest", "RestartGuestAgent"),
    "upgrade-linux-agent": ("guest", "UpgradeLinuxAgent"),
    "enable-iaasvmprovider": ("guest", "EnableIaasVmProvider"),
    "power-off": ("power", "PowerOff"),
    "trigger-backup": ("backup", "TriggerBackup"),
}
ACTION_NAMES: tuple[str, ...] = tuple(_WHERE)


def get_action(name: str) -> Any:
    """A fresh instance of the action called `name`; KeyError naming the known ones otherwise."""
    try:
        module, cls = _WHERE[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r}; known: {', '.join(ACTION_NAMES)}") from None
    return getattr(import_module(f"{__name__}.{module}"), cls)()
