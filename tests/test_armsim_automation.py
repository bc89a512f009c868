"""armsim models Azure Automation as Azure documents it (issue #8 item 4), through the real azure-mgmt-automation SDK.

Sources: azure-rest-api-specs specification/automation/resource-manager/Microsoft.Automation/stable/2024-10-23/
(runbook, runtimeEnvironment, webhook, schedule, jobSchedule, job examples) and MicrosoftDocs/azure-docs
articles/automation/automation-webhooks.md.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import http, mutating

from armsim import Server
from remediations.azure import Azure

RG, ACCT = "rg-demo", "aa-backup-runbooks"
ACCOUNT = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo/providers"
           "/Microsoft.Automation/automationAccounts/aa-backup-runbooks")
API = "?api-version=2024-10-23"
SAMPLE = Path(__file__).parent.parent / "azure-automation" / "samples" / "backup-failure-alert.json"
RELAY = "relay_backup_alert"


def later(days: int = 365) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def webhook(azure: Azure, name: str, runbook: str, **props: Any) -> Any:
    body = {"name": name, "properties": {"isEnabled": True, "expiryTime": later(), "runbook": {"name": runbook},
                                         **props}}
    return azure.automation.webhook.create_or_update(RG, ACCT, name, body)


def post(server: Server, url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST raw bytes to a URL armsim handed out (the webhook's own URI)."""
    req = urllib.request.Request(url, method="POST", data=data, headers=headers or {})
    ctx = ssl.create_default_context(cafile=server.ca_bundle)
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


# --- runbooks and runtime environments --------------------------------------------------------
def test_demo_account_has_the_deployments_runbooks_with_their_runtimes(azure: Azure) -> None:
    envs = {e.name: (e.properties.runtime.language, e.properties.runtime.version)
            for e in azure.automation.runtime_environments.list_by_automation_account(RG, ACCT)}
    assert envs == {"python-3-10": ("Python", "3.10"), "powershell-7-2": ("PowerShell", "7.2")}
    books = {b.name: (b.properties.runbook_type, b.properties.runtime_environment)
             for b in azure.automation.runbook.list_by_automation_account(RG, ACCT)}
    assert books[RELAY] == ("PowerShell", "powershell-7-2")
    for name in ("fix_backup_failure", "fan_out", "preview_change_window", "sweep_backup_failures"):
        assert books[name] == ("Python", "python-3-10")


def test_runbook_and_runtime_environment_put_get(azure: Azure) -> None:
    env = azure.automation.runtime_environments.create(RG, ACCT, "ps74", {
        "location": "eastus", "properties": {"runtime": {"language": "PowerShell", "version": "7.4"}}})
    assert (env.properties.runtime.language, env.properties.runtime.version) == ("PowerShell", "7.4")
    rb = azure.automation.runbook.create_or_update(RG, ACCT, "hello", {
        "location": "eastus", "properties": {"runbookType": "PowerShell", "runtimeEnvironment": "ps74"}})
    assert (rb.name, rb.properties.runbook_type, rb.properties.runtime_environment) == ("hello", "PowerShell", "ps74")
    assert azure.automation.runbook.get(RG, ACCT, "hello").properties.state == "Published"
    with pytest.raises(HttpResponseError) as e:
        azure.automation.runbook.create_or_update(RG, ACCT, "bad", {
            "location": "eastus", "properties": {"runbookType": "PowerShell", "runtimeEnvironment": "no-such"}})
    assert e.value.status_code == 404


