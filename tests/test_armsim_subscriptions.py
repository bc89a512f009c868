"""armsim answers an unknown subscription or resource group the way ARM does, on every served route.

A subscription is known when armsim holds at least one resource in it; a resource group when at
least one resource lives in it (case-insensitively). Otherwise: 404 SubscriptionNotFound /
ResourceGroupNotFound, checked once in `Simulator.serve`, before any handler runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import FAST_RETRY, http, mutating

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.network import NSG
from remediations.azure import Azure, AzureConfig
from remediations.errors import arm_error

RG = "rg-demo"
OTHER_SUB = "11111111-2222-3333-4444-555555555555"
ITEM = ("IaasVMContainer;iaasvmcontainerv2;rg-demo;vm-healthy", "VM;iaasvmcontainerv2;rg-demo;vm-healthy")
ALLOW = {"properties": {"protocol": "Tcp", "access": "Allow", "direction": "Outbound", "priority": 150,
                        "sourceAddressPrefix": "*", "sourcePortRange": "*",
                        "destinationAddressPrefix": "Storage.EastUS", "destinationPortRange": "443"}}


def azure_for(armsim: Server, subscription: str) -> Azure:
    """Real SDK clients for `subscription` on the session's armsim."""
    return Azure(AzureConfig(subscription=subscription, arm_endpoint=armsim.endpoint, ca_bundle=armsim.ca_bundle,
                             retry=FAST_RETRY, read_timeout=30))


def arm_404(fn: Callable[[], Any]) -> tuple[str, str]:
    """Run an SDK call that must fail 404; its ARM error code and message."""
    with pytest.raises(HttpResponseError) as e:
        fn()
    assert e.value.status_code == 404, e.value
    err = arm_error(e.value)
    return err.code, err.message


# Each served SDK operation, given a resource group: subscription- and group-scoped alike.
CALLS: dict[str, Callable[[Azure, str], Any]] = {
    "vm get": lambda az, rg: az.compute.virtual_machines.get(rg, "vm-healthy", expand="instanceView"),
    "vm list": lambda az, rg: list(az.compute.virtual_machines.list(rg)),
    "vm instance view": lambda az, rg: az.compute.virtual_machines.instance_view(rg, "vm-healthy"),
    "extension list": lambda az, rg: az.compute.virtual_machine_extensions.list(rg, "vm-healthy"),
    "extension delete": lambda az, rg: az.compute.virtual_machine_extensions.begin_delete(
        rg, "vm-ext-failed", "VMSnapshotLinux").result(),
    "power off": lambda az, rg: az.compute.virtual_machines.begin_power_off(rg, "vm-healthy").result(),
    "run command": lambda az, rg: az.compute.virtual_machines.begin_run_command(
        rg, "vm-healthy", {"commandId": "RunShellScript", "script": ["echo hi"]}).result(),
    "availability": lambda az, rg: az.health.availability_statuses.get_by_resource(
        f"/subscriptions/{az.subscription}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm-healthy"),
    "nsg get": lambda az, rg: az.network.network_security_groups.get(rg, "nsg-blocked"),
    "rule put": lambda az, rg: az.network.security_rules.begin_create_or_update(
        rg, "nsg-blocked", "allow", ALLOW).result(),
    "rule delete": lambda az, rg: az.network.security_rules.begin_delete(rg, "nsg-blocked", "deny-internet-443").result(),
    "nic get": lambda az, rg: az.network.network_interfaces.get(rg, "vm-nsg-blocked-nic"),
    "effective nsgs": lambda az, rg: az.network.network_interfaces.begin_list_effective_network_security_groups(
        rg, "vm-nsg-blocked-nic").result(),
    "subnet get": lambda az, rg: az.network.subnets.get(rg, "vnet-demo", "default"),
    "protected items": lambda az, rg: list(az.backup.backup_protected_items.list("rsv-demo", rg)),
    "protected item": lambda az, rg: az.backup.protected_items.get("rsv-demo", rg, "Azure", *ITEM),
    "backup trigger": lambda az, rg: az.backup.backups.trigger(
        "rsv-demo", rg, "Azure", *ITEM, {"properties": {"objectType": "IaasVMBackupRequest"}}),
    "backup jobs": lambda az, rg: list(az.backup.backup_jobs.list("rsv-demo", rg)),
    "automation job": lambda az, rg: az.automation.job.get(rg, "aa-backup-runbooks", "nope"),
    "automation job create": lambda az, rg: az.automation.job.create(
        rg, "aa-backup-runbooks", "j1", {"properties": {"runbook": {"name": "fan_out"}}}),
}
# Subscription-scoped only (no resource group in the path).
SUB_CALLS: dict[str, Callable[[Azure], Any]] = {
    "backup status": lambda az: az.backup.backup_status.get(
        "eastus", {"resourceId": f"/subscriptions/{az.subscription}/resourceGroups/{RG}/providers/"
                                 "Microsoft.Compute/virtualMachines/vm-healthy", "resourceType": "VM"}),
    "service tags": lambda az: az.network.service_tags.list("eastus"),
}


# --- unknown subscription -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CALLS))
def test_unknown_subscription_through_the_sdk(armsim: Server, name: str) -> None:
    before = armsim.sim.compute.describe()
    code, message = arm_404(lambda: CALLS[name](azure_for(armsim, OTHER_SUB), RG))
    assert (code, message) == ("SubscriptionNotFound", f"The subscription '{OTHER_SUB}' could not be found.")
    assert armsim.sim.compute.describe() == before  # nothing ran
    assert {e["status"] for e in armsim.sim.requests()} == {404}


