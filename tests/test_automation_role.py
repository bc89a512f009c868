"""The deployment template (azure-automation/deploy.json) and its custom roles.

The role test runs every entry script (and through them every remediation action) against armsim,
maps each request of armsim's log (method + path) to its RBAC action with azure-automation/rbac-map.json,
and asserts the template's roles grant exactly those actions: each used one, nothing unused, no wildcard.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from azure.mgmt.automation import models
from conftest import BROKEN
from support.automation import ACCOUNT_ID, RG, VAULT_ID, failed_job, sample
from support.rbac import rbac_action, rbac_table
from support.relay import ACCOUNT, play_relay
from support.runs import AA_DIR, Run, run_entry

from armsim import Server
from remediations.azure import Azure
from runbooks.automation import ENTRIES, relay
from runbooks.catalog import CAUSES

# What the runbooks can apply: every fix the catalog names, and the verifying backup. `power-off` stays a
# CLI action (issue #9: a guest shut down from inside is already stopped), so the role must not grant it.
RUNBOOK_ACTIONS = {a for c in CAUSES.values() for a in c.fixes} | {"trigger-backup"}

TEMPLATE = AA_DIR / "deploy.json"
PARAMETERS = AA_DIR / "deploy.parameters.json"
README = AA_DIR / "README.md"


@cache
def template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text(encoding="utf-8"))


def resources(t: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource, nested deployments' inner resources included."""
    out = []
    for r in t["resources"]:
        out.append(r)
        inner = (r.get("properties") or {}).get("template")
        if inner:
            out += resources(inner)
    return out


def of_type(kind: str) -> list[dict[str, Any]]:
    return [r for r in resources(template()) if r["type"].lower() == kind.lower()]


def role_actions() -> tuple[set[str], set[str]]:
    """(the remediator role's actions, the job-starter role's actions) as the template grants them."""
    v = template()["variables"]
    return set(v["remediatorActions"]), set(v["jobActions"])


# --- the role: exactly what is used -----------------------------------------------------------
def _alert_through_the_relay_then_the_report(armsim: Server, azure: Azure) -> list[Run]:
    """An alert's relay job (created as a webhook creates it), the relay's fix job, then report_alerts."""
    alert = sample("backup-failure-alert.json", "vm-healthy")
    body = models.JobCreateParameters(properties=models.JobCreateProperties(
        runbook=models.RunbookAssociationProperty(name=relay.RELAY_RUNBOOK),
        parameters={"WebhookData": json.dumps({"WebhookName": "relay-backup-alert", "RequestBody": alert}),
                    "Mode": "apply", "AllowDisruptive": "false"}))
    azure.call(azure.automation.job.create, RG, ACCOUNT, "relay-1", body)
    play_relay(armsim, azure)
    runs = []
    for job in armsim.sim.automation.claim(relay.FIX_RUNBOOK):
        runs.append(run_entry(armsim, "fix_backup_failure.py", *job.parameters.values()))
        armsim.sim.automation.report(job.name, "Completed", output=runs[-1].lines)
    return [*runs, run_entry(armsim, "report_alerts.py", f"automation_account={ACCOUNT_ID}", "hours=1")]


