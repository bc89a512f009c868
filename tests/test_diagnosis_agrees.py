"""Diagnosis and the fixes agree (issue #12): the cause checks and the actions' read-only previews decide
"broken" alike, for every demo VM and for a stopped VM read through every NIC and IP configuration.

A cause found present has a fix that plans a change, or states a manual step where the catalog leaves the
cause to a person (C4.shutdown: power-off's preview states it); a fix plans a change only when one of
its causes is present, and a manual step only when one is present or cannot be seen from ARM.
All through the real SDK against armsim; previews only, nothing is written.
"""

from __future__ import annotations

from conftest import DEMO_VMS, mutating

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.compute import VM
from armsim.network import NIC
from armsim.scenarios import _ubuntu
from remediations.actions import get_action
from remediations.azure import Azure
from remediations.facts import gather
from remediations.model import Plan
from remediations.target import Target
from runbooks.catalog import CAUSES
from runbooks.diagnose import check
from runbooks.engine import Options, investigate

RG = "rg-demo"
# Causes the catalog leaves to a person, and the action whose preview states that step.
MANUAL = {"C4.shutdown": "power-off"}
DIRECT = ("allow-backup-egress", "allow-backup-route")  # fixes of the VM's own way out (not through a proxy)
ACTIONS = sorted({a for c in CAUSES.values() for a in c.fixes} | set(MANUAL.values()))


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name=name)


def fixes_of(cause: str) -> tuple[str, ...]:
    return CAUSES[cause].fixes + ((MANUAL[cause],) if cause in MANUAL else ())


def causes_of(action: str) -> list[str]:
    return [c for c in CAUSES if action in fixes_of(c)]


def previews(azure: Azure, t: Target, known: dict[str, Plan]) -> dict[str, Plan]:
    """Each fixing action's read-only plan (the engine's probe previews reused)."""
    out = dict(known)
    for name in ACTIONS:
        if name not in out:
            action = get_action(name)
            out[name] = action.preview(azure, action.Params(target=t))
    return out


def disagreements(verdicts: dict[str, str], plans: dict[str, Plan]) -> list[str]:
    out = []
    for cause, verdict in verdicts.items():
        fixes = fixes_of(cause)
        if verdict == "present" and fixes and not any(plans[a].changes or plans[a].manual for a in fixes):
            out.append(f"{cause} is present, yet none of {', '.join(fixes)} plans a change or states a step: "
                       + "; ".join(plans[a].reason for a in fixes))
    for name, plan in plans.items():
        seen = {verdicts[c] for c in causes_of(name) if c in verdicts}
        if plan.changes and "present" not in seen:
            out.append(f"{name} plans {[c.summary for c in plan.changes]} though its causes are {sorted(seen)}")
        if plan.manual and not seen & {"present", "unknown"}:
            out.append(f"{name} states {plan.manual} though its causes are {sorted(seen)}")
    return out


def test_every_demo_vm_is_judged_alike_by_its_diagnosis_and_its_fixes(armsim: Server, azure: Azure) -> None:
    names = sorted(vm.name for vm in armsim.sim.compute.vms.values())
    assert len(names) == len(DEMO_VMS), names
    found: dict[str, list[str]] = {}
    for name in names:
        inv = investigate(azure, target(name), Options(error="all"))  # every cause of every runbook
        verdicts = {f.cause: f.verdict for f in inv.findings}
        assert set(verdicts) == set(CAUSES), name
        plans = previews(azure, target(name), inv.previews)
        proxied = inv.facts.proxy is not None and inv.facts.proxy.guest is not None and inv.facts.proxy.guest.proxy
        elsewhere = [f for f in inv.findings if f.on is not None]  # e.g. C1.proxy: fixed on the guest's proxy VM
        local = {c: v for c, v in verdicts.items() if not any(f.cause == c for f in elsewhere)}
        # a guest behind a proxy does not use its own direct path: the direct-path fixes' own reading of it
        # (its NSG denies Internet) is not what the diagnosis judges, so they are not compared on this VM
        mine = {a: p for a, p in plans.items() if not (proxied and a in DIRECT)}
        assert disagreements(local, mine) == [], name
        for f in elsewhere:  # the fixes a finding names act on its VM: at least one plans a change there
            assert f.fixes and any(get_action(a).preview(azure, get_action(a).Params(target=f.on)).changes
                                   for a in f.fixes), (name, f.cause)
        found[name] = [c for c, v in verdicts.items() if v == "present"]
        assert inv.job is None or found[name], (name, found[name])  # a failed backup has a cause
        # (and a cause may be found before any backup failed: vm-proxy-locked's NSG denies Storage)
    assert found == {
        "vm-ext-failed": ["C5.extension"], "vm-healthy": [], "vm-linux-agent-old": ["C3"],
        "vm-nsg-blocked": ["C1"], "vm-rdp-shutdown": ["C4.shutdown"], "vm-sql-vss": ["C4.sql"],
        "vm-subnet-blocked": ["C1"], "vm-win-agent-hung": ["C2"], "vm-win-provider-disabled": ["C5.provider"],
        "vm-udr-blocked": ["C1.route"], "vm-proxy-dead": ["C1.proxy"], "vm-proxy-egress": ["C1.proxy"],
        "vm-proxy": [], "vm-proxy-locked": ["C1"],
        # issue #14's codes: each VM's own cause, and nothing else, even with every cause checked
        "vm-rp-locked": ["C6.lock"], "vm-locked": ["C8.lock"], "vm-rp-full": ["C6.collection"],
        "vm-backup-running": ["C7.job"], "vm-backup-stuck": ["C7.job"], "vm-backup-old-vault": ["C7.vault"],
        "vm-ext-deleting": ["C5.extension", "C5.stuck"], "vm-provisioning-failed": ["C5.extension", "C5.stuck"],
        "vm-vss-writer": ["C9.writers"], "vm-vss-service": ["C9.service"], "vm-tls-legacy": ["C10.tls"],
        "vm-snapshot-timeout": ["C10.host"], "vm-com-msdtc": ["C11.com"], "vm-fsfreeze": ["C12.freeze"],
    }
    assert mutating(armsim) == []


