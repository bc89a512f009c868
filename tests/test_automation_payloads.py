"""Automation entry scripts, in-process: settings, env fallbacks, accepted payloads (the helpers the
subprocess tests share are in tests/support: runs.py and automation.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from support.automation import (
    ACCOUNT_ID,
    RG,
    SAMPLE_JOB,
    SAMPLE_VM,
    SAMPLES,
    VAULT_ID,
    failed_job,
    sample,
    vm_id,
)
from support.runs import run_entry

from armsim import Server
from remediations.errors import BadInput
from runbooks import automation as aa
from runbooks.automation import relay


# --- settings ---------------------------------------------------------------------------------
def test_argv_data_and_settings_are_told_apart_in_any_order() -> None:
    data, given = aa.parse_argv(["x", "mode=apply", "/subscriptions/s/x", "allow_disruptive=true"], "fix_backup_failure")
    assert data == "/subscriptions/s/x"
    assert given == {"mode": "apply", "allow_disruptive": "true"}
    data, given = aa.parse_argv(["x", '{"a": "b=c"}'], "fix_backup_failure")
    assert data == '{"a": "b=c"}' and given == {}


@pytest.mark.parametrize("argv, message", [
    (["x", "{}", "modee=apply"], "unknown setting 'modee'"),
    (["x", "{}", "mode=apply", "mode=dry-run"], "given twice"),
    (["x", "{}", "automation_account=/x"], "unknown setting 'automation_account' for fix_backup_failure"),
])
def test_unknown_or_repeated_settings_are_bad_input(argv: list[str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        aa.parse_argv(argv, "fix_backup_failure")


def test_settings_fall_back_to_environment_then_safe_defaults() -> None:
    s = aa.resolve("fix_backup_failure", {}, env={})
    assert (s.mode, s.dry_run, s.allow_disruptive, s.client_id, s.credential) == \
        ("dry-run", True, False, None, "managed-identity")
    env = {"RUNBOOKS_MODE": "apply", "RUNBOOKS_ALLOW_DISRUPTIVE": "TRUE", "AZURE_CLIENT_ID": "0" * 8 + "-0000-0000-0000-" + "1" * 12}
    s = aa.resolve("fix_backup_failure", {}, env=env)
    assert (s.mode, s.allow_disruptive, s.client_id) == ("apply", True, env["AZURE_CLIENT_ID"])
    s = aa.resolve("fix_backup_failure", {"mode": "dry-run"}, env=env)  # the argument wins
    assert s.mode == "dry-run"
    s = aa.resolve("fan_out", {}, env={"RUNBOOKS_CONCURRENCY": "3", "RUNBOOKS_AUTOMATION_ACCOUNT": ACCOUNT_ID})
    assert (s.concurrency, s.automation_account, s.runbook) == (3, ACCOUNT_ID, "fix_backup_failure")


@pytest.mark.parametrize("key, value", [("mode", "yes"), ("allow_disruptive", "maybe"), ("client_id", "abc"),
                                        ("retention_days", "0"), ("backup_wait_seconds", "x")])
def test_bad_setting_values_are_bad_input(key: str, value: str) -> None:
    with pytest.raises(BadInput, match=f"^{key}="):
        aa.resolve("fix_backup_failure", {key: value}, env={})


def test_child_parameters_carry_the_vm_and_every_forwarded_setting_self_described() -> None:
    s = aa.resolve("fan_out", {"mode": "apply", "allow_disruptive": "true", "automation_account": ACCOUNT_ID}, env={})
    params = aa.child_parameters(vm_id("vm-a"), s)
    assert list(params)[0] == "data" and params["data"] == vm_id("vm-a")
    assert params["mode"] == "mode=apply" and params["allow_disruptive"] == "allow_disruptive=true"
    assert all(v == f"{k}={v.split('=', 1)[1]}" for k, v in params.items() if k != "data")
    data, given = aa.parse_argv(["fix_backup_failure.py", *reversed(list(params.values()))], "fix_backup_failure")
    assert data == vm_id("vm-a") and given["mode"] == "apply"


# --- payloads ---------------------------------------------------------------------------------
def test_every_sample_is_json_and_is_understood() -> None:
    names = sorted(p.name for p in SAMPLES.glob("*.json"))
    assert len(names) >= 3
    kinds = {}
    for name in names:
        t = aa.read_trigger(sample(name))
        kinds[name] = t.ignored or [x.name for x in t.targets]
    assert kinds["backup-failure-alert.json"] == [SAMPLE_VM]
    assert kinds["webhook-backup-failure.json"] == [SAMPLE_VM]
    assert kinds["backup-failure-multi-vm.json"] == ["vm-nsg-blocked", "vm-subnet-blocked", "vm-ext-failed",
                                                     "vm-linux-agent-old"]
    assert "Resolved" in kinds["backup-alert-resolved.json"]
    assert "not Azure Backup" in kinds["foreign-vm-cpu-alert.json"]


def test_alert_names_vault_and_job() -> None:
    t = aa.read_trigger(sample("backup-failure-alert.json", job="abc"))
    assert t.alert is not None and t.alert.job_id == "abc"
    t = aa.read_trigger(sample("backup-failure-alert.json", job=f"{VAULT_ID}/backupJobs/abc"))
    assert t.alert is not None and t.alert.job_id == "abc"
    assert t.alert.vault_id is not None and aa.resource_parts(t.alert.vault_id)[1:] == ("rg-demo", "rsv-demo")


def test_webhook_data_forms() -> None:
    alert = json.loads(sample("backup-failure-alert.json"))
    forms = [
        json.dumps({"WebhookName": "w", "RequestBody": alert, "RequestHeader": {}}),        # body as an object
        json.dumps({"webhookName": "w", "requestBody": json.dumps(alert)}),                 # camelCase, body a string
        "@{WebhookName=w; RequestBody=" + json.dumps(alert) + "; RequestHeader=System.Collections.Hashtable}",
        "WebhookData=" + json.dumps({"WebhookName": "w", "RequestBody": json.dumps(alert)}),
    ]
    for text in forms:
        t = aa.read_trigger(text)
        assert [x.name for x in t.targets] == [SAMPLE_VM], text[:60]


def test_an_alert_split_over_several_arguments_is_joined_again() -> None:
    argv = ["fix_backup_failure.py", *sample("backup-failure-alert.json").split(" "), "mode=apply"]
    data, given = aa.parse_argv(argv, "fix_backup_failure")
    assert given == {"mode": "apply"} and data is not None
    assert [t.name for t in aa.read_trigger(data).targets] == [SAMPLE_VM]


def test_a_vm_id_a_list_and_a_protected_item_only_alert() -> None:
    assert [t.name for t in aa.read_trigger(vm_id("vm-a")).targets] == ["vm-a"]
    t = aa.read_trigger(json.dumps([vm_id("vm-a"), vm_id("vm-b"), vm_id("vm-a")]))
    assert [x.name for x in t.targets] == ["vm-a", "vm-b"]
    alert = json.loads(sample("backup-failure-alert.json"))
    ctx = alert["data"]["alertContext"]
    for key in ("linkedResourceId", "sourceId", "affectedItems"):
        ctx.pop(key)
    t = aa.read_trigger(json.dumps(alert))
    assert [x.id for x in t.targets] == [vm_id(SAMPLE_VM)]


@pytest.mark.parametrize("change, why", [
    (lambda a: a["data"]["alertContext"].update(
        protectedItemId=VAULT_ID + "/backupFabrics/Azure/protectionContainers/VMAppContainer;compute;rg-demo;vm-sql"
                                   "/protectedItems/SQLDataBase;mssqlserver;sales"), "not a VM backup"),
    (lambda a: a["data"]["essentials"].update(alertRule="Restore Failure"), "not about a failed backup"),
    (lambda a: a["data"]["alertContext"].update(category="Security"), "about Security"),
    (lambda a: [a["data"]["alertContext"].pop(k) for k in ("linkedResourceId", "sourceId", "affectedItems",
                                                           "protectedItemId")], "names no virtual machine"),
])
def test_backup_alerts_that_are_not_a_vm_backup_failure_are_ignored(change: Any, why: str) -> None:
    alert = json.loads(sample("backup-failure-alert.json"))
    change(alert)
    t = aa.read_trigger(json.dumps(alert))
    assert t.ignored and why in t.ignored and not t.targets


@pytest.mark.parametrize("text, why", [
    ("hello", "not JSON"),
    ('{"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": ', "not JSON"),
    ("{}", "not a common-alert-schema alert"),
    ('{"schemaId": "Microsoft.Insights/activityLogs", "data": {}}', "not a common-alert-schema alert"),
    ("[1, 2]", "VM resource IDs only"),
    ("42", "neither an alert"),
    ("/subscriptions/x/resourceGroups/y", "not JSON"),
])
def test_unreadable_data_is_bad_input(text: str, why: str) -> None:
    with pytest.raises(BadInput, match=why):
        aa.read_trigger(text)


# --- how a Python runbook may see the relay's job parameters (README "Parameters of a Python job") ----
def _relay_parameters(body: str) -> dict[str, str]:
    """The parameters the relay sends (runbooks/automation/relay.py states them)."""
    from runbooks.automation.relay import relay_request

    start = relay_request({"WebhookName": "relay", "RequestBody": body}, mode="apply")
    assert not isinstance(start, relay.Ignored)
    return start.parameters


def _shapes(params: dict[str, str]) -> dict[str, list[str]]:
    """sys.argv[1:] in every shape the public evidence allows: values only, in order (runbook-input-parameters.md:
    sys.argv; Start-AzAutomationRunbook example 2: values by position); in another order; each value split at
    whitespace (azureautomation/runbooks issue #87); the JSON parameter serialized once more (a JSON string
    literal); the value prefixed with its name."""
    values = list(params.values())
    text = json.loads(params["alert"])  # Automation may decode the JSON-encoded value, or pass it as sent
    settings = values[1:]
    return {
        "values in order": values,
        "values in another order": list(reversed(values)),
        "split at whitespace": [part for v in values for part in v.split()],
        "decoded": [text, *settings],
        "decoded, split at whitespace": [*text.split(), *settings],
        "decoded, in another order": [*reversed(settings), text],
        "name=value": [f"alert={text}", *settings],
        "every value JSON-encoded": [json.dumps(v) for v in values],
    }


@pytest.mark.parametrize("shape", list(_shapes({"alert": json.dumps("{}"), "mode": "m"})))
def test_the_relay_parameters_are_understood_in_every_shape_python_may_see_them(shape: str) -> None:
    alert = json.loads(sample("backup-failure-alert.json"))
    alert["data"]["essentials"]["description"] = "Backup failed; retry=3 later (x y)"  # a setting-like word inside
    body = json.dumps(alert, indent=2)  # spaces and newlines, as an action group may send it
    argv = ["fix_backup_failure.py", *_shapes(_relay_parameters(body))[shape]]
    data, given = aa.parse_argv(argv, "fix_backup_failure")
    assert given == {"mode": "apply", "allow_disruptive": "false"}
    assert data is not None
    t = aa.read_trigger(data)
    assert [x.name for x in t.targets] == [SAMPLE_VM] and t.alert is not None and t.alert.job_id == SAMPLE_JOB


# --- bad alert data: one line, exit 2 (issue #10) -----------------------------------------------
def _nested(levels: int) -> str:
    alert = json.loads(sample("backup-failure-alert.json"))
    alert["data"]["customProperties"] = "@"
    return json.dumps(alert).replace('"@"', "[" * levels + "]" * levels)


@pytest.mark.parametrize("make, why", [
    (lambda: _nested(20000), "nests deeper than 64"),
    (lambda: "[" * 20000, "nests deeper than 64"),
    (lambda: sample("backup-failure-alert.json").replace('"Backup failed for', '"' + "x" * (1 << 20) + ' for'),
     "at most 1048576"),
    (lambda: sample("backup-failure-alert.json").replace("rg-demo;vm-nsg-blocked/protectedItems/VM;iaasvmcontainerv2;"
                                                         "rg-demo;vm-nsg-blocked", "x;y/protectedItems/VM;"
                                                         "iaasvmcontainerv2;rg-demo;vm$(reboot)"), "VM name"),
    (lambda: sample("backup-failure-alert.json").replace('"category": "Jobs"', '"category": ["Jobs"]'),
     "category is a list"),
    (lambda: sample("backup-failure-alert.json").replace('"category": "Jobs"', '"category": 7'), "category is a int"),
    (lambda: sample("backup-failure-alert.json").replace(f'"jobId": "{SAMPLE_JOB}"', '"jobId": {"a": 1}'),
     "jobId is a dict"),
    (lambda: sample("backup-failure-alert.json").replace(f'"jobId": "{SAMPLE_JOB}"', '"jobId": "x y;z"'),
     "not a backup job ID"),
])
def test_bad_alert_data_is_bad_input(make: Any, why: str) -> None:
    text = make()
    if "protectedItems/VM;iaasvmcontainerv2;rg-demo;vm$" in text:  # only the protected item names the VM
        alert = json.loads(text)
        for key in ("linkedResourceId", "sourceId", "affectedItems"):
            alert["data"]["alertContext"].pop(key)
        text = json.dumps(alert)
    with pytest.raises(BadInput, match=re.escape(why)):
        aa.read_trigger(text)


def test_bad_alert_data_is_one_line_exit_2_and_no_request(armsim: Server) -> None:
    run = run_entry(armsim, "fix_backup_failure.py", _nested(20000), "mode=apply")
    assert run.code == 2 and run.stderr == "", run.text
    assert run.lines[0] == "error: the data nests deeper than 64 levels" and len(run.lines) == 2
    assert armsim.sim.requests() == []


def test_job_error_reads_the_job_the_alert_names(armsim: Server, azure: Any) -> None:
    job = failed_job(armsim, "vm-ext-failed")
    assert aa.job_error(azure, "rsv-demo", RG, job) == "ExtensionOperationFailedForManagedDisks"
    info, operation = aa.read_job(azure, "rsv-demo", RG, job)
    assert (info.status, operation) == ("Failed", "Backup")
