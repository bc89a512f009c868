"""An alert storm, accounted for: every delivery of every alert ends as fixed, already fixed, duplicate, ignored, failed.

In a storm (one NSG change fails the backups of hundreds of VMs, each raising an alert, some delivered twice)
the alert path stays as it is: the relay starts one `fix_backup_failure` job per alert (named by the alert ID,
so a second delivery starts nothing), each job fixes its VM, and the jobs coordinate only through Azure: an NSG
rule is added under If-None-Match (a second writer re-reads and finds it), and the VM's backup job is the lock
(docs/concurrency.md: one verification backup per VM, a later run follows it or finds it succeeded). This module
says what became of each alert, from the jobs Automation keeps: the relay jobs (one per delivery, the alert in
their WebhookData) and the fix jobs (the outcome in the JSON summary line of their output).

Outcomes of a fix job's VM (`outcome`): fixed (this run changed something, or its own backup proved the VM),
already fixed (nothing changed, and another run's backup or an earlier success proves it), failed, attention
(a manual or withheld step), planned (dry-run). A delivery is `duplicate` when an earlier delivery of the same
alert started (or found) the job, `ignored` when the relay started nothing (not a backup alert, Resolved).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediations.automation_jobs import get_job, job_output, list_jobs
from remediations.azure import Azure
from remediations.backupjobs import parse_time

from .protocol import outcome
from .relay import FIX_RUNBOOK, RELAY_RUNBOOK, Ignored, relay_request
from .sweep import UNFINISHED_JOB

__all__ = ["OUTCOMES", "AlertRow", "Delivery", "FixRun", "StormReport", "account", "outcome", "read_storm"]

OUTCOMES = ("fixed", "already fixed", "duplicate", "ignored", "failed", "attention", "planned", "unfinished",
            "not started")


@dataclass(frozen=True)
class Delivery:
    """One delivery of an alert: the relay job it started, when, and the fix job it asks for (or why none)."""

    relay_job: str
    created: datetime | None
    alert_id: str
    fix_job: str | None
    ignored: str | None = None


@dataclass(frozen=True)
class FixRun:
    """A fix job: its status, and per VM (name) the outcome its summary line gives."""

    name: str
    status: str
    vms: tuple[tuple[str, str], ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class AlertRow:
    """One alert: its ID, deliveries, fix job, the VMs it named and the outcome."""

    alert_id: str
    deliveries: int
    fix_job: str | None
    vms: tuple[str, ...]
    outcome: str
    note: str | None = None


@dataclass
class StormReport:
    """Every delivery accounted for: counts per outcome (they add up to the deliveries) and one row per alert."""

    deliveries: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    alerts: list[AlertRow] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as the job's summary fields."""
        return {"deliveries": self.deliveries, "alerts_count": len(self.alerts),
                "outcomes": {k: self.counts[k] for k in OUTCOMES if self.counts[k]},
                "alerts": [{"alert": r.alert_id, "deliveries": r.deliveries, "job": r.fix_job, "vms": list(r.vms),
                            "outcome": r.outcome, **({"note": r.note} if r.note else {})} for r in self.alerts]}


def _fix_outcome(run: FixRun | None) -> tuple[str, tuple[str, ...], str | None]:
    """(outcome, VMs, note) of the fix job an alert's first delivery started."""
    if run is None:
        return "not started", (), "the relay started no fix job (see the relay job's output)"
    if run.status in UNFINISHED_JOB:
        return "unfinished", tuple(v for v, _ in run.vms), f"job {run.status}"
    if not run.vms:
        return ("ignored" if run.error and run.error.startswith("ignored") else "failed"), (), run.error
    outcomes = [o for _, o in run.vms]
    worst = next((o for o in ("failed", "attention", "planned", "fixed") if o in outcomes), "already fixed")
    return worst, tuple(v for v, _ in run.vms), None


def account(deliveries: Iterable[Delivery], fixes: dict[str, FixRun]) -> StormReport:
    """Pure: each delivery's outcome; the first delivery of an alert carries its fix job's, the others are duplicates."""
    report = StormReport()
    rows: dict[str, AlertRow] = {}
    for d in sorted(deliveries, key=lambda d: (d.created is None, d.created or datetime.min, d.relay_job)):
        report.deliveries += 1
        if d.ignored is not None:
            report.counts["ignored"] += 1
            rows[f"relay:{d.relay_job}"] = AlertRow(d.alert_id or "-", 1, None, (), "ignored", d.ignored)
            continue
        row = rows.get(d.alert_id)
        if row is not None:
            report.counts["duplicate"] += 1
            rows[d.alert_id] = AlertRow(row.alert_id, row.deliveries + 1, row.fix_job, row.vms, row.outcome, row.note)
            continue
        result, vms, note = _fix_outcome(fixes.get((d.fix_job or "").lower()))
        report.counts[result] += 1
        rows[d.alert_id] = AlertRow(d.alert_id, 1, d.fix_job, vms, result, note)
    report.alerts = list(rows.values())
    return report


def _props(job: dict[str, Any]) -> dict[str, Any]:
    return job.get("properties") or job


def _summary(text: str) -> dict[str, Any]:
    """The JSON summary line (the last line) of an entry script's output; {} when there is none."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        doc = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def read_storm(azure: Azure, account_id: str, since: datetime) -> tuple[list[Delivery], dict[str, FixRun]]:
    """The relay jobs created since `since` (one GET each: the list has no parameters) and the fix jobs they name
    (their output, once ended): Job_ListByAutomationAccount, Job_Get, Job_GetOutput."""
    listed = list_jobs(azure, account_id)
    deliveries: list[Delivery] = []
    for item in listed:
        props = _props(item)
        created = parse_time(props.get("creation_time") or props.get("creationTime"))
        if str((props.get("runbook") or {}).get("name") or "").lower() != RELAY_RUNBOOK or created is None \
                or created < since:
            continue
        name = str(item.get("name") or "")
        params = _props(get_job(azure, account_id, name)).get("parameters") or {}
        webhook = next((v for k, v in params.items() if k.lower() == "webhookdata"), None)
        start = relay_request(webhook)
        if isinstance(start, Ignored):
            deliveries.append(Delivery(name, created, "", None, start.reason))
        else:
            deliveries.append(Delivery(name, created, start.alert_id, start.job))
    wanted = {d.fix_job.lower() for d in deliveries if d.fix_job}
    fixes: dict[str, FixRun] = {}
    for item in listed:
        name, props = str(item.get("name") or ""), _props(item)
        if name.lower() not in wanted or str((props.get("runbook") or {}).get("name") or "").lower() != FIX_RUNBOOK:
            continue
        status = str(props.get("status") or "")
        if status in UNFINISHED_JOB:
            fixes[name.lower()] = FixRun(name, status)
            continue
        doc = _summary(job_output(azure, account_id, name))
        vms = tuple((str(v.get("vm")), str(v.get("outcome") or "failed")) for v in doc.get("vms") or [])
        error = f"ignored: {doc.get('reason')}" if doc.get("status") == "ignored" else doc.get("error") \
            or (None if doc else "no summary line in the job's output")
        fixes[name.lower()] = FixRun(name, status, vms, error)
    return deliveries, fixes
