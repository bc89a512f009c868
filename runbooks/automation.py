"""What the Azure Automation entry scripts (azure-automation/*.py) share: settings, payloads, clients, output.

Automation hands a Python runbook its parameters as positional strings (`sys.argv[1:]`). The data (an
alert, a webhook body, a VM or vault resource ID, a JSON list of VM IDs) is the argument that is not a
`key=value` setting; settings fall back to RUNBOOKS_<KEY> environment variables, then to safe defaults
(mode=dry-run). Everything is printed to stdout (Automation has no stderr stream for Python) and the
last line is always one JSON summary: {"status", "script", "mode", "vms", "exit_code", ...}.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from remediations.azure import CLOUDS, Azure, AzureConfig
from remediations.backupjobs import JobView, job_view
from remediations.errors import BadInput, arm_error
from remediations.target import Target

from .alerts import MAX_DATA, Alert, Nesting, Trigger, is_vault_id, read_trigger, resource_parts

__all__ = ["ENTRIES", "Alert", "Output", "Settings", "Trigger", "alert_error", "child_parameters", "connect", "fan_out",
           "fix_one", "is_vault_id", "job_error", "parse_argv", "read_job", "read_trigger", "resolve", "resource_parts",
           "start"]

Say = Callable[[str], None]
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SETTING = re.compile(r"([a-z][a-z0-9_]*)=([^\s\"'{}\[\]]*)")
TERMINAL_JOB = ("Completed", "Failed", "Stopped", "Suspended")


# --- settings --------------------------------------------------------------------------------
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
    hours: float = 24.0
    vault: str | None = None
    vaults: str | None = None
    automation_account: str | None = None
    runbook: str = "fix_backup_failure"
    concurrency: int = 5
    poll_seconds: float = 15.0
    timeout_seconds: float = 10200.0  # under Automation's 3-hour fair-share limit

    @property
    def dry_run(self) -> bool:
        """Whether nothing may be changed."""
        return self.mode != "apply"


_VAULT = r"/subscriptions/[^/,]+/resourceGroups/[^/,]+/providers/Microsoft\.RecoveryServices/vaults/[^/,]+"
_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("apply", "dry-run"), "credential": ("managed-identity", "default"), "cloud": tuple(CLOUDS),
    "egress_mode": ("service-tag", "ip-ranges"), "allow_disruptive": ("true", "false"), "backup": ("true", "false")}
_RANGES: dict[str, tuple[type, float, float]] = {
    "retention_days": (int, 1, 9999), "backup_wait_seconds": (float, 1, 7 * 24 * 3600), "hours": (float, 1, 744),
    "concurrency": (int, 1, 50), "poll_seconds": (float, 0.01, 600), "timeout_seconds": (float, 1, 7 * 24 * 3600)}
_PATTERNS: dict[str, tuple[str, str]] = {
    "client_id": (_GUID, "a GUID"), "error": (r"[A-Za-z0-9_.:-]{1,100}", "an error code"),
    "vault": (_VAULT + "/?", "a Recovery Services vault resource ID"),
    "vaults": (f"{_VAULT}(?:,{_VAULT})*", "Recovery Services vault resource IDs, comma-separated"),
    "automation_account": (r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Automation/"
                           r"automationAccounts/[^/]+/?", "an Automation account resource ID"),
    "runbook": (r"[A-Za-z][A-Za-z0-9_-]{0,62}", "a runbook name")}


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
    pattern, what = _PATTERNS[key]
    if not re.fullmatch(pattern, raw, re.I):
        raise ValueError(f"not {what}")
    return raw


_ENV = {"client_id": ("RUNBOOKS_CLIENT_ID", "AZURE_CLIENT_ID")}
_COMMON = ("client_id", "credential", "cloud")
_FIX = ("mode", "allow_disruptive", "error", "egress_mode", "retention_days", "backup", "backup_wait_seconds")
ENTRIES: dict[str, tuple[str, ...]] = {
    "fix_backup_failure": (*_FIX, *_COMMON),
    "preview_change_window": ("hours", "egress_mode", *_COMMON),
    "fan_out": ("automation_account", "runbook", "concurrency", "poll_seconds", "timeout_seconds", "vault", "hours",
                *[k for k in _FIX if k != "error"], *_COMMON),
    "sweep_backup_failures": ("vaults", "automation_account", "runbook", "concurrency", "poll_seconds",
                              "timeout_seconds", "hours", *[k for k in _FIX if k != "error"], *_COMMON),
}
# What a fan-out forwards to each child job (resolved values, so a child runs exactly as configured here).
FORWARDED = ("mode", "allow_disruptive", "egress_mode", "retention_days", "backup", "backup_wait_seconds",
             "client_id", "credential", "cloud")


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


def start(argv: list[str], entry: str, out: Output) -> tuple[str | None, dict[str, str], Settings]:
    """An entry script's data, the settings it was given, and the resolved settings (mode recorded on `out`)."""
    data, given = parse_argv(argv, entry)
    s = resolve(entry, given)
    out.mode = s.mode
    return data, given, s


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


