"""The Azure side of an entry script: clients for a subscription, the job an alert names, one VM's fix."""

from __future__ import annotations

import os
from typing import Any

from remediations.azure import Azure, AzureConfig
from remediations.backupjobs import JobView
from remediations.backupreads import backup_job
from remediations.errors import BadInput, arm_error
from remediations.target import Target

from .alerts import Trigger, resource_parts
from .protocol import Say
from .settings import Settings

__all__ = ["alert_error", "connect", "fix_one", "job_error", "read_job"]


def connect(s: Settings, subscription: str, *, read_only: bool) -> Azure:
    """Clients for one subscription: managed identity (or the default chain); none against a loopback endpoint."""
    return Azure(AzureConfig(subscription=subscription, cloud=s.cloud,  # type: ignore[arg-type]
                             arm_endpoint=os.environ.get("RUNBOOKS_ARM_ENDPOINT") or None,
                             ca_bundle=os.environ.get("RUNBOOKS_CA_BUNDLE") or None, read_only=read_only,
                             credential=s.credential, client_id=s.client_id))  # type: ignore[arg-type]


def read_job(azure: Azure, vault: str, group: str, job_id: str) -> tuple[JobView, str]:
    """A backup job (JobDetails_Get) as JobView, with its operation (Backup, Restore, …)."""
    job = backup_job(azure, vault, group, job_id)
    return job, str((job.raw.get("properties") or {}).get("operation") or "")


def job_error(azure: Azure, vault: str, group: str, job_id: str) -> str | None:
    """The error a backup job failed with: its errorTitle (e.g. ExtensionSnapshotFailedNoNetwork) or code."""
    info, _ = read_job(azure, vault, group, job_id)
    return info.error_code


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
    error = info.error_code
    say(f"{t.name}: job {alert.job_id} {info.status} with {error or 'no recorded error'}")
    return error, None


def fix_one(azure: Azure, target: Target, s: Settings, *, error: str | None, dry_run: bool, say: Say) -> Any:
    """engine.run for one VM with the settings; an unexpected failure becomes a `failed` report."""
    from ..engine import Options, VmReport, run

    opts = Options(error=error, dry_run=dry_run, allow_disruptive=s.allow_disruptive, backup=s.backup,
                   retention_days=s.retention_days, egress_mode=s.egress_mode,
                   backup_wait_seconds=s.backup_wait_seconds, proxy=s.proxy,
                   backup_poll_seconds=0.05 if azure.config.loopback else None)
    try:
        return run(azure, target, opts, say=say)
    except BadInput:
        raise
    except Exception as e:  # one VM's failure must not hide the others'
        err = arm_error(e)
        return VmReport(target, "failed", f"{err.code}: {err.message}")
