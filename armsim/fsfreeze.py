"""The Linux file-system freeze of a backup (UserErrorFsFreezeFailed), /etc/azure/vmbackup.conf, and its scripts.

What the backup extension does (Azure/azure-linux-extensions VMBackup):
- `Utils/HandlerUtil.py` `get_value_from_configfile`: Python's ConfigParser reads /etc/azure/vmbackup.conf, section
  `[SnapshotThread]`; any parse error (a duplicate key or section, no section header) makes it ignore the file.
  Option names are case-insensitive (ConfigParser lowers them); `=` and `:` both separate a key from its value.
- `fsfreezer.py` `freeze_safe`: `MountsToSkip` is split on "," (entries are not trimmed); every mount of type
  ext3/ext4/xfs/btrfs (not a loop device, not the resource disk) whose mount point is not in that list is frozen;
  `/` is frozen whatever the list says. The `safefreeze` binary logs `Failed to FIFREEZE: <mount>` /
  `Failed to FITHAW: <mount>` (`safefreeze/src/safefreeze.c`) to the extension's log
  (/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log: HandlerUtil's log file).
- The template the guide copies (`main/tempPlugin/vmbackup.conf` in the extension's directory under
  /var/lib/waagent) starts with `[SnapshotThread]` and `fsfreeze: True`.
The guide (backup-azure-vms-troubleshoot.md, UserErrorFsFreezeFailed): find the failed mount points in the
extension log, add them to `MountsToSkip` in /etc/azure/vmbackup.conf (copied from the template when missing),
and check `mount` for duplicate entries.

armsim's model: the guest's mounts (/proc/mounts, duplicates allowed), the mount points that cannot be frozen
(`unfreezable`), the conf file's text, whether the extension's template is there, and the log's freeze failures.
A backup of a running Linux VM fails with UserErrorFsFreezeFailed while a mount it freezes cannot be frozen;
the failure is then written to the log (armsim writes it when it judges the backup; assumed).
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backup import Vault
    from .compute import VM
    from .network import Subnet
    from .sim import Simulator

__all__ = ["CONF", "FREEZE_MUTATES", "FREEZE_NEEDS", "FreezeState", "extension_skips", "freeze_error", "frozen",
           "merge_conf", "run_freeze_script", "seed_demo", "valid_mounts"]

CONF = "/etc/azure/vmbackup.conf"
PLUGIN = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9170.0"  # the version the guide's example shows
LOG = "/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log"
TEMPLATE = "[SnapshotThread]\nfsfreeze: True\n"  # the template's settings (its comments left out)
CODE = "UserErrorFsFreezeFailed"
_FREEZABLE = ("ext3", "ext4", "xfs", "btrfs")  # fsfreezer.py should_skip
_KEY = re.compile(r"^\s*mountstoskip\s*[=:]", re.IGNORECASE)
_HEADER = re.compile(r"^\s*\[([^\]]*)\]\s*$")
_MOUNT = re.compile(r"/[A-Za-z0-9._@+/-]*")

FREEZE_MUTATES = {"linux-vmbackup-conf-get": False, "linux-vmbackup-conf-set": True}
FREEZE_NEEDS: dict[str, tuple[str, ...]] = {
    "linux-vmbackup-conf-get": ("/etc/azure/vmbackup.conf", "SnapshotThread", "MountsToSkip", "/proc/mounts",
                                "Failed to (FIFREEZE|FITHAW)", "VMSnapshotLinux"),
    "linux-vmbackup-conf-set": ("valid_mounts \"${MOUNTS-}\"", "/etc/azure/vmbackup.conf", "tempPlugin/vmbackup.conf",
                                "SnapshotThread", "MountsToSkip", "ENVIRON[\"RB_ADD\"]"),
}


def valid_mounts(value: object) -> list[str] | None:
    """The mount points of a comma-separated MOUNTS value, as the set script checks them; None when any is bad
    (not absolute, `/` itself, a `.`/`..` segment, `//`, a trailing `/`, a character outside A-Za-z0-9._@+/-, or
    more than 4096 characters)."""
    if not isinstance(value, str) or not value or len(value) > 4096:
        return None
    out: list[str] = []
    for m in value.split(","):
        segments = m.split("/")[1:]
        if (not _MOUNT.fullmatch(m) or m.endswith("/") or "//" in m
                or any(s in (".", "..") for s in segments)):
            return None
        out.append(m)
    return out


@dataclass
class FreezeState:
    """A Linux guest's mounts, which cannot be frozen, /etc/azure/vmbackup.conf and the extension's log."""

    mounts: list[tuple[str, str]] = field(default_factory=lambda: [("/", "ext4"), ("/boot/efi", "vfat"),
                                                                   ("/mnt", "ext4")])
    resource_disk: str | None = "/mnt"  # Ubuntu's resource disk mount point; the extension never freezes it
    unfreezable: set[str] = field(default_factory=set)
    conf: str | None = None  # the file's text; None: no file
    template: bool = True  # the extension's tempPlugin/vmbackup.conf is on the guest
    log: list[str] = field(default_factory=list)  # freeze failure lines of the extension log

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for /_armsim/state."""
        return {"mounts": [list(m) for m in self.mounts], "unfreezable": sorted(self.unfreezable),
                "conf": self.conf, "template": self.template, "log": self.log}


