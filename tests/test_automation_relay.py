"""The alert path, in the two halves a machine without PowerShell can drive (issue #8).

First half: an alert posted to the relay's webhook on armsim starts a relay job whose WebhookData holds the
alert. Second half: the job the relay would start (runbooks/automation/relay.py states it; the .ps1 is checked to say
the same) is created through the jobs API, then run as Automation would run it (the entry script with the
job's parameters as sys.argv), its output reported back through armsim's harness: the VM is fixed and
its backup Completed. A redelivered alert starts no second fix; a bad, foreign or Resolved one starts none.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from azure.mgmt.automation import models
from support.automation import RG, failed_job, proved, sample
from support.demo import sim_vm
from support.relay import ACCOUNT
from support.relay import play_relay as _play_relay
from support.relay import post_alert as _post
from support.relay import relay_webhook as _relay_webhook
from support.runs import AA_DIR, run_entry

from armsim import Server
from remediations.azure import Azure
from runbooks.automation import relay
from runbooks.automation.relay import Ignored, RelayStart, relay_request

PS1 = AA_DIR / "relay_backup_alert.ps1"


def ps1() -> str:
    return PS1.read_text(encoding="utf-8")


# --- the relay's contract, and the .ps1 saying the same ----------------------------------------------
def test_the_sample_alert_starts_one_named_fix_job_with_the_alert_verbatim() -> None:
    body = sample("backup-failure-alert.json")
    start = relay_request({"WebhookName": "relay", "RequestBody": body, "RequestHeader": {}}, mode="apply")
    assert isinstance(start, RelayStart)
    assert start.runbook == "fix_backup_failure" == relay.FIX_RUNBOOK
    assert start.parameters == {"alert": json.dumps(body), "mode": "mode=apply",
                                "allow_disruptive": "allow_disruptive=false"}
    assert json.loads(start.parameters["alert"]) == body  # the alert, verbatim, as one JSON string
    alert_id = json.loads(body)["data"]["essentials"]["alertId"]
    assert start.job == relay.job_name(alert_id)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", start.job)
    other = sample("backup-failure-alert.json").replace("6f1a2b3c", "7f1a2b3c")
    again = relay_request({"RequestBody": other})
    assert isinstance(again, RelayStart) and again.job != start.job


def test_powershell_7_webhook_data_forms_give_the_same_job() -> None:
    body = sample("backup-failure-alert.json")
    compact = json.dumps(json.loads(body))
    want = relay_request({"RequestBody": body})
    assert isinstance(want, RelayStart)
    for form in (json.dumps({"WebhookName": "relay", "RequestBody": body}),  # WebhookData as JSON text
                 "{WebhookName:relay,RequestBody:" + compact + ",RequestHeader:{Connection:Keep-Alive}}"):
        got = relay_request(form)
        assert isinstance(got, RelayStart) and got.job == want.job, form[:50]


@pytest.mark.parametrize("webhook_data, why", [
    (None, "no RequestBody"),
    ("not json at all", "no RequestBody"),
    ({"RequestBody": ""}, "no RequestBody"),
    ({"RequestBody": "hello"}, "not JSON"),
    ({"RequestBody": "[" * 20000}, "not JSON"),
    ({"RequestBody": "[1, 2]"}, "not a azureMonitorCommonAlertSchema alert"),
    ({"RequestBody": '{"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {"alertId": 7}}}'},
     "not a azureMonitorCommonAlertSchema alert"),
    ({"RequestBody": '{"schemaId": "AzureMonitorMetricAlert", "data": {"essentials": {"alertId": "a"}}}'},
     "not a azureMonitorCommonAlertSchema alert"),
    ({"RequestBody": "{" + '"a": "' + "x" * relay.MAX_BODY + '"}'}, "over 262144 bytes"),
])
def test_a_body_that_is_not_an_alert_starts_nothing(webhook_data: Any, why: str) -> None:
    got = relay_request(webhook_data)
    assert isinstance(got, Ignored) and why in got.reason


@pytest.mark.parametrize("name, why", [("backup-alert-resolved.json", "Resolved"),
                                       ("foreign-vm-cpu-alert.json", "not an Azure Backup alert")])
def test_resolved_and_foreign_alerts_start_nothing(name: str, why: str) -> None:
    got = relay_request({"RequestBody": sample(name)})
    assert isinstance(got, Ignored) and why in got.reason


def test_the_ps1_states_the_same_contract() -> None:
    text = ps1()
    assert f"$FixRunbook = '{relay.FIX_RUNBOOK}'" in text
    assert "$alert = ConvertTo-Json -InputObject $start.Body -Compress" in text
    assert re.search(rf"\[ordered\]@{{ {relay.PARAMETER} = \$alert; mode = \"mode=\$Mode\"; "
                     r"allow_disruptive = \"allow_disruptive=\$AllowDisruptive\" }", text)
    assert "$parameters['client_id'] = \"client_id=$FixClientId\"" in text
    assert f"-cne '{relay.SCHEMA_ID}'" in text and f"-cne '{relay.SERVICE}'" in text
    assert "$essentials.monitorCondition -ceq 'Resolved'" in text
    assert f"$MaxBody = {relay.MAX_BODY}" in text
    assert f"-match '{relay._PS7_WEBHOOK.pattern.join(['(?s)', ''])}'" in text
    for reason in ("no RequestBody: not an alert", "RequestBody is not JSON: not an alert", "Resolved alert",
                   "not a azureMonitorCommonAlertSchema alert", "not an Azure Backup alert"):
        assert f"'{reason}'" in text, reason
    # the GET before the PUT, a 409 taken as "already started", the jobs API through the relay's own identity
    assert text.index("-Method GET -Path $path") < text.index("-Method PUT -Path $path")
    assert "StatusCode -eq 409" in text and "Connect-AzAccount -Identity -AccountId $RelayClientId" in text
    assert "$path = \"$AccountId/jobs/$($start.Job)?api-version=$ApiVersion\"" in text


def _ps_job_name(text: str, alert_id: str) -> str:
    """The job name the .ps1's own expressions give (its hash, Substring calls and -f format, evaluated here)."""
    assert "[System.Security.Cryptography.SHA256]::Create().ComputeHash([System.Text.Encoding]::UTF8.GetBytes(" \
           "$essentials.alertId))" in text
    assert "$h = -join ($sha[0..15] | ForEach-Object { $_.ToString('x2') })" in text
    h = hashlib.sha256(alert_id.encode("utf-8")).hexdigest()[:32]
    m = re.search(r"\$variant = \(\[Convert\]::ToInt32\(\$h\.Substring\((\d+), 1\), 16\) -band (\d+)\) -bor (\d+)", text)
    assert m, "variant line"
    variant = (int(h[int(m[1])], 16) & int(m[2])) | int(m[3])
    line = re.search(r"\$job = '([^']+)' -f (.+)", text)
    assert line, "job line"
    args: list[Any] = []
    for arg in (a.strip() for a in line[2].split(", $")):
        sub = re.fullmatch(r"\$?h\.Substring\((\d+), (\d+)\)", arg)
        args.append(h[int(sub[1]):int(sub[1]) + int(sub[2])] if sub else variant if arg.lstrip("$") == "variant"
                    else pytest.fail(f"unexpected argument {arg}"))
    return re.sub(r"\{(\d)(?::x)?\}", lambda g: format(args[int(g[1])], "x") if isinstance(args[int(g[1])], int)
                  else str(args[int(g[1])]), line[1])


