"""An entry script's settings: parsed from its positional arguments (`key=value`), else RUNBOOKS_<KEY>, else the default.

Automation hands a Python runbook its parameters as positional strings (`sys.argv[1:]`). The data (an
alert, a webhook body, a VM or vault resource ID, a JSON list of VM IDs) is the argument that is not a
`key=value` setting; each script accepts the settings ENTRIES names, and the default mode is dry-run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remediations.armid import is_guid, parse_resource_id
from remediations.azure import CLOUDS
from remediations.errors import BadInput

from .alerts import MAX_DATA, Nesting

__all__ = ["ENTRIES", "FORWARDED", "Settings", "parse_argv", "resolve"]

_SETTING = re.compile(r"([a-z][a-z0-9_]*)=([^\s\"'{}\[\]]*)")


@dataclass(frozen=True)
class Settings:
    """Every setting an entry script may take, typed; each script accepts a subset (ENTRIES)."""

    mode: str = "dry-run"
    allow_disruptive: bool = False
    client_id: str | None = None
    credential: str = "managed-identity"
    cloud: str = "AzureCloud"
    error: str | None = None
    egress_mode: str = "service-tag"
    retention_days: int = 30
    backup: bool = True
    backup_wait_seconds: float = 3600.0
    proxy: str | None = None  # the working guest proxy set-guest-proxy sets (as fix --proxy)
    hours: float = 24.0
    vault: str | None = None
    vaults: str | None = None
    all_subscriptions: bool = False  # the sweep: find the failed jobs with Azure Resource Graph (remediations/discovery)
    automation_account: str | None = None
    runbook: str = "fix_backup_failure"
    concurrency: int = 5
    max_errors: str = "10"  # children that may fail before no new one starts (a count or "10%"; runbooks.schedule)
    poll_seconds: float = 15.0
    timeout_seconds: float = 10200.0  # under Automation's 3-hour fair-share limit

    @property
    def dry_run(self) -> bool:
        """Whether nothing may be changed."""
        return self.mode != "apply"


def _is_id(raw: str, type: str) -> bool:
    """Whether `raw` is one top-level resource ID of `type`, written as ARM writes it (a leading '/')."""
    try:
        parse_resource_id(raw, type=type)
    except ValueError:
        return False
    return raw.startswith("/")


def _is_vault(raw: str) -> bool:
    """One Recovery Services vault ID (a trailing '/' allowed, no ',')."""
    return "," not in raw and _is_id(raw, "Microsoft.RecoveryServices/vaults")


def _is_vaults(raw: str) -> bool:
    """Recovery Services vault IDs, comma-separated (no trailing '/')."""
    return all(not v.endswith("/") and _is_vault(v) for v in raw.split(","))


def _fullmatch(pattern: str) -> Callable[[str], bool]:
    """A check that `pattern` matches the whole value (case-insensitively)."""
    return lambda raw: re.fullmatch(pattern, raw, re.I) is not None


def _is_proxy(raw: str) -> bool:
    """Whether `raw` is exactly http://<IPv4 or host name>:<port> (set-guest-proxy's own check)."""
    from remediations.actions.proxy import check_proxy
    from remediations.errors import BadInput

    try:
        check_proxy(raw)
    except BadInput:
        return False
    return True


def _is_max_errors(raw: str) -> bool:
    """Whether `raw` is an error budget: 0..999999 failures, or 0%..100% of the VMs."""
    from ..schedule import check_max_errors

    try:
        check_max_errors(raw)
    except ValueError:
        return False
    return True


_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("apply", "dry-run"), "credential": ("managed-identity", "default"), "cloud": tuple(CLOUDS),
    "egress_mode": ("service-tag", "ip-ranges"), "allow_disruptive": ("true", "false"), "backup": ("true", "false"),
    "all_subscriptions": ("true", "false")}
_RANGES: dict[str, tuple[type, float, float]] = {
    "retention_days": (int, 1, 9999), "backup_wait_seconds": (float, 1, 7 * 24 * 3600), "hours": (float, 1, 744),
    "concurrency": (int, 1, 50), "poll_seconds": (float, 0.01, 600), "timeout_seconds": (float, 1, 7 * 24 * 3600)}
