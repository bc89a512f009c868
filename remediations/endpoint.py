"""The one check of an ARM endpoint URL, shared by the CLI and the Automation entries (via the client layer).

Loopback (armsim: no credential is sent) is decided from the parsed host only. Userinfo, backslashes,
whitespace, control or non-ASCII characters, a query or a fragment are refused: they are where a
parser and the HTTP stack can disagree about the host (``https://192.0.2.2:P\\@127.0.0.1``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import BadInput

__all__ = ["Endpoint", "check_endpoint"]


@dataclass(frozen=True)
class Endpoint:
    """A checked https endpoint: its URL (no trailing slash), host, and whether it is this machine."""

    url: str
    host: str
    loopback: bool


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str) -> Endpoint:
    """The endpoint, or BadInput when it is not a plain https://host[:port][/path] URL."""
    bad = BadInput(f"ARM endpoint must be an https URL (https://host[:port][/path]), not {url!r}")
    if not isinstance(url, str) or not url.isascii() or any(ch in url for ch in "\\@ \t\r\n") \
            or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise bad
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.query or parts.fragment or "?" in url or "#" in url:
        raise bad
    try:
        host, _ = parts.hostname, parts.port  # .port raises on a port that is not 0..65535
    except ValueError:
        raise bad from None
    if not host or parts.username is not None or parts.password is not None:
        raise bad
    return Endpoint(url.rstrip("/"), host, _is_loopback(host))