# --- webhooks ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("runbook", "kind", "env"), [
    ("fix_backup_failure", None, None),                    # seeded: runtime environment python-3-10
    ("legacy_py3", "Python3", None),                       # legacy runbookType
    ("env_py", "Python", "python-3-10"),                   # runtime-environment form
])
def test_webhook_on_a_python_runbook_is_refused_naming_its_type(
        armsim: Server, azure: Azure, runbook: str, kind: str | None, env: str | None) -> None:
    if kind:
        props: dict[str, Any] = {"runbookType": kind, **({"runtimeEnvironment": env} if env else {})}
        azure.automation.runbook.create_or_update(RG, ACCT, runbook, {"location": "eastus", "properties": props})
    with pytest.raises(HttpResponseError) as e:
        webhook(azure, "wh-py", runbook)
    msg = e.value.error.message if e.value.error else str(e.value)
    assert e.value.status_code == 400 and "Python" in msg and runbook in msg
    assert "Using a webhook to start a Python runbook is not supported." in msg
    assert (env or kind or "python-3-10") in msg  # the runbook's type as Azure knows it
    assert list(azure.automation.webhook.list_by_automation_account(RG, ACCT)) == []


def test_webhook_on_a_powershell_runbook_returns_its_uri_once(armsim: Server, azure: Azure) -> None:
    hook = webhook(azure, "wh-relay", RELAY)
    assert hook.properties.uri.startswith(armsim.endpoint + "/webhooks?token=")
    got = azure.automation.webhook.get(RG, ACCT, "wh-relay")
    assert (got.properties.uri, got.properties.runbook.name, got.properties.is_enabled) == ("", RELAY, True)
    generated = azure.automation.webhook.generate_uri(RG, ACCT)
    chosen = webhook(azure, "wh-chosen", RELAY, uri=generated)
    assert chosen.properties.uri == generated


def test_webhook_call_starts_a_job_with_webhookdata(armsim: Server, azure: Azure) -> None:
    hook = webhook(azure, "wh-relay", RELAY, parameters={"mode": "apply"})
    alert = SAMPLE.read_bytes()
    status, body = post(armsim, hook.properties.uri, alert, {"Content-Type": "application/json", "X-Test": "1"})
    assert status == 202 and list(body) == ["JobIds"] and len(body["JobIds"]) == 1
    job = armsim.sim.automation.find_job(body["JobIds"][0])
    sdk_job = azure.automation.job.get(RG, ACCT, job.name)
    assert (sdk_job.runbook.name, sdk_job.job_id) == (RELAY, body["JobIds"][0])
    params = sdk_job.parameters
    assert set(params) == {"mode", "WebhookData"} and params["mode"] == "apply"
    data = json.loads(params["WebhookData"])
    assert data["WebhookName"] == "wh-relay"
    assert data["RequestBody"] == alert.decode()  # the body exactly as posted, as a string
    assert json.loads(data["RequestBody"]) == json.loads(alert)
    assert data["RequestHeader"]["x-test"] == "1"
    assert azure.automation.webhook.get(RG, ACCT, "wh-relay").properties.last_invoked_time is not None


def test_webhook_takes_any_body(armsim: Server, azure: Azure) -> None:
    hook = webhook(azure, "wh-relay", RELAY)
    status, body = post(armsim, hook.properties.uri, b"not json <at all>", {"Content-Type": "text/plain"})
    assert status == 202
    data = json.loads(armsim.sim.automation.find_job(body["JobIds"][0]).parameters["WebhookData"])
    assert data["RequestBody"] == "not json <at all>"


def test_webhook_unknown_disabled_or_expired_start_nothing(armsim: Server, azure: Azure) -> None:
    on = webhook(azure, "wh-on", RELAY)
    off = webhook(azure, "wh-off", RELAY, isEnabled=False)
    old = webhook(azure, "wh-old", RELAY, expiryTime="2020-01-01T00:00:00Z")
    assert post(armsim, on.properties.uri.replace("token=", "token=x"), b"{}")[0] == 404
    assert post(armsim, off.properties.uri, b"{}")[0] == 400
    assert post(armsim, old.properties.uri, b"{}")[0] == 400
    assert post(armsim, armsim.endpoint + "/webhooks", b"{}")[0] == 400
    assert armsim.sim.automation.jobs() == []