_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "client_id": (is_guid, "a GUID"), "error": (_fullmatch(r"[A-Za-z0-9_.:-]{1,100}"), "an error code"),
    "vault": (_is_vault, "a Recovery Services vault resource ID"),
    "vaults": (_is_vaults, "Recovery Services vault resource IDs, comma-separated"),
    "automation_account": (lambda raw: _is_id(raw, "Microsoft.Automation/automationAccounts"),
                           "an Automation account resource ID"),
    "runbook": (_fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,62}"), "a runbook name"),
    "proxy": (_is_proxy, "http://<IPv4 address or host name>:<port 1-65535>"),
    "max_errors": (_is_max_errors, "a count of failures allowed (e.g. 10) or a percentage of the VMs (e.g. 10%)")}


def _convert(key: str, raw: str) -> Any:
    """A setting's typed value; ValueError says what is wanted."""
    if key in _CHOICES:
        value = raw.lower() if _CHOICES[key][0] == "true" else raw
        if value not in _CHOICES[key]:
            raise ValueError(f"want one of {', '.join(_CHOICES[key])}")
        return value == "true" if _CHOICES[key][0] == "true" else value
    if key in _RANGES:
        kind, low, high = _RANGES[key]
        n = kind(raw)
        if not low <= n <= high:
            raise ValueError(f"want {low:g}..{high:g}")
        return n
    check, what = _CHECKS[key]
    if not check(raw):
        raise ValueError(f"not {what}")
    return raw


_ENV = {"client_id": ("RUNBOOKS_CLIENT_ID", "AZURE_CLIENT_ID")}
_COMMON = ("client_id", "credential", "cloud")
_FIX = ("mode", "allow_disruptive", "error", "egress_mode", "retention_days", "backup", "backup_wait_seconds",
        "proxy")
ENTRIES: dict[str, tuple[str, ...]] = {
    "fix_backup_failure": (*_FIX, *_COMMON),
    "preview_change_window": ("hours", "egress_mode", *_COMMON),
    "fan_out": ("automation_account", "runbook", "concurrency", "max_errors", "poll_seconds", "timeout_seconds",
                "vault", "hours", *[k for k in _FIX if k != "error"], *_COMMON),
    "sweep_backup_failures": ("vaults", "all_subscriptions", "automation_account", "runbook", "concurrency", "max_errors",
                              "poll_seconds", "timeout_seconds", "hours", *[k for k in _FIX if k != "error"],
                              *_COMMON),
    "report_alerts": ("automation_account", "hours", *_COMMON),
}
# What a fan-out forwards to each child job (resolved values, so a child runs exactly as configured here).
FORWARDED = ("mode", "allow_disruptive", "egress_mode", "retention_days", "backup", "backup_wait_seconds",
             "proxy", "client_id", "credential", "cloud")


def _encoded_setting(token: str) -> re.Match[str] | None:
    """A key=value setting sent JSON-encoded ('"mode=apply"'), as a client may send every job parameter."""
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        return None
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return _SETTING.fullmatch(value) if isinstance(value, str) else None


def parse_argv(argv: list[str], entry: str) -> tuple[str | None, dict[str, str]]:
    """(the data, the key=value settings) of `argv`; an unknown or repeated key is BadInput."""
    data: list[str] = []
    given: dict[str, str] = {}
    if sum(len(t) + 1 for t in argv[1:]) > MAX_DATA:
        raise BadInput(f"the arguments hold more than {MAX_DATA} characters")
    scan = Nesting()
    for token in argv[1:]:
        token = token.strip()
        m = _SETTING.fullmatch(token) or _encoded_setting(token)
        if not token:
            continue
        if m is None or scan.depth > 0 or scan.in_string:  # inside a JSON document split over arguments: data
            data.append(token)
            scan.feed(token + " ")
            continue
        key, value = m.group(1), m.group(2)
        if key not in ENTRIES[entry]:
            raise BadInput(f"unknown setting {key!r} for {entry}; known: {', '.join(sorted(ENTRIES[entry]))}")
        if key in given:
            raise BadInput(f"setting {key!r} given twice")
        given[key] = value
    return (" ".join(data) or None), given


def resolve(entry: str, given: dict[str, str], env: dict[str, str] | None = None) -> Settings:
    """Typed settings of `entry`: the given value, else RUNBOOKS_<KEY> (or a documented alias), else the default."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    for key in ENTRIES[entry]:
        raw = given.get(key)
        if raw is None:
            names = _ENV.get(key, (f"RUNBOOKS_{key.upper()}",))
            raw = next((env[n].strip() for n in names if env.get(n, "").strip()), None)
        if raw is None or raw == "":
            continue
        try:
            values[key] = _convert(key, raw)
        except ValueError as e:
            raise BadInput(f"{key}={raw!r}: {str(e).splitlines()[0]}") from None
    return Settings(**values)
