"""`python -m runbooks` as a person runs it: a subprocess against armsim over HTTPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_VMS, mutating
from support.runs import ROOT, cli, runbooks

from armsim import DEMO_SUBSCRIPTION, Server
from runbooks.cmd_demo import DEMO_PROXY

CAUSES = {
    "vm-nsg-blocked": ["C1"], "vm-subnet-blocked": ["C1"], "vm-win-agent-hung": ["C2"],
    "vm-linux-agent-old": ["C3"], "vm-sql-vss": ["C4.sql"], "vm-rdp-shutdown": ["C4.shutdown"],
    "vm-ext-failed": ["C5.extension"], "vm-win-provider-disabled": ["C5.provider"],
    "vm-udr-blocked": ["C1.route"], "vm-proxy-dead": ["C1.proxy"], "vm-proxy-egress": ["C1.proxy"],
    # issue #14's codes
    "vm-rp-locked": ["C6.lock"], "vm-locked": ["C8.lock"], "vm-rp-full": ["C6.collection"],
    "vm-backup-running": ["C7.job"], "vm-backup-stuck": ["C7.job"], "vm-backup-old-vault": ["C7.vault"],
    "vm-ext-deleting": ["C5.stuck", "C5.extension"], "vm-provisioning-failed": ["C5.stuck", "C5.extension"],
    "vm-vss-writer": ["C9.writers"], "vm-vss-service": ["C9.service"], "vm-tls-legacy": ["C10.tls"],
    "vm-snapshot-timeout": ["C10.host"], "vm-com-msdtc": ["C11.com"], "vm-fsfreeze": ["C12.freeze"],
}


def backup_status(server: Server, vm: str) -> str:
    """The status of the VM's newest backup job in armsim."""
    vault = next(iter(server.sim.backup.vaults.values()))
    jobs = [j for j in vault.jobs if j.item.vm.name == vm]
    return max(jobs, key=lambda j: j.started).status


