"""E7 (wait-backup-job, cancel-backup-job), E9/E10 (C5.stuck -> remove-backup-extension) and E11 (-> C3) against armsim."""

from __future__ import annotations

import re

from armsim.server import Server
from remediations.actions.jobs import CancelBackupJob, WaitBackupJob
from remediations.azure import Azure
from remediations.facts import gather
from runbooks.diagnose import check
from runbooks.engine import Options, investigate, run
from tests.conftest import mutating
from tests.support.demo import sim_vm, target


def _hours(evidence: str) -> float:
    m = re.search(r"running for ([0-9.]+) h", evidence)
    assert m, evidence
    return float(m.group(1))


def _found(azure: Azure, vm: str) -> dict[str, tuple[str, str]]:
    inv = investigate(azure, target(vm), Options())
    return {f.cause: (f.verdict, f.evidence) for f in inv.findings}


def test_a_job_still_running_is_diagnosed_with_its_evidence(armsim: Server, azure: Azure) -> None:
    found = _found(azure, "vm-backup-running")
    verdict, evidence = found["C7.job"]
    assert verdict == "present" and "InProgress in vault rsv-demo" in evidence and _hours(evidence) < 24
    assert found["C7.vault"][0] == "absent"
    stuck = _found(azure, "vm-backup-stuck")["C7.job"]
    assert stuck[0] == "present" and _hours(stuck[1]) > 30
    old = _found(azure, "vm-backup-old-vault")
    assert old["C7.job"][0] == "absent"
    assert old["C7.vault"][0] == "present" and "the old vault rsv-demo-old" in old["C7.vault"][1]
    assert mutating(armsim) == []


def test_wait_and_cancel_split_on_the_threshold(armsim: Server, azure: Azure) -> None:
    wait, cancel = WaitBackupJob(), CancelBackupJob()
    [c] = wait.preview(azure, WaitBackupJob.Params(target=target("vm-backup-running"))).changes
    assert c.kind == "run" and not c.disruptive
    assert cancel.preview(azure, CancelBackupJob.Params(target=target("vm-backup-running"))).empty
    assert wait.preview(azure, WaitBackupJob.Params(target=target("vm-backup-stuck"))).empty
    [c] = cancel.preview(azure, CancelBackupJob.Params(target=target("vm-backup-stuck"))).changes
    assert c.disruptive and "past the 24 h threshold" in c.reason
    lower = cancel.preview(azure, CancelBackupJob.Params(target=target("vm-backup-running"), stuck_hours=0.1))
    assert lower.changes  # the threshold is a parameter
    assert mutating(armsim) == []


def test_wait_follows_the_job_to_its_end_and_writes_nothing(armsim: Server, azure: Azure) -> None:
    params = WaitBackupJob.Params(target=target("vm-backup-running"))
    out = WaitBackupJob().apply(azure, params)
    assert out.status == "changed" and out.result["job_status"] == "Completed"
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-backup-running")) is None
    again = WaitBackupJob().apply(azure, params)
    assert again.status == "unchanged" and "no backup job of vm-backup-running is running" in again.reason
    assert mutating(armsim) == []


def test_cancel_needs_consent_then_cancels_once(armsim: Server, azure: Azure) -> None:
    params = CancelBackupJob.Params(target=target("vm-backup-stuck"))
    held = CancelBackupJob().apply(azure, params)
    assert held.status == "withheld" and mutating(armsim) == []
    out = CancelBackupJob().apply(azure, params, consent="test")
    assert out.status == "changed" and out.result["job_status"] == "Cancelled"
    assert any("consent: test" in e for e in out.evidence)
    assert [e["path"].rsplit("/", 1)[-1] for e in mutating(armsim)] == ["cancel"]
    armsim.sim.clear_requests()
    assert CancelBackupJob().apply(azure, params, consent="test").status == "unchanged"
    assert mutating(armsim) == []


def test_the_old_vaults_job_is_cancelled_there(armsim: Server, azure: Azure) -> None:
    out = CancelBackupJob().apply(azure, CancelBackupJob.Params(target=target("vm-backup-old-vault")), consent=True)
    assert out.status == "changed" and "in vault rsv-demo-old" in out.evidence[0]
    assert armsim.sim.backup.verdict(sim_vm(armsim, "vm-backup-old-vault")) is None


def test_extension_states_lead_to_remove_backup_extension(armsim: Server, azure: Azure) -> None:
    deleting = _found(azure, "vm-ext-deleting")["C5.stuck"]
    assert deleting[0] == "present" and "stuck in deletion" in deleting[1]
    failed = _found(azure, "vm-provisioning-failed")["C5.stuck"]
    assert failed[0] == "present" and "vm-provisioning-failed provisioning state Failed" in failed[1]
    assert check("C5.stuck", gather(azure, target("vm-ext-failed"))).verdict == "absent"  # E3's VM: the VM itself is not Failed
    old = investigate(azure, target("vm-linux-agent-old"), Options())
    assert old.error_code == "UserErrorGuestAgentVersionUnsupported" and old.entry.id == "E11"
    assert [f.cause for f in old.present] == ["C3"]


def test_dry_run_writes_nothing(armsim: Server, azure: Azure) -> None:
    for vm in ("vm-backup-stuck", "vm-backup-old-vault", "vm-ext-deleting", "vm-provisioning-failed"):
        report = run(azure, target(vm), Options(dry_run=True, allow_disruptive=True))
        assert report.status == "planned" and report.plans, vm
    assert mutating(armsim) == []


def test_the_demo_vms_are_fixed_and_proven_then_left_alone(armsim: Server, azure: Azure) -> None:
    opts = Options(allow_disruptive=True, backup_poll_seconds=0.05)
    expect = {"vm-backup-running": "wait-backup-job", "vm-backup-stuck": "cancel-backup-job",
              "vm-backup-old-vault": "cancel-backup-job", "vm-ext-deleting": "remove-backup-extension",
              "vm-provisioning-failed": "remove-backup-extension"}
    for vm, action in expect.items():
        report = run(azure, target(vm), opts)
        assert report.status == "fixed", (vm, report.message)
        assert [o.action for o in report.outcomes] == [action], vm
        assert report.backup is not None and report.backup.result.get("job_id"), vm
    withheld = run(azure, target("vm-linux-agent-old"), Options(allow_disruptive=False, backup_poll_seconds=0.05))
    assert withheld.status == "fixed"  # upgrade-linux-agent is not disruptive
    armsim.sim.clear_requests()
    for vm in expect:
        assert run(azure, target(vm), opts).status == "nothing", vm
    assert mutating(armsim) == []


def test_without_consent_the_stuck_job_is_withheld(armsim: Server, azure: Azure) -> None:
    report = run(azure, target("vm-backup-stuck"), Options(backup_poll_seconds=0.05))
    assert report.status == "withheld" and mutating(armsim) == []