def test_role_grants_exactly_the_actions_the_runbooks_use(armsim: Server, azure: Azure) -> None:
    runs = [run_entry(armsim, "preview_change_window.py", VAULT_ID)]
    alerts = [sample("backup-failure-alert.json", vm, failed_job(armsim, vm)) for vm in BROKEN]
    runs += [run_entry(armsim, "fix_backup_failure.py", alerts[0])]  # dry run
    with ThreadPoolExecutor(max_workers=4) as pool:  # one VM per job, as fan_out runs them
        runs += list(pool.map(lambda a: run_entry(armsim, "fix_backup_failure.py", a, "mode=apply",
                                                  "allow_disruptive=true", "proxy=http://10.0.2.4:3128"), alerts))
    runs += [run_entry(armsim, "fix_backup_failure.py", sample("backup-failure-alert.json", "vm-healthy"),
                       "mode=apply")]
    runs += [run_entry(armsim, "fan_out.py", f"vault={VAULT_ID}", f"automation_account={ACCOUNT_ID}",
                       "poll_seconds=0.01")]
    runs += [run_entry(armsim, "sweep_backup_failures.py", f"vaults={VAULT_ID}", f"automation_account={ACCOUNT_ID}",
                       "poll_seconds=0.01")]
    runs += [run_entry(armsim, "sweep_backup_failures.py", "all_subscriptions=true",
                       f"automation_account={ACCOUNT_ID}", "poll_seconds=0.01")]
    runs += _alert_through_the_relay_then_the_report(armsim, azure)
    assert [r.code for r in runs] == [0] * len(runs), "\n\n".join(r.text for r in runs if r.code)
    applied = {c.split(":", 1)[0] for r in runs for v in r.summary["vms"] for c in v.get("changes") or []}
    assert applied == RUNBOOK_ACTIONS, f"not every remediation action ran: {RUNBOOK_ACTIONS ^ applied}"
    assert "power-off" not in RUNBOOK_ACTIONS
    assert {v["vm"] for r in runs for v in r.summary["vms"]} >= set(BROKEN)

    log = armsim.sim.requests()
    unmapped = sorted({f"{e['method']} {e['path']}" for e in log if rbac_action(e["method"], e["path"]) is None})
    assert not unmapped, "requests without an RBAC mapping (add them to rbac-map.json):\n" + "\n".join(unmapped)
    used = {rbac_action(e["method"], e["path"]) for e in log}
    remediator, jobs = role_actions()
    granted = remediator | jobs
    assert not [a for a in granted if "*" in a], "no wildcard actions"
    assert sorted(used - granted) == [], "used but not granted"
    assert sorted(granted - used) == [], "granted but never used"
    assert all(a.startswith("Microsoft.Automation/") for a in jobs)
    assert not any(a.startswith("Microsoft.Automation/") for a in remediator)


def test_every_mapped_action_is_spelled_like_an_rbac_action() -> None:
    for _, _, action in rbac_table():
        assert re.fullmatch(r"Microsoft\.[A-Za-z]+(/[A-Za-z]+)+/(read|write|delete|action)", action), action


def test_the_roles_in_the_template_are_the_variables_and_assigned_to_the_account_identity() -> None:
    defs = of_type("Microsoft.Authorization/roleDefinitions")
    assert {d["properties"]["permissions"][0]["actions"] for d in defs} == \
        {"[parameters('remediatorActions')]", "[parameters('jobActions')]"}
    nested = of_type("Microsoft.Resources/deployments")[0]["properties"]["parameters"]
    assert nested["remediatorActions"]["value"] == "[variables('remediatorActions')]"
    assert nested["jobActions"]["value"] == "[variables('jobActions')]"
    assert "identity.principalId" in nested["principalId"]["value"]
    assigns = of_type("Microsoft.Authorization/roleAssignments")
    assert len(assigns) == 3 and all(a["properties"]["principalType"] == "ServicePrincipal" for a in assigns)
    account_scoped = [a for a in assigns if "scope" in a]
    assert len(account_scoped) == 2 and all("automationAccounts" in a["scope"] for a in account_scoped)
    assert all("jobRoleName" in a["properties"]["roleDefinitionId"] for a in account_scoped)