# --- jobs: parameters exactly as sent, output and streams -------------------------------------
def test_job_parameters_are_recorded_exactly_as_sent(armsim: Server, azure: Azure) -> None:
    alert = SAMPLE.read_text()
    params = {"alert": alert, "quoted": '"rg-demo"', "empty": "", "spaces": "  a b  "}
    job = azure.automation.job.create(RG, ACCT, "j-exact", {"properties": {
        "runbook": {"name": "fix_backup_failure"}, "parameters": params}})
    assert job.parameters == params
    assert azure.automation.job.get(RG, ACCT, "j-exact").parameters == params
    # a non-string value is kept as sent too (the spec types values as strings; ARM's handling is unverified)
    status, body = http(armsim, "PUT", f"{ACCOUNT}/jobs/j-raw{API}", {"properties": {
        "runbook": {"name": "fix_backup_failure"}, "parameters": {"n": 5, "obj": {"a": [1]}}}})
    assert status == 201 and body["properties"]["parameters"] == {"n": 5, "obj": {"a": [1]}}


def test_same_job_name_twice_is_409(azure: Azure) -> None:
    body = {"properties": {"runbook": {"name": "fix_backup_failure"}, "parameters": {"alert": "{}"}}}
    azure.automation.job.create(RG, ACCT, "child-a", body)
    with pytest.raises(HttpResponseError) as e:
        azure.automation.job.create(RG, ACCT, "child-a", body)
    assert e.value.status_code == 409


def test_harness_claims_a_job_and_reports_output_streams_and_end(armsim: Server, azure: Azure) -> None:
    azure.automation.job.create(RG, ACCT, "j-1", {"properties": {"runbook": {"name": "fix_backup_failure"}}})
    azure.automation.job.create(RG, ACCT, "j-2", {"properties": {"runbook": {"name": "fan_out"}}})
    taken = armsim.sim.automation.claim("fix_backup_failure")
    assert [j.name for j in taken] == ["j-1"] and armsim.sim.automation.claim("fix_backup_failure") == []
    for _ in range(5):  # a claimed job does not move on reads: it follows its harness
        assert azure.automation.job.get(RG, ACCT, "j-1").status == "Running"
    armsim.sim.automation.report("j-1", "Failed", output=["step 1", "step 2"], errors=["boom"], exception="boom")
    job = azure.automation.job.get(RG, ACCT, "j-1")
    assert (job.status, job.exception) == ("Failed", "boom") and job.end_time is not None
    assert azure.automation.job.get_output(RG, ACCT, "j-1") == "step 1\nstep 2"
    streams = list(azure.automation.job_stream.list_by_job(RG, ACCT, "j-1"))
    assert [s.properties.stream_type for s in streams] == ["Output", "Output", "Error"]
    one = azure.automation.job_stream.get(RG, ACCT, "j-1", streams[2].properties.job_stream_id)
    assert one.properties.stream_text == "boom"
    # the unclaimed job still follows the automatic lifecycle (fan_out relies on it)
    assert [azure.automation.job.get(RG, ACCT, "j-2").status for _ in range(4)] == [
        "Running", "Running", "Completed", "Completed"]


def test_harness_over_https_control_routes(armsim: Server, azure: Azure) -> None:
    hook = webhook(azure, "wh-relay", RELAY)
    job_id = post(armsim, hook.properties.uri, b'{"a": 1}')[1]["JobIds"][0]
    status, claimed = http(armsim, "POST", "/_armsim/automation/claim", {"runbook": RELAY})
    assert status == 200 and [j["properties"]["jobId"] for j in claimed] == [job_id]
    assert json.loads(claimed[0]["properties"]["parameters"]["WebhookData"])["RequestBody"] == '{"a": 1}'
    status, done = http(armsim, "POST", f"/_armsim/automation/jobs/{job_id}/report",
                        {"status": "Completed", "output": ["started child"]})
    assert status == 200 and done["properties"]["status"] == "Completed"
    assert azure.automation.job.get_output(RG, ACCT, claimed[0]["name"]) == "started child"
    assert http(armsim, "POST", "/_armsim/automation/jobs/nope/report", {})[0] == 404


