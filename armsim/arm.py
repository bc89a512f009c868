"""ARM conventions shared by every simulated provider: errors, etags, ids, api-versions, time."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ArmError",
    "Request",
    "Response",
    "check_api_version",
    "iso",
    "new_etag",
    "not_found",
]


class ArmError(Exception):
    """An ARM error answer: HTTP status plus the `{"error": {"code", "message"}}` envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON envelope ARM sends for this error."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


@dataclass
class Request:
    """One parsed HTTP request as the handlers see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        """A request header, looked up case-insensitively."""
        return self.headers.get(name.lower())


@dataclass
class Response:
    """One HTTP answer: status, JSON body (or None), headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def not_found(kind: str, name: str, group: str | None = None) -> ArmError:
    """The 404 ResourceNotFound ARM returns for a missing resource."""
    where = f" under resource group '{group}'" if group else ""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}'{where} was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def new_etag() -> str:
    """A fresh weak etag in the Network RP's format: W/"<guid>"."""
    return f'W/"{uuid.uuid4()}"'


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with a trailing Z, as ARM writes times."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview|-beta|-privatepreview)?$")


def check_api_version(query: dict[str, str], *, oldest: str, newest: str, resource_type: str) -> None:
    """Raise as ARM does when `api-version` is missing, malformed or outside what the provider serves."""
    version = query.get("api-version")
    if version is None:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION.match(version):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{oldest}' to '{newest}'.",
        )
    if not oldest <= version[:10] <= newest:
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location 'eastus' and API version "
            f"'{version}' for type '{resource_type}'. The supported api-versions are "
            f"'{oldest}' to '{newest}'.",
        )
