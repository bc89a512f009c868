"""The relay's half of the alert path, played in Python: its webhook on armsim, an action group's POST, the relay's jobs.

relay_backup_alert.ps1 cannot run here (no PowerShell); runbooks/automation/relay.py states its contract and
test_automation_relay.py checks the .ps1 says the same, so play_relay does exactly what the .ps1 does.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.mgmt.automation import models

from armsim import Server
from remediations.azure import Azure
from runbooks.automation import relay
from runbooks.automation.relay import Ignored, RelayStart, relay_request
from support.automation import ACCOUNT_ID, RG

__all__ = ["ACCOUNT", "RELAY_CLIENT", "play_relay", "post_alert", "relay_webhook"]

ACCOUNT = "aa-backup-runbooks"
RELAY_CLIENT = "11111111-1111-1111-1111-111111111111"


def relay_webhook(azure: Azure, mode: str = "apply") -> str:
    """The relay's webhook, as deploy.json creates it; its URI (only returned on create)."""
    hook = azure.call(azure.automation.webhook.create_or_update, RG, ACCOUNT, "relay-backup-alert",
                      models.WebhookCreateOrUpdateParameters(
                          name="relay-backup-alert", is_enabled=True,
                          expiry_time=datetime.now(timezone.utc) + timedelta(days=365),
                          runbook=models.RunbookAssociationProperty(name=relay.RELAY_RUNBOOK),
                          parameters={"AccountId": ACCOUNT_ID, "RelayClientId": RELAY_CLIENT, "Mode": mode,
                                      "AllowDisruptive": "true"}))
    assert hook.uri
    return str(hook.uri)


def post_alert(server: Server, uri: str, text: str) -> tuple[int, Any]:
    """What an action group does: POST the alert to the webhook."""
    req = urllib.request.Request(uri, data=text.encode(), method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=server.ca_bundle)) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def play_relay(server: Server, azure: Azure) -> list[RelayStart | Ignored]:
    """Run every new relay job as the .ps1 would: relay_request, then GET and (if absent) PUT of the job."""
    done: list[RelayStart | Ignored] = []
    for job in server.sim.automation.claim(relay.RELAY_RUNBOOK):
        p = job.parameters
        start = relay_request(p["WebhookData"], mode=p["Mode"], allow_disruptive=p["AllowDisruptive"] == "true")
        if isinstance(start, RelayStart):
            try:
                azure.call(azure.automation.job.get, RG, ACCOUNT, start.job)
                line = f"relay: job {start.job} already started for this alert"
            except ResourceNotFoundError:
                body = models.JobCreateParameters(properties=models.JobCreateProperties(
                    runbook=models.RunbookAssociationProperty(name=start.runbook), parameters=start.parameters))
                try:
                    azure.call(azure.automation.job.create, RG, ACCOUNT, start.job, body)
                    line = f"relay: started {start.runbook} job {start.job}"
                except ResourceExistsError:
                    line = f"relay: job {start.job} already started for this alert"
        else:
            line = f"relay: ignored: {start.reason}"
        server.sim.automation.report(job.name, "Completed", output=[line])
        done.append(start)
    return done
