"""Issue #11, "Honest output": the plan shown once, no "Dry run" above a real prompt, the verdict legend once,
no "changed … already", planned actions in the tables, whose consent a disruptive step ran with, power-off
of a VM that is down is not disruptive, and --detailed-exitcode. Prompts are driven in a real pty (pexpect)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pexpect
import pytest
from conftest import BROKEN, mutating, reset
from support.runs import ROOT, cli, runbooks
from support.terminal import spawn

from armsim import Server
from remediations.azure import Azure
from runbooks.cmd_demo import DEMO_PROXY as PROXY

PROMPT = "Only 'yes' is accepted: "
DRY_RUN = "Dry run: nothing was changed."
LEGEND = "Legend: [x] present"


def answer_yes(child: pexpect.spawn) -> tuple[str, str]:
    """What the terminal showed up to the prompt, and after "yes" until the end; the run must exit 0."""
    child.expect_exact(PROMPT)
    before = child.before
    child.sendline("yes")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return before, child.before


def table_row(out: str, vm: str) -> str:
    """The fleet table's row of `vm` (the last line that starts with its name)."""
    return [ln for ln in out.splitlines() if ln.startswith(vm + " ")][-1]


# --- items 1 and 2: the plan is shown once; "Dry run" only for a real --dry-run ------------------------
def test_an_interactive_fix_shows_the_plan_once_and_then_only_what_happened(armsim: Server, tmp_path: Path) -> None:
    before, after = answer_yes(spawn(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo"))
    assert "will be added" in before and "Plan: 1 to add" in before and "Causes  [x] C1" in before
    assert DRY_RUN not in before  # the prompt follows: nothing is called a dry run
    for shown in ("will be added", "Plan:", "Causes", "Error   ", "Legend:"):
        assert shown not in after, after
    assert "allow-backup-egress: changed; verified: outbound TCP 443" in after
    assert "backup: verified; backup job" in after and "Fixed: backup job" in after
    assert DRY_RUN not in after


def test_apply_of_a_saved_plan_shows_it_once(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    saved = cli(armsim, "fix", "vm-ext-failed", "-g", "rg-demo", "--plan-out", str(plan), tmp=tmp_path)
    assert saved.returncode == 0 and DRY_RUN in saved.stdout, saved.stdout + saved.stderr  # a real dry run says so
    before, after = answer_yes(spawn(armsim, tmp_path, "apply", str(plan)))
    assert "will be removed" in before and DRY_RUN not in before
    assert "will be removed" not in after and "Plan:" not in after and "Causes" not in after, after
    assert "remove-backup-extension: changed; verified: VMSnapshotLinux is not installed on vm-ext-failed" in after


def test_a_real_dry_run_still_says_so(armsim: Server) -> None:
    r = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--dry-run")
    assert r.returncode == 0 and r.stdout.count(DRY_RUN) == 1, r.stdout + r.stderr
    assert mutating(armsim) == []


# --- items 3, 4, 5 (applied) and 6: one run of every broken demo VM ------------------------------------
@pytest.fixture(scope="module")
def fleet_fix(armsim_server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`fix` of every broken demo VM with --yes and --allow-disruptive (the demo's fixes, against armsim); run once
    per worker for the tests that read its output."""
    r = cli(reset(armsim_server), "fix", *BROKEN, "-g", "rg-demo", "--yes", "--allow-disruptive", "--proxy", PROXY,
            "--concurrency", str(len(BROKEN)), tmp=tmp_path_factory.mktemp("fleet"))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_no_changed_line_says_already(fleet_fix: str) -> None:
    changed = [ln for ln in fleet_fix.splitlines() if "changed" in ln and not ln.lstrip().startswith("#")]
    assert len(changed) >= len(BROKEN) - 1, fleet_fix  # every broken VM but the stopped one changes something
    assert [ln for ln in changed if "already" in ln] == []
    assert [ln for ln in changed if ": changed; now " in ln] == []
    assert "set-vss-copy-backup: changed; verified: HKLM\\SOFTWARE\\Microsoft\\BcdrAgent\\USEVSSCOPYBACKUP on " \
           "vm-sql-vss is TRUE (REG_SZ)" in fleet_fix


def test_the_legend_is_printed_once_per_run(fleet_fix: str) -> None:
    assert fleet_fix.count(LEGEND) == 1, fleet_fix
    assert fleet_fix.index(LEGEND) < fleet_fix.index("Causes  ")


def test_a_disruptive_step_that_ran_names_whose_consent_allowed_it(fleet_fix: str) -> None:
    lines = fleet_fix.splitlines()
    i = next(n for n, ln in enumerate(lines) if ln.startswith("  restart-guest-agent: changed (disruptive); verified"))
    evidence = lines[i + 1:i + 3]
    assert "    disruptive: restart vm-win-agent-hung through the platform; consent: --allow-disruptive" in evidence
    # every disruptive step of the fleet (this restart, vm-udr-blocked's route past its firewall, the locks, the
    # cancelled jobs, the VSS and MSDTC restarts): each plan line says whose consent, and so does each step that ran
    assert "  # vm-win-agent-hung will be run (disruptive; consent: --allow-disruptive)" in lines
    ran = fleet_fix.count(": changed (disruptive)")
    assert ran >= 8 and fleet_fix.count("consent:") == 2 * ran, fleet_fix
    assert "needs --allow-disruptive" not in fleet_fix


def test_the_applied_table_names_what_ran(fleet_fix: str) -> None:
    assert table_row(fleet_fix, "vm-nsg-blocked").split()[3:6] == ["allow-backup-egress", "verified", "fixed"]


def test_a_saved_plans_consent_is_named_when_apply_runs_its_disruptive_step(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert cli(armsim, "fix", "vm-win-agent-hung", "-g", "rg-demo", "--no-backup", "--allow-disruptive",
               "--plan-out", str(plan), tmp=tmp_path).returncode == 0
    r = cli(armsim, "apply", str(plan), "--yes", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"consent: the saved plan {plan} (made with fix --allow-disruptive)" in r.stdout, r.stdout


def test_the_demo_names_its_own_consent(azure: Azure) -> None:
    import argparse

    from support.demo import target

    from runbooks.engine import run
    from runbooks.fleet import DEMO_CONSENT, options

    demo = options(argparse.Namespace(command="demo", no_disruptive=False), allow_disruptive=True, backup=False)
    assert demo.allow_disruptive and demo.consent == DEMO_CONSENT and "--no-disruptive" in DEMO_CONSENT
    fix = options(argparse.Namespace(command="fix", allow_disruptive=True))
    assert fix.allow_disruptive and fix.consent == "--allow-disruptive"
    [outcome] = run(azure, target("vm-win-agent-hung"), demo).outcomes
    assert outcome.status == "changed" and outcome.evidence[-1] == (
        f"disruptive: restart vm-win-agent-hung through the platform; consent: {DEMO_CONSENT}")


# --- item 3 (text only) and item 5: the diagnosis and dry-run tables -------------------------------------
def test_the_dry_run_table_names_the_planned_actions_and_json_has_no_legend(armsim: Server) -> None:
    r = cli(armsim, "fix", "vm-healthy", "vm-nsg-blocked", "vm-rdp-shutdown", "-g", "rg-demo", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(LEGEND) == 1
    assert "allow-backup-egress (planned)" in table_row(r.stdout, "vm-nsg-blocked")
    assert table_row(r.stdout, "vm-nsg-blocked").split()[-2:] == ["planned", "planned"]  # backup, result
    assert table_row(r.stdout, "vm-rdp-shutdown").split()[3:] == ["manual", "planned", "planned"]
    assert table_row(r.stdout, "vm-healthy").split()[1:] == ["-", "-", "-", "-", "nothing"]
    doc = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--dry-run", "-o", "json")
    assert doc.returncode == 0 and "Legend" not in doc.stdout and json.loads(doc.stdout)["vms"]


def test_the_diagnosis_table_names_the_catalogs_fixes(armsim: Server) -> None:
    r = cli(armsim, "diagnose", "vm-healthy", "vm-nsg-blocked", "vm-linux-agent-old", "vm-rdp-shutdown",
            "-g", "rg-demo")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(LEGEND) == 1
    assert "allow-backup-egress (catalog)" in table_row(r.stdout, "vm-nsg-blocked")
    assert "upgrade-linux-agent,restart-guest-agent (catalog)" in table_row(r.stdout, "vm-linux-agent-old")
    assert table_row(r.stdout, "vm-rdp-shutdown").split()[3] == "manual"  # C4.shutdown: a person's choice
    assert table_row(r.stdout, "vm-healthy").split()[1:] == ["-", "-", "-", "-", "diagnosed"]
    assert mutating(armsim) == []


# --- item 7: power-off of a VM that is down is not disruptive ---------------------------------------------
def test_power_off_of_a_stopped_vm_says_it_is_not_disruptive(armsim: Server) -> None:
    r = cli(armsim, "action", "power-off", "vm-rdp-shutdown", "-g", "rg-demo", "--dry-run")
    assert r.returncode == 3, r.stdout + r.stderr  # a person's choice remains (start or deallocate)
    first = r.stdout.splitlines()[0]
    assert first.startswith("No changes. vm-rdp-shutdown is stopped (PowerState/stopped), its guest was shut down")
    assert first.endswith("nothing to power off, so nothing disruptive is done"), first
    assert "already" not in r.stdout and mutating(armsim) == []


def test_a_forced_power_off_reads_as_verified_state_and_names_the_consent(armsim: Server, tmp_path: Path) -> None:
    r = cli(armsim, "action", "power-off", "vm-healthy", "-g", "rg-demo", "--force", "--allow-disruptive", "--yes",
            tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "power-off: changed (vm-healthy is stopped (PowerState/stopped) after the power-off)" in r.stdout
    assert "disruptive: power off vm-healthy through the platform (not deallocate); consent: " in r.stdout
    assert "nothing to power off" not in r.stdout and "already" not in r.stdout


# --- item 8: --detailed-exitcode ----------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "plain", "detailed"), [
    (("diagnose", "vm-healthy"), 0, 0),
    (("diagnose", "vm-healthy", "vm-nsg-blocked"), 0, 4),
    (("fix", "vm-healthy", "--dry-run"), 0, 0),
    (("fix", "vm-nsg-blocked", "--dry-run"), 0, 4),
], ids=["diagnose-healthy", "diagnose-broken", "dry-run-healthy", "dry-run-broken"])
def test_detailed_exitcode_tells_healthy_from_causes_found(armsim: Server, args: tuple[str, ...], plain: int,
                                                           detailed: int) -> None:
    r = cli(armsim, *args, "-g", "rg-demo")
    assert r.returncode == plain, r.stdout + r.stderr
    r = cli(armsim, *args, "-g", "rg-demo", "--detailed-exitcode", "-o", "json")
    assert r.returncode == detailed, r.stdout + r.stderr
    assert json.loads(r.stdout)["exit_code"] == detailed
    assert mutating(armsim) == []


def test_detailed_exitcode_with_plan_out_and_where_it_does_not_apply(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    r = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--plan-out", str(plan), "--detailed-exitcode")
    assert r.returncode == 4 and plan.exists(), r.stdout + r.stderr
    armsim.sim.clear_requests()
    for args in (("fix", "vm-nsg-blocked", "--yes"), ("fix", "vm-nsg-blocked"), ("diagnose", "vm a")):
        r = cli(armsim, *args, "-g", "rg-demo", "--detailed-exitcode")
        assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
        assert re.fullmatch(r"error: [^\n]+\n", r.stderr), r.stderr
    assert "--detailed-exitcode goes with --dry-run or --plan-out" in cli(
        armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", "--detailed-exitcode").stderr
    assert armsim.sim.requests() == []  # bad input sends nothing


def test_the_help_documents_the_detailed_exit_code() -> None:
    import subprocess

    out = subprocess.run(runbooks("--help"), capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert "--detailed-exitcode" in out and "4 instead of 0" in out
