"""Issue #10 items 2 and 7, in a real terminal (pexpect): "yes" binds to the plan shown; Ctrl-C stops cleanly."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pexpect
import pytest
from conftest import mutating
from support.runs import ROOT, cli, runbooks
from support.terminal import spawn

from armsim import DEMO_SUBSCRIPTION, Server

PROMPT = "Only 'yes' is accepted: "


def edit_deny_rule(server: Server, priority: int) -> None:
    """Someone else edits nsg-blocked while our prompt is open: the allow rule must now go below `priority`."""
    with server.sim.lock:
        nsg = next(n for n in server.sim.network.nsgs.values() if n.name == "nsg-blocked")
        nsg.rules["deny-internet-443"]["properties"]["priority"] = priority


def allow_rule(server: Server) -> dict[str, object] | None:
    nsg = next(n for n in server.sim.network.nsgs.values() if n.name == "nsg-blocked")
    return nsg.rules.get("allow-azure-backup-443")


def audit_lines(tmp: Path) -> list[dict[str, object]]:
    path = tmp / "azure-backup-runbooks" / "audit.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_drift_while_the_prompt_is_open_shows_the_new_plan_and_asks_again(armsim: Server, tmp_path: Path) -> None:
    child = spawn(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--no-backup")
    child.expect_exact(PROMPT)
    shown = child.before
    assert "allow-azure-backup-443" in shown
    edit_deny_rule(armsim, 150)
    child.sendline("yes")
    child.expect_exact("The state changed since the plan was shown")
    child.expect_exact(PROMPT)  # asked again, about the new plan
    assert mutating(armsim) == []  # nothing was applied on the first "yes"
    child.sendline("no")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3, child.before
    assert allow_rule(armsim) is None and mutating(armsim) == []


def test_yes_to_the_new_plan_applies_the_new_plan(armsim: Server, tmp_path: Path) -> None:
    child = spawn(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--no-backup")
    child.expect_exact(PROMPT)
    edit_deny_rule(armsim, 150)
    child.sendline("yes")
    child.expect_exact(PROMPT)
    child.sendline("yes")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    rule = allow_rule(armsim)
    assert rule is not None and int(rule["properties"]["priority"]) < 150  # type: ignore[index]


def test_no_drift_applies_on_the_first_yes(armsim: Server, tmp_path: Path) -> None:
    child = spawn(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--no-backup")
    child.expect_exact(PROMPT)
    child.sendline("yes")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert allow_rule(armsim) is not None
    assert [a["outcome"] for a in audit_lines(tmp_path)] == ["sending", "applied"]


# --- item 7: Ctrl-C ------------------------------------------------------------------------------
def _wait_for(cond, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_first_ctrl_c_during_the_backup_wait_stops_and_says_how_to_follow_the_job(armsim: Server,
                                                                                  tmp_path: Path) -> None:
    armsim.sim.settings.backup_job_polls = 100000  # the verification backup runs "for ever"
    child = spawn(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes")
    child.expect("backup job [0-9a-f]{8}… InProgress")
    child.sendintr()
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    out = child.before
    assert child.exitstatus == 130, out
    assert "stopping before the next write" in out
    assert "allow-azure-backup-443" in out or "Allow" in out  # what was changed
    assert "az backup job show --name" in out  # how to follow the running job
    outcomes = [a["outcome"] for a in audit_lines(tmp_path)]
    assert outcomes.count("sending") == len(outcomes) - outcomes.count("sending")  # every intent has its outcome


def test_first_ctrl_c_stops_before_the_next_write(armsim: Server, tmp_path: Path) -> None:
    # the first write is slow (2 s in flight); Ctrl-C arrives while it is in the air
    armsim.sim.faults.add(kind="latency", method="PUT", seconds=2.0, count=1)
    child = spawn(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes")
    _wait_for(lambda: any(e["method"] == "PUT" for e in armsim.sim.requests()) or
              armsim.sim.faults.describe()[0]["hits"] > 0)
    child.sendintr()
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert child.exitstatus == 130, child.before
    writes = mutating(armsim)
    assert [e["method"] for e in writes] == ["PUT"], writes  # the in-flight write finished; no backup was triggered
    assert [a["outcome"] for a in audit_lines(tmp_path)] == ["sending", "applied"]


def test_a_second_ctrl_c_exits_at_once(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="latency", method="PUT", seconds=10.0, count=1)
    child = spawn(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes")
    _wait_for(lambda: armsim.sim.faults.describe()[0]["hits"] > 0)
    child.sendintr()
    child.expect_exact("Ctrl-C again")
    started = time.monotonic()
    child.sendintr()
    child.expect(pexpect.EOF, timeout=5)
    child.close()
    assert child.exitstatus == 130
    assert time.monotonic() - started < 3  # did not wait for the 10 s write
    # armsim still serves the held write; let it land before the next test resets the simulator
    _wait_for(lambda: any(e["method"] == "PUT" for e in armsim.sim.requests()), seconds=20)


@pytest.fixture(autouse=True)
def _no_color() -> None:
    return None


# --- item 2 under --yes: the applying run is bound to the saved plan too ----------------------------
def test_apply_yes_refuses_when_the_state_changes_after_its_check(armsim: Server, tmp_path: Path) -> None:
    import subprocess

    plan = tmp_path / "plan.json"
    assert cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--no-backup", "--plan-out", str(plan)).returncode == 0
    nsg_get = "*/networkSecurityGroups/nsg-blocked"
    armsim.sim.clear_requests()
    assert cli(armsim, "apply", str(plan), "--dry-run").returncode == 0  # the check alone: how many NSG reads
    checks = sum(1 for e in armsim.sim.requests() if e["method"] == "GET" and e["path"].endswith("/nsg-blocked"))
    assert checks >= 1
    armsim.sim.clear_requests()
    # the first NSG read after the check is held 2 s; the NSG is edited meanwhile
    fault = armsim.sim.faults.add(kind="latency", method="GET", path=nsg_get, skip=checks, seconds=2.0, count=1)
    env = {**os.environ, "RUNBOOKS_ARM_ENDPOINT": armsim.endpoint, "RUNBOOKS_CA_BUNDLE": armsim.ca_bundle,
           "AZURE_SUBSCRIPTION_ID": DEMO_SUBSCRIPTION, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)}
    proc = subprocess.Popen(runbooks("apply", str(plan), "--yes"), env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: fault.hits > checks)
    edit_deny_rule(armsim, 150)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "Refusing to apply" in out and "allow-azure-backup-443" in out
    assert allow_rule(armsim) is None and mutating(armsim) == []
