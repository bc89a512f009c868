"""armsim's `fleet:N` scenario (issue #13): N VMs across subscriptions, groups and vaults, shared NSGs, a mix of
causes; and a fleet fix that writes each shared NSG once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import mutating
from support.runs import cli

from armsim import Server
from armsim.fleet import FLEET_MIX, FLEET_SUBSCRIPTIONS
from armsim.scenarios import load
from armsim.sim import Simulator


def failed_codes(sim: Simulator) -> Counter[str | None]:
    return Counter(j.error for v in sim.backup.vaults.values() for j in v.jobs if j.status == "Failed")


def test_the_fleet_spreads_over_subscriptions_groups_and_vaults_with_the_mix_of_causes() -> None:
    sim = Simulator("fleet:40")
    vms = list(sim.compute.vms.values())
    assert len(vms) == 40 and {v.subscription for v in vms} == set(FLEET_SUBSCRIPTIONS)
    assert len({(v.subscription, v.group) for v in vms}) == 6 and len(sim.backup.vaults) == 6
    twice = 40 // sum(FLEET_MIX.values())  # the mix repeats every 20 VMs
    assert failed_codes(sim) == {"ExtensionSnapshotFailedNoNetwork": FLEET_MIX["nsg"] * twice,
                                 "ExtensionOperationFailedForManagedDisks": FLEET_MIX["extension"] * twice,
                                 "UserErrorGuestAgentVersionUnsupported": FLEET_MIX["agent-old"] * twice,
                                 "GuestAgentSnapshotTaskStatusError": FLEET_MIX["agent-hung"] * twice}
    for vm in vms:  # every seeded failure is what a backup now gives: the seed and the causal model agree
        jobs = [j for v in sim.backup.vaults.values() for j in v.jobs if j.item.vm is vm and j.status == "Failed"]
        assert [j.error for j in jobs] == ([sim.backup.verdict(vm)] if sim.backup.verdict(vm) else [])
    by_nsg = Counter(n.nsg_id.rsplit("/", 1)[1] for n in sim.network.nics.values() if n.nsg_id)
    assert by_nsg["nsg-fleet-0"] == FLEET_MIX["nsg"] * twice  # one NSG change breaks many VMs at once


@pytest.mark.parametrize("name", ["fleet:0", "fleet:5001", "fleet:x", "fleet:", "fleet:-1"])
def test_a_bad_fleet_size_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="fleet:N"):
        load(Simulator("empty"), name)


def test_a_fleet_fix_writes_each_shared_nsg_once_and_a_second_run_writes_nothing(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.reset("fleet:40")
    armsim.sim.clear_requests()
    blocked = [vm.id for vm in armsim.sim.compute.vms.values()
               if armsim.sim.backup.verdict(vm) == "ExtensionSnapshotFailedNoNetwork"]
    assert len(blocked) == 16
    r = cli(armsim, "fix", *blocked, "--yes", "--concurrency", "4", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert [v["status"] for v in json.loads(r.stdout)["vms"]] == ["fixed"] * 16
    puts = [e for e in mutating(armsim) if e["operation"] == "SecurityRules_CreateOrUpdate" and e["status"] < 300]
    assert len(puts) == 2, puts  # nsg-fleet-0 of each subscription, once: the other VMs find the rule there
    assert all(armsim.sim.backup.verdict(armsim.sim.compute.by_id(i)) is None for i in blocked)
    armsim.sim.clear_requests()
    again = cli(armsim, "fix", *blocked, "--yes", "--concurrency", "4", "-o", "json", tmp=tmp_path)
    assert again.returncode == 0 and [v["status"] for v in json.loads(again.stdout)["vms"]] == ["nothing"] * 16
    assert mutating(armsim) == []