@pytest.mark.parametrize("alert_id", ["/subscriptions/0/providers/Microsoft.AlertsManagement/alerts/6f1a2b3c",
                                      "x", "ü-alert/" + "9" * 300])
def test_the_ps1_derives_the_same_job_name(alert_id: str) -> None:
    assert _ps_job_name(ps1(), alert_id) == relay.job_name(alert_id)


# --- the chain on armsim ---------------------------------------------------------------------------
def _run_fix_jobs(server: Server) -> list[Any]:
    """Run every new fix_backup_failure job as Automation runs a Python runbook: its parameter values as argv."""
    runs = []
    for job in server.sim.automation.claim(relay.FIX_RUNBOOK):
        run = run_entry(server, "fix_backup_failure.py", *job.parameters.values())
        server.sim.automation.report(job.name, "Completed" if run.code == 0 else "Failed", output=run.lines)
        runs.append(run)
    return runs


def test_the_sample_alert_posted_to_the_relay_webhook_ends_with_the_vm_fixed(armsim: Server, azure: Azure) -> None:
    vm = "vm-nsg-blocked"
    since = datetime.now(timezone.utc)
    uri = _relay_webhook(azure)
    alert = sample("backup-failure-alert.json", vm, failed_job(armsim, vm))
    status, answer = _post(armsim, uri, alert)
    # first half: a relay job whose WebhookData is the alert
    [relay_job] = armsim.sim.automation.jobs(relay.RELAY_RUNBOOK)
    assert status == 202 and answer == {"JobIds": [relay_job.job_id]}
    assert json.loads(relay_job.parameters["WebhookData"])["RequestBody"] == alert
    # second half: the relay's job starts fix_backup_failure, which fixes the VM and proves it
    [start] = _play_relay(armsim, azure)
    assert isinstance(start, RelayStart)
    [fix_job] = armsim.sim.automation.jobs(relay.FIX_RUNBOOK)
    assert fix_job.name == start.job and fix_job.parameters == start.parameters  # recorded exactly as sent
    [run] = _run_fix_jobs(armsim)
    assert run.code == 0 and run.summary["status"] == "ok", run.text
    assert run.summary["vms"][0]["status"] == "fixed" and run.summary["vms"][0]["backup_job"]
    assert proved(armsim, vm, since), run.text
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) is None  # type: ignore[arg-type]
    output = azure.call(azure.automation.job.get_output, RG, ACCOUNT, fix_job.name)
    assert json.loads(str(output).splitlines()[-1])["status"] == "ok"


