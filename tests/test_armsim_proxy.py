"""armsim's guest proxies (issue #15), through the real SDK: the proxy scripts' results on the demo VMs, the set
scripts changing the guest, the refusal of a bad PROXY, and the causal model (a VM with a proxy reaches Storage
only through a reachable proxy that itself reaches Storage)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import http
from support.demo import RG, sim_vm

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.guest import restart_mode, script_id
from remediations.azure import Azure
from remediations.scripts import SCRIPTS, output_text, parse_result

NO_NETWORK = "ExtensionSnapshotFailedNoNetwork"
# Through Run Command (the full grid of values runs against the scripts and armsim in tests/test_scripts_proxy.py).
BAD = ["http://1.2.3.4:3128; rm -rf /", "$(reboot)", "http://10.0.2.4:3128\n", "http://user:pw@10.0.2.4:3128", ""]


def run(azure: Azure, vm: str, sid: str, **params: str) -> tuple[dict[str, Any], str]:
    """Run a script through Run Command with these parameters; its result JSON and stderr."""
    s = SCRIPTS[sid]
    body: dict[str, Any] = {"commandId": s.command_id, "script": s.text.splitlines(),
                            "parameters": [{"name": k, "value": v} for k, v in params.items()]}
    res = azure.compute.virtual_machines.begin_run_command(RG, vm, body).result()
    out, err = output_text([v.as_dict() for v in res.value])
    return parse_result(out), err


def backup(armsim: Server, vm: str) -> str | None:
    """The error a backup of the VM fails with now (armsim's verdict, which every backup job follows)."""
    return armsim.sim.backup.verdict(sim_vm(armsim, vm))


def backup_job(azure: Azure, vm: str) -> str:
    """Back the VM up through the SDK; 'Completed' or the job's error title."""
    st = azure.backup.backup_status.get("eastus", {"resourceId": sim_vm_id(vm), "resourceType": "VM"})
    container = f"IaasVMContainer;{st.container_name}"
    azure.backup.backups.trigger("rsv-demo", RG, st.fabric_name, container, st.protected_item_name,
                                 {"properties": {"objectType": "IaasVMBackupRequest"}})
    for _ in range(40):
        jobs = [j for j in azure.backup.backup_jobs.list("rsv-demo", RG)
                if j.properties.entity_friendly_name == vm and j.properties.operation == "Backup"]
        job = max(jobs, key=lambda j: j.properties.start_time)
        props = azure.backup.job_details.get("rsv-demo", RG, job.name).properties.as_dict()
        if props["status"] != "InProgress":
            return "Completed" if props["status"] == "Completed" else props["errorDetails"][0]["errorTitle"]
    raise AssertionError("the backup job never ended")


def sim_vm_id(vm: str) -> str:
    return f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{vm}"


# --- the get scripts on the demo VMs -----------------------------------------------------------------
@pytest.mark.parametrize(("vm", "sid", "proxy", "source", "reachable", "detail"), [
    ("vm-proxy-dead", "linux-proxy-get", "http://10.0.2.99:3128", "waagent.conf", False,
     "connect to 10.0.2.99:3128: timed out after 5 s"),
    ("vm-proxy-egress", "windows-proxy-get", "http://10.0.3.4:3128", "winhttp", True, "connect to 10.0.3.4:3128: ok"),
    ("vm-proxy", "linux-proxy-get", None, None, None, None),
    ("vm-healthy", "linux-proxy-get", None, None, None, None),
    ("vm-sql-vss", "windows-proxy-get", None, None, None, None),
])
def test_get_reports_the_proxy_and_whether_it_answers(armsim: Server, azure: Azure, vm: str, sid: str,
                                                      proxy: str | None, source: str | None,
                                                      reachable: bool | None, detail: str | None) -> None:
    r, _ = run(azure, vm, sid)
    assert (r["script"], r["proxy"], r["source"], r["reachable"], r["detail"]) == (sid, proxy, source, reachable, detail)
    if vm == "vm-proxy-dead":
        assert r["settings"]["waagent.conf"] == {"HttpProxy.Host": "10.0.2.99", "HttpProxy.Port": "3128"}
        assert r["settings"]["/etc/environment"]["http_proxy"] == "http://10.0.2.99:3128"
        assert r["settings"]["unit"] == "walinuxagent"
    if vm == "vm-proxy-egress":
        assert r["settings"]["winhttp"]["proxy"] == "10.0.3.4:3128"
        assert r["settings"]["localsystem"] == {"ProxyEnable": None, "ProxyServer": None, "ProxyOverride": None}
    assert not [e for e in armsim.sim.requests() if e["mutating"] and "runCommand" not in e["path"]]


def test_get_says_refused_when_nothing_listens_and_times_out_when_an_nsg_drops(armsim: Server, azure: Azure) -> None:
    guest = sim_vm(armsim, "vm-proxy-dead").guest
    guest.proxy.conf_host, guest.proxy.conf_port = "10.0.2.4", "8080"
    r, _ = run(azure, "vm-proxy-dead", "linux-proxy-get")
    assert (r["reachable"], r["detail"]) == (False, "connect to 10.0.2.4:8080: refused")
    assert backup(armsim, "vm-proxy-dead") == NO_NETWORK
    guest.proxy.conf_port = "3128"
    assert run(azure, "vm-proxy-dead", "linux-proxy-get")[0]["reachable"] is True
    assert backup(armsim, "vm-proxy-dead") is None
    # the clients' subnet NSG drops the flow to the proxy: the connection times out, the backup fails
    azure.network.security_rules.begin_create_or_update(RG, "nsg-app", "deny-proxy", {"properties": {
        "protocol": "Tcp", "access": "Deny", "direction": "Outbound", "priority": 150, "sourceAddressPrefix": "*",
        "sourcePortRange": "*", "destinationAddressPrefix": "10.0.2.4", "destinationPortRange": "3128"}}).result()
    r, _ = run(azure, "vm-proxy-dead", "linux-proxy-get")
    assert (r["reachable"], r["detail"]) == (False, "connect to 10.0.2.4:3128: timed out after 5 s")
    assert backup(armsim, "vm-proxy-dead") == NO_NETWORK


# --- the set scripts -----------------------------------------------------------------------------------
def test_linux_set_fixes_the_dead_proxy_and_restarts_the_agent_detached(armsim: Server, azure: Azure) -> None:
    assert backup_job(azure, "vm-proxy-dead") == NO_NETWORK
    guest = sim_vm(armsim, "vm-proxy-dead").guest
    restarts = guest.agent_restarts
    r, _ = run(azure, "vm-proxy-dead", "linux-proxy-set", PROXY="http://10.0.2.4:3128")
    assert {k: r[k] for k in ("changed", "before", "after", "unit", "scheduled", "how", "delay")} == {
        "changed": True, "before": "http://10.0.2.99:3128", "after": "http://10.0.2.4:3128", "unit": "walinuxagent",
        "scheduled": True, "how": "systemd-run", "delay": 10}
    assert r["restart_at"] and guest.agent_restarts == restarts  # not restarted inline
    got, _ = run(azure, "vm-proxy-dead", "linux-proxy-get")
    assert (got["proxy"], got["source"], got["reachable"]) == ("http://10.0.2.4:3128", "waagent.conf", True)
    assert got["settings"]["unit_environment"]["https_proxy"] is None  # the drop-in applies when the agent restarts
    azure.compute.virtual_machines.instance_view(RG, "vm-proxy-dead")  # a read lands the pending restart
    assert guest.agent_restarts == restarts + 1
    got, _ = run(azure, "vm-proxy-dead", "linux-proxy-get")
    assert got["settings"]["unit_environment"]["https_proxy"] == "http://10.0.2.4:3128"
    again, _ = run(azure, "vm-proxy-dead", "linux-proxy-set", PROXY="http://10.0.2.4:3128")
    assert {k: again[k] for k in ("changed", "scheduled", "restart_at", "before")} == {
        "changed": False, "scheduled": False, "restart_at": None, "before": "http://10.0.2.4:3128"}
    assert guest.pending_restart is None and guest.agent_restarts == restarts + 1
    assert backup_job(azure, "vm-proxy-dead") == "Completed"


def test_windows_set_writes_winhttp_and_localsystem(armsim: Server, azure: Azure) -> None:
    r, _ = run(azure, "vm-proxy-egress", "windows-proxy-set", proxy="http://10.0.2.4:3128")  # PowerShell: any case
    assert {k: r[k] for k in ("changed", "before", "after", "scheduled", "how", "task")} == {
        "changed": True, "before": "http://10.0.3.4:3128", "after": "http://10.0.2.4:3128", "scheduled": True,
        "how": "scheduled-task", "task": "runbooks-agent-restart"}
    got, _ = run(azure, "vm-proxy-egress", "windows-proxy-get")
    assert got["settings"] == {
        "winhttp": {"proxy": "10.0.2.4:3128", "bypass": "<local>;168.63.129.16;169.254.169.254"},
        "localsystem": {"ProxyEnable": 1, "ProxyServer": "10.0.2.4:3128",
                        "ProxyOverride": "<local>;168.63.129.16;169.254.169.254"}}
    assert (got["proxy"], got["reachable"]) == ("http://10.0.2.4:3128", True)
    assert backup(armsim, "vm-proxy-egress") is None  # vm-proxy gets out


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(("vm", "sid", "name"), [("vm-proxy-dead", "linux-proxy-set", "PROXY"),
                                                 ("vm-proxy-egress", "windows-proxy-set", "Proxy")])
def test_a_bad_proxy_is_refused_and_nothing_changes(armsim: Server, azure: Azure, vm: str, sid: str, name: str,
                                                    value: str) -> None:
    guest = sim_vm(armsim, vm).guest
    before = guest.describe()
    r, err = run(azure, vm, sid, **{name: value})
    assert r == {"script": sid, "error": "bad-proxy", "changed": False, "scheduled": False}
    assert "nothing was changed" in err and value.strip() not in r.values()
    assert guest.describe() == before and guest.pending_restart is None


def test_a_missing_or_misnamed_parameter_is_a_bad_proxy(armsim: Server, azure: Azure) -> None:
    assert run(azure, "vm-proxy-dead", "linux-proxy-set")[0]["error"] == "bad-proxy"
    assert run(azure, "vm-proxy-dead", "linux-proxy-set", proxy="http://10.0.2.4:3128")[0]["error"] == "bad-proxy"
    status, body = http(armsim, "POST", f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/"
                        "Microsoft.Compute/virtualMachines/vm-proxy-dead/runCommand?api-version=2024-07-01",
                        {"commandId": "RunShellScript", "script": SCRIPTS["linux-proxy-set"].text.splitlines(),
                         "parameters": [{"name": "PROXY"}]})
    assert (status, body["error"]["code"]) == (400, "InvalidParameter")


def test_the_set_scripts_restart_the_agent_detached() -> None:
    for sid in ("linux-proxy-set", "windows-proxy-set"):
        text = SCRIPTS[sid].text
        assert script_id(text) == sid and restart_mode(sid, text) == "detached"
    linux = SCRIPTS["linux-proxy-set"].text + "\nsystemctl restart walinuxagent.service\n"
    windows = SCRIPTS["windows-proxy-set"].text + "\nRestart-Service -Name WindowsAzureGuestAgent -Force\n"
    assert restart_mode("linux-proxy-set", linux) == restart_mode("windows-proxy-set", windows) == "inline"


# --- the causal model ----------------------------------------------------------------------------------
def test_a_proxy_client_gets_out_only_when_the_proxy_vm_does(armsim: Server, azure: Azure) -> None:
    assert backup_job(azure, "vm-proxy-egress") == NO_NETWORK
    assert backup(armsim, "vm-proxy-locked") == NO_NETWORK
    azure.network.security_rules.begin_create_or_update(RG, "nsg-proxy-locked", "allow-azure-backup-443", {
        "properties": {"protocol": "Tcp", "access": "Allow", "direction": "Outbound", "priority": 199,
                       "sourceAddressPrefix": "*", "sourcePortRange": "*",
                       "destinationAddressPrefix": "Storage.EastUS", "destinationPortRange": "443"}}).result()
    assert backup_job(azure, "vm-proxy-egress") == "Completed"
    assert backup(armsim, "vm-proxy-locked") is None
    # its own NSG still denies Internet 443: without the proxy, it fails again
    guest = sim_vm(armsim, "vm-proxy-egress").guest
    guest.proxy.winhttp = None
    assert backup(armsim, "vm-proxy-egress") == NO_NETWORK


def test_a_stopped_proxy_vm_breaks_its_clients(armsim: Server, azure: Azure) -> None:
    run(azure, "vm-proxy-dead", "linux-proxy-set", PROXY="http://10.0.2.4:3128")
    assert backup(armsim, "vm-proxy-dead") is None
    azure.compute.virtual_machines.begin_power_off(RG, "vm-proxy").result()
    r, _ = run(azure, "vm-proxy-dead", "linux-proxy-get")
    assert (r["reachable"], r["detail"]) == (False, "connect to 10.0.2.4:3128: timed out after 5 s")
    assert backup(armsim, "vm-proxy-dead") == NO_NETWORK


def test_the_clients_own_path_does_not_matter_with_a_proxy(armsim: Server) -> None:
    dead = sim_vm(armsim, "vm-proxy-dead")
    assert armsim.sim.network.storage_blocked(dead, 443) is None and backup(armsim, "vm-proxy-dead") == NO_NETWORK
    dead.guest.proxy.conf_host = dead.guest.proxy.conf_port = None
    assert backup(armsim, "vm-proxy-dead") is None
    dead.guest.proxy.unit_env = {"https_proxy": "http://10.0.2.99:3128/"}  # the environment, when waagent.conf is silent
    assert backup(armsim, "vm-proxy-dead") == NO_NETWORK


def test_the_subscriptions_nics_list_finds_the_proxy_vm(azure: Azure) -> None:
    """NetworkInterfaces_ListAll (how a diagnosis finds the VM behind a proxy IP), shaped as NetworkInterfaces_Get."""
    nics = [n.as_dict() for n in azure.network.network_interfaces.list_all()]
    owner = {c["properties"]["privateIPAddress"]: n["properties"]["virtualMachine"]["id"].rsplit("/", 1)[-1]
             for n in nics for c in n["properties"]["ipConfigurations"]}
    assert owner["10.0.2.4"] == "vm-proxy" and owner["10.0.3.4"] == "vm-proxy-locked" and "10.0.2.99" not in owner
    one = azure.network.network_interfaces.get(RG, "vm-proxy-nic").as_dict()
    assert next(n for n in nics if n["name"] == "vm-proxy-nic") == one
