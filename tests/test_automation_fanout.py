"""fan_out.py: one child Automation job per VM, at most `concurrency` unfinished at once (seen in armsim)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
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


def test_without_failures_the_error_budget_changes_nothing(armsim: Server) -> None:
    run = run_entry(armsim, FAN, json.dumps([vm_id(v) for v in MULTI]), f"automation_account={ACCOUNT_ID}",
                    "concurrency=1", "max_errors=0", "poll_seconds=0.01")
    assert run.code == 0 and run.summary["max_errors"] == "0", run.text
    assert len(creates(armsim)) == 4 and [v["status"] for v in run.summary["vms"]] == ["Completed"] * 4


@pytest.mark.parametrize("failing, settings, created, statuses", [
    (MULTI[:1], ["concurrency=1", "max_errors=0"], 1, ["Failed", "NotStarted", "NotStarted", "NotStarted"]),
    # in flight together: vm-subnet-blocked completes, the rest never start
    (MULTI[:1], ["concurrency=2", "max_errors=0"], 2, ["Failed", "Completed", "NotStarted", "NotStarted"]),
    # 25% of 4 VMs allows one failure: the second stops it
    (MULTI[:2], ["concurrency=1", "max_errors=25%"], 2, ["Failed", "Failed", "NotStarted", "NotStarted"]),
    (MULTI[1:3], ["concurrency=1", "max_errors=2"], 4, ["Completed", "Failed", "Failed", "Completed"]),
])
def test_past_the_error_budget_no_new_child_starts(armsim: Server, failing: list[str], settings: list[str],
                                                   created: int, statuses: list[str]) -> None:
    armsim.sim.settings.extra["automation_failing"] = failing
    run = run_entry(armsim, FAN, json.dumps([vm_id(v) for v in MULTI]), f"automation_account={ACCOUNT_ID}",
                    "poll_seconds=0.01", *settings)
    assert run.code == 1 and run.summary["status"] == "failed", run.text
    assert len(creates(armsim)) == created
    assert [v["vm"] for v in run.summary["vms"]] == MULTI
    assert [v["status"] for v in run.summary["vms"]] == statuses
    spent = [v for v in run.summary["vms"] if v["status"] == "NotStarted"]
    assert all(v["job"] == "" and v["error"].startswith("withheld: error budget spent (") for v in spent)
    said = [line for line in run.lines if line.startswith("withheld:")]
    assert said == ([f"withheld: {spent[0]['error'][len('withheld: '):]}: {len(spent)} VM(s) not started"] if spent else [])


def test_a_restarted_fan_out_follows_the_children_started_before_and_starts_only_the_rest(armsim: Server,
                                                                                         azure: Any) -> None:
    armsim.sim.settings.extra["automation_job_polls"] = 10**6  # the first run stops with two children unfinished
    ids = [vm_id(v) for v in MULTI]
    first = aa.resolve("fan_out", {"automation_account": ACCOUNT_ID, "concurrency": "2", "poll_seconds": "0.01",
                                   "timeout_seconds": "1"}, env={})
    stopped = aa.fan_out(azure, ACCOUNT_ID, first, [parse_target(i) for i in ids], lambda _: None)
    assert [c.status for c in stopped] == ["Running", "Running", "NotStarted", "NotStarted"]
    assert len(creates(armsim)) == 2

    armsim.sim.settings.extra["automation_job_polls"] = 2  # now the children end as they are read
    again = run_entry(armsim, FAN, json.dumps(ids), f"automation_account={ACCOUNT_ID}", "concurrency=2",
                      "poll_seconds=0.01")
    assert again.code == 0, again.text
    assert len(creates(armsim)) == 4  # two adopted, two started: one child per VM
    assert sorted(j.parameters["data"] for j in jobs(armsim)) == sorted(ids)  # type: ignore[attr-defined]
    assert [v["adopted"] for v in again.summary["vms"]] == [True, True, False, False]
    assert [v["job"] for v in again.summary["vms"][:2]] == [c.job for c in stopped[:2]]
    assert all(v["status"] == "Completed" for v in again.summary["vms"])
    assert sum("was started before: following it, no second child" in line for line in again.lines) == 2

    third = run_entry(armsim, FAN, json.dumps(ids), f"automation_account={ACCOUNT_ID}", "poll_seconds=0.01")
    assert third.code == 0 and len(creates(armsim)) == 4  # run once more: every VM's child ended with these settings
    assert all(v["adopted"] and v["status"] == "Completed" for v in third.summary["vms"])

    applied = run_entry(armsim, FAN, json.dumps(ids), f"automation_account={ACCOUNT_ID}", "poll_seconds=0.01",
                        "mode=apply")
    assert applied.code == 0 and len(creates(armsim)) == 8  # other settings (apply after dry-run): new children
    assert not any(v["adopted"] for v in applied.summary["vms"])


def test_an_unfinished_child_is_followed_whatever_its_settings(armsim: Server, azure: Any) -> None:
    armsim.sim.settings.extra["automation_job_polls"] = 10**6
    s = aa.resolve("fan_out", {"automation_account": ACCOUNT_ID, "poll_seconds": "0.01", "timeout_seconds": "1",
                               "mode": "apply"}, env={})
    aa.fan_out(azure, ACCOUNT_ID, s, [parse_target(vm_id(MULTI[0]))], lambda _: None)
    armsim.sim.settings.extra["automation_job_polls"] = 2
    run = run_entry(armsim, FAN, json.dumps([vm_id(MULTI[0])]), f"automation_account={ACCOUNT_ID}",
                    "poll_seconds=0.01")  # dry-run now: still no second fix of the VM while one runs
    assert run.code == 0 and len(creates(armsim)) == 1 and run.summary["vms"][0]["adopted"], run.text


@pytest.mark.parametrize("value", ["-1", "101%", "ten", "1.5"])
def test_a_bad_error_budget_exits_2_and_sends_nothing(armsim: Server, value: str) -> None:
    run = run_entry(armsim, FAN, json.dumps([vm_id("vm-a")]), f"automation_account={ACCOUNT_ID}", f"max_errors={value}")
    assert run.code == 2 and f"max_errors={value!r}" in run.lines[0], run.lines
    assert armsim.sim.requests() == []


def test_without_resume_since_only_unfinished_children_are_adopted(armsim: Server, azure: Any) -> None:
    """The sweep's way: its plan already skips VMs tried since their failure, so a VM that failed again after its
    last child ended gets a new child; a fan-out rerun (resume_since) adopts that ended child instead."""
    s = aa.resolve("fan_out", {"automation_account": ACCOUNT_ID, "poll_seconds": "0.01"}, env={})
    vm = [parse_target(vm_id(MULTI[0]))]
    [first] = aa.fan_out(azure, ACCOUNT_ID, s, vm, lambda _: None)
    [rerun] = aa.fan_out(azure, ACCOUNT_ID, s, vm, lambda _: None,
                         resume_since=datetime.now(timezone.utc) - timedelta(hours=1))
    assert rerun.adopted and rerun.job == first.job and len(creates(armsim)) == 1
    [again] = aa.fan_out(azure, ACCOUNT_ID, s, vm, lambda _: None)
    assert not again.adopted and again.status == "Completed" and len(creates(armsim)) == 2