def test_the_same_alert_posted_twice_gives_one_fix(armsim: Server, azure: Azure) -> None:
    vm = "vm-ext-failed"
    since = datetime.now(timezone.utc)
    uri = _relay_webhook(azure)
    alert = sample("backup-failure-alert.json", vm, failed_job(armsim, vm))
    _post(armsim, uri, alert)
    first = _play_relay(armsim, azure)
    assert _run_fix_jobs(armsim)[0].code == 0
    _post(armsim, uri, alert)  # an action group may deliver the same alert again
    second = _play_relay(armsim, azure)
    assert first == second and isinstance(first[0], RelayStart)
    assert _run_fix_jobs(armsim) == []
    assert len(armsim.sim.automation.jobs(relay.RELAY_RUNBOOK)) == 2
    assert len(armsim.sim.automation.jobs(relay.FIX_RUNBOOK)) == 1
    assert [e["operation"] for e in armsim.sim.requests() if e["operation"] == "Job_Create"] == ["Job_Create"]
    assert len(proved(armsim, vm, since)) == 1


@pytest.mark.parametrize("body", [
    "not an alert", "[" * 20000, sample("backup-alert-resolved.json"), sample("foreign-vm-cpu-alert.json"),
    sample("backup-failure-alert.json").replace("azureMonitorCommonAlertSchema", "somethingElse")])
def test_bad_foreign_or_resolved_alerts_start_no_fix_and_send_no_write(armsim: Server, azure: Azure,
                                                                        body: str) -> None:
    uri = _relay_webhook(azure)
    armsim.sim.clear_requests()
    _post(armsim, uri, body)
    [got] = _play_relay(armsim, azure)
    assert isinstance(got, Ignored)
    assert armsim.sim.automation.jobs(relay.FIX_RUNBOOK) == []
    assert [e["operation"] for e in armsim.sim.requests() if e["mutating"]] == ["Webhook_Invoke"]
    assert armsim.sim.automation.find_job(armsim.sim.automation.jobs(relay.RELAY_RUNBOOK)[0].name).status == "Completed"


def test_armsim_refuses_the_webhook_the_old_deployment_asked_for(armsim: Server, azure: Azure) -> None:
    """deploy.json used to put the action group's webhook on fix_backup_failure (Python 3.10); Azure refuses that."""
    from azure.core.exceptions import HttpResponseError

    old = models.WebhookCreateOrUpdateParameters(
        name="backup-failure-alerts", is_enabled=True, expiry_time=datetime.now(timezone.utc) + timedelta(days=365),
        runbook=models.RunbookAssociationProperty(name=relay.FIX_RUNBOOK), parameters={"mode": "mode=apply"})
    with pytest.raises(HttpResponseError) as refused:
        azure.call(azure.automation.webhook.create_or_update, RG, ACCOUNT, "backup-failure-alerts", old)
    assert refused.value.status_code == 400 and "Python" in str(refused.value.message)
    assert _relay_webhook(azure).startswith(armsim.endpoint)  # the relay's webhook is accepted
