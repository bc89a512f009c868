"""Named scenarios: the fleets a simulator starts with (`demo` is the README's)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .arm import new_etag
from .automation import Account, Runbook, RuntimeEnvironment
from .backup import Item, Vault
from .compute import BACKUP_PUBLISHER, VM, Extension
from .firewall import AzureFirewall
from .fsfreeze import seed_demo as fsfreeze_seed_demo
from .guest import Guest, Service
from .jobstates import seed_demo as jobs_seed_demo
from .network import NIC, NSG, Subnet
from .proxy import ProxySettings
from .restorepoints import seed_demo as locks_seed_demo
from .routes import RouteTable, route_body
from .storm import storm
from .vss import seed_demo as vss_seed_demo
from .winfix import NETWORK_SERVICE
from .winfix import seed_demo as winfix_seed_demo

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["DEMO_SUBSCRIPTION", "SCENARIOS", "failed_at", "load", "protected_vm"]

DEMO_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RG = "rg-demo"
REGION = "eastus"


def _fw_demo_rules() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """fw-demo's classic rules (application, network): Windows Update and DNS; nothing lets AzureBackup or Storage."""
    return ([{"name": "allow-updates", "properties": {"priority": 200, "action": {"type": "Allow"},
            "rules": [{"name": "windows-update", "description": "Windows Update", "fqdnTags": ["WindowsUpdate"], "targetFqdns": [],
                       "protocols": [{"protocolType": "Https", "port": 443}], "sourceAddresses": ["10.0.0.0/16"]}]}}],
            [{"name": "allow-dns", "properties": {"priority": 100, "action": {"type": "Allow"},
            "rules": [{"name": "dns", "description": "DNS to Azure's resolver", "protocols": ["UDP"], "sourceAddresses": ["10.0.0.0/16"],
                       "destinationAddresses": ["168.63.129.16"], "destinationPorts": ["53"]}]}}])


def _deny_internet_443(name: str = "deny-internet-443", priority: int = 200) -> dict[str, object]:
    return {"name": name, "etag": new_etag(), "properties": {
        "description": "Block outbound HTTPS to the internet", "protocol": "Tcp", "sourcePortRange": "*",
        "destinationPortRange": "443", "sourceAddressPrefix": "*", "destinationAddressPrefix": "Internet",
        "access": "Deny", "priority": priority, "direction": "Outbound", "sourceAddressPrefixes": [],
        "destinationAddressPrefixes": [], "sourcePortRanges": [], "destinationPortRanges": []}}


def _allow_ssh_in() -> dict[str, object]:
    return {"name": "allow-ssh-from-corp", "etag": new_etag(), "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
        "sourceAddressPrefix": "203.0.113.0/24", "destinationAddressPrefix": "*", "access": "Allow",
        "priority": 300, "direction": "Inbound", "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
        "sourcePortRanges": [], "destinationPortRanges": []}}


def _ubuntu(version: str = "22.04", agent: str = "2.9.1.1") -> Guest:
    return Guest("Linux", f"Ubuntu {version} LTS", distro="ubuntu", distro_version=version,
                 agent_service="walinuxagent", agent_version=agent, repo_agent_version="2.9.1.1")


def _windows(name: str, **kw: object) -> Guest:
    g = Guest("Windows", name, distro="windows", distro_version="10.0", agent_service="WindowsAzureGuestAgent",
              agent_version="2.7.41491.1102", **kw)  # type: ignore[arg-type]
    g.services["iaasvmprovider"] = Service("iaasvmprovider", "Automatic", True)
    g.services["windowsazureguestagent"] = Service("WindowsAzureGuestAgent", "Automatic", True)
    # COM+ System Application and MSDTC, as a default Windows Server install has them (MSDTC as NetworkService)
    g.services["comsysapp"] = Service("COMSysApp", "Manual", True)
    g.services["msdtc"] = Service("MSDTC", "Manual", True)
    g.winfix.accounts["msdtc"] = NETWORK_SERVICE
    return g


def _snapshot_ext(linux: bool, state: str = "Succeeded") -> Extension:
    name = "VMSnapshotLinux" if linux else "VMSnapshot"
    return Extension(name, BACKUP_PUBLISHER, name, "1.0.9" if linux else "1.0.75", state,
                     "Extension operation failed: handler not responding" if state == "Failed" else "")


