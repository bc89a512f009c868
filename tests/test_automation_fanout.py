"""fan_out.py: one child Automation job per VM, at most `concurrency` unfinished at once (seen in armsim)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import BROKEN
from support.automation import ACCOUNT_ID, VAULT_ID, sample, vm_id
from support.runs import run_entry

from armsim import Server
from remediations.target import parse_target
from runbooks import automation as aa

FAN = "fan_out.py"
MULTI = ["vm-nsg-blocked", "vm-subnet-blocked", "vm-ext-failed", "vm-linux-agent-old"]


def account(server: Server) -> object:
    return server.sim.automation.accounts[ACCOUNT_ID.lower()]


def jobs(server: Server) -> list[object]:
    return list(account(server).jobs.values())  # type: ignore[attr-defined]


def creates(server: Server) -> list[dict[str, object]]:
    return [e for e in server.sim.requests() if e["operation"] == "Job_Create"]


@pytest.mark.parametrize("bound", [1, 2, 3])
def test_an_alert_naming_many_vms_starts_one_child_per_vm_within_the_bound(armsim: Server, bound: int) -> None:
    armsim.sim.settings.extra["automation_job_polls"] = 3
    run = run_entry(armsim, FAN, sample("backup-failure-multi-vm.json"), f"automation_account={ACCOUNT_ID}",
                    f"concurrency={bound}", "poll_seconds=0.01", "mode=apply", "allow_disruptive=true")
    assert run.stderr == "" and run.code == 0, run.text
    started = jobs(armsim)
    assert len(started) == len(MULTI) == len(creates(armsim))
    assert sorted(j.parameters["data"] for j in started) == sorted(vm_id(v) for v in MULTI)  # type: ignore[attr-defined]
    assert len({j.name for j in started}) == len(MULTI)  # type: ignore[attr-defined]
    assert all(j.runbook == "fix_backup_failure" and j.status == "Completed" for j in started)  # type: ignore[attr-defined]
    assert armsim.sim.automation.max_running == min(bound, len(MULTI))
    assert run.summary["status"] == "ok" and run.summary["concurrency"] == bound
    assert sorted(v["vm"] for v in run.summary["vms"]) == sorted(MULTI)
    assert all(v["status"] == "Completed" and v["job"] for v in run.summary["vms"])


def test_child_parameters_carry_the_vm_and_the_settings(armsim: Server) -> None:
    run = run_entry(armsim, FAN, json.dumps([vm_id("vm-ext-failed")]), f"automation_account={ACCOUNT_ID}",
                    "poll_seconds=0.01", "mode=apply", "retention_days=7")
    assert run.code == 0, run.text
    [job] = jobs(armsim)
    params = job.parameters  # type: ignore[attr-defined]
    assert params["data"] == vm_id("vm-ext-failed")
    assert params["mode"] == "mode=apply" and params["allow_disruptive"] == "allow_disruptive=false"
    assert params["retention_days"] == "retention_days=7"
    # what the child will do with them: exactly what fix_backup_failure.py parses
    data, given = aa.parse_argv(["fix_backup_failure.py", *params.values()], "fix_backup_failure")
    assert data == vm_id("vm-ext-failed")
    assert aa.resolve("fix_backup_failure", given, env={}).mode == "apply"


def test_every_failed_vm_of_a_vault_fans_out(armsim: Server) -> None:
    run = run_entry(armsim, FAN, f"vault={VAULT_ID}", "hours=24", f"automation_account={ACCOUNT_ID}",
                    "concurrency=4", "poll_seconds=0.01")
    assert run.code == 0, run.text
    assert sorted(j.parameters["data"] for j in jobs(armsim)) == sorted(vm_id(v) for v in BROKEN)  # type: ignore[attr-defined]
    assert all(j.parameters["mode"] == "mode=dry-run" for j in jobs(armsim))  # type: ignore[attr-defined]
    assert 1 <= armsim.sim.automation.max_running <= 4
    assert [e for e in armsim.sim.requests() if e["mutating"]] == creates(armsim)  # nothing but the child jobs


def test_a_child_that_cannot_start_fails_the_fan_out(armsim: Server) -> None:
    run = run_entry(armsim, FAN, json.dumps([vm_id("vm-ext-failed")]), f"automation_account={ACCOUNT_ID}",
                    "runbook=no_such_runbook", "poll_seconds=0.01")
    assert run.code == 1 and run.summary["status"] == "failed", run.text
    assert run.summary["vms"][0]["status"] == "NotStarted" and "NotFound" in run.summary["vms"][0]["error"]


def test_a_child_job_that_fails_fails_the_fan_out(armsim: Server) -> None:
    armsim.sim.settings.extra["automation_failing"] = ["vm-subnet-blocked"]
    ids = [vm_id("vm-nsg-blocked"), vm_id("vm-subnet-blocked")]
    run = run_entry(armsim, FAN, json.dumps(ids), f"automation_account={ACCOUNT_ID}", "poll_seconds=0.01")
    assert run.code == 1 and run.summary["status"] == "failed", run.text
    status = {v["vm"]: v["status"] for v in run.summary["vms"]}
    assert status == {"vm-nsg-blocked": "Completed", "vm-subnet-blocked": "Failed"}


@pytest.mark.parametrize("args, why", [
    ([json.dumps([vm_id("vm-a")])], "no automation_account"),
    ([f"automation_account={ACCOUNT_ID}"], "no VMs"),
    ([json.dumps([vm_id("vm-a")]), f"vault={VAULT_ID}", f"automation_account={ACCOUNT_ID}"], "not both"),
    ([json.dumps([vm_id("vm-a")]), f"automation_account={ACCOUNT_ID}", "concurrency=0"], "concurrency='0'"),
])
def test_fan_out_bad_input_exits_2(armsim: Server, args: list[str], why: str) -> None:
    run = run_entry(armsim, FAN, *args)
    assert run.code == 2 and why in run.lines[0], run.lines
    assert armsim.sim.requests() == []


def test_a_resolved_alert_starts_nothing(armsim: Server) -> None:
    run = run_entry(armsim, FAN, sample("backup-alert-resolved.json"), f"automation_account={ACCOUNT_ID}")
    assert run.code == 0 and run.summary["status"] == "ignored"
    assert armsim.sim.requests() == []


def test_children_still_running_at_the_deadline_are_reported_and_the_rest_never_start(armsim: Server,
                                                                                     azure: Any) -> None:
    armsim.sim.settings.extra["automation_job_polls"] = 10**6  # the children never end
    s = aa.resolve("fan_out", {"automation_account": ACCOUNT_ID, "concurrency": "2", "poll_seconds": "0.01",
                               "timeout_seconds": "1"}, env={})
    said: list[str] = []
    children = aa.fan_out(azure, ACCOUNT_ID, s, [parse_target(vm_id(v)) for v in MULTI], said.append)
    assert [c.status for c in children] == ["Running", "Running", "NotStarted", "NotStarted"]
    assert all(c.error for c in children)
    assert len(jobs(armsim)) == 2 and armsim.sim.automation.max_running == 2
    assert any("still Running after 1 s" in line for line in said)