def test_the_relay_identity_can_start_jobs_and_nothing_more() -> None:
    """The relay's requests (GET then PUT of …/jobs/{name}, see the .ps1) are exactly the job role's actions,
    and its user-assigned identity holds that role on the account and no other."""
    text = (AA_DIR / "relay_backup_alert.ps1").read_text(encoding="utf-8")
    methods = set(re.findall(r"Invoke-AzRestMethod -Method (\w+) -Path \$path", text))
    assert methods == {"GET", "PUT"} and '$path = "$AccountId/jobs/' in text
    used = {rbac_action(m, f"{ACCOUNT_ID}/jobs/0b0b0b0b-0000-8000-8000-000000000001") for m in methods}
    # the account's one job role: the relay uses GET and PUT; reading a job's output (report_alerts) is the rest
    assert used == role_actions()[1] - {"Microsoft.Automation/automationAccounts/jobs/output/read"}
    relay_id = "userAssignedIdentities', variables('relayIdentityName'))"
    [relay_assign] = [a for a in of_type("Microsoft.Authorization/roleAssignments")
                      if relay_id in a["properties"]["principalId"]]
    assert "jobRoleName" in relay_assign["properties"]["roleDefinitionId"] and "automationAccounts" in relay_assign["scope"]
    [acct] = of_type("Microsoft.Automation/automationAccounts")
    assert acct["identity"]["type"] == "SystemAssigned, UserAssigned"
    [hook] = of_type("Microsoft.Automation/automationAccounts/webhooks")
    assert relay_id in hook["properties"]["parameters"]["RelayClientId"]


# --- the template -----------------------------------------------------------------------------
def test_template_and_parameters_are_valid_json_and_agree() -> None:
    t = template()
    params = json.loads(PARAMETERS.read_text(encoding="utf-8"))["parameters"]
    assert set(params) <= set(t["parameters"])
    required = {k for k, v in t["parameters"].items() if "defaultValue" not in v}
    assert required <= set(params), f"the parameters file lacks {required - set(params)}"
    for k, v in params.items():
        allowed = t["parameters"][k].get("allowedValues")
        assert allowed is None or v["value"] in allowed


def test_template_references_files_that_exist() -> None:
    t = template()
    files = [r["file"] for r in t["variables"]["runbooks"]]
    text = TEMPLATE.read_text(encoding="utf-8")
    files += re.findall(r"[\w.-]+\.(?:py|ps1|sh|json)\b", text.replace("deploymentTemplate.json", "")
                        .replace("subscriptionDeploymentTemplate.json", ""))
    assert files
    for f in set(files) - {"packages.json"}:  # packages.json is written by build_bundle.py
        assert (AA_DIR / f).is_file(), f"deploy.json references {f}, which is not in azure-automation/"
    assert {r["name"] for r in t["variables"]["runbooks"]} == set(ENTRIES)
    assert all(r["file"] == f"{r['name']}.py" for r in t["variables"]["runbooks"])


def test_template_creates_what_the_deployment_needs() -> None:
    [acct] = of_type("Microsoft.Automation/automationAccounts")
    assert acct["identity"]["type"].startswith("SystemAssigned")
    env, ps_env = of_type("Microsoft.Automation/automationAccounts/runtimeEnvironments")
    assert env["properties"]["runtime"] == {"language": "Python", "version": "3.10"}
    assert ps_env["properties"]["runtime"] == {"language": "PowerShell", "version": "7.2"}
    assert "Az" in ps_env["properties"]["defaultPackages"]
    [pkgs] = of_type("Microsoft.Automation/automationAccounts/runtimeEnvironments/packages")
    assert "parameters('packages')[copyIndex()].file" in pkgs["properties"]["contentLink"]["uri"]
    books, relay_book = of_type("Microsoft.Automation/automationAccounts/runbooks")
    assert relay_book["properties"]["runbookType"] == "PowerShell"
    assert relay_book["properties"]["runtimeEnvironment"] == "[parameters('relayRuntimeEnvironmentName')]"
    assert "variables('relayRunbook').file" in relay_book["properties"]["publishContentLink"]["uri"]
    assert books["properties"]["runbookType"] == "Python"
    assert books["properties"]["runtimeEnvironment"] == "[parameters('runtimeEnvironmentName')]"
    assert "runbooks')[copyIndex()].file" in books["properties"]["publishContentLink"]["uri"]
    [group] = of_type("Microsoft.Insights/actionGroups")
    [receiver] = group["properties"]["automationRunbookReceivers"]
    assert receiver["useCommonAlertSchema"] is True and receiver["isGlobalRunbook"] is False
    assert receiver["runbookName"] == "[variables('relayRunbook').name]" and "relay-backup-alert" in receiver["webhookResourceId"]
    [rule] = of_type("Microsoft.AlertsManagement/actionRules")
    props = rule["properties"]
    assert {"field": "MonitorService", "operator": "Equals", "values": ["Azure Backup"]} in props["conditions"]
    assert props["actions"][0]["actionType"] == "AddActionGroups"
    assert of_type("Microsoft.Automation/automationAccounts/webhooks")
    sweep_schedule = [s for s in of_type("Microsoft.Automation/automationAccounts/schedules") if "sweep-hourly" in s["name"]]
    assert [(s["properties"]["frequency"], s["properties"]["interval"]) for s in sweep_schedule] == [("Hour", 1)]
    # a job schedule cannot be deployed twice: the later deployments leave the sweep's out (README step 6)
    sweep_link = [j for j in of_type("Microsoft.Automation/automationAccounts/jobSchedules")
                  if j["properties"]["runbook"]["name"] == "sweep_backup_failures"]
    assert [j["condition"] for j in sweep_link + sweep_schedule] == ["[variables('deploySweep')]"] * 2
    assert "parameters('scheduleSweep')" in template()["variables"]["deploySweep"]


