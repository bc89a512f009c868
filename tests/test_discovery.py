"""Discovery across subscriptions (issue #13): one paged Azure Resource Graph query over RecoveryServicesResources
finds every VM with a failed backup job, in every subscription, through `fix --all-subscriptions` and the sweep;
armsim serves that query (and only that one) with the spec's paging; the vault path stays the fallback."""

from __future__ import annotations

import json
import math
import ssl
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_RETRY
from support.automation import ACCOUNT_ID, VAULT_ID
from support.runs import cli, run_entry
from test_automation_sweep import FIXABLE, worker  # noqa: F401  (the fixture that plays the Automation worker)

from armsim import Server
from armsim.fleet import FLEET_SUBSCRIPTIONS
from armsim.resourcegraph import query_text as armsim_query
from remediations import discovery
from remediations.azure import Azure, AzureConfig, read_only_allows
from remediations.errors import ReadOnlyViolation
from runbooks.automation import sweep

EXAMPLES = Path(__file__).parent / "fixtures" / "azure-rest-examples" / "resourcegraph"
GRAPH = "/providers/Microsoft.ResourceGraph/resources"


def graph_posts(server: Server) -> list[dict[str, Any]]:
    return [e for e in server.sim.requests() if e["path"].lower() == GRAPH.lower()]


def post(server: Server, body: Any, api: str = "2024-04-01") -> tuple[int, dict[str, str], Any]:
    ctx = ssl.create_default_context(cafile=server.ca_bundle)
    req = urllib.request.Request(f"{server.endpoint}{GRAPH}?api-version={api}", method="POST",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read())


def failed_in_model(server: Server, subs: tuple[str, ...] = FLEET_SUBSCRIPTIONS) -> set[str]:
    """The VMs with a failed, non-refused job started in the last 24 h, from armsim's model (not through ARG)."""
    since = server.sim.clock.now() - timedelta(hours=24)
    return {j.item.vm.id.lower() for v in server.sim.backup.vaults.values() if v.subscription in subs
            for j in v.jobs if j.status == "Failed" and j.started > since
            and not (j.user_triggered and j.error == "UserErrorBackupOperationInProgress")}


def fleet_azure(server: Server, sub: str = FLEET_SUBSCRIPTIONS[0], *, read_only: bool = True) -> Azure:
    return Azure(AzureConfig(subscription=sub, arm_endpoint=server.endpoint,
                             ca_bundle=server.ca_bundle, retry=FAST_RETRY, read_only=read_only, read_timeout=30))


def test_read_only_lets_exactly_the_resource_graph_query_through() -> None:
    base = "https://management.azure.com"
    assert read_only_allows("POST", f"{base}{GRAPH}?api-version=2021-03-01")
    assert read_only_allows("POST", f"{base}/providers/microsoft.resourcegraph/RESOURCES")  # ARM paths are case-blind
    for method, path in [("PUT", GRAPH), ("DELETE", GRAPH), ("PATCH", GRAPH),
                         ("POST", "/providers/Microsoft.ResourceGraph/resourcesHistory"),
                         ("POST", "/providers/Microsoft.ResourceGraph/resourceChanges"),
                         ("PUT", "/subscriptions/x/resourceGroups/g/providers/Microsoft.ResourceGraph/queries/q"),
                         ("POST", f"/subscriptions/{FLEET_SUBSCRIPTIONS[0]}{GRAPH}"),
                         ("POST", f"/x{GRAPH}"), ("POST", f"{GRAPH}/x")]:
        assert not read_only_allows(method, base + path), (method, path)


def test_the_client_and_armsim_agree_on_the_one_query_text() -> None:
    assert discovery.query_text(24, "Failed") == armsim_query("24h", "Failed")
    assert discovery.query_text(1.5) == armsim_query("90m")


