"""set-guest-proxy: strict validation of the proxy, parsing the get script, the pure plan; then on armsim."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import mutating
from support.demo import RG
from support.runs import ROOT, cli, runbooks

from armsim import DEMO_SUBSCRIPTION
from remediations.actions.proxy import ProxyParams, SetGuestProxy, check_proxy, parse_proxy, proxy_plan
from remediations.azure import Azure
from remediations.errors import BadInput
from remediations.reads import vm_view
from remediations.target import Target

T = Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name="vm-proxy-dead")
GOOD = ["http://10.0.2.4:3128", "http://proxy.corp.example:8080", "http://p:1", "http://p-1.example:65535"]
BAD = ["http://1.2.3.4:3128;reboot", "https://10.0.2.4:3128", "http://10.0.2.4", "http://10.0.2.4:0",
       "http://10.0.2.4:65536", "http://user@10.0.2.4:3128", "http://10.0.2.4:3128/", "http://10.0.2.4:3128\n",
       " http://10.0.2.4:3128", "http://999.0.2.4:3128", "http://-bad.example:80", "http://$(reboot):80",
       "http://10.0.2.4:3128 x", "10.0.2.4:3128", ""]


@pytest.mark.parametrize("value", GOOD)
def test_a_plain_http_proxy_is_accepted(value: str) -> None:
    assert check_proxy(value) == value
    assert ProxyParams(target=T, proxy=value).proxy == value


@pytest.mark.parametrize("value", BAD)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(BadInput):
        check_proxy(value)
    with pytest.raises(ValueError):
        ProxyParams(target=T, proxy=value)


def _vm(os_type: str = "Linux", name: str = "vm-proxy-dead", at: datetime | None = None) -> Any:
    status = {"code": "ProvisioningState/succeeded", "displayStatus": "Ready", "message": "ok",
              "time": (at or datetime.now(timezone.utc)).isoformat()}
    return vm_view({"id": T.id.replace("vm-proxy-dead", name), "name": name, "location": "eastus",
                    "properties": {"storageProfile": {"osDisk": {"osType": os_type}},
                                   "instanceView": {"statuses": [{"code": "PowerState/running"}],
                                                    "vmAgent": {"vmAgentVersion": "2.9", "statuses": [status]}}}})


DEAD = {"script": "linux-proxy-get", "proxy": "http://10.0.2.99:3128", "source": "waagent.conf",
        "settings": {"HttpProxy.Host": "10.0.2.99", "HttpProxy.Port": "3128"}, "reachable": False,
        "detail": "connect to 10.0.2.99:3128: refused"}


def test_parse_the_get_result() -> None:
    g = parse_proxy(DEAD)
    assert (g.proxy, g.source, g.reachable, g.address) == ("http://10.0.2.99:3128", "waagent.conf", False,
                                                            ("10.0.2.99", 3128))
    assert "refused" in g.detail and g.where() == "/etc/waagent.conf"
    none = parse_proxy({"script": "windows-proxy-get", "proxy": None, "source": None, "reachable": None})
    assert none.proxy is None and none.address is None and none.reachable is None
    assert parse_proxy({"proxy": "10.0.3.4:3128", "source": "winhttp", "reachable": True}).url == \
        "http://10.0.3.4:3128"


def test_plan_sets_a_different_proxy_with_its_script() -> None:
    plan = proxy_plan("set-guest-proxy", _vm(), parse_proxy(DEAD), ProxyParams(target=T, proxy=GOOD[0]))
    [c] = plan.changes
    assert c.kind == "change" and c.data == {"script": "linux-proxy-set"} and not c.disruptive
    assert c.before == {"proxy": "http://10.0.2.99:3128", "source": "waagent.conf"} and c.after == {"proxy": GOOD[0]}
    assert "unreachable: connect to 10.0.2.99:3128: refused" in c.reason
    win = proxy_plan("set-guest-proxy", _vm("Windows"), parse_proxy({"proxy": None}),
                     ProxyParams(target=T, proxy=GOOD[0]))
    assert [(c.kind, c.data["script"]) for c in win.changes] == [("add", "windows-proxy-set")]


def test_plan_is_empty_with_the_same_proxy_and_says_why() -> None:
    same = {**DEAD, "proxy": "10.0.2.4:3128", "reachable": True}
    plan = proxy_plan("set-guest-proxy", _vm(), parse_proxy(same), ProxyParams(target=T, proxy=GOOD[0]))
    assert plan.empty and "is 10.0.2.4:3128 (set in /etc/waagent.conf, reachable)" in plan.reason
    assert not plan.manual and not plan.needs_input


def test_plan_without_a_proxy_names_the_manual_step() -> None:
    plan = proxy_plan("set-guest-proxy", _vm(), parse_proxy(DEAD), ProxyParams(target=T))
    assert plan.empty and "no proxy to set was given" in plan.reason
    assert any("give the working proxy: `--proxy http://host:port`" in m for m in plan.manual)


def test_verification_waits_for_the_agent_after_the_restart() -> None:
    due = datetime.now(timezone.utc)
    before = _vm(at=due - timedelta(seconds=5))
    params = ProxyParams(target=T, proxy=GOOD[0], restarted_after=due)
    assert proxy_plan("set-guest-proxy", before, parse_proxy(DEAD), params).changes  # not back yet: not converged
    after = _vm(at=due + timedelta(seconds=5))
    same = parse_proxy({**DEAD, "proxy": GOOD[0], "reachable": True})
    assert proxy_plan("set-guest-proxy", after, same, params).empty


def test_a_bad_proxy_is_one_line_exit_2_and_no_request(armsim: Any, tmp_path: Any) -> None:
    before = len(armsim.sim.requests())
    r = cli(armsim, "action", "set-guest-proxy", "vm-proxy-dead", "-g", RG, "--param",
            "proxy=http://1.2.3.4:3128;reboot", "--yes", tmp=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "proxy" in r.stderr, r.stderr
    r2 = cli(armsim, "fix", "vm-proxy-dead", "-g", RG, "--proxy", "http://1.2.3.4:3128;reboot", "--yes",
             tmp=tmp_path)
    assert r2.returncode == 2 and len(r2.stderr.strip().splitlines()) == 1 and "--proxy" in r2.stderr, r2.stderr
    assert len(armsim.sim.requests()) == before


# --- on armsim --------------------------------------------------------------------------------------------
FAST = {"wait_ready_seconds": 30.0, "poll_seconds": 0.05}


def run_commands(armsim: Any) -> list[dict[str, Any]]:
    return [e for e in armsim.sim.requests() if e["operation"] == "VirtualMachines_RunCommand"]


def test_apply_sets_the_proxy_then_a_second_run_changes_nothing(armsim: Any, azure: Azure) -> None:
    params = ProxyParams(target=T, proxy=GOOD[0], **FAST)
    plan = SetGuestProxy().preview(azure, params)
    assert [c.data["script"] for c in plan.changes] == ["linux-proxy-set"], plan
    assert mutating(armsim) == []  # the get script is read-only
    out = SetGuestProxy().apply(azure, params)
    assert out.status == "changed", out
    assert out.result["after"] and "10.0.2.4" in str(out.result["after"]) and out.result.get("restart_at")
    assert "Ready since" in " ".join(out.evidence), out.evidence  # waited for the agent after the detached restart
    assert "already" not in out.reason and GOOD[0] in out.reason, out.reason  # reads as the state verified
    armsim.sim.clear_requests()
    again = SetGuestProxy().apply(azure, params)
    assert again.status == "unchanged" and mutating(armsim) == [], again
    assert len(run_commands(armsim)) == 1  # only the get script


def test_dry_run_writes_nothing(armsim: Any, tmp_path: Any) -> None:
    r = cli(armsim, "action", "set-guest-proxy", "vm-proxy-dead", "-g", RG, "--param", f"proxy={GOOD[0]}",
            "--dry-run", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [c["data"]["script"] if "data" in c else c["summary"] for c in doc["plan"]["changes"]], doc
    assert mutating(armsim) == []


def test_fix_with_the_working_proxy_is_proven_by_a_backup(armsim: Any, tmp_path: Any) -> None:
    r = cli(armsim, "fix", "vm-proxy-dead", "-g", RG, "--proxy", GOOD[0], "--yes", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    [vm] = json.loads(r.stdout)["vms"]
    assert vm["status"] == "fixed" and "backup job" in vm["message"], vm
    assert [o["action"] for o in vm["outcomes"] if o["status"] == "changed"] == ["set-guest-proxy"]


def test_fix_without_a_proxy_names_the_manual_step(armsim: Any, tmp_path: Any) -> None:
    r = cli(armsim, "fix", "vm-proxy-dead", "-g", RG, "--dry-run", tmp=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr  # a step only a person can take: no backup can prove a fix yet
    assert "give the working proxy: `--proxy http://host:port`" in r.stdout
    assert "Not verified: set-guest-proxy needs a value only a person can give." in r.stdout
    assert "backup vault rsv-demo" not in r.stdout  # no verification backup is planned
    assert mutating(armsim) == []


def test_fix_of_a_proxy_whose_vm_blocks_storage_opens_the_proxy_vms_nsg(armsim: Any, tmp_path: Any) -> None:
    r = cli(armsim, "fix", "vm-proxy-egress", "-g", RG, "--yes", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    [vm] = json.loads(r.stdout)["vms"]
    assert vm["status"] == "fixed", vm
    [egress] = [p for p in vm["plans"] if p["action"] == "allow-backup-egress"]
    assert egress["target"] == f"{RG}/vm-proxy-locked"  # the proxy VM, not the VM diagnosed
    assert all("nsg-proxy-locked" in c["resource"] for c in egress["changes"]), egress
    assert f"allow-backup-egress acts on vm-proxy-locked ({RG}), named by C1.proxy" in " ".join(egress["notes"])


def test_the_demo_fixes_the_proxy_vms() -> None:
    r = subprocess.run(runbooks("demo", "-o", "json", "--concurrency", "8"), capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode in (0, 3), r.stderr[-3000:]
    assert "set-guest-proxy is given the working proxy http://10.0.2.4:3128" in r.stderr
    by_vm = {v["vm"]: v for v in json.loads(r.stdout)["vms"]}
    assert {n: by_vm[n]["status"] for n in ("vm-proxy-dead", "vm-proxy-egress")} == \
        {"vm-proxy-dead": "fixed", "vm-proxy-egress": "fixed"}
