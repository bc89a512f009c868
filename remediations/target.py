"""Which VM: subscription, resource group and name, parsed from a resource ID or flags, validated."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .armid import is_guid, parse_resource_id
from .errors import BadInput

__all__ = ["Target", "parse_target"]

# Azure naming rules: resource group 1-90 of letters, digits, _ - . ( ), not ending in '.';
# VM resource name 1-64 of letters, digits, _ - ., starting alphanumeric, not ending in '.' or '-'.
_GROUP = re.compile(r"^[\w\-.()]{1,90}$", re.ASCII)
_VM = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
_VM_TYPE = "Microsoft.Compute/virtualMachines"


class Target(BaseModel):
    """One VM, identified the way ARM does."""

    model_config = ConfigDict(frozen=True)

    subscription: str
    resource_group: str
    name: str

    @field_validator("subscription")
    @classmethod
    def _sub(cls, v: str) -> str:
        if not is_guid(v):
            raise ValueError(f"subscription {v!r} is not a GUID")
        return v.lower()

    @field_validator("resource_group")
    @classmethod
    def _rg(cls, v: str) -> str:
        if not _GROUP.match(v) or v.endswith("."):
            raise ValueError(f"resource group {v!r} is not a valid name (letters, digits, _-.() up to 90)")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _VM.match(v):
            raise ValueError(f"VM name {v!r} is not a valid name (letters, digits, _-. up to 64)")
        return v

    @property
    def id(self) -> str:
        """The VM's ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Compute/virtualMachines/{self.name}")

    def __str__(self) -> str:
        return f"{self.resource_group}/{self.name}"


def _one_line(e: ValidationError) -> str:
    first = e.errors()[0]
    return str(first.get("msg", e)).removeprefix("Value error, ")


def parse_target(vm: str, resource_group: str | None = None, subscription: str | None = None) -> Target:
    """A Target from a full resource ID, or a name plus group and subscription (AZURE_SUBSCRIPTION_ID by default)."""
    vm = (vm or "").strip()
    if vm.startswith("/"):
        try:
            rid = parse_resource_id(vm, type=_VM_TYPE)
        except ValueError:
            raise BadInput(f"not a VM resource ID: {vm!r} (want /subscriptions/<id>/resourceGroups/<rg>/providers/"
                           "Microsoft.Compute/virtualMachines/<name>)") from None
        if resource_group and resource_group.lower() != rid.resource_group.lower():
            raise BadInput(f"-g {resource_group!r} contradicts the resource group in {vm!r}")
        parts = {"subscription": rid.subscription, "resource_group": rid.resource_group, "name": rid.name}
    else:
        sub = subscription or os.environ.get("AZURE_SUBSCRIPTION_ID")
        if not resource_group:
            raise BadInput(f"VM {vm!r}: give its resource group (-g) or a full resource ID")
        if not sub:
            raise BadInput("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
        parts = {"subscription": sub, "resource_group": resource_group, "name": vm}
    try:
        return Target(**parts)
    except ValidationError as e:
        raise BadInput(_one_line(e)) from None