def test_armsim_pages_as_the_spec_examples_do_and_refuses_any_other_query(armsim: Server) -> None:
    armsim.sim.reset("fleet:40")
    first = json.loads((EXAMPLES / "ResourcesFirstPageQuery.json").read_text())
    status, headers, body = post(armsim, {"query": discovery.query_text(24, "Failed"), "options": {"$top": 7}})
    assert status == 200, body
    assert set(first["responses"]["200"]["body"]) == set(body)  # totalRecords, count, resultTruncated, facets, …
    assert (body["totalRecords"], body["count"], body["resultTruncated"]) == (30, 7, "false")
    assert headers["x-ms-user-quota-remaining"].isdigit() and headers["x-ms-user-quota-resets-after"].count(":") == 2
    rows, token = list(body["data"]), body["$skipToken"]
    while token:  # the next page: the token alone, as ResourcesNextPageQuery.json sends it
        status, _, body = post(armsim, {"query": discovery.query_text(24, "Failed"),
                                        "options": {"$skipToken": token, "$top": 7}})
        assert status == 200 and body["totalRecords"] == 30
        rows += body["data"]
        token = body.get("$skipToken")
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30 and rows == sorted(rows, key=lambda r: r["id"].lower())
    assert {r["subscriptionId"] for r in rows} == set(FLEET_SUBSCRIPTIONS)
    assert all(r["type"] == "microsoft.recoveryservices/vaults/backupjobs" and r["properties"]["status"] == "Failed"
               for r in rows)
    # anything armsim does not evaluate is refused loudly, never answered with made-up rows
    example = first["parameters"]["query"]
    for bad in [example, {"query": discovery.query_text(24) + " | limit 3"},
                {"query": discovery.query_text(24), "managementGroups": ["mg1"]},
                {"query": discovery.query_text(24), "options": {"resultFormat": "table"}},
                {"query": discovery.query_text(24), "options": {"$top": 1001}},
                {"query": discovery.query_text(24, "Failed"), "options": {"$skipToken": token or "bm9wZQ=="}}]:
        status, _, body = post(armsim, bad)
        assert status == 400, (bad, body)
    status, _, body = post(armsim, example)
    assert "armsim does not evaluate" in body["error"]["message"]
    assert post(armsim, {"query": discovery.query_text(24)}, api="2020-04-01-preview")[0] == 400
    # a scope narrows it: one subscription's rows only
    status, _, body = post(armsim, {"query": discovery.query_text(24, "Failed"), "subscriptions": [FLEET_SUBSCRIPTIONS[1]]})
    assert status == 200 and {r["subscriptionId"] for r in body["data"]} == {FLEET_SUBSCRIPTIONS[1]}


def test_one_paged_query_finds_every_failed_vm_in_every_subscription_through_the_sdk(armsim: Server) -> None:
    armsim.sim.reset("fleet:40")
    armsim.sim.clear_requests()
    found = discovery.failed_vms_everywhere(fleet_azure(armsim), 24, page_size=7)
    assert {t.id.lower() for t, _ in found} == failed_in_model(armsim) and len(found) == 30
    assert {t.subscription for t, _ in found} == set(FLEET_SUBSCRIPTIONS)
    assert all(j.status == "Failed" and j.error_title for _, j in found)
    log = armsim.sim.requests()
    assert [e["method"] for e in log] == ["POST"] * math.ceil(30 / 7) and log == graph_posts(armsim)
    assert not any(e["mutating"] for e in log)
    narrowed = discovery.failed_vms_everywhere(fleet_azure(armsim), 24, [FLEET_SUBSCRIPTIONS[1]])
    assert {t.id.lower() for t, _ in narrowed} == failed_in_model(armsim, (FLEET_SUBSCRIPTIONS[1],))


def test_a_refused_trigger_is_no_failure_and_each_vm_keeps_its_latest_failure(armsim: Server) -> None:
    armsim.sim.reset("fleet:40")
    bk = armsim.sim.backup
    vault = next(iter(bk.vaults.values()))
    failed = [j for j in vault.jobs if j.status == "Failed"]
    item = failed[0].item
    newer = bk.start_job(vault, item, error="UserErrorBackupOperationInProgress", user=True)  # a trigger refused
    bk.advance(newer, poll=True)
    bk.advance(newer, poll=True)
    assert newer.status == "Failed"
    found = dict((t.id.lower(), j) for t, j in discovery.failed_vms_everywhere(fleet_azure(armsim), 24))
    assert found[item.vm.id.lower()].id == failed[0].id  # the VM's own failure, not the refused trigger


def test_the_vault_path_also_sets_a_refused_trigger_aside(armsim: Server) -> None:
    from remediations.inventory import failed_vms

    armsim.sim.reset("fleet:40")
    bk = armsim.sim.backup
    vault = next(iter(bk.vaults.values()))
    failing = {j.item.vm.id.lower() for j in vault.jobs if j.status == "Failed"}
    healthy = next(i for i in vault.items.values() if i.vm.id.lower() not in failing)
    refused = bk.start_job(vault, healthy, error="UserErrorBackupOperationInProgress", user=True)
    scheduled = next(i for i in vault.items.values() if i.vm.id.lower() not in failing and i is not healthy)
    held = bk.start_job(vault, scheduled, error="UserErrorBackupOperationInProgress", user=False)  # E7: the VM's
    for job in (refused, held):
        bk.advance(job, poll=True)
        bk.advance(job, poll=True)
        assert job.status == "Failed"
    azure = fleet_azure(armsim, vault.subscription)
    found = {t.id.lower() for t in failed_vms(azure, vault.name, vault.group)}
    assert found == failing | {scheduled.vm.id.lower()}, "a refused trigger counted as the VM's failure"


