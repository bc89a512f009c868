"""The registry of actions, by name; built-in modules are imported only when an action is asked for."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the names (tab completion, --help) must not import the SDK
    from ..action import Action

__all__ = ["ACTION_NAMES", "action_class", "action_names", "get_action", "register", "unregister"]

# name -> (module under remediations.actions, class)
_WHERE: dict[str, tuple[str, str]] = {
    "remove-backup-extension": ("extension", "RemoveBackupExtension"),
    "allow-backup-egress": ("egress", "AllowBackupEgress"),
    "allow-backup-route": ("route", "AllowBackupRoute"),
    "set-vss-copy-backup": ("guest", "SetVssCopyBackup"),
    "restart-guest-agent": ("guest", "RestartGuestAgent"),
    "upgrade-linux-agent": ("guest", "UpgradeLinuxAgent"),
    "enable-iaasvmprovider": ("guest", "EnableIaasVmProvider"),
    "set-guest-proxy": ("proxy", "SetGuestProxy"),
    "skip-freeze-mounts": ("fsfreeze", "SkipFreezeMounts"),
    "restart-vss-writers": ("vss", "RestartVssWriters"),
    "restart-vss-service": ("vss", "RestartVssService"),
    "set-snapshot-without-threads": ("vss", "SetSnapshotWithoutThreads"),
    "set-strong-crypto": ("winguest", "SetStrongCrypto"),
    "set-snapshot-from-host": ("winguest", "SetSnapshotFromHost"),
    "repair-com-msdtc": ("winguest", "RepairComMsdtc"),
    "power-off": ("power", "PowerOff"),
    "trigger-backup": ("backup", "TriggerBackup"),
    "remove-vm-lock": ("locks", "RemoveVmLock"),
    "remove-restore-point-lock": ("locks", "RemoveRestorePointLock"),
    "delete-restore-point-collection": ("locks", "DeleteRestorePointCollection"),
    "wait-backup-job": ("jobs", "WaitBackupJob"),
    "cancel-backup-job": ("jobs", "CancelBackupJob"),
}
ACTION_NAMES: tuple[str, ...] = tuple(_WHERE)  # the built-in actions
_ADDED: dict[str, type[Action[Any, Any]]] = {}  # registered at run time (a plug-in, a test's toy action)


def register(cls: type[Action[Any, Any]]) -> type[Action[Any, Any]]:
    """Add an action class under its `name` (usable as a decorator); ValueError when the name is taken."""
    if cls.name in _WHERE or cls.name in _ADDED:
        raise ValueError(f"an action called {cls.name!r} is registered already")
    _ADDED[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove an action added with `register`; KeyError for a built-in or unknown name."""
    del _ADDED[name]


def action_names() -> tuple[str, ...]:
    """Every action's name: the built-ins, then those registered."""
    return (*ACTION_NAMES, *_ADDED)


def action_class(name: str) -> type[Action[Any, Any]]:
    """The class of the action called `name`; KeyError naming the known ones otherwise."""
    if name in _ADDED:
        return _ADDED[name]
    try:
        module, cls = _WHERE[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r}; known: {', '.join(action_names())}") from None
    found: type[Action[Any, Any]] = getattr(import_module(f"{__name__}.{module}"), cls)
    return found


def get_action(name: str) -> Action[Any, Any]:
    """A fresh instance of the action called `name`; KeyError naming the known ones otherwise."""
    return action_class(name)()