def test_job_output_is_text_plain(armsim: Server, azure: Azure) -> None:
    azure.automation.job.create(RG, ACCT, "j-out", {"properties": {"runbook": {"name": "fan_out"}}})
    armsim.sim.automation.report("j-out", output=["hello"])
    ctx = ssl.create_default_context(cafile=armsim.ca_bundle)
    with urllib.request.urlopen(f"{armsim.endpoint}{ACCOUNT}/jobs/j-out/output{API}", context=ctx) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain") and resp.read() == b"hello"


# --- schedules and job schedules --------------------------------------------------------------
def test_schedule_and_job_schedule_resources_and_firing(armsim: Server, azure: Azure) -> None:
    sched = azure.automation.schedule.create_or_update(RG, ACCT, "sweep-hourly", {
        "name": "sweep-hourly", "properties": {"startTime": later(1), "frequency": "Hour", "interval": 1}})
    assert sched is not None and (sched.properties.frequency, sched.properties.interval) == ("Hour", 1)
    assert [s.name for s in azure.automation.schedule.list_by_automation_account(RG, ACCT)] == ["sweep-hourly"]
    jid = str(uuid.uuid4())
    link = {"properties": {"schedule": {"name": "sweep-hourly"}, "runbook": {"name": "sweep_backup_failures"},
                           "parameters": {"hours": "24", "vaults": '["rsv-demo"]'}}}
    js = azure.automation.job_schedule.create(RG, ACCT, jid, link)
    assert (js.properties.job_schedule_id, js.properties.runbook.name) == (jid, "sweep_backup_failures")
    assert azure.automation.job_schedule.get(RG, ACCT, jid).properties.parameters == link["properties"]["parameters"]
    for other in (jid, str(uuid.uuid4())):  # the same id again, or the same runbook + schedule: 409 (redeploys)
        with pytest.raises(HttpResponseError) as e:
            azure.automation.job_schedule.create(RG, ACCT, other, link)
        assert e.value.status_code == 409
    status, fired = http(armsim, "POST", "/_armsim/automation/schedules/sweep-hourly/fire")
    assert status == 200 and len(fired["jobs"]) == 1
    job = azure.automation.job.get(RG, ACCT, fired["jobs"][0]["name"])
    assert (job.runbook.name, job.parameters) == ("sweep_backup_failures", link["properties"]["parameters"])
    azure.automation.job_schedule.delete(RG, ACCT, jid)
    assert list(azure.automation.job_schedule.list_by_automation_account(RG, ACCT)) == []
    azure.automation.schedule.delete(RG, ACCT, "sweep-hourly")
    assert http(armsim, "POST", "/_armsim/automation/schedules/sweep-hourly/fire")[0] == 404


def test_schedule_needs_start_and_frequency(armsim: Server, azure: Azure) -> None:
    with pytest.raises(HttpResponseError) as e:
        azure.automation.schedule.create_or_update(RG, ACCT, "s", {"name": "s", "properties": {
            "startTime": later(1), "frequency": "Minute", "interval": 5}})
    assert e.value.status_code == 400  # "The minimum allowed interval for Minute schedules is 15 minutes."
    assert http(armsim, "PUT", f"{ACCOUNT}/schedules/s{API}", {"name": "s", "properties": {"frequency": "Day"}})[0] == 400
    ok = {"name": "s", "properties": {"startTime": later(1), "frequency": "Minute", "interval": 15}}
    assert http(armsim, "PUT", f"{ACCOUNT}/schedules/s{API}", ok)[0] == 201
    assert http(armsim, "PUT", f"{ACCOUNT}/schedules/s{API}", ok)[0] == 200


def test_writes_are_logged_as_mutating(armsim: Server, azure: Azure) -> None:
    hook = webhook(azure, "wh-relay", RELAY)
    post(armsim, hook.properties.uri, b"{}")
    ops = [e["operation"] for e in mutating(armsim)]
    assert ops == ["Webhook_CreateOrUpdate", "Webhook_Invoke"]


def test_unknown_automation_routes_still_501(armsim: Server) -> None:
    status, body = http(armsim, "GET", f"{ACCOUNT}/variables{API}")
    assert status == 501 and body["error"]["code"] == "NotImplemented"
