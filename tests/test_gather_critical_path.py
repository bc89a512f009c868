"""The diagnosis's critical path (issue #13): only the VM read comes first; the NSG and backup reads then go at once.

Deterministic, not timed: armsim delays every request by `LATENCY`, far more than it takes to start a thread, so
the order in which armsim logs the requests says whether the two branches overlapped.
"""

from __future__ import annotations

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure
from remediations.facts import gather
from remediations.target import Target

LATENCY = 0.3


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name)


def operations(server: Server) -> list[str]:
    return [e["operation"] or e["path"] for e in server.sim.requests()]


def test_the_nsg_and_backup_reads_start_together_once_the_vm_is_read(armsim: Server, azure: Azure) -> None:
    for name in ("compute", "network", "backup"):  # built first: the order then shows the overlap alone
        getattr(azure, name)
    armsim.sim.settings.latency = LATENCY
    facts = gather(azure, target("vm-nsg-blocked"))
    ops = operations(armsim)
    assert ops[0] == "VirtualMachines_Get"
    assert set(ops[1:3]) == {"NetworkInterfaces_ListEffectiveNetworkSecurityGroups", "BackupStatus_Get"}, ops
    assert facts.nsgs and facts.backup is not None and facts.jobs  # both branches' answers made it into the facts
    assert [n.name for n in facts.nsgs] == ["nsg-blocked", "nsg-app"]


def test_the_reads_are_those_made_one_after_the_other(armsim: Server, azure: Azure) -> None:
    gather(azure, target("vm-nsg-blocked"))
    ops = operations(armsim)
    assert sorted(o for o in ops if "operationResults" not in o and "/operations/" not in o) == sorted([
        "VirtualMachines_Get", "NetworkInterfaces_ListEffectiveNetworkSecurityGroups", "BackupStatus_Get",
        *["BackupJobs_List"] * ops.count("BackupJobs_List")])
    assert ops.count("BackupJobs_List") >= 1  # every page of the vault's recent jobs, once


def test_a_stopped_vm_reads_its_health_beside_the_network_and_backup(armsim: Server, azure: Azure) -> None:
    facts = gather(azure, target("vm-rdp-shutdown"))
    assert facts.vm.power_state == "stopped" and facts.health is not None and facts.nsgs is not None
    assert operations(armsim)[0] == "VirtualMachines_Get"


def test_warm_builds_clients_in_the_background_and_leaves_failures_to_their_use(azure: Azure) -> None:
    azure.warm("backup", "no_such_client")  # the unknown one fails in the thread, silently
    assert azure.backup is azure.backup  # built once, whichever thread got there first


def test_the_guest_probe_runs_beside_the_nsg_reads_once_the_failed_job_is_known(armsim: Server, azure: Azure) -> None:
    from runbooks.engine import Options, investigate

    for name in ("compute", "network", "backup"):
        getattr(azure, name)
    armsim.sim.settings.op_seconds = 1.0  # the effective NSGs take a second: far longer than the backup reads
    inv = investigate(azure, target("vm-nsg-blocked"), Options())
    log = [(e["method"], e["operation"] or e["path"]) for e in armsim.sim.requests()]
    run = log.index(("POST", "VirtualMachines_RunCommand"))
    nsg_done = max(i for i, (_, op) in enumerate(log) if op == "Microsoft.Network/operationResults/read")
    jobs = max(i for i, (_, op) in enumerate(log) if op == "BackupJobs_List")
    assert jobs < run < nsg_done, log  # after the job that names the runbook, before the NSGs' answer
    assert inv.facts.proxy is not None and inv.facts.proxy.guest is not None and not inv.facts.proxy.guest.proxy
    assert [f.verdict for f in inv.findings if f.cause in ("C1", "C1.proxy")] == ["present", "absent"]


def test_no_guest_probe_when_the_runbook_has_no_proxy_cause(armsim: Server, azure: Azure) -> None:
    from runbooks.engine import Options, investigate

    inv = investigate(azure, target("vm-nsg-blocked"), Options(error="UserErrorRpCollectionLimitReached"))
    assert "C1.proxy" not in inv.entry.causes and inv.facts.proxy is None
    assert "VirtualMachines_RunCommand" not in operations(armsim)
