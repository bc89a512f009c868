"""allow-backup-egress and Azure's network limits: no port 8443, the API's tag names, the NSG-wide prefix limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import mutating
from support.demo import RG, sim_vm
from support.egress import NO_NETWORK, params, put_rule, raw_rule, rules, sim_nsg
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.actions.egress import AllowBackupEgress
from remediations.azure import Azure
from remediations.netlimits import MAX_NSG_PREFIXES, PrefixLimit, check_prefix_room, prefix_counts
from remediations.netrules import NsgView, Rule

STORAGE_EASTUS = ["20.38.98.0/24", "20.47.1.0/24", "20.60.0.0/16", "52.239.152.0/22", "52.240.48.0/20"]
LIMIT_CODE = "SecurityRuleAddressesOrPortsPerSecurityGroupLimitReached"


def filler(name: str, priority: int, count: int, side: str = "destination") -> dict[str, Any]:
    """A rule (someone else's) listing `count` distinct /32 addresses on one side."""
    rule = raw_rule(name, priority, "10.200.0.1", "22", "Allow")
    p = rule["properties"]
    p[f"{side}AddressPrefix"] = ""
    p[f"{side}AddressPrefixes"] = [f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(count)]
    return rule


# --- port 8443 -----------------------------------------------------------------------------------
def test_managed_disk_vm_gets_no_8443_rule(armsim: Server, azure: Azure) -> None:
    """Every demo VM has managed disks; the blocker denies 443 and 8443; only 443 is opened."""
    vm = sim_vm(armsim, "vm-nsg-blocked")
    assert azure.compute.virtual_machines.get(RG, "vm-nsg-blocked").storage_profile.os_disk.managed_disk is not None
    put_rule(armsim, "nsg-blocked", raw_rule("deny-internet-443", 200, "Internet", ["443", "8443"]))
    action, p = AllowBackupEgress(), params("vm-nsg-blocked")
    plan = action.preview(azure, p)
    assert [c.resource for c in plan.changes] == ["nsg-blocked/securityRules/allow-azure-backup-443"]
    out = action.apply(azure, p)
    assert out.status == "changed", out
    assert rules(armsim, "nsg-blocked") == {"deny-internet-443": (200, "Deny"), "allow-azure-backup-443": (199, "Allow")}
    # armsim's causal model needs only 443 (8443 stays denied, and backups work).
    assert armsim.sim.network.storage_blocked(vm, 8443) is not None
    assert armsim.sim.backup.verdict(vm) != NO_NETWORK


# --- service tag names ---------------------------------------------------------------------------
def test_rule_names_the_tag_as_the_service_tags_api_does(armsim: Server, azure: Azure) -> None:
    listed = [v["name"] for v in azure.network.service_tags.list("eastus").as_dict()["values"]]
    assert "Storage.EastUS" in listed and "Storage.eastus" not in listed
    out = AllowBackupEgress().apply(azure, params("vm-nsg-blocked"))
    assert out.status == "changed", out
    stored = sim_nsg(armsim, "nsg-blocked").rules["allow-azure-backup-443"]["properties"]
    assert stored["destinationAddressPrefix"] == "Storage.EastUS"  # armsim keeps what was written, case and all
    assert stored["description"] == "Azure Backup: allow TCP 443 to Storage.EastUS"


def test_a_rule_of_ours_is_rewritten_with_the_apis_tag_name(armsim: Server, azure: Azure) -> None:
    # An earlier version wrote "Storage.eastus", behind the blocker; the rewrite names the tag as the API does.
    put_rule(armsim, "nsg-blocked", raw_rule("allow-azure-backup-443", 300, "Storage.eastus", access="Allow"))
    [c] = AllowBackupEgress().preview(azure, params("vm-nsg-blocked")).changes
    assert c.kind == "change" and c.before["destinationAddressPrefix"] == "Storage.eastus"  # type: ignore[index]
    assert c.after["destinationAddressPrefix"] == "Storage.EastUS"  # type: ignore[index]


def test_one_service_tags_read_per_run(armsim: Server, tmp_path: Path) -> None:
    """A CLI run reads the plan, re-plans to apply and to verify: the region's tags are read once."""
    r = cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", RG, "--yes", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    reads = [e for e in armsim.sim.requests() if e["operation"] == "ServiceTags_List"]
    nsg_reads = [e for e in armsim.sim.requests() if e["operation"] == "NetworkSecurityGroups_Get"]
    assert len(reads) == 1 and len(nsg_reads) >= 3, (reads, nsg_reads)


# --- the NSG-wide prefix limit: armsim -------------------------------------------------------------
def _put(azure: Azure, name: str, priority: int, src: str, dests: list[str]) -> Any:
    body = {"properties": {"protocol": "Tcp", "access": "Allow", "direction": "Outbound", "priority": priority,
                           "sourceAddressPrefix": src, "sourcePortRange": "*", "destinationPortRange": "443",
                           "destinationAddressPrefixes": dests}}
    return azure.network.security_rules.begin_create_or_update(RG, "nsg-blocked", name, body).result()


def test_armsim_refuses_a_rule_that_takes_the_nsg_past_4000_destination_prefixes(armsim: Server,
                                                                                  azure: Azure) -> None:
    put_rule(armsim, "nsg-blocked", filler("many", 300, 3990))  # + deny-internet-443: 3,991 destinations
    ten = STORAGE_EASTUS + [f"52.{i}.0.0/16" for i in range(5)]
    with pytest.raises(HttpResponseError) as err:
        _put(azure, "too-many", 150, "*", ten)
    assert err.value.status_code == 400 and err.value.error is not None
    assert err.value.error.code == LIMIT_CODE
    nsg = sim_nsg(armsim, "nsg-blocked")
    assert err.value.error.message == (f"Network security group {nsg.id} has 4001 DestinationAddressPrefixes. A "
                                       "security group cannot have more than 4000 DestinationAddressPrefixes as per "
                                       "the limit MaxSecurityRuleAddressesOrPortsPerSecurityGroup.")
    assert "too-many" not in nsg.rules
    _put(azure, "just-fits", 150, "*", ten[:9])  # 4,000 exactly
    assert "just-fits" in nsg.rules


def test_armsim_counts_sources_apart_from_destinations(armsim: Server, azure: Azure) -> None:
    put_rule(armsim, "nsg-blocked", filler("many-sources", 300, 3998, side="source"))  # + the blocker's "*"
    _put(azure, "four-thousandth-source", 150, "10.9.9.9", ["20.38.98.0/24"])  # 4,000 sources, 3 destinations
    with pytest.raises(HttpResponseError) as err:
        _put(azure, "one-source-too-many", 151, "10.9.9.10", ["20.38.98.0/24"])
    assert err.value.error is not None and err.value.error.code == LIMIT_CODE
    assert "has 4001 SourceAddressPrefixes" in err.value.error.message


# --- the NSG-wide prefix limit: the action ---------------------------------------------------------
def test_ip_ranges_that_would_not_fit_the_nsg_are_refused_in_one_line(armsim: Server) -> None:
    put_rule(armsim, "nsg-blocked", filler("many", 300, MAX_NSG_PREFIXES - 4))  # + the blocker's "Internet"
    r = cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", RG, "--mode", "ip-ranges", "--yes")
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == (
        "No changes. refused: nsg-blocked holds 3,997 destination prefixes and an NSG may hold 4,000; the allow "
        "rules need 5 more; use --mode service-tag: one Storage.EastUS entry per port instead of its prefixes")
    assert mutating(armsim) == []  # no write sent (armsim would answer 400 LIMIT_CODE)
    # The service tag fits (one entry), and fixes the VM.
    r = cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", RG, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert armsim.sim.network.storage_blocked(sim_vm(armsim, "vm-nsg-blocked")) is None


def test_ip_ranges_that_exactly_fill_the_nsg_are_written(armsim: Server, azure: Azure) -> None:
    put_rule(armsim, "nsg-blocked", filler("many", 300, MAX_NSG_PREFIXES - 6))  # 3,995 + 5 = 4,000
    out = AllowBackupEgress().apply(azure, params("vm-nsg-blocked", mode="ip-ranges"))
    assert out.status == "changed", out
    assert rules(armsim, "nsg-blocked")["allow-azure-backup-443-01"] == (199, "Allow")
    assert armsim.sim.network.storage_blocked(sim_vm(armsim, "vm-nsg-blocked")) is None


# --- the count (pure) ------------------------------------------------------------------------------
def _out(name: str, prio: int, dests: tuple[str, ...], src: tuple[str, ...] = ("*",), default: bool = False) -> Rule:
    return Rule(name, prio, "Outbound", "Allow", "Tcp", source_prefixes=src, dest_prefixes=dests, default=default)


def test_prefix_count_is_nsg_wide_and_skips_rules_the_plan_replaces() -> None:
    many = tuple(f"10.1.{i // 256}.{i % 256}" for i in range(3993))
    old = _out("allow-azure-backup-443-01", 199, ("20.38.98.0/24", "20.47.1.0/24"))  # an earlier, chunked run
    asg = _out("asg", 250, ("asg:/subscriptions/s/applicationSecurityGroups/a",))
    view = NsgView("id", "nsg", (_out("many", 300, many), old, asg, _out("AllowVnetOutBound", 65000, ("x",),
                                                                           default=True)))
    assert prefix_counts(view.rules) == (3, 3995)  # ASG references and default rules are not counted
    new = _out("allow-azure-backup-443-01", 199, tuple(STORAGE_EASTUS))
    check_prefix_room(view, [new])  # 3,993 + 5 replaces 2: fits
    with pytest.raises(PrefixLimit) as err:
        check_prefix_room(view, [new, _out("allow-azure-backup-8443-01", 198, tuple(STORAGE_EASTUS))])
    assert (err.value.side, err.value.held, err.value.adding) == ("destination", 3993, 10)
    sources = NsgView("id", "nsg", (_out("src", 300, ("*",), src=many + ("1.1.1.1",) * 7),))
    with pytest.raises(PrefixLimit) as err:
        check_prefix_room(sources, [new])
    assert (err.value.side, err.value.held, err.value.adding) == ("source", 4000, 1)


def test_diagnosis_names_the_tag_as_the_api_does(armsim: Server, azure: Azure) -> None:
    """C1's evidence: the Service Tags API's name when the tags were read, never `Storage.<lower-case region>`."""
    from remediations.facts import gather
    from remediations.target import Target
    from runbooks.diagnose import check

    target = Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name="vm-nsg-blocked")
    put_rule(armsim, "nsg-blocked", raw_rule("deny-storage", 150, "52.239.152.0/22"))  # a prefix: tags are read
    finding = check("C1", gather(azure, target, jobs=False))
    assert finding.verdict == "present"
    assert finding.evidence == ("outbound TCP 443 to Storage.EastUS denied by nsg-blocked (nic) rule deny-storage "
                                "(priority 150)")
