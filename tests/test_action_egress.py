"""allow-backup-egress against armsim over HTTPS with the real SDK: plans, apply, faults, races."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import DEMO_VMS, FAST_RETRY, mutating
from pydantic import ValidationError
from support.demo import RG, sim_vm
from support.egress import NO_NETWORK, nsg_id, params, put_rule, raw_rule, rules, sim_nsg

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.actions import get_action
from remediations.actions.egress import AllowBackupEgress, EgressParams
from remediations.azure import Azure, AzureConfig
from remediations.errors import ReadOnlyViolation
from remediations.model import Outcome

STORAGE_EASTUS = ["20.38.98.0/24", "20.47.1.0/24", "20.60.0.0/16", "52.239.152.0/22", "52.240.48.0/20"]


# --- helpers -------------------------------------------------------------------------------------
def new_azure(server: Server, *, read_only: bool = False) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint,
                             ca_bundle=server.ca_bundle, retry=FAST_RETRY, read_only=read_only))


def nic(server: Server, vm: str) -> Any:
    return server.sim.network.nics[
        f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network/networkInterfaces/"
        f"{vm}-nic".lower()]


def put_count(server: Server) -> int:
    return sum(1 for e in mutating(server) if e["operation"] == "SecurityRules_CreateOrUpdate")


# --- params --------------------------------------------------------------------------------------
def test_registered_and_params_validated() -> None:
    action = get_action("allow-backup-egress")
    assert isinstance(action, AllowBackupEgress) and action.Params is EgressParams
    p = params("vm-x")
    assert (p.mode, p.ports) == ("service-tag", None)
    assert params("vm-x", ports=[443, 8443, 443]).ports == (443, 8443)
    bad: dict[str, Any]
    # max_prefixes_per_rule is gone: Azure limits the prefixes of a whole NSG, not of a rule.
    for bad in ({"ports": []}, {"ports": [0]}, {"ports": [70000]}, {"max_prefixes_per_rule": 2},
                {"mode": "fqdn"}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            params("vm-x", **bad)


# --- the blocked demo VMs --------------------------------------------------------------------------
@pytest.mark.parametrize(("vm", "nsg", "blocker", "blocker_prio", "prio"), [
    ("vm-nsg-blocked", "nsg-blocked", "deny-internet-443", 200, 199),
    ("vm-subnet-blocked", "nsg-locked-subnet", "deny-https-out", 250, 249),
])
def test_blocked_vm_plan_apply_converge(armsim: Server, azure: Azure, vm: str, nsg: str, blocker: str,
                                        blocker_prio: int, prio: int) -> None:
    action, p = AllowBackupEgress(), params(vm)
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) == NO_NETWORK
    plan = action.preview(azure, p)
    assert mutating(armsim) == []
    assert len(plan.changes) == 1, plan
    c = plan.changes[0]
    assert (c.kind, c.resource) == ("add", f"{nsg}/securityRules/allow-azure-backup-443")
    assert c.resource_id == f"{nsg_id(nsg)}/securityRules/allow-azure-backup-443"
    assert c.summary == f"rule Outbound Allow TCP 443 → Storage.EastUS priority {prio}"
    assert c.reason == (f"outbound TCP 443 to Storage.EastUS is denied by {nsg} rule {blocker} "
                        f"(priority {blocker_prio})")
    assert c.before is None and c.after is not None and c.after["priority"] == prio
    assert not c.disruptive and plan.notes == []

    out = action.apply(azure, p)
    assert out.status == "changed", out
    assert out.evidence[0] == f"{nsg}/securityRules/allow-azure-backup-443 created at priority {prio}"
    assert put_count(armsim) == 1
    assert rules(armsim, nsg)["allow-azure-backup-443"] == (prio, "Allow")
    # armsim keeps the prefix as written: the Service Tags API's name, exactly.
    assert sim_nsg(armsim, nsg).rules["allow-azure-backup-443"]["properties"]["destinationAddressPrefix"] == \
        "Storage.EastUS"
    assert armsim.sim.network.storage_blocked(sim_vm(armsim, vm)) is None
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) != NO_NETWORK

    again = action.preview(azure, p)
    assert again.empty and "is allowed by every NSG on " + vm in again.reason
    armsim.sim.clear_requests()
    second = action.apply(azure, p)
    assert second.status == "unchanged" and mutating(armsim) == []


def test_ip_ranges_mode_one_rule_per_port(armsim: Server, azure: Azure) -> None:
    put_rule(armsim, "nsg-blocked", raw_rule("deny-internet-443", 200, "Internet", ["443", "8443"]))
    action, p = AllowBackupEgress(), params("vm-nsg-blocked", mode="ip-ranges", ports=[443, 8443])
    plan = action.preview(azure, p)
    got = [(c.resource.rsplit("/", 1)[-1], c.after["priority"]) for c in plan.changes]  # type: ignore[index]
    assert got == [("allow-azure-backup-443-01", 199), ("allow-azure-backup-8443-01", 198)]
    for c in plan.changes:
        assert c.after["destinationAddressPrefixes"] == STORAGE_EASTUS  # type: ignore[index]
    assert plan.changes[0].summary == ("rule Outbound Allow TCP 443 → 20.38.98.0/24, 20.47.1.0/24, 20.60.0.0/16 "
                                       "(+2 more) priority 199")

    out = action.apply(azure, p)
    assert out.status == "changed" and len(out.changes) == 2, out
    assert len(rules(armsim, "nsg-blocked")) == 3
    for port in (443, 8443):
        assert armsim.sim.network.storage_blocked(sim_vm(armsim, "vm-nsg-blocked"), port) is None
    armsim.sim.clear_requests()
    assert action.apply(azure, p).status == "unchanged" and mutating(armsim) == []


def test_healthy_vm_empty_plan_with_reason(armsim: Server, azure: Azure) -> None:
    action, p = AllowBackupEgress(), params("vm-healthy")
    plan = action.preview(azure, p)
    assert plan.empty
    assert plan.reason == "outbound TCP 443 to Storage.EastUS is allowed by every NSG on vm-healthy (nsg-app)"
    out = action.apply(azure, p)
    assert (out.status, out.reason) == ("unchanged", plan.reason)
    assert mutating(armsim) == []
    p443 = params("vm-healthy", ports=[443])
    assert action.preview(azure, p443).reason == plan.reason


def test_read_only_preview_every_demo_vm(armsim: Server) -> None:
    ro = new_azure(armsim, read_only=True)
    action = AllowBackupEgress()
    planned = {}
    for v in list(armsim.sim.compute.vms.values()):
        plan = action.preview(ro, params(v.name))
        planned[v.name] = [c.resource for c in plan.changes]
        assert plan.changes or plan.reason
    assert sorted(planned) == sorted(DEMO_VMS)
    # vm-proxy-locked's NIC NSG denies 443 out; vm-proxy-egress's own NSG too (its backups go through vm-proxy-locked)
    assert {k for k, v in planned.items() if v} == {"vm-nsg-blocked", "vm-subnet-blocked", "vm-proxy-locked",
                                                     "vm-proxy-egress"}
    assert mutating(armsim) == []
    with pytest.raises(ReadOnlyViolation):  # the write would be stopped in the pipeline
        action.execute(ro, params("vm-nsg-blocked"), action.preview(ro, params("vm-nsg-blocked")).changes[0])
    assert mutating(armsim) == []


# --- existing rules --------------------------------------------------------------------------------
def test_differing_rule_of_ours_is_changed_with_if_match(armsim: Server, azure: Azure) -> None:
    put_rule(armsim, "nsg-blocked", raw_rule("allow-azure-backup-443", 300, "Storage", access="Allow"))
    action, p = AllowBackupEgress(), params("vm-nsg-blocked")
    plan = action.preview(azure, p)
    [c] = plan.changes
    assert c.kind == "change" and c.before["priority"] == 300 and c.after["priority"] == 199  # type: ignore[index]
    assert c.before["destinationAddressPrefix"] == "Storage"  # type: ignore[index]
    assert "(was Outbound Allow TCP 443 → Storage priority 300)" in c.summary
    out = action.apply(azure, p)
    assert out.status == "changed" and out.evidence[0].endswith("updated at priority 199"), out
    assert rules(armsim, "nsg-blocked") == {"deny-internet-443": (200, "Deny"),
                                            "allow-azure-backup-443": (199, "Allow")}


def test_rule_of_ours_squatting_a_planned_priority_is_moved_first(armsim: Server, azure: Azure) -> None:
    # An earlier run left 8443-01 at 199; planning 443-01 at 199 would clash with it (SecurityRuleConflict forever).
    put_rule(armsim, "nsg-blocked", raw_rule("deny-internet-443", 200, "Internet", ["443", "8443"]))
    put_rule(armsim, "nsg-blocked", raw_rule("allow-azure-backup-8443-01", 199, "20.60.0.0/16", "8443", "Allow"))
    action, p = AllowBackupEgress(), params("vm-nsg-blocked", mode="ip-ranges", ports=[443, 8443])
    plan = action.preview(azure, p)
    assert [(c.kind, c.after["priority"]) for c in plan.changes] == [  # type: ignore[index]
        ("add", 198), ("change", 197)]
    out = action.apply(azure, p)
    assert out.status == "changed", out
    assert armsim.sim.network.storage_blocked(sim_vm(armsim, "vm-nsg-blocked")) is None
    assert sum(1 for e in mutating(armsim) if e["status"] == 400) == 0


def test_no_free_priority_is_a_manual_step(armsim: Server, azure: Azure) -> None:
    put_rule(armsim, "nsg-blocked", raw_rule("deny-internet-443", 100, "Internet"))
    action, p = AllowBackupEgress(), params("vm-nsg-blocked")
    plan = action.preview(azure, p)
    assert plan.empty and "no free priority" in plan.reason and "deny-internet-443" in plan.reason
    assert plan.manual and "nsg-blocked" in plan.manual[0]
    out = action.apply(azure, p)
    assert out.status == "unchanged" and out.manual == plan.manual and mutating(armsim) == []


def test_wireserver_block_is_reported_not_fixed(armsim: Server, azure: Azure) -> None:
    put_rule(armsim, "nsg-blocked", raw_rule("deny-wireserver", 150, "168.63.129.16", "*"))
    plan = AllowBackupEgress().preview(azure, params("vm-nsg-blocked"))
    assert [c.resource for c in plan.changes] == ["nsg-blocked/securityRules/allow-azure-backup-443"]
    assert len(plan.notes) == 1 and "deny-wireserver (priority 150)" in plan.notes[0]
    assert "168.63.129.16" in plan.notes[0] and "by hand" in plan.notes[0]


def test_region_without_storage_tag_is_explained(armsim: Server, azure: Azure) -> None:
    sim_vm(armsim, "vm-nsg-blocked").location = "southcentralus"
    plan = AllowBackupEgress().preview(azure, params("vm-nsg-blocked"))
    assert plan.empty and plan.manual
    assert plan.reason == ("cannot judge outbound TCP 443 to the region's Storage: the Service Tags API lists no "
                           "Storage tag for region 'southcentralus'")


# --- faults on the rule PUT ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["busy", "throttle", "server_error", "unavailable", "reset", "conflict",
                                  "precondition", "lro_canceled"])
def test_transient_fault_on_rule_put_ends_changed(armsim: Server, azure: Azure, kind: str) -> None:
    armsim.sim.faults.add(kind=kind, method="PUT", path="*/securityRules/*",
                          operation="SecurityRules_CreateOrUpdate", count=1, retry_after=1)
    out = AllowBackupEgress().apply(azure, params("vm-nsg-blocked"))
    assert out.status == "changed", out
    assert rules(armsim, "nsg-blocked") == {"deny-internet-443": (200, "Deny"),
                                            "allow-azure-backup-443": (199, "Allow")}
    assert put_count(armsim) == 2
    assert armsim.sim.network.storage_blocked(sim_vm(armsim, "vm-nsg-blocked")) is None


@pytest.mark.parametrize(("kind", "count", "code"), [
    ("lro_failed", 1, "InternalOperationError"),
    ("server_error", None, "InternalServerError"),
    ("lro_canceled", None, "CanceledAndSupersededDueToAnotherOperation"),
    ("status", 1, "InvalidRequestFormat"),
])
def test_lasting_fault_on_rule_put_fails_clean(armsim: Server, azure: Azure, kind: str, count: int | None,
                                               code: str) -> None:
    extra = {"status": 400, "code": code, "message": "bad body"} if kind == "status" else {}
    armsim.sim.faults.add(kind=kind, method="PUT", path="*/securityRules/*", count=count, **extra)
    out = AllowBackupEgress().apply(azure, params("vm-nsg-blocked"))
    assert (out.status, out.error_code) == ("failed", code), out
    assert rules(armsim, "nsg-blocked") == {"deny-internet-443": (200, "Deny")}
    assert armsim.sim.network.storage_blocked(sim_vm(armsim, "vm-nsg-blocked")) is not None


def test_priority_taken_after_read_replans_to_next_free(armsim: Server, azure: Azure) -> None:
    # The PUT is held 0.3 s; meanwhile another writer takes priority 199 -> 400 SecurityRuleConflict.
    gate = armsim.sim.faults.add(kind="latency", seconds=0.3, method="PUT", path="*/securityRules/*", count=1)

    def squat() -> None:
        deadline = time.monotonic() + 10
        while gate.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        put_rule(armsim, "nsg-blocked", raw_rule("someone-elses-rule", 199, "10.9.0.0/16", "22", "Allow"))

    t = threading.Thread(target=squat)
    t.start()
    out = AllowBackupEgress().apply(azure, params("vm-nsg-blocked"))
    t.join()
    assert out.status == "changed", out
    assert [e["status"] for e in mutating(armsim)] == [400, 201]
    assert out.evidence == ["nsg-blocked/securityRules/allow-azure-backup-443 created at priority 198"]
    assert rules(armsim, "nsg-blocked") == {"deny-internet-443": (200, "Deny"),
                                            "someone-elses-rule": (199, "Allow"),
                                            "allow-azure-backup-443": (198, "Allow")}


# --- two runs at once on one NSG -----------------------------------------------------------------------
def _race(server: Server, p1: EgressParams, p2: EgressParams, stagger: float = 0.0) -> list[Outcome]:
    """Run two applies at the same moment (the second `stagger` seconds late), each with its own clients."""
    barrier = threading.Barrier(2)
    outcomes: list[Any] = [None, None]

    def run(i: int, p: EgressParams) -> None:
        az = new_azure(server)
        barrier.wait()
        time.sleep(stagger * i)
        try:
            outcomes[i] = AllowBackupEgress().apply(az, p)
        except BaseException as e:  # surfaced by the assertion below
            outcomes[i] = e

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate((p1, p2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


@pytest.mark.parametrize("case", ["service-tag", "ip-ranges", "two-ports"])
def test_two_runs_sharing_one_nsg_leave_one_runs_rules(armsim: Server, case: str) -> None:
    """Two VMs behind nsg-blocked, fixed at the same moment: the rules one run would make, no clash, no twin."""
    for round_, stagger in enumerate((0.0, 0.03, 0.08, 0.15)):
        armsim.sim.reset("demo")
        armsim.sim.faults.clear()
        armsim.sim.settings.nsg_write_polls = 2
        nic(armsim, "vm-healthy").nsg_id = nsg_id("nsg-blocked")  # a second VM behind nsg-blocked
        armsim.sim.faults.add(kind="latency", seconds=0.05 * (round_ % 2), method="PUT",
                              path="*/securityRules/*", count=None)
        if case == "two-ports":  # different rules racing for the same free priority
            put_rule(armsim, "nsg-blocked", raw_rule("deny-internet-443", 200, "Internet", ["443", "8443"]))
            p1, p2 = params("vm-nsg-blocked", ports=[443]), params("vm-healthy", ports=[8443])
        else:
            kw: dict[str, Any] = {"mode": case}
            p1, p2 = params("vm-nsg-blocked", **kw), params("vm-healthy", **kw)
        outcomes = _race(armsim, p1, p2, stagger)
        for o in outcomes:
            assert isinstance(o, Outcome) and o.status in ("changed", "unchanged"), o
        got = rules(armsim, "nsg-blocked")  # also: nothing half-applied, no two rules on one priority
        assert got.pop("deny-internet-443") == (200, "Deny")
        if case == "service-tag":
            assert got == {"allow-azure-backup-443": (199, "Allow")}
        elif case == "ip-ranges":
            assert got == {"allow-azure-backup-443-01": (199, "Allow")}
        else:
            assert set(got) == {"allow-azure-backup-443", "allow-azure-backup-8443"}
            assert sorted(got.values()) == [(198, "Allow"), (199, "Allow")]
        assert sum(len(o.changes) for o in outcomes) == len(got)  # each rule written by exactly one run
        for v in ("vm-nsg-blocked", "vm-healthy"):
            assert armsim.sim.network.storage_blocked(sim_vm(armsim, v)) is None


@pytest.mark.parametrize("other_write", ["succeeds", "fails"])
def test_plan_waits_for_another_writers_operation(armsim: Server, azure: Azure, other_write: str) -> None:
    """A rule write in flight (NSG Updating) is neither trusted nor overwritten: the read waits for its end."""
    armsim.sim.settings.nsg_write_polls = 6
    body = AllowBackupEgress().preview(azure, params("vm-nsg-blocked")).changes[0].data["body"]
    if other_write == "fails":
        armsim.sim.faults.add(kind="lro_failed", method="PUT", path="*/securityRules/*", count=1)
    other = new_azure(armsim)
    poller = other.network.security_rules.begin_create_or_update(RG, "nsg-blocked", "allow-azure-backup-443", body)
    armsim.sim.clear_requests()
    out = AllowBackupEgress().apply(azure, params("vm-nsg-blocked"))
    try:
        poller.result()
    except HttpResponseError:
        assert other_write == "fails"
    reads = [e for e in armsim.sim.requests()
             if e["operation"] == "NetworkSecurityGroups_Get" and e["path"].endswith("/nsg-blocked")]
    assert len(reads) >= 3  # first read waited (at least one re-read), then the verify read
    if other_write == "succeeds":
        assert out.status == "unchanged" and mutating(armsim) == []
    else:
        assert out.status == "changed" and out.evidence == [
            "nsg-blocked/securityRules/allow-azure-backup-443 created at priority 199"]
    assert rules(armsim, "nsg-blocked") == {"deny-internet-443": (200, "Deny"),
                                            "allow-azure-backup-443": (199, "Allow")}


def test_failed_rule_of_ours_is_rewritten(armsim: Server, azure: Azure) -> None:
    rule = raw_rule("allow-azure-backup-443", 199, "Storage.eastus", access="Allow")
    rule["properties"]["provisioningState"] = "Failed"
    put_rule(armsim, "nsg-blocked", rule)
    action, p = AllowBackupEgress(), params("vm-nsg-blocked")
    [c] = action.preview(azure, p).changes
    assert c.kind == "change" and c.reason.endswith("; allow-azure-backup-443 is Failed, not Succeeded")
    out = action.apply(azure, p)
    assert out.status == "changed" and out.evidence[0].endswith("updated at priority 199"), out
    assert rules(armsim, "nsg-blocked")["allow-azure-backup-443"] == (199, "Allow")