def test_the_deployment_asks_for_no_webhook_on_a_python_runbook() -> None:
    """Every webhook starts the relay: a PowerShell runbook in a PowerShell runtime environment."""
    t = template()
    assert t["variables"]["relayRunbook"]["name"] == "relay_backup_alert"
    python_books = {r["name"] for r in t["variables"]["runbooks"]}
    for hook in of_type("Microsoft.Automation/automationAccounts/webhooks"):
        assert hook["properties"]["runbook"]["name"] == "[variables('relayRunbook').name]"
        assert not any(name in json.dumps(hook) for name in python_books)
    for group in of_type("Microsoft.Insights/actionGroups"):
        assert all(r["runbookName"] == "[variables('relayRunbook').name]"
                   for r in group["properties"]["automationRunbookReceivers"])


def test_settings_the_deployment_passes_are_settings_the_runbooks_accept() -> None:
    t = template()
    assert set(t["variables"]["settings"]) <= set(ENTRIES["fix_backup_failure"]) & set(ENTRIES["fan_out"])
    for key, value in t["variables"]["settings"].items():
        assert value.startswith(f"[format('{key}=")
    [hook] = of_type("Microsoft.Automation/automationAccounts/webhooks")
    ps1 = (AA_DIR / "relay_backup_alert.ps1").read_text(encoding="utf-8")
    declared = set(re.findall(r"\[string\] \$(\w+)", ps1))
    mandatory = set(re.findall(r"Mandatory = \$true\)\] \[string\] \$(\w+)", ps1))
    assert mandatory <= set(hook["properties"]["parameters"]) <= declared
    preview, sweep = of_type("Microsoft.Automation/automationAccounts/jobSchedules")
    assert set(preview["properties"]["parameters"]) - {"data"} <= set(ENTRIES["preview_change_window"])
    assert sweep["properties"]["runbook"]["name"] == "sweep_backup_failures"
    for key, value in sweep["properties"]["parameters"].items():
        assert key in ENTRIES["sweep_backup_failures"] and (value.startswith(f"[format('{key}=")
                                                            or value == f"[variables('settings').{key}]"), key
    assert t["parameters"]["mode"]["defaultValue"] == "dry-run"
    assert t["parameters"]["allowDisruptive"]["defaultValue"] is False


def test_readme_lists_the_mapping_and_the_granted_actions() -> None:
    text = README.read_text(encoding="utf-8")
    rows = json.loads((AA_DIR / "rbac-map.json").read_text(encoding="utf-8"))["requests"]
    for r in rows:
        assert f"`{r['action']}`" in text, r["action"]
    remediator, jobs = role_actions()
    granted_lines = [line for line in text.splitlines() if line.startswith("|") and "| yes" in line]
    granted = {m for line in granted_lines for m in re.findall(r"`(Microsoft\.[^`]+)`", line)}
    assert granted == remediator | jobs, "README's 'granted' column must match deploy.json's roles"