# --- clients and reads -----------------------------------------------------------------------
def connect(s: Settings, subscription: str, *, read_only: bool) -> Azure:
    """Clients for one subscription: managed identity (or the default chain); none against a loopback endpoint."""
    return Azure(AzureConfig(subscription=subscription, cloud=s.cloud,  # type: ignore[arg-type]
                             arm_endpoint=os.environ.get("RUNBOOKS_ARM_ENDPOINT") or None,
                             ca_bundle=os.environ.get("RUNBOOKS_CA_BUNDLE") or None, read_only=read_only,
                             credential=s.credential, client_id=s.client_id))  # type: ignore[arg-type]


def read_job(azure: Azure, vault: str, group: str, job_id: str) -> tuple[JobView, str]:
    """A backup job (JobDetails_Get) as JobView, with its operation (Backup, Restore, …)."""
    d = azure.call(azure.backup.job_details.get, vault, group, job_id).as_dict()
    return job_view(d), str((d.get("properties") or {}).get("operation") or "")


def job_error(azure: Azure, vault: str, group: str, job_id: str) -> str | None:
    """The error a backup job failed with: its errorTitle (e.g. ExtensionSnapshotFailedNoNetwork) or code."""
    info, _ = read_job(azure, vault, group, job_id)
    return info.error_title or (str(info.error_number) if info.error_number is not None else None)


def alert_error(azure: Azure, s: Settings, trigger: Trigger, t: Target, *, say: Say) -> tuple[str | None, str | None]:
    """(the error to fix: the `error` setting, else the error of the job the alert names; why to skip, if so)."""
    alert = trigger.alert
    if s.error or not (alert and alert.job_id and alert.vault_id) or len(trigger.targets) != 1:
        return s.error, None
    sub, group, vault = resource_parts(alert.vault_id)
    try:
        reader = azure if sub.lower() == t.subscription else connect(s, sub, read_only=True)
        info, operation = read_job(reader, vault, group, alert.job_id)
    except Exception as e:  # the engine falls back to the VM's latest failed job
        say(f"{t.name}: could not read job {alert.job_id} ({type(e).__name__}); using the VM's latest failed job")
        return None, None
    if operation and operation.lower() != "backup":
        return None, f"job {alert.job_id} is a {operation} job, not a backup"
    if info.refused:  # another backup held the VM: no error of the VM's own (docs/concurrency.md)
        say(f"{t.name}: job {alert.job_id} was refused ({info.error}: another backup was in progress); "
            "using the VM's latest failed job")
        return None, None
    error = info.error_title or (str(info.error_number) if info.error_number is not None else None)
    say(f"{t.name}: job {alert.job_id} {info.status} with {error or 'no recorded error'}")
    return error, None


def fix_one(azure: Azure, target: Target, s: Settings, *, error: str | None, dry_run: bool, say: Say) -> Any:
    """engine.run for one VM with the settings; an unexpected failure becomes a `failed` report."""
    from .engine import Options, VmReport, run

    opts = Options(error=error, dry_run=dry_run, allow_disruptive=s.allow_disruptive, backup=s.backup,
                   retention_days=s.retention_days, egress_mode=s.egress_mode,
                   backup_wait_seconds=s.backup_wait_seconds,
                   backup_poll_seconds=0.05 if azure.config.loopback else None)
    try:
        return run(azure, target, opts, say=say)
    except BadInput:
        raise
    except Exception as e:  # one VM's failure must not hide the others'
        err = arm_error(e)
        return VmReport(target, "failed", f"{err.code}: {err.message}")


# --- fan-out ---------------------------------------------------------------------------------
@dataclass
class Child:
    """One child job: its VM, job name, and the last status Automation reported."""

    target: Target
    job: str
    status: str = "New"
    error: str | None = None


def child_parameters(vm_id: str, s: Settings) -> dict[str, str]:
    """A child job's parameters: the VM ID first, then self-describing key=value settings (order-proof)."""
    params = {"data": vm_id}
    for key in FORWARDED:
        value = getattr(s, key)
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
        params[key] = f"{key}={text}"
    return params