def protected_vm(sim: Simulator, vault: Vault, name: str, guest: Guest, subnet: Subnet, ip: str, *,
                 nsg: NSG | None = None, extension: str = "Succeeded", when: datetime) -> tuple[VM, Item]:
    """A demo VM in rg-demo: its NIC on `subnet` at `ip` (with `nsg`), its backup extension in state `extension`,
    protected in `vault` with a good backup a day before `when`."""
    nic = sim.network.add(NIC(f"{name}-nic", RG, subnet.subscription, REGION, ip, subnet.id, nsg.id if nsg else None))
    vm = sim.compute.add(VM(name, RG, subnet.subscription, REGION, guest, [nic.id]))
    nic.vm_id = vm.id
    linux = guest.os_type == "Linux"
    vm.extensions["vmsnapshotlinux" if linux else "vmsnapshot"] = _snapshot_ext(linux, extension)
    item = sim.backup.protect(vault, vm)
    sim.backup.start_job(vault, item, error=None, user=False, when=when - timedelta(days=1), finished=True)
    return vm, item


def failed_at(sim: Simulator, vault: Vault, item: Item, code: str, when: datetime) -> None:
    """The VM's failed backup job with `code` at `when`, after checking the causal model gives that code now."""
    now = sim.backup.verdict(item.vm)
    assert now == code, f"demo seed drifted: {item.vm.name} would fail with {now}"
    sim.backup.start_job(vault, item, error=code, user=False, when=when, finished=True)


def _automation_seed(account: Account) -> None:
    """The deployment's runtime environments and runbooks (azure-automation/deploy.json; names from issue #8)."""
    account.add_environment(RuntimeEnvironment("python-3-10", "Python", "3.10"))
    account.add_environment(RuntimeEnvironment("powershell-7-2", "PowerShell", "7.2"))
    for name in ("fix_backup_failure", "fan_out", "preview_change_window", "sweep_backup_failures",
                 "report_alerts"):
        account.add_runbook(Runbook(name, "Python", "python-3-10"))
    account.add_runbook(Runbook("relay_backup_alert", "PowerShell", "powershell-7-2"))