@pytest.mark.parametrize("name", sorted(SUB_CALLS))
def test_unknown_subscription_on_subscription_scoped_routes(armsim: Server, name: str) -> None:
    code, message = arm_404(lambda: SUB_CALLS[name](azure_for(armsim, OTHER_SUB)))
    assert (code, message) == ("SubscriptionNotFound", f"The subscription '{OTHER_SUB}' could not be found.")


def test_subscription_is_matched_case_insensitively(armsim: Server) -> None:
    sub = "abcdef01-2345-6789-abcd-ef0123456789"
    armsim.sim.network.add(NSG("nsg-hex", "rg-hex", sub, "eastus"))
    assert azure_for(armsim, sub.upper()).network.network_security_groups.get("RG-HEX", "nsg-hex").name == "nsg-hex"


# --- unknown resource group ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CALLS))
def test_unknown_resource_group_through_the_sdk(armsim: Server, azure: Azure, name: str) -> None:
    before = armsim.sim.compute.describe()
    rules = {n: dict(g.rules) for n, g in armsim.sim.network.nsgs.items()}
    code, message = arm_404(lambda: CALLS[name](azure, "rg-nope"))
    assert (code, message) == ("ResourceGroupNotFound", "Resource group 'rg-nope' could not be found.")
    assert armsim.sim.compute.describe() == before
    assert {n: dict(g.rules) for n, g in armsim.sim.network.nsgs.items()} == rules


@pytest.mark.parametrize("name", sorted(CALLS))
def test_known_group_in_any_case_is_served(armsim: Server, azure: Azure, name: str) -> None:
    try:
        CALLS[name](azure, "RG-Demo")
    except HttpResponseError as e:  # the operation's own answer (e.g. a missing job), never the scope check
        assert arm_error(e).code not in ("ResourceGroupNotFound", "SubscriptionNotFound")


def test_missing_resource_in_a_known_group_is_still_resource_not_found(azure: Azure) -> None:
    code, _ = arm_404(lambda: azure.compute.virtual_machines.get(RG, "vm-nope"))
    assert code == "ResourceNotFound"
    code, _ = arm_404(lambda: azure.network.network_security_groups.get(RG, "nsg-nope"))
    assert code == "ResourceNotFound"


def test_refused_writes_are_logged_as_attempts(armsim: Server, azure: Azure) -> None:
    with pytest.raises(HttpResponseError):
        azure.network.security_rules.begin_create_or_update("rg-nope", "nsg-blocked", "allow", ALLOW).result()
    assert [(e["status"], e["operation"]) for e in mutating(armsim)] == [(404, "SecurityRules_CreateOrUpdate")]


# --- the known sets come from the models ---------------------------------------------------------
def test_a_resource_in_a_new_scope_makes_it_known(armsim: Server) -> None:
    az = azure_for(armsim, OTHER_SUB)
    assert arm_404(lambda: list(az.compute.virtual_machines.list("rg-two")))[0] == "SubscriptionNotFound"
    armsim.sim.network.add(NSG("nsg-two", "rg-two", OTHER_SUB, "eastus"))
    assert list(az.compute.virtual_machines.list("RG-TWO")) == []  # the group exists now, with no VMs
    assert az.network.network_security_groups.get("rg-two", "nsg-two").name == "nsg-two"
    assert arm_404(lambda: az.network.network_security_groups.get(RG, "nsg-blocked"))[0] == "ResourceGroupNotFound"
    assert az.network.service_tags.list("eastus")["values"]


def test_empty_scenario_knows_no_subscription(armsim: Server, azure: Azure) -> None:
    armsim.sim.reset("empty")
    for name in CALLS:
        assert arm_404(partial(CALLS[name], azure, RG))[0] == "SubscriptionNotFound", name
    for name in SUB_CALLS:
        assert arm_404(partial(SUB_CALLS[name], azure))[0] == "SubscriptionNotFound", name


# --- every served route, centrally --------------------------------------------------------------
def _path(template: str, **values: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), template)


def _scoped_routes(armsim: Server, param: str) -> list[Any]:
    return [r for r in armsim.sim.router.routes() if "{" + param + "}" in r.template]


def test_every_subscription_scoped_route_checks_the_subscription(armsim: Server) -> None:
    routes = _scoped_routes(armsim, "subscriptionId")
    arm = [r for r in armsim.sim.router.routes() if r.arm]  # not the data-plane webhook endpoint
    tenant = [r for r in arm if not r.template.startswith("/subscriptions/")]
    assert [r.operation for r in tenant] == ["Resources"]  # Resource Graph: tenant level, scoped by its body
    assert len(routes) == len(arm) - len(tenant)  # every other ARM route is under a subscription
    for route in routes:
        path = _path(route.template, subscriptionId=OTHER_SUB) + f"?api-version={route.newest_api}"
        status, body = http(armsim, route.method, path, {} if route.method in ("PUT", "POST") else None)
        assert (status, body["error"]["code"]) == (404, "SubscriptionNotFound"), (route.operation, body)


def test_every_group_scoped_route_checks_the_group(armsim: Server) -> None:
    routes = _scoped_routes(armsim, "resourceGroupName")
    assert len(routes) > 20
    for route in routes:
        path = _path(route.template, subscriptionId=DEMO_SUBSCRIPTION, resourceGroupName="rg-nope")
        status, body = http(armsim, route.method, path + f"?api-version={route.newest_api}",
                            {} if route.method in ("PUT", "POST") else None)
        assert (status, body["error"]) == (404, {"code": "ResourceGroupNotFound",
                                                 "message": "Resource group 'rg-nope' could not be found."}), \
            (route.operation, body)


def test_api_version_is_still_checked_first(armsim: Server) -> None:
    path = f"/subscriptions/{OTHER_SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
    status, body = http(armsim, "GET", path)
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")