def test_a_refused_query_falls_back_to_the_named_vaults_and_says_so(armsim: Server) -> None:
    armsim.sim.reset("fleet:40")
    armsim.sim.faults.add(kind="status", operation="Resources", status=403, code="AuthorizationFailed",
                          message="The client does not have authorization to perform action "
                                  "'Microsoft.ResourceGraph/resources/read'.", count=None)
    vaults = [v.id for v in armsim.sim.backup.vaults.values()]
    with pytest.raises(discovery.GraphRefused, match="AuthorizationFailed.*name the vaults"):
        discovery.failed_vms_everywhere(fleet_azure(armsim), 24)
    said: list[str] = []
    azures = {s: fleet_azure(armsim, s) for s in FLEET_SUBSCRIPTIONS}
    found = discovery.failed_vms_everywhere(fleet_azure(armsim), 24, vaults=vaults, azure_for=lambda s: azures[s],
                                            say=said.append)
    assert {t.id.lower() for t, _ in found} == failed_in_model(armsim)
    assert len(said) == 1 and "refused" in said[0] and f"{len(vaults)} vault(s)" in said[0]
    assert len(graph_posts(armsim)) == 2  # one refused query per call: a 403 is not retried


def test_fix_all_subscriptions_dry_run_finds_the_fleet_across_subscriptions_with_paged_queries(
        armsim: Server, tmp_path: Path) -> None:
    armsim.sim.reset("fleet:40")
    armsim.sim.clear_requests()
    r = cli(armsim, "fix", "--all-subscriptions", "--since", "24h", "--dry-run", "--page-size", "7", "-o", "json",
            tmp=tmp_path)
    assert r.returncode in (0, 3), r.stdout[-2000:] + r.stderr
    vms = json.loads(r.stdout)["vms"]
    assert {v["id"].lower() for v in vms} == failed_in_model(armsim) and len(vms) == 30
    assert "Azure Resource Graph: 30 VM(s) with a failed backup job in the last 24h in 2 subscription(s)" in r.stderr
    posts = graph_posts(armsim)
    assert len(posts) == math.ceil(30 / 7) and all(e["status"] == 200 for e in posts)
    assert not [e for e in armsim.sim.requests() if e["mutating"]]  # a dry run: zero writes
    assert armsim.sim.requests()[:len(posts)] == posts  # found by the query alone, before any VM's diagnosis