def fan_out(azure: Azure, account_id: str, s: Settings, targets: Iterable[Target], say: Say,
            sleep: Callable[[float], None] = time.sleep) -> list[Child]:
    """Start one child job per VM, at most `s.concurrency` unfinished at once; wait for each to end."""
    from azure.mgmt.automation import models

    _, group, account = resource_parts(account_id)
    pending: deque[Target] = deque(targets)
    running: dict[str, Child] = {}
    done: list[Child] = []
    deadline = time.monotonic() + s.timeout_seconds
    while pending or running:
        while pending and len(running) < s.concurrency:
            t = pending.popleft()
            child = Child(t, str(uuid.uuid4()))
            body = models.JobCreateParameters(properties=models.JobCreateProperties(
                runbook=models.RunbookAssociationProperty(name=s.runbook), parameters=child_parameters(t.id, s)))
            try:
                azure.call(azure.automation.job.create, group, account, child.job, body)
            except Exception as e:
                err = arm_error(e)
                child.status, child.error = "NotStarted", f"{err.code}: {err.message}"
                say(f"{t.name}: could not start a {s.runbook} job: {child.error}")
                done.append(child)
                continue
            running[child.job] = child
            say(f"{t.name}: started job {child.job} ({s.runbook})")
        for name, child in list(running.items()):
            try:
                job = azure.call(azure.automation.job.get, group, account, name).as_dict()
            except Exception as e:  # a lost poll is retried on the next round
                child.error = f"{arm_error(e).code}: {arm_error(e).message}"
                continue
            status = str((job.get("properties") or {}).get("status") or job.get("status") or "")
            if status != child.status:
                say(f"{child.target.name}: job {name} {status}")
            child.status = status
            if status in TERMINAL_JOB:
                done.append(running.pop(name))
        if running and time.monotonic() >= deadline:
            for child in running.values():
                say(f"{child.target.name}: job {child.job} still {child.status} after {s.timeout_seconds:g} s")
                child.error = "timed out waiting for the job"
            done += [*running.values(), *(Child(t, "", "NotStarted", "timed out before it could start") for t in pending)]
            running.clear()
            pending.clear()
        if running:
            sleep(s.poll_seconds)
    return done


# --- output ----------------------------------------------------------------------------------
@dataclass
class Output:
    """stdout only; the last line is one JSON summary."""

    script: str
    mode: str | None = None

    def say(self, line: str) -> None:
        """One progress line."""
        print(line, flush=True)

    def lines(self, lines: Iterable[str]) -> None:
        """Several lines."""
        for line in lines:
            self.say(line)

    def finish(self, status: str, exit_code: int, vms: list[dict[str, Any]] | None = None, **extra: Any) -> int:
        """Print the JSON summary line; returns the exit code."""
        doc = {"status": status, "script": self.script, "mode": self.mode, "vms": vms or [], "exit_code": exit_code,
               **extra}
        print(json.dumps(doc, default=str, separators=(",", ":")), flush=True)
        return exit_code

    def guard(self, body: Callable[[], int]) -> int:
        """Run the script body: bad input is one `error:` line and exit 2; a crash is exit 1."""
        import logging

        logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            return body()
        except BadInput as e:
            line = str(e).splitlines()[0] if str(e) else "bad input"
            self.say(f"error: {line}")
            return self.finish("invalid", 2, error=line)
        except Exception as e:
            self.lines(traceback.format_exc().rstrip().splitlines())
            line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self.say(f"error: {line}")
            return self.finish("error", 1, error=line)


def vm_entry(r: Any) -> dict[str, Any]:
    """A VmReport as one compact summary entry."""
    inv = r.investigation
    backup = r.backup.result.get("job_id") if r.backup is not None else None
    return {"vm": r.target.name, "id": r.target.id, "status": r.status, "exit_code": r.exit_code,
            "error": inv.error_code if inv else None, "message": r.message,
            "changes": [f"{c.action}: {c.kind} {c.resource}" for c in r.changes()], "backup_job": backup}


def overall(reports: list[Any], *, dry_run: bool) -> tuple[str, int]:
    """(status, exit code) of several VM reports: failed 1, attention (manual/withheld) 3, else 0."""
    codes = {r.exit_code for r in reports}
    if 1 in codes:
        return "failed", 1
    if 3 in codes and not dry_run:
        return "attention", 3
    return ("planned" if dry_run else "ok"), 0