def demo(sim: Simulator) -> None:
    """The demo fleet (issues #2 and #15): fourteen VMs, each broken one with one failed backup job."""
    net, comp, bk = sim.network, sim.compute, sim.backup
    sub = DEMO_SUBSCRIPTION
    nsg_app = net.add(NSG("nsg-app", RG, sub, REGION, rules={"allow-ssh-from-corp": _allow_ssh_in()}))
    nsg_blocked = net.add(NSG("nsg-blocked", RG, sub, REGION, rules={"deny-internet-443": _deny_internet_443()}))
    nsg_locked_subnet = net.add(NSG("nsg-locked-subnet", RG, sub, REGION,
                                    rules={"deny-https-out": _deny_internet_443("deny-https-out", 250)}))
    sn_default = net.add(Subnet("vnet-demo", "default", RG, sub, "10.0.0.0/24", nsg_app.id))
    sn_locked = net.add(Subnet("vnet-demo", "locked", RG, sub, "10.0.1.0/24", nsg_locked_subnet.id))
    # issue #15: a subnet whose route table sends everything to an NVA (10.0.100.4) that does not allow Storage
    rt_firewall = sim.route_tables.add(RouteTable("rt-firewall", RG, sub, REGION, routes={"default-to-firewall": route_body(
        "default-to-firewall", "0.0.0.0/0", "VirtualAppliance", "10.0.100.4")}))
    sim.route_tables.appliances["10.0.100.4"] = {"allows_storage": False}
    app_rules, net_rules = _fw_demo_rules()
    sim.firewalls.add(AzureFirewall("fw-demo", RG, sub, REGION, "10.0.100.4", app_rules, net_rules, vnet="vnet-demo"))
    sim.route_tables.address_spaces[sn_default.id.rsplit("/subnets/", 1)[0].lower()] = ["10.0.0.0/16"]
    sn_firewalled = net.add(Subnet("vnet-demo", "firewalled", RG, sub, "10.0.4.0/24", nsg_app.id, rt_firewall.id))
    vault = bk.add_vault(Vault("rsv-demo", RG, sub, REGION))
    account = sim.automation.add(Account("aa-backup-runbooks", RG, sub))
    _automation_seed(account)

    specs: list[tuple[str, Guest, Subnet, NSG | None, str | None]] = [
        ("vm-healthy", _ubuntu(), sn_default, None, None),
        ("vm-nsg-blocked", _ubuntu(), sn_default, nsg_blocked, "ExtensionSnapshotFailedNoNetwork"),
        ("vm-subnet-blocked", _ubuntu(), sn_locked, None, "ExtensionSnapshotFailedNoNetwork"),
        ("vm-win-agent-hung", _windows("Windows Server 2019 Datacenter", agent_hung=True), sn_default, None,
         "GuestAgentSnapshotTaskStatusError"),
        ("vm-linux-agent-old", Guest("Linux", "Red Hat Enterprise Linux 8.8", distro="rhel", distro_version="8.8",
                                     agent_service="waagent", agent_version="2.2.10", repo_agent_version="2.7.0.6"),
         sn_default, None, "UserErrorGuestAgentVersionUnsupported"),  # portal self-help: agent below minimum
        ("vm-sql-vss", _windows("Windows Server 2019 Datacenter", sql_server=True), sn_default, None,
         "ExtensionOperationFailedForManagedDisks"),
        ("vm-rdp-shutdown", _windows("Windows Server 2016 Datacenter", shut_down_inside=True), sn_default, None,
         "UserErrorGuestAgentStatusUnavailable"),
        ("vm-ext-failed", _ubuntu("20.04"), sn_default, None, "ExtensionOperationFailedForManagedDisks"),
        ("vm-win-provider-disabled", _windows("Windows Server 2022 Datacenter"), sn_default, None,
         "BackUpOperationFailed"),
        ("vm-udr-blocked", _ubuntu(), sn_firewalled, None, "ExtensionSnapshotFailedNoNetwork"),
    ]
    seeded = datetime.now(timezone.utc) - timedelta(hours=3)
    for i, (name, guest, subnet, nic_nsg, error) in enumerate(specs):
        nic = net.add(NIC(f"{name}-nic", RG, sub, REGION, f"{subnet.prefix.rsplit('.', 1)[0]}.{10 + i}", subnet.id,
                          nic_nsg.id if nic_nsg else None))
        vm = comp.add(VM(name, RG, sub, REGION, guest, [nic.id]))
        nic.vm_id = vm.id
        linux = guest.os_type == "Linux"
        vm.extensions[("vmsnapshotlinux" if linux else "vmsnapshot")] = _snapshot_ext(
            linux, "Failed" if name == "vm-ext-failed" else "Succeeded")
        if name == "vm-win-provider-disabled":
            guest.services["iaasvmprovider"].start_type = "Disabled"
            guest.services["iaasvmprovider"].running = False
        if name == "vm-sql-vss":
            vm.data_disks_gb.append(128)  # SQL data on a data disk
        item = bk.protect(vault, vm)
        bk.start_job(vault, item, error=None, user=False, when=seeded - timedelta(days=1), finished=True)
        if error:
            # vm-rdp-shutdown's job failed while its guest was going down; now that the VM shows
            # PowerState/stopped, a backup of it succeeds crash-consistently (backup support matrix).
            expected = None if guest.shut_down_inside else error
            assert bk.verdict(vm) == expected, f"demo seed drifted: {name} would fail with {bk.verdict(vm)}"
            bk.start_job(vault, item, error=error, user=False, when=seeded + timedelta(minutes=i), finished=True)
    _proxy_fleet(sim, vault, nsg_app, seeded + timedelta(minutes=len(specs)))
    for i, (seed, prefix) in enumerate(CODE_FLEETS):  # issue #14: each family of newer codes, on its own subnet
        subnet = net.add(Subnet("vnet-demo", f"codes-{i}", RG, sub, prefix, nsg_app.id))
        seed(sim, vault, subnet, seeded + timedelta(minutes=len(specs) + 10 + 10 * i))


