"""C4.shutdown from real signals, and a job error that carries only a number (issue #9).

A guest shut down from inside shows PowerState/stopped (azure-docs states-billing.md) and Resource
Health annotates it VirtualMachineStoppedInternally (azure-monitor-docs resource-health-vm-annotation.md).
A silent agent on a running VM is not a shutdown. All through the real SDK against armsim.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conftest import mutating
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure
from remediations.facts import Facts, gather
from remediations.reads import VmView
from remediations.target import Target
from runbooks.catalog import lookup
from runbooks.diagnose import check, diagnose
from runbooks.engine import Options, investigate

RG = "rg-demo"


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name=name)


def reads(server: Server) -> list[str]:
    return [e["operation"] for e in server.sim.requests()]


def test_a_guest_shut_down_inside_is_found_from_power_state_and_annotation(armsim: Server, azure: Azure) -> None:
    facts = gather(azure, target("vm-rdp-shutdown"))
    assert facts.vm.power_state == "stopped"
    assert "AvailabilityStatuses_GetByResource" in reads(armsim)  # read because the VM is stopped
    f = check("C4.shutdown", facts)
    assert f.verdict == "present"
    assert f.evidence.startswith("vm-rdp-shutdown was shut down from inside its guest: PowerState/stopped (allocated, "
                                 "still billed), Resource Health annotation VirtualMachineStoppedInternally: ")
    assert "due to a guest activity from within the Virtual Machine" in f.evidence
    others = {x.cause: x.verdict for x in diagnose(facts, lookup("E1"))}  # type: ignore[arg-type]
    assert others["C2"] == others["C3"] == "absent"  # a stopped guest's agent is not expected to answer
    assert mutating(armsim) == []


def test_a_silent_agent_on_a_running_vm_is_not_a_shutdown(armsim: Server, azure: Azure) -> None:
    facts = gather(azure, target("vm-win-agent-hung"))
    assert facts.vm.running and not facts.vm.agent_ready
    assert "AvailabilityStatuses_GetByResource" not in reads(armsim)  # a running VM: no health read needed
    f = check("C4.shutdown", facts)
    assert f.verdict == "absent" and "a silent agent on a running VM is not a shutdown" in f.evidence
    assert check("C2", facts).verdict == "present"


def test_a_vm_stopped_through_the_platform_is_said_so(armsim: Server, azure: Azure) -> None:
    azure.compute.virtual_machines.begin_power_off(RG, "vm-healthy").result()
    f = check("C4.shutdown", gather(azure, target("vm-healthy")))
    assert f.verdict == "absent"
    assert f.evidence.startswith("vm-healthy is PowerState/stopped through the platform, not from inside the guest")


def test_the_old_signal_running_plus_an_invented_summary_is_no_shutdown_any_more() -> None:
    vm = VmView(target("vm-x").id, "vm-x", "eastus", "Windows", "running", "Not Ready", "Unknown",
                "VM Agent is unresponsive.", (), (), {})
    invented = {"availabilityState": "Unavailable", "reasonType": "Customer Initiated",
                "summary": "We're sorry, your virtual machine isn't available because the guest operating system "
                           "was shut down from inside the virtual machine."}
    facts = Facts(target("vm-x"), vm, None, None, invented, None)
    assert check("C4.shutdown", facts).verdict == "absent"
    assert check("C2", facts).verdict == "present"  # the silent agent is the Windows agent's problem


def test_unreadable_resource_health_leaves_a_stopped_vm_unknown(armsim: Server, azure: Azure) -> None:
    armsim.sim.faults.add(kind="status", status=403, code="AuthorizationFailed",
                          operation="AvailabilityStatuses_GetByResource",
                          message="The client does not have authorization to perform action "
                                  "'Microsoft.ResourceHealth/availabilityStatuses/read'.")
    f = check("C4.shutdown", gather(azure, target("vm-rdp-shutdown")))
    assert f.verdict == "unknown" and "Resource Health could not be read (AuthorizationFailed)" in f.evidence


def test_fixing_vm_rdp_shutdown_leaves_the_choice_to_a_person_and_backs_up(armsim: Server, tmp_path: Path) -> None:
    r = cli(armsim, "fix", "vm-rdp-shutdown", "-g", RG, "--yes", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = json.loads(r.stdout)["vms"]
    assert [f["cause"] for f in report["findings"] if f["verdict"] == "present"] == ["C4.shutdown"]
    assert report["status"] == "fixed"  # the verifying backup of the stopped VM completed (crash-consistent)
    assert any("az vm start" in m and "az vm deallocate" in m for m in report["manual"])
    assert [e["operation"] for e in mutating(armsim)] == ["Backups_Trigger"]  # no power-off, no start
    assert armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, "vm-rdp-shutdown")].power == "stopped"


# --- a job error that carries only a number ---------------------------------------------------
def _number_only_failure(server: Server, vm: str, number: str) -> None:
    bk = server.sim.backup
    vault = next(iter(bk.vaults.values()))
    item = next(i for i in vault.items.values() if i.vm.name == vm)
    bk.start_job(vault, item, error=number, user=False, when=datetime.now(timezone.utc), finished=True)


def test_a_job_error_with_only_a_number_says_so_through_the_engine(armsim: Server, azure: Azure) -> None:
    _number_only_failure(armsim, "vm-healthy", "400999")
    inv = investigate(azure, target("vm-healthy"), Options())
    assert inv.job is not None and inv.job.error_title is None and inv.job.error_number == 400999
    assert inv.error_code == "400999" and inv.entry.id == "E5"
    assert "only the error number 400999 was reported" in inv.matched_by
    assert [f.cause for f in inv.findings] == list(lookup("E5").causes)  # type: ignore[union-attr]


def test_a_job_error_with_only_a_number_says_so_in_the_cli_output(armsim: Server) -> None:
    _number_only_failure(armsim, "vm-healthy", "400999")
    r = cli(armsim, "diagnose", "vm-healthy", "-g", RG)
    assert r.returncode == 0, r.stderr
    assert ("Error   400999 -> E5: only the error number 400999 was reported (no code or message): every cause is "
            "checked in the E5 order") in r.stdout
    doc: dict[str, Any] = json.loads(cli(armsim, "diagnose", "vm-healthy", "-g", RG, "-o", "json").stdout)
    error = doc["vms"][0]["error"]
    assert error["code"] == "400999" and error["job"]["error_code"] == 400999 and error["job"]["error_title"] is None
    assert error["matched_by"].startswith("only the error number 400999 was reported")
