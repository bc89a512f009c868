"""The alert and preview entry scripts, run as Automation runs them: `python3 <script> <args>` in a
subprocess, from another directory, against armsim over HTTPS (loopback: no credential)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import BROKEN, DEMO_VMS, mutating
from support.automation import FIX, PREVIEW, SAMPLE_JOB, VAULT_ID, clean, failed_job, proved, sample, vm_id
from support.demo import sim_vm
from support.runs import child_env, run_entry

from armsim import Server


# --- fix from an alert: apply ----------------------------------------------------------------
@pytest.mark.parametrize("vm", BROKEN)
def test_alert_in_apply_mode_fixes_the_vm_and_proves_it_with_a_backup(armsim: Server, vm: str,
                                                                      tmp_path: Path) -> None:
    since = datetime.now(timezone.utc)
    job = failed_job(armsim, vm)
    form = "webhook-backup-failure.json" if BROKEN.index(vm) % 2 else "backup-failure-alert.json"
    run = run_entry(armsim, FIX, sample(form, vm, job), "mode=apply", "allow_disruptive=true",
                    "proxy=http://10.0.2.4:3128", cwd=tmp_path)  # the demo's working proxy VM (vm-proxy-dead)
    clean(run)
    assert f"job {job} Failed with " in run.text, run.text  # the error of the job the alert names
    # the intended behaviour: a succeeded backup in armsim proves the fix ...
    assert proved(armsim, vm, since), f"no succeeded backup of {vm}:\n{run.text}"
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) is None  # type: ignore[arg-type]
    # ... and the runbook says so
    assert run.code == 0, run.text
    assert run.summary["status"] == "ok" and run.summary["mode"] == "apply"
    [entry] = run.summary["vms"]
    assert (entry["vm"], entry["status"], entry["exit_code"]) == (vm, "fixed", 0)
    assert entry["backup_job"] and entry["error"]


def test_the_same_alert_delivered_again_changes_nothing(armsim: Server) -> None:
    vm = "vm-nsg-blocked"
    alert = sample("webhook-backup-failure.json", vm, failed_job(armsim, vm))
    first = run_entry(armsim, FIX, alert, "mode=apply")
    assert first.code == 0 and first.summary["vms"][0]["status"] == "fixed", first.text
    armsim.sim.clear_requests()
    again = run_entry(armsim, FIX, alert, "mode=apply")
    clean(again)
    assert again.code == 0 and again.summary["vms"][0]["status"] == "nothing", again.text
    assert mutating(armsim) == []


def test_mode_and_consent_come_from_the_environment_when_not_given(armsim: Server) -> None:
    vm = "vm-win-agent-hung"  # needs a disruptive restart through the platform
    env = child_env(armsim, RUNBOOKS_MODE="apply", RUNBOOKS_ALLOW_DISRUPTIVE="true")
    run = run_entry(armsim, FIX, sample("backup-failure-alert.json", vm, failed_job(armsim, vm)), env=env)
    clean(run)
    assert run.code == 0 and run.summary["mode"] == "apply", run.text
    assert run.summary["vms"][0]["status"] == "fixed"


def test_disruptive_steps_are_withheld_without_consent(armsim: Server) -> None:
    vm = "vm-win-agent-hung"  # its agent hangs: only a restart through the platform (disruptive) helps
    run = run_entry(armsim, FIX, sample("backup-failure-alert.json", vm, failed_job(armsim, vm)), "mode=apply")
    clean(run)
    assert run.code == 3 and run.summary["status"] == "attention", run.text
    assert run.summary["vms"][0]["status"] == "withheld"
    assert "withheld" in run.text
    assert not [e for e in mutating(armsim) if e["operation"] == "VirtualMachines_Restart"]
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) is not None  # type: ignore[arg-type]


def test_a_bare_vm_id_is_fixed_from_its_latest_failed_job(armsim: Server) -> None:
    since = datetime.now(timezone.utc)
    run = run_entry(armsim, FIX, vm_id("vm-ext-failed"), "mode=apply")
    clean(run)
    assert run.code == 0 and run.summary["vms"][0]["status"] == "fixed", run.text
    assert run.summary["vms"][0]["error"] == "ExtensionOperationFailedForManagedDisks"
    assert proved(armsim, "vm-ext-failed", since)


# --- fix from an alert: dry run --------------------------------------------------------------
def test_alerts_in_dry_run_mode_plan_every_demo_vm_and_change_nothing(armsim: Server, tmp_path: Path) -> None:
    payloads = {vm: sample("backup-failure-alert.json", vm, failed_job(armsim, vm) if vm in BROKEN else SAMPLE_JOB)
                for vm in DEMO_VMS}
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        runs = dict(zip(payloads, pool.map(lambda p: run_entry(armsim, FIX, p, cwd=tmp_path), payloads.values()), strict=True))
    assert mutating(armsim) == []
    for vm, run in runs.items():
        clean(run)
        assert run.code == 0 and run.summary["mode"] == "dry-run", run.text
        [entry] = run.summary["vms"]
        if vm not in BROKEN:  # vm-healthy and the proxy VMs: no failed backup to fix
            assert entry["status"] == "nothing" and entry["changes"] == []
        elif vm == "vm-proxy-dead":  # its fix needs the working proxy, a value only a person gives (proxy=…)
            assert entry["status"] == "manual" and entry["changes"] == [], run.text
            assert "give the working proxy" in run.text and "Not verified: set-guest-proxy needs a value" in run.text
        elif vm == "vm-backup-running":  # its own backup job runs: the fix follows it, and it is the proof
            assert entry["status"] == "planned" and [c.split(":")[0] for c in entry["changes"]] == ["wait-backup-job"]
        else:
            assert entry["status"] == "planned" and entry["changes"], run.text
            assert any(c.startswith("trigger-backup") for c in entry["changes"])
            assert "Dry run: nothing was changed." in run.text


# --- payloads that ask for nothing, or make no sense -----------------------------------------
def _with(name: str, **ctx: object) -> str:
    alert = json.loads(sample(name))
    alert["data"]["alertContext"].update(ctx)
    return json.dumps(alert)


@pytest.mark.parametrize("payload, why", [
    (sample("backup-alert-resolved.json"), "Resolved"),
    (sample("foreign-vm-cpu-alert.json"), "not Azure Backup"),
    (_with("backup-failure-alert.json", protectedItemId=VAULT_ID + "/backupFabrics/Azure/protectionContainers/"
           "VMAppContainer;compute;rg-demo;vm-sql-vss/protectedItems/SQLDataBase;mssqlserver;sales"), "not a VM backup"),
], ids=["resolved", "foreign", "sql-in-vm"])
def test_resolved_and_foreign_alerts_are_logged_and_ignored(armsim: Server, payload: str, why: str) -> None:
    run = run_entry(armsim, FIX, payload, "mode=apply")
    clean(run)
    assert run.code == 0 and run.summary["status"] == "ignored", run.text
    assert run.lines[-2].startswith("ignored: ") and why in run.lines[-2]
    assert armsim.sim.requests() == []


@pytest.mark.parametrize("args, why", [
    (["this is not an alert"], "not JSON"),
    (['{"schemaId": "azureMonitorCommonAlertSchema", "data": {'], "not JSON"),
    (['{"hello": "world"}'], "not a common-alert-schema alert"),
    ([], "no data"),
    (["{}", "modee=apply"], "unknown setting 'modee'"),
    (["{}", "mode=yes"], "mode='yes'"),
], ids=["text", "truncated", "other-json", "nothing", "unknown-setting", "bad-value"])
def test_garbled_data_exits_2_with_one_clear_line(armsim: Server, args: list[str], why: str) -> None:
    run = run_entry(armsim, FIX, *args)
    clean(run)
    assert run.code == 2 and run.summary["status"] == "invalid"
    assert len(run.lines) == 2 and run.lines[0].startswith("error: ") and why in run.lines[0], run.lines
    assert armsim.sim.requests() == []


def test_an_unreadable_job_falls_back_to_the_latest_failed_job(armsim: Server) -> None:
    run = run_entry(armsim, FIX, sample("backup-failure-alert.json", "vm-nsg-blocked", SAMPLE_JOB))
    clean(run)
    assert run.code == 0 and f"could not read job {SAMPLE_JOB}" in run.text
    assert run.summary["vms"][0]["error"] == "ExtensionSnapshotFailedNoNetwork"
    assert mutating(armsim) == []


# --- preview before a change window -----------------------------------------------------------
def test_preview_prints_the_plan_of_every_failed_vm_and_changes_nothing(armsim: Server, tmp_path: Path) -> None:
    run = run_entry(armsim, PREVIEW, VAULT_ID, "hours=24", cwd=tmp_path)
    clean(run)
    assert mutating(armsim) == []
    assert run.code == 0 and run.summary["status"] == "planned", run.text
    assert sorted(v["vm"] for v in run.summary["vms"]) == sorted(BROKEN)
    waiting = {"vm-proxy-dead"}  # its fix needs the working proxy, a value only a person gives
    assert all(v["status"] == "planned" and v["changes"] for v in run.summary["vms"] if v["vm"] not in waiting)
    assert all(v["status"] == "manual" for v in run.summary["vms"] if v["vm"] in waiting)
    text = run.text
    for vm in BROKEN:
        assert f"{vm} (rg-demo)" in text
    assert "will be added" in text and "Plan: " in text
    assert any(line.startswith("Change window, rsv-demo: Plan: ") for line in run.lines)
    start = run.lines.index("{")
    doc = json.loads("\n".join(run.lines[start:-1]))
    assert doc["vault"] == VAULT_ID and sorted(v["vm"] for v in doc["vms"]) == sorted(BROKEN)
    assert all(v["plans"] for v in doc["vms"])


def test_preview_takes_a_vault_id_only(armsim: Server) -> None:
    run = run_entry(armsim, PREVIEW, vm_id("vm-healthy"))
    clean(run)
    assert run.code == 2 and "not a Recovery Services vault resource ID" in run.lines[0]
    run = run_entry(armsim, PREVIEW, VAULT_ID, "mode=apply")
    assert run.code == 2 and "unknown setting 'mode'" in run.lines[0]
    assert armsim.sim.requests() == []