def _proxy_fleet(sim: Simulator, vault: Vault, nsg_app: NSG, seeded: datetime) -> None:
    """Issue #15's guest proxies: two proxy VMs (one whose NSG denies Storage) and two clients whose backups fail
    through their proxy (a dead proxy address; a proxy that cannot get out). Own subnets, so the rest of the
    fleet is unaffected. The proxies are protected with a good backup a day old and no failed job."""
    net, sub = sim.network, DEMO_SUBSCRIPTION
    locked = net.add(NSG("nsg-proxy-locked", RG, sub, REGION, rules={"deny-internet-443": _deny_internet_443()}))
    clients = net.add(NSG("nsg-proxy-clients", RG, sub, REGION, rules={"deny-internet-443": _deny_internet_443()}))
    subnets = {name: net.add(Subnet("vnet-demo", name, RG, sub, prefix, nsg_app.id)) for name, prefix in (
        ("proxy", "10.0.2.0/24"), ("proxy-locked", "10.0.3.0/24"), ("proxy-clients", "10.0.5.0/24"))}
    dead = _ubuntu()
    dead.proxy = ProxySettings(conf_host="10.0.2.99", conf_port="3128",
                               etc_environment={"http_proxy": "http://10.0.2.99:3128"})
    egress = _windows("Windows Server 2022 Datacenter")
    egress.proxy = ProxySettings(winhttp="10.0.3.4:3128", winhttp_bypass="<local>;168.63.129.16")
    proxy, proxy_locked = _ubuntu(), _ubuntu()
    proxy.proxy_port = proxy_locked.proxy_port = 3128  # squid's default port
    no_network = "ExtensionSnapshotFailedNoNetwork"
    # name, guest, subnet, IP, NIC NSG, the error a backup fails with now, whether a failed job is seeded
    specs: list[tuple[str, Guest, str, str, NSG | None, str | None, bool]] = [
        ("vm-proxy", proxy, "proxy", "10.0.2.4", None, None, False),
        ("vm-proxy-locked", proxy_locked, "proxy-locked", "10.0.3.4", locked, no_network, False),
        ("vm-proxy-dead", dead, "proxy-clients", "10.0.5.10", None, no_network, True),
        ("vm-proxy-egress", egress, "proxy-clients", "10.0.5.11", clients, no_network, True),
    ]
    for i, (name, guest, subnet, ip, nsg, error, failed) in enumerate(specs):
        nic = net.add(NIC(f"{name}-nic", RG, sub, REGION, ip, subnets[subnet].id, nsg.id if nsg else None))
        vm = sim.compute.add(VM(name, RG, sub, REGION, guest, [nic.id]))
        nic.vm_id = vm.id
        linux = guest.os_type == "Linux"
        vm.extensions["vmsnapshotlinux" if linux else "vmsnapshot"] = _snapshot_ext(linux)
        item = sim.backup.protect(vault, vm)
        sim.backup.start_job(vault, item, error=None, user=False, when=seeded - timedelta(days=1), finished=True)
        assert sim.backup.verdict(vm) == error, f"demo seed drifted: {name} would fail with {sim.backup.verdict(vm)}"
        if failed:
            sim.backup.start_job(vault, item, error=error, user=False, when=seeded + timedelta(minutes=i),
                                 finished=True)


# Issue #14's demo VMs, one seeding function per family of codes, each given its own subnet (10.0.6-10.0.10.x):
# seed(sim, vault, subnet, when) adds VMs whose backups fail with the family's codes (a failed job seeded at `when`).
CODE_FLEETS: list[tuple[Callable[[Simulator, Vault, Subnet, datetime], None], str]] = [
    (locks_seed_demo, "10.0.6.0/24"),
    (jobs_seed_demo, "10.0.7.0/24"),
    (vss_seed_demo, "10.0.8.0/24"),
    (winfix_seed_demo, "10.0.11.0/24"),
    (fsfreeze_seed_demo, "10.0.9.0/24"),
    # (platform seed, "10.0.10.0/24"),
]


def empty(sim: Simulator) -> None:
    """No resources at all."""


SCENARIOS: dict[str, Callable[[Simulator], None]] = {"demo": demo, "empty": empty, "storm": storm}


def load(sim: Simulator, name: str) -> None:
    """Populate a fresh simulator with a named scenario."""
    from .fleet import fleet, fleet_size

    n = fleet_size(name)
    if n is not None:
        fleet(sim, n)
        return
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}, fleet:N")
    SCENARIOS[name](sim)