def extension_skips(conf: str | None) -> list[str]:
    """MountsToSkip as the extension splits it ([] with no file, no key, or a file ConfigParser rejects)."""
    if conf is None:
        return []
    parser = configparser.ConfigParser()
    try:
        parser.read_string(conf)
        value = parser.get("SnapshotThread", "MountsToSkip") if parser.has_option("SnapshotThread",
                                                                                   "MountsToSkip") else ""
    except configparser.Error:
        return []
    return value.split(",") if value else []


def frozen(fs: FreezeState) -> list[str]:
    """The mount points the extension freezes, in its order (`/` last)."""
    skip = extension_skips(fs.conf)
    out = [mp for mp, t in dict.fromkeys(fs.mounts) if mp != "/" and t in _FREEZABLE and mp != fs.resource_disk
           and mp not in skip]
    return out + [mp for mp, t in dict.fromkeys(fs.mounts) if mp == "/" and t in _FREEZABLE][:1]


def freeze_error(vm: VM) -> str | None:
    """UserErrorFsFreezeFailed while a mount the extension freezes cannot be frozen (the failure is logged)."""
    g = vm.guest
    if g.os_type != "Linux":
        return None
    failing = [mp for mp in frozen(g.freeze) if mp in g.freeze.unfreezable]
    for mp in failing[:1]:  # safefreeze stops at the first mount it cannot freeze
        line = f"Failed to FIFREEZE: {mp} with error message: Device or resource busy"
        if line not in g.freeze.log:
            g.freeze.log.append(line)
    return CODE if failing else None


def _scan(lines: list[str]) -> tuple[list[int], int | None]:
    """Indexes of MountsToSkip lines in the first [SnapshotThread] section, and that section's header index."""
    keys: list[int] = []
    header: int | None = None
    inside = False
    for i, line in enumerate(lines):
        h = _HEADER.match(line)
        if h:
            inside = h.group(1) == "SnapshotThread" and header is None
            header = i if inside else header
        elif inside and _KEY.match(line):
            keys.append(i)
    return keys, header


def _value(line: str) -> str:
    return re.split(r"[=:]", line, maxsplit=1)[1].strip()


