"""Issue #10 "done when": every action against faults on its operation polls converges or fails in one clear
line, with an audit line for every write it sent (the intent before sending, then its outcome).

Faults (armsim/faults.py): 429 on a poll, 404 on a poll, a 202 that never ends (the operation's deadline
ends it), and a lost answer after the write was carried out (`lost_answer`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_RETRY, mutating

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.actions import get_action
from remediations.azure import Azure, AzureConfig
from remediations.target import Target
from runbooks.audit import AuditTrail

# action -> (demo VM it has work on, extra params)
ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "remove-backup-extension": ("vm-ext-failed", {}),
    "allow-backup-egress": ("vm-nsg-blocked", {}),
    "set-vss-copy-backup": ("vm-sql-vss", {}),
    "restart-guest-agent": ("vm-win-agent-hung", {}),
    "enable-iaasvmprovider": ("vm-win-provider-disabled", {}),
    "power-off": ("vm-healthy", {"force": True}),
    "trigger-backup": ("vm-healthy", {"wait": True, "poll_seconds": 0.05, "wait_seconds": 20}),  # + since (below)
}
WRITE_POSTS = ("*/backup", "*/runCommand", "*/powerOff", "*/restart")
POLLS = ("*/operations/*", "*/operationResults/*", "*/operationsStatus/*", "*/backupOperations/*")
FAULTS = ("poll-429", "poll-404", "never-ends", "lost-answer")
DEADLINE = 2.0


def arm(server: Server, fault: str) -> None:
    sim = server.sim
    if fault == "poll-429":
        for p in POLLS:
            sim.faults.add(kind="throttle", method="GET", path=p, retry_after=120, count=1)
    elif fault == "poll-404":
        for p in POLLS:
            sim.faults.add(kind="status", method="GET", path=p, status=404, code="OperationNotFound",
                           message="The operation was not found.", count=1)
    elif fault == "never-ends":
        s = sim.settings
        s.lro_polls = s.nsg_write_polls = 10**9
        s.lro_seconds = s.nsg_write_seconds = 10**6
        s.extra["run_command_seconds"] = 10**6
    elif fault == "lost-answer":
        for method in ("PUT", "DELETE", "PATCH"):
            sim.faults.add(kind="lost_answer", method=method, count=1)
        for path in WRITE_POSTS:  # not the read-only POSTs (backupStatus, effective NSGs)
            sim.faults.add(kind="lost_answer", method="POST", path=path, count=1)


def audit_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_action_under_a_poll_fault_converges_or_fails_in_one_line(armsim: Server, tmp_path: Path, name: str,
                                                                   fault: str) -> None:
    vm, extra = ACTIONS[name]
    azure = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                              ca_bundle=armsim.ca_bundle, retry=FAST_RETRY, read_timeout=30,
                              operation_seconds=DEADLINE))
    target = Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=vm)
    action = get_action(name)
    if name == "trigger-backup":  # verification: wants a backup started from now on that succeeds
        extra = {**extra, "since": datetime.now(timezone.utc) - timedelta(seconds=60)}
        if fault == "never-ends":  # its own bound ends the wait as the deadline would (not 20 s of polls)
            extra["wait_seconds"] = DEADLINE
    params = action.Params(target=target, **extra)
    assert action.preview(azure, params).changes, f"{name} has nothing to do on {vm}"
    armsim.sim.clear_requests()
    arm(armsim, fault)
    audit = AuditTrail(tmp_path / "audit.jsonl")
    outcome = action.apply(azure, params, consent=True, on_change=audit.recorder(target))

    lines = audit_of(tmp_path / "audit.jsonl")
    writes = [e for e in mutating(armsim) if e["method"] != "GET"]
    sent = [x for x in lines if x["outcome"] == "sending"]
    ended = [x for x in lines if x["outcome"] != "sending"]
    if writes:
        assert sent, f"{len(writes)} write(s) sent, no audit line"
    else:  # the fault met a read first (e.g. a read-only Run Command's poll): nothing may claim a write
        assert outcome.status == "failed" and not [x for x in lines if x["outcome"] == "applied"], outcome
    assert len(ended) == len(sent) and {x["outcome"] for x in ended} <= {"applied", "failed", "unknown"}, lines
    assert outcome.status in ("changed", "failed"), outcome  # a write was sent: never "unchanged"
    if outcome.status == "failed":
        assert outcome.reason and "\n" not in outcome.reason, outcome.reason
    if fault == "never-ends" and outcome.status == "failed":
        assert "did not finish within" in outcome.reason or "still planned" in outcome.reason, outcome.reason
    if fault in ("poll-429", "poll-404") and writes:  # accepted, poll failed: follow it, never send it again
        assert outcome.status == "changed" and len(writes) == 1, (outcome, writes)
    if outcome.status == "changed":
        armsim.sim.faults.clear()
        assert action.preview(azure, params).empty, "changed, but the re-plan still has work"
