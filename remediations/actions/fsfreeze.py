"""skip-freeze-mounts: add the mount points that fail to freeze to MountsToSkip in /etc/azure/vmbackup.conf (C12.freeze).

The guide (backup-azure-vms-troubleshoot.md, UserErrorFsFreezeFailed): find the failed mount points in the backup
extension's log, and when they cannot be unmounted and checked, list them in `MountsToSkip` under
`[SnapshotThread]` in /etc/azure/vmbackup.conf, copying the file from the extension's template when it is missing.
`linux-vmbackup-conf-get` reads the file, the mounts and the log's failures; `linux-vmbackup-conf-set` appends the
mount points (the Run Command parameter MOUNTS, validated here and again in the script), keeping every entry a
person wrote. A mount point can also be named by the operator (`--param mounts=/data,/srv`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ..action import Action, ActionParams, Executed, Progress
from ..azure import Azure
from ..errors import BadInput
from ..model import Change, Plan
from ..reads import VmView, read_vm
from .guest_agent import guest_gate, script_step

__all__ = ["FreezeFacts", "SkipFreezeMounts", "SkipMountsParams", "check_mounts", "freeze_plan"]

CONF = "/etc/azure/vmbackup.conf"
_MOUNT = re.compile(r"/[A-Za-z0-9._@+/-]*", re.ASCII)


def check_mounts(values: list[str]) -> list[str]:
    """The mount points when each is absolute, of A-Za-z0-9._@+/- only, not `/`, without `.`/`..` segments, `//`
    or a trailing `/` (what the set script accepts); BadInput otherwise."""
    for m in values:
        if (not _MOUNT.fullmatch(m) or m.endswith("/") or "//" in m
                or any(s in (".", "..") for s in m.split("/")[1:])):
            raise BadInput(f"mount point {m!r}: want an absolute path of letters, digits and ._@+/- (not /, no "
                           "'..', no trailing /); the extension always freezes / itself")
    if len(",".join(values)) > 4096:
        raise BadInput("too many mount points (more than 4096 characters)")
    return values


class SkipMountsParams(ActionParams):
    """skip-freeze-mounts: mount points to skip besides those the extension's log names."""

    mounts: tuple[str, ...] = Field((), description="mount points to add to MountsToSkip (comma-separated)")

    @field_validator("mounts", mode="before")
    @classmethod
    def _mounts(cls, v: Any) -> tuple[str, ...]:
        items = [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else [str(s) for s in v or ()]
        try:
            return tuple(check_mounts(items))
        except BadInput as e:
            raise ValueError(str(e)) from None


@dataclass(frozen=True)
class FreezeFacts:
    """The VM view and, when the gate let it run, what linux-vmbackup-conf-get reported."""

    vm: VmView
    result: dict[str, Any] | None = None


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def freeze_plan(action: str, vm: VmView, r: dict[str, Any], params: SkipMountsParams) -> Plan:
    """Add to MountsToSkip every failed (or given) mount point the extension does not skip yet (pure)."""
    t = params.target
    name = vm.name or t.name
    plan = Plan(action=action, target=str(t))
    skip, failed = _strings(r.get("skip")), _strings(r.get("failed"))
    dupes = _strings(r.get("duplicates"))
    if dupes:
        plan.notes.append(f"mount points listed more than once in /proc/mounts on {name}: {', '.join(dupes)}; the "
                          "guide: remove the old entries or rename the mount path")
    if int(r.get("keys") or 0) > 1:
        plan.reason = f"{CONF} on {name} has {r.get('keys')} MountsToSkip lines in [SnapshotThread]: the extension "\
                      "ignores the whole file"
        plan.manual.append(f"merge the MountsToSkip lines of {CONF} on {name} into one (comma-separated)")
        return plan
    want = list(dict.fromkeys([*failed, *params.mounts]))
    missing = [m for m in want if m not in skip]
    listed = f"MountsToSkip is {','.join(skip)!r}" if skip else "MountsToSkip is not set"
    if not want:
        plan.reason = (f"no mount point failed to freeze in the backup extension's log on {name} ({listed}); name "
                       "one with --param mounts=/path to skip it anyway")
        return plan
    if not missing:
        plan.reason = f"{CONF} on {name} skips {', '.join(want)} ({listed})"
        return plan
    why = (f"the extension's log says {', '.join(m for m in missing if m in failed)} failed to freeze"
           if any(m in failed for m in missing) else "")
    given = [m for m in missing if m not in failed]
    why += ("; " if why and given else "") + (f"asked to skip {', '.join(given)}" if given else "")
    created = not r.get("exists")
    source = r.get("template") or "[SnapshotThread] alone (no template found)"
    plan.changes.append(Change(
        action=action, kind="add" if created else "change", resource=f"{name}/vmbackup.conf/MountsToSkip",
        resource_id=vm.id,
        summary=(f"{'create ' + CONF + ' from ' + str(source) + ' and ' if created else ''}add "
                 f"{', '.join(missing)} to MountsToSkip under [SnapshotThread] on {name}, keeping every entry"),
        reason=f"{why}; {listed}, so the backup extension freezes them", before={"skip": [s for s in skip if s]},
        after={"skip": list(dict.fromkeys([*(s.strip() for s in skip if s.strip()), *missing]))},
        data={"script": "linux-vmbackup-conf-set", "mounts": missing}))
    return plan


class SkipFreezeMounts(Action[SkipMountsParams, FreezeFacts]):
    """Add the mount points that fail to freeze to MountsToSkip in /etc/azure/vmbackup.conf (Linux; C12.freeze)."""

    name = "skip-freeze-mounts"
    summary = "stop the Linux backup extension freezing mount points that fail to freeze (MountsToSkip)"
    Params = SkipMountsParams
    disruptive = False  # a config line the extension reads at its next backup; nothing restarts
    idempotent: ClassVar[bool] = True
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/runCommand/action",
        "Microsoft.Compute/locations/operations/read")

    def read(self, azure: Azure, params: SkipMountsParams) -> FreezeFacts:
        """The VM; then linux-vmbackup-conf-get when it runs Linux and its agent answers."""
        vm = read_vm(azure, params.target)
        if guest_gate(self.name, params.target, vm, "Linux", "MountsToSkip") is not None:
            return FreezeFacts(vm)
        return FreezeFacts(vm, script_step(azure, params.target, "linux-vmbackup-conf-get"))

    def plan(self, facts: FreezeFacts, params: SkipMountsParams) -> Plan:
        """Why the guest was not read (gate), else `freeze_plan`."""
        gate = guest_gate(self.name, params.target, facts.vm, "Linux", "MountsToSkip")
        if gate is not None or facts.result is None:
            return gate or Plan(action=self.name, target=str(params.target), reason="the guest was not read")
        return freeze_plan(self.name, facts.vm, facts.result, params)

    def execute(self, azure: Azure, params: SkipMountsParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run linux-vmbackup-conf-set with the mount points (checked again) as its parameter MOUNTS."""
        mounts = check_mounts([str(m) for m in change.data["mounts"]])
        out = script_step(azure, params.target, "linux-vmbackup-conf-set", {"MOUNTS": ",".join(mounts)})
        made = " (created from the extension's template)" if out.get("from_template") else \
            " (created)" if out.get("created") else ""
        return Executed(f"MountsToSkip in {CONF}{made} on {params.target.name}: {','.join(out.get('before') or [])!r}"
                        f" -> {','.join(out.get('after') or [])!r}",
                        {"before": out.get("before"), "after": out.get("after"), "changed": out.get("changed")})