def merge_conf(conf: str, add: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(new text or None when nothing changes, error, the entries after) — the set script's edit: the mount points
    the extension does not skip yet are appended to MountsToSkip in [SnapshotThread], every entry kept (trimmed)."""
    lines = conf.splitlines()
    keys, header = _scan(lines)
    if len(keys) > 1:
        return None, "duplicate-key", []
    have = _value(lines[keys[0]]).split(",") if keys else []
    kept = [e.strip() for e in have if e.strip()]
    after = kept + [m for m in dict.fromkeys(add) if m not in kept]
    if all(m in have for m in add):
        return None, None, [e for e in have if e]
    line = "MountsToSkip = " + ",".join(after)
    if keys:
        lines[keys[0]] = line
    elif header is not None:
        lines.insert(header + 1, line)
    else:
        lines += ["[SnapshotThread]", line]
    return "\n".join(lines) + "\n", None, after


def _get(g: Any) -> tuple[int, dict[str, Any], str]:
    fs: FreezeState = g.freeze
    keys, header = _scan(fs.conf.splitlines()) if fs.conf is not None else ([], None)
    raw = _value(fs.conf.splitlines()[keys[0]]) if fs.conf is not None and keys else None
    mounted = [mp for mp, _ in fs.mounts]
    failed = [mp for mp in dict.fromkeys(re.sub(r"^Failed to FI(?:FREEZE|THAW): (\S+).*$", r"\1", line)
                                         for line in fs.log) if mp in mounted]
    return 0, {"conf": CONF, "exists": fs.conf is not None,
               "template": f"/var/lib/waagent/{PLUGIN}/main/tempPlugin/vmbackup.conf" if fs.template else None,
               "section": header is not None, "keys": len(keys), "mounts_to_skip": raw,
               "skip": raw.split(",") if raw else [],
               "mounts": list(dict.fromkeys(mp for mp, t in fs.mounts if t in _FREEZABLE)),
               "duplicates": sorted({mp for mp in mounted if mounted.count(mp) > 1}),
               "failed": failed, "log": LOG if fs.log else None}, ""


def _set(g: Any, params: Mapping[str, str]) -> tuple[int, dict[str, Any], str]:
    fs: FreezeState = g.freeze
    add = valid_mounts(params.get("MOUNTS"))
    if add is None:
        return 2, {"error": "bad-mounts", "changed": False}, \
            "MOUNTS must be comma-separated absolute mount points (A-Za-z0-9._@+/-, not /); nothing was changed\n"
    created = fs.conf is None
    base = fs.conf if fs.conf is not None else (TEMPLATE if fs.template else "[SnapshotThread]\n")
    text, error, after = merge_conf(base, add)
    if error:
        return 4, {"error": error, "changed": False}, \
            "more than one MountsToSkip line in [SnapshotThread]: the extension ignores the file; nothing changed\n"
    before = extension_skips(fs.conf)
    if text is None and not created:
        return 0, {"changed": False, "created": False, "before": before, "after": before}, ""
    fs.conf = text if text is not None else base
    return 0, {"changed": True, "created": created, "from_template": created and fs.template,
               "before": before, "after": extension_skips(fs.conf)}, ""


def run_freeze_script(g: Any, sid: str, params: Mapping[str, str]) -> tuple[int, dict[str, Any], str]:
    """Apply a vmbackup.conf script to the guest: (exit code, result JSON without "script", stderr)."""
    return _get(g) if sid.endswith("-get") else _set(g, params)


def seed_demo(sim: Simulator, vault: Vault, subnet: Subnet, when: Any) -> None:
    """vm-fsfreeze: an Ubuntu VM whose /data (xfs, a busy NFS re-export) cannot be frozen; its last backup failed
    with UserErrorFsFreezeFailed and the failure is in the extension log. Fixed by MountsToSkip = /data."""

    from .scenarios import _ubuntu, failed_at, protected_vm

    guest = _ubuntu()
    guest.freeze = FreezeState(mounts=[("/", "ext4"), ("/boot/efi", "vfat"), ("/mnt", "ext4"), ("/data", "xfs")],
                               unfreezable={"/data"})
    _, item = protected_vm(sim, vault, "vm-fsfreeze", guest, subnet, f"{subnet.prefix.rsplit('.', 1)[0]}.4", when=when)
    failed_at(sim, vault, item, CODE, when)