def test_the_egress_verdict_uses_the_ports_the_fix_opens(armsim: Server, azure: Azure) -> None:
    from remediations.verdicts import BACKUP_PORTS

    f = check("C1", gather(azure, target("vm-healthy")))
    assert f.verdict == "absent" and f.evidence.startswith(f"outbound TCP {', '.join(map(str, BACKUP_PORTS))} to ")
    plan = get_action("allow-backup-egress").preview(azure, get_action("allow-backup-egress").Params(
        target=target("vm-healthy")))
    assert plan.reason.startswith(f"outbound TCP {', '.join(map(str, BACKUP_PORTS))} to ")


# --- a stopped VM: no effective NSGs, so every NIC, IP configuration, subnet and NSG is read -------------
def add_stopped_vm(server: Server, azure: Azure, name: str, nics: list[tuple[str, list[str]]]) -> Target:
    """A Linux VM with one NIC per (subnet name, secondary private IPs), powered off through the platform."""
    sim = server.sim
    with sim.lock:
        ids = []
        for i, (subnet, secondary) in enumerate(nics):
            sn = next(s for s in sim.network.subnets.values() if s.name == subnet)
            base = sn.prefix.rsplit(".", 1)[0]
            nic = sim.network.add(NIC(f"{name}-nic{i}", RG, DEMO_SUBSCRIPTION, "eastus", f"{base}.{40 + i}", sn.id,
                                      secondary_ips=secondary))
            ids.append(nic)
        vm = sim.compute.add(VM(name, RG, DEMO_SUBSCRIPTION, "eastus", _ubuntu(), [n.id for n in ids]))
        for nic in ids:
            nic.vm_id = vm.id
    azure.compute.virtual_machines.begin_power_off(RG, name).result()
    return target(name)


def egress_plan(azure: Azure, t: Target) -> Plan:
    action = get_action("allow-backup-egress")
    return action.preview(azure, action.Params(target=t))


def test_a_stopped_vm_whose_nic_has_a_second_ip_configuration_on_a_blocked_subnet_is_blocked(
        armsim: Server, azure: Azure) -> None:
    # Azure keeps every IP configuration of a NIC in one subnet ("IPConfigurations on a Nic cannot belong
    # to different subnets"), so the second one sits in the locked subnet with the first.
    t = add_stopped_vm(armsim, azure, "vm-two-ips", [("locked", ["10.0.1.41"])])
    nic = azure.network.network_interfaces.get(RG, "vm-two-ips-nic0")
    assert [c.private_ip_address for c in nic.ip_configurations] == ["10.0.1.40", "10.0.1.41"]
    armsim.sim.clear_requests()
    facts = gather(azure, t)
    assert facts.vm.power_state == "stopped"
    ops = [e["operation"] for e in armsim.sim.requests()]
    assert "NetworkInterfaces_ListEffectiveNetworkSecurityGroups" not in ops
    assert ops.count("Subnets_Get") == 1 and ops.count("NetworkSecurityGroups_Get") == 1  # each read once
    f = check("C1", facts)
    assert f.verdict == "present" and "nsg-locked-subnet (subnet) rule deny-https-out" in f.evidence
    plan = egress_plan(azure, t)
    assert [c.resource for c in plan.changes] == ["nsg-locked-subnet/securityRules/allow-azure-backup-443"]
    vm = armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, "vm-two-ips")]
    assert armsim.sim.network.storage_blocked(vm) is not None  # armsim's own judge says so too


def test_a_stopped_vm_whose_second_nic_is_on_a_blocked_subnet_is_blocked(armsim: Server, azure: Azure) -> None:
    t = add_stopped_vm(armsim, azure, "vm-two-nics", [("default", []), ("locked", [])])
    facts = gather(azure, t)
    assert facts.nsgs is not None and {(n.name, n.scope) for n in facts.nsgs} == {("nsg-app", "subnet"),
                                                                                  ("nsg-locked-subnet", "subnet")}
    f = check("C1", facts)
    assert f.verdict == "present" and "nsg-locked-subnet (subnet) rule deny-https-out" in f.evidence
    assert [c.resource for c in egress_plan(azure, t).changes] == [
        "nsg-locked-subnet/securityRules/allow-azure-backup-443"]
