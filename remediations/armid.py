"""ARM resource IDs and GUIDs: the one parser every room uses (case-insensitive keys, validated shape)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["GUID", "GUID_PATTERN", "ResourceId", "id_part", "is_guid", "parse_resource_id"]

GUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
GUID = re.compile(GUID_PATTERN, re.ASCII)


def is_guid(text: str) -> bool:
    """Whether `text` is exactly one GUID (any case, no braces)."""
    return GUID.fullmatch(text) is not None


@dataclass(frozen=True)
class ResourceId:
    """A parsed ARM resource ID: subscription, resource group, provider namespace and (type, name) pairs."""

    subscription: str
    resource_group: str
    namespace: str
    types: tuple[tuple[str, str], ...]  # (("virtualNetworks", "vnet"), ("subnets", "default"))

    @property
    def name(self) -> str:
        """The last (child-most) resource's name."""
        return self.types[-1][1]

    @property
    def type(self) -> str:
        """The full resource type, e.g. Microsoft.Network/virtualNetworks/subnets."""
        return "/".join([self.namespace, *(t for t, _ in self.types)])

    def part(self, key: str) -> str:
        """The name after the type segment `key` (case-insensitive); KeyError when absent."""
        if key.lower() == "resourcegroups":
            return self.resource_group
        if key.lower() == "subscriptions":
            return self.subscription
        for t, n in self.types:
            if t.lower() == key.lower():
                return n
        raise KeyError(f"resource id has no {key!r} segment")

    def __str__(self) -> str:
        tail = "/".join(f"{t}/{n}" for t, n in self.types)
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{self.namespace}/{tail}")


_ID = re.compile(r"^/?subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/(?P<ns>[^/]+)/(?P<rest>.+?)/?$",
                 re.IGNORECASE)


def parse_resource_id(resource_id: str, *, type: str | None = None) -> ResourceId:
    """Parse an ARM resource ID; ValueError naming what is wrong (and the wanted `type`, when given)."""
    m = _ID.match(resource_id.strip())
    parts = m.group("rest").split("/") if m else []
    if not m or len(parts) % 2 or any(not p for p in parts):
        raise ValueError(f"not an ARM resource ID: {resource_id!r}")
    rid = ResourceId(m.group("sub"), m.group("rg"), m.group("ns"),
                     tuple((parts[i], parts[i + 1]) for i in range(0, len(parts), 2)))
    if type is not None and rid.type.lower() != type.lower():
        raise ValueError(f"not a {type} ID: {resource_id!r}")
    return rid


def id_part(resource_id: str, key: str) -> str:
    """The name after the type segment `key` (case-insensitive) of a parsed ARM ID; ValueError when malformed or absent."""
    try:
        return parse_resource_id(resource_id).part(key)
    except KeyError as e:
        raise ValueError(f"resource id {resource_id!r} has no {key!r} segment") from e