def test_fix_all_subscriptions_refused_is_one_line_and_exit_1(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.reset("fleet:40")
    armsim.sim.faults.add(kind="status", operation="Resources", status=403, code="AuthorizationFailed",
                          message="No access.", count=None)
    r = cli(armsim, "fix", "--all-subscriptions", "--dry-run", tmp=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "error: Resource Graph refused the query (AuthorizationFailed, 403): No access.; name the vaults instead "
        "(fix --from-vault VAULT -g RG, or the sweep's vaults=)"]


@pytest.mark.parametrize("args", [
    ("vm-a", "--all-subscriptions"),
    ("--all-subscriptions", "--from-vault", "rsv-demo", "-g", "rg-demo"),
    ("--all-subscriptions", "--page-size", "0"),
    ("--all-subscriptions", "--page-size", "1001"),
    ("--all-subscriptions", "--since", "24x"),
])
def test_fix_all_subscriptions_bad_input_is_exit_2_and_zero_requests(armsim: Server, tmp_path: Path,
                                                                     args: tuple[str, ...]) -> None:
    r = cli(armsim, "fix", *args, "--dry-run", tmp=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert armsim.sim.requests() == []


def test_the_graph_client_is_refused_nothing_in_dry_run_and_a_write_still_is(armsim: Server) -> None:
    azure = fleet_azure(armsim)
    armsim.sim.reset("fleet:40")
    assert discovery.graph_jobs(azure, 24)  # the POST went out under the read-only policy
    with pytest.raises(ReadOnlyViolation):
        azure.call(azure.network.network_security_groups.begin_delete, "rg-fleet-0", "nsg-fleet-0")


def test_sweep_everywhere_matches_the_vault_path_and_falls_back_to_it(armsim: Server) -> None:
    vault_sub = VAULT_ID.split("/")[2]
    azure = Azure(AzureConfig(subscription=vault_sub, arm_endpoint=armsim.endpoint, ca_bundle=armsim.ca_bundle,
                              retry=FAST_RETRY, read_only=True, read_timeout=30))
    vaults = [v.id for v in armsim.sim.backup.vaults.values()]
    assert len(vaults) == 2  # rsv-demo and rsv-demo-old (where vm-backup-old-vault's job still runs)
    by_vault = [p for v in vaults for p in sweep.backup_jobs(azure, v, 24)]
    said: list[str] = []
    jobs, source = sweep.everywhere(lambda _s: azure, vault_sub, 24, vaults, said.append)
    key = sorted((t.id.lower(), j.id) for t, j in by_vault)
    assert sorted((t.id.lower(), j.id) for t, j in jobs) == key and said == []
    assert "Azure Resource Graph" in source
    mine = sweep.plan(jobs)
    assert {t.id.lower() for t, _ in mine.fix} == {t.id.lower() for t, _ in sweep.plan(by_vault).fix}
    assert any(t.name == "vm-backup-old-vault" for t, _ in mine.fix)  # a job running in its old vault is the cause
    armsim.sim.faults.add(kind="status", operation="Resources", status=403, code="AuthorizationFailed",
                          message="No access.", count=None)
    jobs, source = sweep.everywhere(lambda _s: azure, vault_sub, 24, vaults, said.append)
    assert sorted((t.id.lower(), j.id) for t, j in jobs) == key and len(said) == 1
    assert source.startswith("backup jobs of 2 vault(s) (Resource Graph refused the query)")


def test_the_sweep_with_all_subscriptions_fixes_what_the_vault_sweep_would(armsim: Server,
                                                                        worker: list[Any]) -> None:  # noqa: F811
    run = run_entry(armsim, "sweep_backup_failures.py", "all_subscriptions=true", f"automation_account={ACCOUNT_ID}",
                    "poll_seconds=0.05", "mode=dry-run", "concurrency=8", timeout=600)
    assert run.code == 0 and run.stderr == "", run.text
    assert sorted(v["vm"] for v in run.summary["vms"]) == FIXABLE
    assert "every subscription the identity can read (Azure Resource Graph)" in run.summary["source"]
    ops = [e["operation"] for e in armsim.sim.requests()]
    own = ops[:ops.index("Job_Create")]  # the sweep's reads before its first child (the children read jobs too)
    assert own[0] == "Resources" and "BackupJobs_List" not in own


def test_the_sweep_without_vaults_stops_on_a_refused_query_before_any_child(armsim: Server) -> None:
    armsim.sim.faults.add(kind="status", operation="Resources", status=403, code="AuthorizationFailed",
                          message="No access.", count=None)
    run = run_entry(armsim, "sweep_backup_failures.py", "all_subscriptions=true", f"automation_account={ACCOUNT_ID}",
                    "mode=dry-run")
    assert run.code != 0 and "Resource Graph refused the query" in run.text + run.stderr
    assert not [e for e in armsim.sim.requests() if e["operation"] == "Job_Create"]


def test_armsim_counts_resource_graph_queries_in_its_own_user_quota(armsim: Server) -> None:
    armsim.sim.settings.throttle = True  # the quota answers 429 only with throttling on; its headers always
    query = {"query": discovery.query_text(24, "Failed")}
    left = [post(armsim, query)[1]["x-ms-user-quota-remaining"] for _ in range(15)]
    assert left == [str(n) for n in range(14, -1, -1)]  # 15 queries per 5-second window
    status, headers, body = post(armsim, query)
    assert status == 429 and int(headers["retry-after"]) >= 1 and body["error"]["code"] == "RateLimiting"
    assert headers["x-ms-user-quota-remaining"] == "0"
    assert not [e for e in armsim.sim.requests() if e["path"].startswith("/subscriptions/")]  # no ARM bucket spent


def test_fix_all_subscriptions_with_nothing_in_the_window_says_so_in_one_line(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.reset("fleet:40")
    since = armsim.sim.clock.now() - timedelta(hours=1)
    assert not [j for v in armsim.sim.backup.vaults.values() for j in v.jobs if j.started > since]
    r = cli(armsim, "fix", "--all-subscriptions", "--since", "1h", "--yes", tmp=tmp_path)
    assert r.returncode == 0 and r.stdout == ("No failed backup jobs in any subscription you can read in the last 1h: "
                                              "nothing to fix.\n"), r.stdout + r.stderr
    doc = json.loads(cli(armsim, "fix", "--all-subscriptions", "--since", "1h", "-o", "json", tmp=tmp_path).stdout)
    assert doc["vms"] == [] and doc["all_subscriptions"] is True
    assert {e["operation"] for e in armsim.sim.requests()} == {"Resources"}


def test_armsim_evaluates_exactly_the_query_discovery_sends() -> None:
    from armsim import resourcegraph

    assert resourcegraph.QUERY == discovery.QUERY  # two copies on purpose: armsim imports nothing of ours
