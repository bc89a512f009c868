"""C1.route and allow-backup-route against armsim over HTTPS with the real SDK: the effective routes are read only
when needed, the route is planned, withheld without consent, applied with it, idempotent, etag-guarded, and a
backup proves the fix from the CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from conftest import FAST_RETRY, mutating
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.routes import storage_route_blocked
from remediations.action import ActionParams
from remediations.actions import get_action
from remediations.actions.route import ROUTE_NAME, AllowBackupRoute
from remediations.azure import Azure, AzureConfig, read_only_allows
from remediations.target import Target
from runbooks.engine import Options, investigate, plan_fixes

RG = "rg-demo"
VM = "vm-udr-blocked"
EFFECTIVE = "NetworkInterfaces_GetEffectiveRouteTable"
ARM, API = "https://management.azure.com", "?api-version=2025-07-01"
VIA_FIREWALL = "route default-to-firewall 0.0.0.0/0 (User) to next hop VirtualAppliance 10.0.100.4"


def target(name: str = VM) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name=name)


def params(name: str = VM) -> ActionParams:
    return AllowBackupRoute.Params(target=target(name))


def read_only(server: Server) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint,
                             ca_bundle=server.ca_bundle, read_only=True, retry=FAST_RETRY))


def table(server: Server) -> Any:
    return next(t for t in server.sim.route_tables.tables.values() if t.name == "rt-firewall")


def routes(server: Server) -> dict[str, tuple[str, str]]:
    return {r["name"]: (r["properties"]["addressPrefix"], r["properties"]["nextHopType"])
            for r in table(server).routes.values()}


def blocked(server: Server) -> str | None:
    return storage_route_blocked(server.sim, server.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, VM)])


def ops(server: Server) -> list[str]:
    return [e["operation"] for e in server.sim.requests()]


# --- diagnosis ----------------------------------------------------------------------------------------
def test_a_vm_behind_a_blocking_appliance_has_c1_route_present(armsim: Server) -> None:
    ro = read_only(armsim)  # the effective-routes POST is on the read-only allow-list
    inv = investigate(ro, target(), Options())
    verdicts = {f.cause: (f.verdict, f.evidence) for f in inv.findings}
    assert verdicts["C1"][0] == "absent"
    verdict, evidence = verdicts["C1.route"]
    assert verdict == "present", evidence
    assert f"Storage.EastUS (20.38.98.0/24) goes by {VIA_FIREWALL}" in evidence
    assert ("Azure Firewall fw-demo (10.0.100.4) does not let it through: no rule allows the AzureBackup FQDN tag "
            "or Storage.EastUS:443") in evidence and "reported" not in evidence  # its rules decide, not elimination
    assert ops(armsim).count(EFFECTIVE) == 1 and ops(armsim).count("AzureFirewalls_ListAll") == 1
    plans, _ = plan_fixes(ro, inv, Options())
    assert [p.action for p in plans] == ["allow-backup-route"]
    assert mutating(armsim) == []


def test_a_vm_whose_nsg_explains_the_failure_reads_no_routes(armsim: Server) -> None:
    inv = investigate(read_only(armsim), target("vm-nsg-blocked"), Options())
    verdicts = {f.cause: (f.verdict, f.evidence) for f in inv.findings}
    assert verdicts["C1"][0] == "present"
    assert verdicts["C1.route"] == ("unknown", "effective routes not read: C1 already explains the failure")
    assert EFFECTIVE not in ops(armsim)


def test_a_refused_route_read_leaves_c1_route_unknown_with_the_reason(armsim: Server) -> None:
    armsim.sim.faults.add(kind="status", status=403, code="AuthorizationFailed", method="POST",
                          path="*/effectiveRouteTable", message="no effectiveRouteTable/action")
    inv = investigate(read_only(armsim), target(), Options())
    f = next(f for f in inv.findings if f.cause == "C1.route")
    assert f.verdict == "unknown" and "could not be read (AuthorizationFailed: " in f.evidence, f.evidence


def test_a_healthy_vm_reads_no_routes(armsim: Server) -> None:
    inv = investigate(read_only(armsim), target("vm-healthy"), Options())
    assert next(f for f in inv.findings if f.cause == "C1.route").verdict == "unknown"
    assert EFFECTIVE not in ops(armsim)


def test_the_read_only_pipeline_lets_exactly_the_effective_routes_post_through() -> None:
    nic = (f"{ARM}/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network"
           f"/networkInterfaces/{VM}-nic")
    table_route = (f"{ARM}/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network"
                   f"/routeTables/rt-firewall/routes/{ROUTE_NAME}{API}")
    assert read_only_allows("POST", f"{nic}/effectiveRouteTable{API}")
    assert not read_only_allows("POST", f"{nic}/effectiveRouteTable/extra{API}")
    assert not read_only_allows("PUT", table_route) and read_only_allows("GET", table_route)


# --- the action ------------------------------------------------------------------------------------------
def test_plan_is_one_disruptive_route_that_says_it_bypasses_the_firewall(armsim: Server) -> None:
    plan = get_action("allow-backup-route").preview(read_only(armsim), params())
    (change,) = plan.changes
    assert (change.kind, change.resource, change.disruptive) == ("add", f"rt-firewall/routes/{ROUTE_NAME}", True)
    assert change.after == {"addressPrefix": "Storage.EastUS", "nextHopType": "Internet"}
    assert "bypassing 10.0.100.4 for Storage: a security decision" in change.reason
    assert "default-to-firewall 0.0.0.0/0 (User, route table rt-firewall)" in change.reason
    assert any("FQDN tag AzureBackup" in n and "Storage.EastUS, port 443" in n for n in plan.notes)
    assert mutating(armsim) == []


def test_withheld_without_consent_then_applied_with_it_then_nothing_to_do(armsim: Server, azure: Azure) -> None:
    action = get_action("allow-backup-route")
    out = action.apply(azure, params())
    assert out.status == "withheld" and "disruptive: route Storage.EastUS → Internet in rt-firewall" in out.reason
    assert mutating(armsim) == [] and blocked(armsim) is not None
    out = action.apply(azure, params(), consent="the test")
    assert out.status == "changed", out
    assert "disruptive: route Storage.EastUS → Internet in rt-firewall; consent: the test" in out.evidence
    assert routes(armsim) == {"default-to-firewall": ("0.0.0.0/0", "VirtualAppliance"),
                              ROUTE_NAME: ("Storage.EastUS", "Internet")}  # the other route untouched
    assert blocked(armsim) is None  # armsim's own judge: Storage is reachable now
    armsim.sim.clear_requests()
    again = action.apply(azure, params(), consent=True)
    assert again.status == "unchanged" and "firewalled goes to Internet" in again.reason
    assert mutating(armsim) == []


def test_no_route_table_is_nothing_to_do(armsim: Server) -> None:
    plan = get_action("allow-backup-route").preview(read_only(armsim), params("vm-healthy"))
    assert plan.empty and plan.reason.startswith("no route table on subnet default")


def test_a_route_of_ours_that_differs_is_corrected_with_if_match(armsim: Server, azure: Azure) -> None:
    azure.network.routes.begin_create_or_update(RG, "rt-firewall", ROUTE_NAME, {"properties": {
        "addressPrefix": "Storage.EastUS", "nextHopType": "None"}}).result()
    etag = table(armsim).routes[ROUTE_NAME]["etag"]
    armsim.sim.clear_requests()
    out = get_action("allow-backup-route").apply(azure, params(), consent=True)
    assert out.status == "changed", out
    (put,) = mutating(armsim)
    assert put["status"] == 200
    assert routes(armsim)[ROUTE_NAME] == ("Storage.EastUS", "Internet") and etag != table(armsim).routes[
        ROUTE_NAME]["etag"]


def test_a_stale_etag_re_reads_and_re_plans(armsim: Server, azure: Azure) -> None:
    armsim.sim.faults.add(kind="precondition", method="PUT", path="*/routes/*", count=1)
    out = get_action("allow-backup-route").apply(azure, params(), consent=True)
    assert out.status == "changed", out
    assert [e["status"] for e in mutating(armsim)] == [412, 201]


def test_a_concurrent_writer_of_the_same_route_wins_and_we_see_it_done(armsim: Server, azure: Azure) -> None:
    # Our PUT is held 0.3 s; meanwhile another writer adds the very route: our If-None-Match: * gets 412, the
    # re-read finds the route in place, and nothing more is written.
    gate = armsim.sim.faults.add(kind="latency", seconds=0.3, method="PUT", path="*/routes/*", count=1)
    other = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                              ca_bundle=armsim.ca_bundle, retry=FAST_RETRY))

    def race() -> None:
        deadline = time.monotonic() + 10
        while gate.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        other.network.routes.begin_create_or_update(RG, "rt-firewall", ROUTE_NAME, {"properties": {
            "addressPrefix": "Storage.EastUS", "nextHopType": "Internet"}}).result()

    t = threading.Thread(target=race)
    t.start()
    out = get_action("allow-backup-route").apply(azure, params(), consent=True)
    t.join()
    assert out.status == "unchanged", out
    assert sorted(e["status"] for e in mutating(armsim)) == [201, 412]
    assert routes(armsim)[ROUTE_NAME] == ("Storage.EastUS", "Internet")


# --- the CLI: dry run, consent, and a backup that proves it ---------------------------------------------------
def test_cli_dry_run_then_fix_with_consent_proved_by_a_backup(armsim: Server, tmp_path: Path) -> None:
    dry = cli(armsim, "fix", VM, "-g", RG, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "+ route Storage.EastUS → Internet in rt-firewall" in dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    held = cli(armsim, "fix", VM, "-g", RG, "--yes", tmp=tmp_path)
    assert held.returncode == 3 and "--allow-disruptive" in held.stdout, held.stdout + held.stderr
    assert mutating(armsim) == []
    r = cli(armsim, "fix", VM, "-g", RG, "--yes", "--allow-disruptive", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = json.loads(r.stdout)["vms"]
    assert [f["cause"] for f in report["findings"] if f["verdict"] == "present"] == ["C1.route"]
    assert report["status"] == "fixed"
    assert armsim.sim.backup.verdict(armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, VM)]) is None
    assert routes(armsim)[ROUTE_NAME] == ("Storage.EastUS", "Internet")