# the proxy VMs have no failed backup to fix (vm-proxy-locked's NSG is fixed through vm-proxy-egress)
@pytest.mark.parametrize("vm", [v for v in DEMO_VMS if v not in ("vm-healthy", "vm-proxy", "vm-proxy-locked")])
def test_fix_each_demo_vm_finds_its_causes_and_a_new_backup_succeeds(armsim: Server, tmp_path: Path, vm: str) -> None:
    r = cli(armsim, "fix", vm, "-g", "rg-demo", "--yes", "--allow-disruptive", "--proxy", DEMO_PROXY, "-o", "json",
            tmp=tmp_path)  # the working proxy is what an operator gives (only vm-proxy-dead uses it)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    (report,) = doc["vms"]
    present = [f["cause"] for f in report["findings"] if f["verdict"] == "present"]
    assert present == CAUSES[vm]
    assert report["status"] == "fixed"
    assert backup_status(armsim, vm) == "Completed"
    assert armsim.sim.backup.verdict(armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", vm)]) is None
    audit = (tmp_path / "azure-backup-runbooks" / "audit.jsonl").read_text().splitlines()
    assert audit and all(json.loads(line)["vm"].endswith(f"/virtualMachines/{vm}") for line in audit)


def test_hung_agent_without_consent_is_withheld_with_zero_writes(armsim: Server, tmp_path: Path) -> None:
    r = cli(armsim, "fix", "vm-win-agent-hung", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "restart vm-win-agent-hung through the platform" in r.stdout
    assert "--allow-disruptive" in r.stdout
    assert "az vm repair" in r.stdout
    assert mutating(armsim) == []


def test_dry_run_over_the_whole_fleet_makes_zero_mutating_requests(armsim: Server) -> None:
    r = cli(armsim, "fix", *DEMO_VMS, "-g", "rg-demo", "--dry-run", "--proxy", DEMO_PROXY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Plan: 1 to add, 0 to change, 0 to remove, 1 to run." in r.stdout
    assert "No changes. The VM's latest backup succeeded." in r.stdout
    assert mutating(armsim) == []
    assert len(armsim.sim.requests()) > 0


def test_second_fix_on_a_fixed_vm_says_no_changes_and_writes_nothing(armsim: Server, tmp_path: Path) -> None:
    first = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    armsim.sim.clear_requests()
    second = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert second.returncode == 0
    assert "No changes. The VM's latest backup succeeded." in second.stdout
    assert mutating(armsim) == []


def test_terraform_style_preview(armsim: Server) -> None:
    r = cli(armsim, "fix", "vm-ext-failed", "-g", "rg-demo", "--dry-run")
    out = r.stdout
    assert "  # vm-ext-failed/extensions/VMSnapshotLinux will be removed" in out
    assert "  - " in out and "  ! backup vault rsv-demo, keep 30 days" in out
    assert "Plan: 0 to add, 0 to change, 1 to remove, 1 to run." in out
    assert "[x] C5.extension" in out


def test_saved_plan_applies_cleanly(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    r = cli(armsim, "fix", "vm-sql-vss", "-g", "rg-demo", "--plan-out", str(plan))
    assert r.returncode == 0 and plan.exists(), r.stderr
    assert mutating(armsim) == []
    r = cli(armsim, "apply", str(plan), "--yes", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert backup_status(armsim, "vm-sql-vss") == "Completed"


def test_a_saved_plan_carries_the_proxy_it_was_made_with(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    r = cli(armsim, "fix", "vm-proxy-dead", "-g", "rg-demo", "--proxy", DEMO_PROXY, "--plan-out", str(plan))
    assert r.returncode == 0, r.stderr
    assert json.loads(plan.read_text())["options"]["proxy"] == DEMO_PROXY
    assert "set-guest-proxy" in plan.read_text() and mutating(armsim) == []
    r = cli(armsim, "apply", str(plan), "--yes", tmp=tmp_path)  # set-guest-proxy plans the same proxy again: no drift
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Refusing" not in r.stdout and backup_status(armsim, "vm-proxy-dead") == "Completed"
    doc = json.loads(plan.read_text())
    doc["options"]["proxy"] = "http://10.0.2.4:3128;reboot"  # a hand-edited plan is checked as --proxy is
    plan.write_text(json.dumps(doc))
    bad = cli(armsim, "apply", str(plan), "--yes", tmp=tmp_path)
    assert bad.returncode == 2 and "proxy" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_saved_plan_is_refused_after_the_state_changed_behind_it(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--plan-out", str(plan)).returncode == 0
    nsg = next(n for n in armsim.sim.network.nsgs.values() if n.name == "nsg-blocked")
    nsg.rules["deny-internet-443"]["properties"]["priority"] = 150  # someone edited the NSG meanwhile
    armsim.sim.clear_requests()
    r = cli(armsim, "apply", str(plan), "--yes", tmp=tmp_path)
    assert r.returncode == 1
    assert "Refusing to apply" in r.stdout and "allow-azure-backup-443" in r.stdout
    assert mutating(armsim) == []


@pytest.mark.parametrize("args", [
    ["fix", "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"],
    ["fix", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Web/sites/x"],
    ["fix", "vm;rm -rf /", "-g", "rg-demo"],
    ["fix", "$(reboot)", "-g", "rg-demo"],
    ["fix", "vm-a", "-g", "rg`id`"],
    ["fix", "vm-a", "-g", "rg-demo", "--subscription", "not-a-subscription"],
    ["diagnose", "vm-a|cat", "-g", "rg-demo"],
    ["action", "power-off", "vm a", "-g", "rg-demo"],
    ["action", "no-such-action", "vm-a", "-g", "rg-demo"],
    ["action", "trigger-backup", "vm-a", "-g", "rg-demo", "--param", "retention_days=abc"],
    ["fix", "--from-vault", "rsv;x", "-g", "rg-demo"],
    ["fix", "vm-a", "-g", "rg-demo", "--since", "yesterday"],
    ["fix", "--bogus-flag"],
    ["fix", "vm-a", "-g", "rg-demo", "--retention-days", "0"],
    ["fix", "vm-a", "-g", "rg-demo", "--error", "Extension;rm -rf /"],
    ["diagnose", "vm-a", "-g", "rg-demo", "--error", "$(id)"],
])
def test_bad_input_is_one_line_exit_2_and_zero_requests(armsim: Server, args: list[str]) -> None:
    r = cli(armsim, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert armsim.sim.requests() == []


def test_help_imports_no_azure_sdk_module() -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "runbooks", "--help"], capture_output=True,
                       text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert r.returncode == 0 and "fix" in r.stdout
    imported = [ln.split("|")[-1].strip() for ln in r.stderr.splitlines() if "|" in ln]
    assert not [m for m in imported if m.startswith("azure")], "azure modules imported by --help"
    assert "runbooks.cli" in imported


def test_diagnose_prints_verdicts_only_and_is_read_only(armsim: Server) -> None:
    r = cli(armsim, "diagnose", "vm-rdp-shutdown", "-g", "rg-demo", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    findings = {f["cause"]: f for f in doc["vms"][0]["findings"]}
    assert findings["C4.shutdown"]["verdict"] == "present"
    assert "shut down from inside" in findings["C4.shutdown"]["evidence"]
    assert findings["C2"]["verdict"] == "absent"
    assert doc["vms"][0]["plans"] == []
    assert mutating(armsim) == []


def test_list_and_explain() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(runbooks("list"), capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60).stdout
    assert "E2  Snapshot operation failed" in out and "allow-backup-egress" in out
    out = subprocess.run(runbooks("explain", "ExtensionSnapshotFailedNoNetwork"),
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=60).stdout
    assert out.index("C1:") < out.index("C4.shutdown:") < out.index("C5.extension:")


def test_from_vault_fixes_every_failed_vm_with_one_summary(armsim: Server, tmp_path: Path) -> None:
    r = cli(armsim, "fix", "--from-vault", "rsv-demo", "-g", "rg-demo", "--since", "24h", "--yes",
            "--allow-disruptive", "--proxy", DEMO_PROXY, "--concurrency", "4", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert sorted(v["vm"] for v in doc["vms"]) == sorted(CAUSES)
    assert all(v["status"] == "fixed" for v in doc["vms"])


def test_action_command_dry_run_then_apply(armsim: Server, tmp_path: Path) -> None:
    r = cli(armsim, "action", "remove-backup-extension", "vm-ext-failed", "-g", "rg-demo", "--dry-run")
    assert r.returncode == 0 and "will be removed" in r.stdout
    assert mutating(armsim) == []
    r = cli(armsim, "action", "remove-backup-extension", "vm-ext-failed", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    armsim.sim.clear_requests()
    r = cli(armsim, "action", "remove-backup-extension", "vm-ext-failed", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 0 and "No changes." in r.stdout and "not installed" in r.stdout
    assert mutating(armsim) == []


def test_action_without_yes_on_a_pipe_is_not_applied(armsim: Server) -> None:
    r = cli(armsim, "action", "power-off", "vm-healthy", "-g", "rg-demo", "--force", stdin="")
    assert r.returncode == 3 and "Not applied" in r.stdout
    assert mutating(armsim) == []


def test_a_backup_started_before_the_fix_does_not_count_as_proof(armsim: Server, tmp_path: Path) -> None:
    sim = armsim.sim
    vault = next(iter(sim.backup.vaults.values()))
    item = next(i for i in vault.items.values() if i.vm.name == "vm-nsg-blocked")
    sim.settings.backup_job_polls = 1000  # the old job keeps running
    sim.backup.start_job(vault, item)  # someone's backup, still running, doomed (the NSG blocks it)
    r = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "not verified" in r.stdout and "started" in r.stdout and "before the fix" in r.stdout
    assert "Fixed" not in r.stdout


def test_json_output_is_one_document_even_when_nothing_is_applied(armsim: Server) -> None:
    r = cli(armsim, "fix", "vm-ext-failed", "-g", "rg-demo", "-o", "json", stdin="")
    assert r.returncode == 3
    doc = json.loads(r.stdout)  # the whole stdout is one JSON document
    assert doc["applied"] is False and doc["exit_code"] == 3
    assert mutating(armsim) == []
    r = cli(armsim, "action", "remove-backup-extension", "vm-ext-failed", "-g", "rg-demo", "--dry-run", "-o", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["plan"]["changes"][0]["kind"] == "remove" and doc["outcome"] is None


def test_apply_honours_yes_and_dry_run(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert cli(armsim, "fix", "vm-sql-vss", "-g", "rg-demo", "--plan-out", str(plan)).returncode == 0
    armsim.sim.clear_requests()
    r = cli(armsim, "apply", str(plan), stdin="", tmp=tmp_path)
    assert r.returncode == 3 and "Not applied" in r.stdout
    r = cli(armsim, "apply", str(plan), "--dry-run", tmp=tmp_path)
    assert r.returncode == 0
    assert mutating(armsim) == []
    assert not (tmp_path / "azure-backup-runbooks" / "audit.jsonl").exists()


def test_causes_arm_cannot_see_are_reported_as_manual_steps_when_the_backup_still_fails(
        armsim: Server, tmp_path: Path) -> None:
    sim = armsim.sim
    vm = sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", "vm-healthy")]
    vm.guest.dhcp_enabled = False  # invisible to ARM: only a person can fix it
    vault = next(iter(sim.backup.vaults.values()))
    item = next(i for i in vault.items.values() if i.vm is vm)
    assert sim.backup.start_job(vault, item, finished=True).error == "ExtensionSnapshotFailedNoNetwork"
    r = cli(armsim, "fix", "vm-healthy", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Verification backup did not succeed" in r.stdout
    assert "manual step: Enable DHCP" in r.stdout


def test_audit_records_a_write_whose_wait_then_failed(armsim: Server, tmp_path: Path) -> None:
    r = cli(armsim, "action", "trigger-backup", "vm-nsg-blocked", "-g", "rg-demo", "--yes", "--param", "wait=true",
            "--param", "poll_seconds=0.05", tmp=tmp_path)
    assert r.returncode == 1
    sending, line = (tmp_path / "azure-backup-runbooks" / "audit.jsonl").read_text().splitlines()
    assert json.loads(sending)["outcome"] == "sending"  # the intent, written before the request
    entry = json.loads(line)
    assert entry["action"] == "trigger-backup" and entry["outcome"] == "failed"
    assert entry["error"] == "ExtensionSnapshotFailedNoNetwork"
    assert entry["correlation_id"]


# A fresh install without the sim extra: the named modules fail to import as if not installed.
_WITHOUT = """
import runpy, sys
for name in sys.argv.pop(1).split(","):
    sys.modules[name] = None
if sys.argv[1] == "armsim-script":
    from runbooks.simulator import armsim_main
    sys.exit(armsim_main(sys.argv[2:]))
sys.argv[0] = "runbooks"
runpy.run_module("runbooks", run_name="__main__", alter_sys=True)
"""


def without(missing: str, *args: str, server: Server | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI (or the armsim script) with the `missing` modules (comma-separated) impossible to import."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if server is not None:
        env.update(RUNBOOKS_ARM_ENDPOINT=server.endpoint, RUNBOOKS_CA_BUNDLE=server.ca_bundle,
                   AZURE_SUBSCRIPTION_ID=DEMO_SUBSCRIPTION)
    return subprocess.run([sys.executable, "-c", _WITHOUT, missing, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("missing, args", [
    ("werkzeug", ["demo"]),
    ("trustme", ["demo", "-o", "json"]),
    ("werkzeug,trustme", ["fix", "vm-nsg-blocked", "--simulator", "--dry-run"]),
    ("armsim,werkzeug,trustme", ["diagnose", "vm-healthy", "--simulator"]),
])
def test_the_simulator_without_the_sim_extra_is_one_error_line_and_exit_2(missing: str, args: list[str]) -> None:
    r = without(missing, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the simulator needs the sim extra"), lines
    assert "pip install 'azure-backup-runbooks[sim]'" in lines[0]


def test_the_armsim_script_without_the_sim_extra_says_which_extra() -> None:
    r = without("werkzeug", "armsim-script", "--help")
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr.startswith("error: armsim needs the sim extra (werkzeug") and r.stderr.count("\n") == 1
    r = without("", "armsim-script", "--help")
    assert r.returncode == 0 and "--scenario" in r.stdout, r.stdout + r.stderr


def test_without_armsim_werkzeug_or_trustme_the_cli_still_works_against_arm(armsim: Server) -> None:
    r = without("armsim,werkzeug,trustme", "diagnose", "vm-rdp-shutdown", "-g", "rg-demo", "-o", "json",
                server=armsim)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["vms"][0]["status"] == "diagnosed"
    assert without("armsim,werkzeug,trustme", "list").returncode == 0
