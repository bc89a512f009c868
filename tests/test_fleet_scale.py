"""Fleet scale (issue #13): a throttled Run Command poll never resends the command, one writer per NSG in a process,
armsim's time-based operations (--op-seconds) and the all-failing fleet (fleet-failing:N)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import FAST_RETRY
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.fleet import FLEET_MIX
from armsim.sim import Simulator
from remediations.azure import Azure, AzureConfig
from remediations.budget import BUDGETS
from remediations.reads import run_script
from remediations.target import parse_target


def _azure(server: Server) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint, ca_bundle=server.ca_bundle,
                             retry=FAST_RETRY, read_timeout=30))


def test_a_throttled_run_command_poll_follows_the_same_command_and_never_posts_it_again(armsim: Server) -> None:
    """ARM's read bucket is empty when the Run Command's first status poll goes (another process of the same
    principal spent it): 429. The client waits and follows the same operation; it never sends a second POST (which
    ARM refuses 409 "Run command extension execution is in progress" while the first runs)."""
    sim = armsim.sim
    sim.settings.throttle = sim.throttle.enabled = True
    sim.throttle.reset()
    sim.throttle.limits["reads"] = (2.0, 25.0)
    # armsim's bucket clock stands still until its first 429, then runs: the first poll is refused, the next pass
    sim.throttle.clock = lambda: time.monotonic() if sim.throttle.throttled else 0.0
    try:
        for _ in range(2):  # the other process's reads
            assert sim.throttle.admit("GET", f"/subscriptions/{DEMO_SUBSCRIPTION}/x", None)[0] is None
        BUDGETS.clear()
        out = run_script(_azure(armsim), parse_target("vm-healthy", "rg-demo", DEMO_SUBSCRIPTION), "linux-agent-status")
    finally:
        sim.throttle.clock = time.monotonic
    assert out["script"] == "linux-agent-status" and out["active"] is True
    log = sim.requests()
    posts = [e for e in log if e["operation"] == "VirtualMachines_RunCommand"]
    assert [e["status"] for e in posts] == [202], Counter((e["operation"], e["status"]) for e in log)
    assert [e["operation"] for e in log if e["status"] == 429] == ["Microsoft.Compute/operations/read"]
    assert not [e for e in log if e["status"] == 409]


def test_a_fleet_fix_at_concurrency_8_writes_each_shared_nsg_once_with_no_412(armsim: Server, tmp_path: Path) -> None:
    """16 VMs behind two shared NSGs (one per subscription), 8 at a time, NSG writes that take a second: one worker
    per NSG writes the rule; the others wait for it, re-read and find it. Status-agnostic: every PUT is counted."""
    armsim.sim.reset("fleet:40")
    armsim.sim.settings.op_seconds = 1.0
    armsim.sim.clear_requests()
    blocked = [vm.id for vm in armsim.sim.compute.vms.values()
               if armsim.sim.backup.verdict(vm) == "ExtensionSnapshotFailedNoNetwork"]
    assert len(blocked) == 16
    r = cli(armsim, "fix", *blocked, "--yes", "--concurrency", "8", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert [v["status"] for v in json.loads(r.stdout)["vms"]] == ["fixed"] * 16
    log = armsim.sim.requests()
    puts = [e for e in log if e["operation"] == "SecurityRules_CreateOrUpdate"]
    assert sorted(e["path"].split("/")[8] for e in puts) == ["nsg-fleet-0", "nsg-fleet-0"], puts
    assert {e["path"].split("/")[2] for e in puts} == {vm.split("/")[2] for vm in blocked}  # one per subscription
    assert [e for e in log if e["status"] in (409, 412)] == []
    assert all(armsim.sim.backup.verdict(armsim.sim.compute.by_id(i)) is None for i in blocked)


def test_op_seconds_ends_an_operation_by_time_alone_however_often_it_is_polled(armsim: Server) -> None:
    armsim.sim.settings.op_seconds = 30.0
    azure = _azure(armsim)
    poller = azure.compute.virtual_machines.begin_run_command(
        "rg-demo", "vm-healthy", {"commandId": "RunShellScript", "script": ["echo hi"]})
    time.sleep(0.5)  # the SDK polls every 50 ms against loopback: many polls, not done
    polls = [e for e in armsim.sim.requests() if e["operation"] == "Microsoft.Compute/operations/read"]
    assert len(polls) >= 3 and not poller.done()
    armsim.sim.advance_clock(30)
    poller.result(timeout=10)
    assert poller.status() == "Succeeded"


def test_fleet_failing_has_no_healthy_vm_and_keeps_the_mix() -> None:
    sim = Simulator("fleet-failing:30")
    verdicts = Counter(sim.backup.verdict(vm) for vm in sim.compute.vms.values())
    assert len(sim.compute.vms) == 30 and None not in verdicts
    assert verdicts == {"ExtensionSnapshotFailedNoNetwork": FLEET_MIX["nsg"] * 2,
                        "ExtensionOperationFailedForManagedDisks": FLEET_MIX["extension"] * 2,
                        "UserErrorGuestAgentVersionUnsupported": FLEET_MIX["agent-old"] * 2,
                        "GuestAgentSnapshotTaskStatusError": FLEET_MIX["agent-hung"] * 2}
    failed = Counter(j.item.vm.name for v in sim.backup.vaults.values() for j in v.jobs if j.status == "Failed")
    assert len(failed) == 30 and set(failed.values()) == {1}


@pytest.mark.parametrize("name", ["fleet-failing:0", "fleet-failing:x", "fleet-failing:5001"])
def test_a_bad_fleet_failing_size_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="fleet-failing:N"):
        Simulator(name)


def test_the_trigger_operation_is_polled_no_faster_than_its_retry_after(armsim: Server, tmp_path: Path) -> None:
    """A backup trigger's operation that takes 2 s and asks for polls 1 s apart (Retry-After, as TriggerBackup_Post.json
    does with 60): 2 or 3 status polls, not one every 50 ms (a fleet's polls would spend ARM's read budget)."""
    armsim.sim.settings.op_seconds = 2.0
    armsim.sim.settings.lro_retry_after = 1
    r = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", "-o", "json", tmp=tmp_path)  # polls fast
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    log = armsim.sim.requests()
    assert [e["operation"] for e in log].count("Backups_Trigger") == 1
    polls = [e for e in log if e["operation"] == "ProtectedItemOperationStatuses_Get"]
    assert 2 <= len(polls) <= 3, [e["operation"] for e in log]
