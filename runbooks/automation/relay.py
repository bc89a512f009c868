"""The contract of the PowerShell relay (azure-automation/relay_backup_alert.ps1), stated once in Python.

Azure does not let a webhook start a Python runbook ("Using a webhook to start a Python runbook is not
supported.", MicrosoftDocs/azure-docs articles/automation/automation-webhooks.md), so an action group's
webhook starts the PowerShell 7.2 relay, and the relay starts `fix_backup_failure` through the jobs API
(PUT …/automationAccounts/{account}/jobs/{jobName}). The relay decides only this much:

- its WebhookData's RequestBody must be a common-alert-schema alert with a string `essentials.alertId`
  from Azure Backup; anything else is ignored (one log line, no job);
- a Resolved alert starts nothing;
- otherwise one job of FIX_RUNBOOK, named job_name(alertId), whose parameters are the RequestBody
  under PARAMETER, serialized once more as a JSON string ("If you're calling a Python runbook using the
  API, the JSON payload must be serialized.", learn.microsoft.com azure/automation/start-runbooks; the
  Az cmdlets send every value JSON-encoded, Azure/azure-powershell issue #8921), and the
  self-describing settings `mode=…`, `allow_disruptive=…` (and `client_id=…` when given). Whether or
  not Automation decodes the value, the Python runbook gets the alert's JSON text or that string.

A redelivered alert gets the same job name, so it starts no second job (GET first; a 409 on PUT is
"already started"). The tests play the relay's half with relay_request; test_automation_relay.py checks
that the .ps1 says the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from remediations.armid import is_guid

__all__ = ["FIX_RUNBOOK", "MAX_BODY", "PARAMETER", "RELAY_RUNBOOK", "SCHEMA_ID", "SERVICE", "Ignored", "RelayStart",
           "job_name", "relay_request"]

RELAY_RUNBOOK = "relay_backup_alert"
FIX_RUNBOOK = "fix_backup_failure"
PARAMETER = "alert"
SCHEMA_ID = "azureMonitorCommonAlertSchema"
SERVICE = "Azure Backup"
MAX_BODY = 262144  # bytes of RequestBody the relay forwards; a larger body is ignored
_PS7_WEBHOOK = re.compile(r"RequestBody:(\{.*\}),RequestHeader:", re.I | re.S)


@dataclass(frozen=True)
class RelayStart:
    """What the relay starts: one job of `runbook` named `job`, with `parameters` (all strings)."""

    job: str
    runbook: str
    parameters: dict[str, str]
    alert_id: str = ""


@dataclass(frozen=True)
class Ignored:
    """What the relay logs (one line) when it starts nothing."""

    reason: str


def job_name(alert_id: str) -> str:
    """The child job's name: a UUID (version 8, RFC 9562) made of the SHA-256 of the UTF-8 alert ID."""
    h = hashlib.sha256(alert_id.encode("utf-8")).hexdigest()[:32]
    variant = (int(h[16], 16) & 3) | 8
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{variant:x}{h[17:20]}-{h[20:32]}"


def _request_body(webhook_data: Any) -> Any:
    """WebhookData's RequestBody (key case ignored, as PowerShell does); PowerShell 7 may pass WebhookData as
    its JSON text or as not-quite-JSON text (automation-webhooks.md), from which the body is cut out."""
    if isinstance(webhook_data, str):
        try:
            webhook_data = json.loads(webhook_data)
        except (ValueError, RecursionError):
            m = _PS7_WEBHOOK.search(webhook_data)
            webhook_data = {"RequestBody": m.group(1)} if m else None
    if not isinstance(webhook_data, dict):
        return None
    return next((v for k, v in webhook_data.items() if k.lower() == "requestbody"), None)


def relay_request(webhook_data: Any, *, mode: str = "dry-run", allow_disruptive: bool = False,
                  client_id: str | None = None) -> RelayStart | Ignored:
    """The job the relay starts for `webhook_data` (its WebhookData), or why it starts none."""
    if mode not in ("apply", "dry-run"):
        raise ValueError(f"mode {mode!r}")
    if client_id is not None and not is_guid(client_id):
        raise ValueError("client_id is not a GUID")
    body = _request_body(webhook_data)
    if not isinstance(body, str) or not body.strip():
        return Ignored("no RequestBody: not an alert")
    if len(body.encode("utf-8")) > MAX_BODY:
        return Ignored(f"RequestBody over {MAX_BODY} bytes: not an alert")
    try:
        alert = json.loads(body)
    except (ValueError, RecursionError):
        return Ignored("RequestBody is not JSON: not an alert")
    alert = alert if isinstance(alert, dict) else {}
    data = alert.get("data")
    essentials = data.get("essentials") if isinstance(data, dict) else None
    if alert.get("schemaId") != SCHEMA_ID or not isinstance(essentials, dict) \
            or not isinstance(essentials.get("alertId"), str) or not essentials["alertId"]:
        return Ignored(f"not a {SCHEMA_ID} alert")
    if essentials.get("monitoringService") != SERVICE:
        return Ignored(f"not an {SERVICE} alert")
    if essentials.get("monitorCondition") == "Resolved":
        return Ignored("Resolved alert")
    params = {PARAMETER: json.dumps(body), "mode": f"mode={mode}", "allow_disruptive": f"allow_disruptive={str(allow_disruptive).lower()}"}
    if client_id:
        params["client_id"] = f"client_id={client_id}"
    return RelayStart(job_name(essentials["alertId"]), FIX_RUNBOOK, params, essentials["alertId"])
