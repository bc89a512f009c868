"""The saved-plan format (fix --plan-out, apply): a strict, versioned schema, and the plan fingerprint.

A plan file is validated with pydantic in strict mode: `"false"` is not a boolean, `[1]` is not a
plan, options given as a list are refused. Anything that does not validate is bad input (exit 2),
never drift and never a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediations.errors import BadInput
from remediations.target import Target

from .engine import VmReport

__all__ = ["FORMAT", "SavedPlan", "check_writable", "diff", "fingerprint", "load", "save"]

FORMAT: Literal["azure-backup-runbooks/plan"] = "azure-backup-runbooks/plan"
VERSION: Literal[2] = 2
MAX_BYTES = 4 * 1024 * 1024
Fingerprint = list[tuple[str, str, str, str]]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SavedOptions(_Strict):
    """The options the plan was made with."""

    error: str | None = Field(max_length=200)
    allow_disruptive: bool
    backup: bool
    mode: Literal["service-tag", "ip-ranges"]
    retention_days: int = Field(ge=1, le=9999)
    proxy: str | None = Field(default=None, max_length=300)  # fix --proxy: the working guest proxy set-guest-proxy sets

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        """Checked again as --proxy is: http://<IPv4 or host name>:<port>."""
        from remediations.actions.proxy import check_proxy

        try:
            return None if v is None else check_proxy(v)
        except BadInput as e:
            raise ValueError(str(e)) from None


class SavedTarget(_Strict):
    """Which VM (checked again by Target's naming rules on load)."""

    subscription: str = Field(max_length=64)
    resource_group: str = Field(max_length=90)
    name: str = Field(max_length=64)


class SavedVm(_Strict):
    """One VM: its target, error, the fingerprint of its changes, and the plan as shown (informative)."""

    target: SavedTarget
    error: str | None = Field(max_length=200)
    changes: list[tuple[str, str, str, str]] = Field(max_length=1000)
    plan: list[dict[str, Any]] = Field(max_length=1000)


class SavedPlan(_Strict):
    """A whole plan file."""

    format: Literal["azure-backup-runbooks/plan"]
    version: Literal[2]
    options: SavedOptions
    vms: list[SavedVm] = Field(min_length=1, max_length=1000)

    def targets(self) -> list[Target]:
        """The VMs as validated Targets."""
        try:
            return [Target(**v.target.model_dump()) for v in self.vms]
        except ValidationError as e:
            raise BadInput(f"plan: {e.errors()[0]['msg']}") from None


def fingerprint(r: VmReport) -> Fingerprint:
    """What a confirmation binds to: every planned change but the verification backup, sorted."""
    return sorted((c.action, c.kind, c.resource.lower(), json.dumps(c.after, sort_keys=True, default=str))
                  for c in r.changes() if c.action != "trigger-backup")


def diff(name: str, planned: Fingerprint, current: Fingerprint) -> list[str]:
    """Lines showing how the current plan of a VM differs from the planned one (none when equal)."""
    if current == planned:
        return []
    lines = [f"{name}: planned {len(planned)} change(s), now {len(current)}"]
    lines += [f"  - {' '.join(c[:3])}" for c in planned if c not in current]
    lines += [f"  + {' '.join(c[:3])}" for c in current if c not in planned]
    if len(lines) == 1:
        lines.append("  ~ the same resources, with different values")
    return lines


def check_writable(path: Path) -> None:
    """BadInput unless a plan can be written at `path` (checked before any request)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise BadInput(f"--plan-out {str(path)!r} is a folder")
    if not parent.is_dir():
        raise BadInput(f"--plan-out {str(path)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BadInput(f"--plan-out {str(path)!r}: not writable")


def save(path: Path, options: dict[str, Any], reports: list[VmReport], plans: list[list[dict[str, Any]]]) -> None:
    """Write the plan file (validated by the same schema that reads it)."""
    doc = SavedPlan(format=FORMAT, version=VERSION, options=SavedOptions(**options), vms=[
        SavedVm(target=SavedTarget(**r.target.model_dump()),
                error=r.investigation.error_code if r.investigation else None,
                changes=fingerprint(r), plan=plan) for r, plan in zip(reports, plans, strict=True)])
    path.write_text(json.dumps(doc.model_dump(mode="json"), indent=2, default=str) + "\n", encoding="utf-8")


def load(path: str) -> SavedPlan:
    """The plan in a file; BadInput (one line) when it cannot be read or does not match the schema."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise BadInput(f"cannot read plan {path}: larger than {MAX_BYTES} bytes")
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise BadInput(f"cannot read plan {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") != VERSION:
        raise BadInput(f"plan {path}: format version {doc.get('version')!r} is not supported (want {VERSION})")
    try:
        # JSON has no tuples: validate from JSON text so strict mode takes arrays for the fingerprints.
        return SavedPlan.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise BadInput(f"plan {path} is not a valid saved plan: {where}: {first['msg']}") from None
