"""Adding an action is a checklist that is true (docs/writing-an-action.md): each place on it is checked here.

`gaps(name)` names every place an action still lacks (registry, contract, catalog or by hand, diagnosis,
the Automation role); it is empty for every built-in action. A toy action defined below walks the list
for real: registered, its Params built as the engine builds them, planned, applied against armsim with
the audit trail, its requests mapped to RBAC actions, and put in the catalog, where the places it lacks
fail by name. Every demo VM is also diagnosed read-only, so a missing allow-list entry or a fix that no
demo failure leads to fails here too.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import FAST_RETRY, mutating
from support.rbac import rbac_action, rbac_table

import remediations.actions
from armsim import DEMO_SUBSCRIPTION
from remediations.action import Action, ActionParams, Executed, Progress, RunSettings
from remediations.actions import ACTION_NAMES, action_class, action_names, get_action, register, unregister
from remediations.azure import Azure, AzureConfig
from remediations.facts import gather
from remediations.model import Change, Plan
from remediations.reads import VmView, read_vm
from remediations.target import Target
from runbooks import diagnose
from runbooks.audit import AuditTrail
from runbooks.catalog import BY_HAND, CAUSES, VERIFY, Cause
from runbooks.engine import Options, investigate, plan_fixes

ROOT = Path(__file__).resolve().parent.parent
AA = ROOT / "azure-automation"
RG = "rg-demo"


# --- the places, as code ------------------------------------------------------------------------
def granted() -> set[str]:
    """What the Automation account's remediator role grants (azure-automation/deploy.json)."""
    return set(json.loads((AA / "deploy.json").read_text(encoding="utf-8"))["variables"]["remediatorActions"])


def runbook_actions() -> set[str]:
    """What a runbook run can apply: every fix the catalog names, and the verification backup."""
    return {a for c in CAUSES.values() for a in c.fixes} | {VERIFY}


def gaps(name: str, facts: Any) -> list[str]:
    """The places action `name` still lacks, each named with the file to edit; [] when the checklist holds."""
    out: list[str] = []
    try:
        cls = action_class(name)
    except KeyError:
        return [f"{name}: not in the registry (remediations/actions/__init__.py)"]
    if not (getattr(cls, "summary", "") and issubclass(cls.Params, ActionParams) and cls.permissions):
        out.append(f"{name}: summary, Params or permissions missing on {cls.__name__}")
    mapped = {a for _, _, a in rbac_table()}
    out += [f"{name}: permission {p} is in no row of azure-automation/rbac-map.json"
            for p in cls.permissions if p not in mapped]
    fixing = [c for c in CAUSES.values() if name in c.fixes]
    if not fixing and name != VERIFY and name not in BY_HAND:
        out.append(f"{name}: no cause in runbooks/catalog.py fixes it, and it is not BY_HAND")
    for cause in fixing:
        try:
            diagnose.check(cause.id, facts)
        except KeyError:
            out.append(f"{name}: cause {cause.id} has no check in runbooks/diagnose.py")
    if name in runbook_actions():
        out += [f"{name}: {p} is not granted by azure-automation/deploy.json (remediatorActions)"
                for p in sorted(set(cls.permissions) - granted())]
    return out


def used_rbac(armsim: Any) -> tuple[set[str], list[str]]:
    """(the RBAC actions armsim's request log needed, the requests rbac-map.json does not map)."""
    log = armsim.sim.requests()
    unmapped = sorted({f"{e['method']} {e['path']}" for e in log if rbac_action(e["method"], e["path"]) is None})
    return {a for e in log if (a := rbac_action(e["method"], e["path"])) is not None}, unmapped


# --- a toy action, outside the package ------------------------------------------------------------
class StartStoppedVm(Action[ActionParams, VmView]):
    """Start a VM that is stopped or deallocated, through the platform (the toy of this checklist)."""

    name: ClassVar[str] = "start-stopped-vm"
    summary: ClassVar[str] = "start a stopped VM through the platform"
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/start/action",
        "Microsoft.Compute/locations/operations/read")

    def read(self, azure: Azure, params: ActionParams) -> VmView:
        """The VM with its instance view."""
        return read_vm(azure, params.target)

    def plan(self, facts: VmView, params: ActionParams) -> Plan:
        """A `run` start when the VM is stopped or deallocated."""
        plan = Plan(action=self.name, target=str(params.target))
        if facts.power_state not in ("stopped", "deallocated"):
            plan.reason = f"{facts.name} is {facts.power_state}"
            return plan
        plan.changes.append(Change(action=self.name, kind="run", resource=facts.name, resource_id=facts.id,
                                   summary=f"start {facts.name}", reason=f"{facts.name} is {facts.power_state}",
                                   before={"power": facts.power_state}, after={"power": "running"}))
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """POST start and wait for it."""
        t = params.target
        azure.call(lambda: azure.compute.virtual_machines.begin_start(t.resource_group, t.name).result())
        return Executed(f"started {t.name}", {"power": "running"})


@pytest.fixture
def toy() -> Iterator[type[StartStoppedVm]]:
    register(StartStoppedVm)
    try:
        yield StartStoppedVm
    finally:
        unregister(StartStoppedVm.name)


def target(name: str) -> Target:
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name=name)


def read_only(armsim: Any) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                             ca_bundle=armsim.ca_bundle, read_only=True, retry=FAST_RETRY))


def demo_vms(armsim: Any) -> list[str]:
    return sorted(n for s, g, n in armsim.sim.compute.vms if s == DEMO_SUBSCRIPTION and g == RG)


# --- every action, every place -------------------------------------------------------------------
def test_every_action_class_in_the_package_is_registered() -> None:
    """An Action subclass with a name in remediations/actions/ that the registry cannot find fails here."""
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(remediations.actions.__path__):
        module = importlib.import_module(f"remediations.actions.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Action) and cls.__module__ == module.__name__ and "name" in cls.__dict__:
                found[cls.name] = cls
    assert found and sorted(found) == sorted(ACTION_NAMES)
    assert all(action_class(n) is cls for n, cls in found.items())


def test_every_built_in_action_passes_the_checklist(armsim: Any, azure: Azure) -> None:
    facts = gather(azure, target("vm-healthy"))
    assert {n: gaps(n, facts) for n in ACTION_NAMES} == {n: [] for n in ACTION_NAMES}
    assert {n for n in ACTION_NAMES if not action_class(n).idempotent} == {"restart-guest-agent", "trigger-backup"}


def test_by_hand_actions_are_not_granted_to_the_automation_role() -> None:
    for name in BY_HAND:
        changes = {p for p in action_class(name).permissions if not p.endswith("/read")}
        assert changes and not changes & granted(), name
        assert name not in runbook_actions()


def test_params_come_from_each_actions_own_model() -> None:
    """The engine passes the run settings; each Params takes what concerns it (no guessing by field names)."""
    settings = RunSettings(egress_mode="ip-ranges", retention_days=7, wait_ready_seconds=12.0,
                           proxy="http://10.0.2.4:3128")
    built = {n: action_class(n).Params.for_run(target("vm-x"), settings) for n in ACTION_NAMES}
    assert all(p.target == target("vm-x") and not p.force for p in built.values())
    assert built["allow-backup-egress"].mode == "ip-ranges"  # type: ignore[attr-defined]
    assert built[VERIFY].retention_days == 7  # type: ignore[attr-defined]
    assert {n for n, p in built.items() if getattr(p, "wait_ready_seconds", None) == 12.0} == \
        {"restart-guest-agent", "upgrade-linux-agent", "set-guest-proxy"}
    assert {n for n, p in built.items() if getattr(p, "proxy", None)} == {"set-guest-proxy"}
    assert Options(egress_mode="ip-ranges", retention_days=7, wait_ready_seconds=12.0,
                   proxy="http://10.0.2.4:3128").settings() == settings


PROXY = "http://10.0.2.4:3128"  # the demo fleet's working proxy VM (vm-proxy)


@cache
def _planned_on(endpoint: str, ca_bundle: str, vms: tuple[str, ...]) -> dict[str, str]:
    """Diagnose every demo VM read-only (the engine's investigate and plan_fixes): action -> first VM it fixes."""
    ro = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=endpoint, ca_bundle=ca_bundle,
                           read_only=True, retry=FAST_RETRY))
    out: dict[str, str] = {}
    opts = Options(proxy=PROXY)  # the working guest proxy, as `fix --proxy` and the demo give it
    for vm in vms:
        inv = investigate(ro, target(vm), opts)
        for plan in plan_fixes(ro, inv, opts)[0]:
            out.setdefault(plan.action, vm)
    return out


def planned_on(armsim: Any) -> dict[str, str]:
    return _planned_on(armsim.endpoint, armsim.ca_bundle, tuple(demo_vms(armsim)))


def test_every_fix_has_a_demo_vm_whose_failure_leads_to_it(armsim: Any) -> None:
    """A read-only diagnosis of the demo fleet plans every fix the catalog names (a POST off the read-only
    allow-list would raise ReadOnlyViolation here)."""
    fixes = {a for c in CAUSES.values() for a in c.fixes}
    assert fixes - set(planned_on(armsim)) == set()
    assert mutating(armsim) == []


@pytest.mark.parametrize("name", ACTION_NAMES)
def test_each_actions_requests_are_mapped_and_declared(armsim: Any, azure: Azure, name: str) -> None:
    """Apply the action where the demo fleet needs it (by hand: forced on vm-healthy); every request it made maps
    to an RBAC action in rbac-map.json that the action declares in `permissions`."""
    where = planned_on(armsim).get(name)
    if name == VERIFY:
        where = planned_on(armsim)["allow-backup-egress"]  # any VM whose backups fail
    cls = action_class(name)
    fast = {"poll_seconds": 0.05} if "poll_seconds" in cls.Params.model_fields else {}
    params = cls.Params.for_run(target(where or "vm-healthy"), RunSettings(proxy=PROXY), force=where is None, **fast)
    armsim.sim.clear_requests()
    out = get_action(name).apply(azure, params, consent=True)
    assert out.status == "changed", out
    used, unmapped = used_rbac(armsim)
    assert unmapped == [], "add these requests to azure-automation/rbac-map.json"
    assert used - set(cls.permissions) == set(), f"declare them in {cls.__name__}.permissions"


# --- the toy walks the list ---------------------------------------------------------------------------
def test_a_toy_action_walks_the_checklist(armsim: Any, azure: Azure, toy: type[StartStoppedVm], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the registry
    assert toy.name in action_names() and type(get_action(toy.name)) is toy
    with pytest.raises(ValueError, match="registered already"):
        register(toy)
    # the engine's parameters: nothing to map, the base model takes the target
    params = toy.Params.for_run(target("vm-rdp-shutdown"), Options().settings())
    # plan: read-only, with the action's idempotent flag
    plan = get_action(toy.name).preview(read_only(armsim), params)
    assert [c.kind for c in plan.changes] == ["run"] and plan.idempotent and plan.model_dump()["idempotent"]
    assert get_action(toy.name).preview(azure, toy.Params.for_run(target("vm-healthy"), RunSettings())).empty
    # apply over HTTPS against armsim, audited
    audit = AuditTrail(tmp_path / "audit.jsonl")
    armsim.sim.clear_requests()
    out = get_action(toy.name).apply(azure, params, on_change=audit.recorder(params.target))
    assert out.status == "changed" and out.evidence == ["started vm-rdp-shutdown"], out
    assert out.result == {"power": "running"} and out.correlation_ids
    assert armsim.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, "vm-rdp-shutdown")].power == "running"
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["outcome"]) for a in lines] == [(toy.name, "sending"), (toy.name, "applied")]
    assert lines[1]["correlation_id"] == out.correlation_ids[0]
    # RBAC: every request mapped, and declared
    used, unmapped = used_rbac(armsim)
    assert unmapped == [] and used == set(toy.permissions)
    # idempotent: a second run sends nothing
    armsim.sim.clear_requests()
    assert get_action(toy.name).apply(azure, params).status == "unchanged" and mutating(armsim) == []
    # the catalog: not there yet, so the checklist says where to add it
    facts = gather(azure, target("vm-healthy"))
    assert gaps(toy.name, facts) == [f"{toy.name}: no cause in runbooks/catalog.py fixes it, and it is not BY_HAND"]
    # in the catalog under a new cause: the diagnosis check and the role's grant are what it lacks now
    monkeypatch.setitem(CAUSES, "C9", Cause("C9", "VM stopped by mistake", fixes=(toy.name,)))
    assert gaps(toy.name, facts) == [
        f"{toy.name}: cause C9 has no check in runbooks/diagnose.py",
        f"{toy.name}: Microsoft.Compute/virtualMachines/start/action is not granted by azure-automation/deploy.json "
        "(remediatorActions)"]


def test_the_registry_is_explicit_and_cleans_up(toy: type[StartStoppedVm]) -> None:
    unregister(toy.name)
    assert toy.name not in action_names()
    with pytest.raises(KeyError, match="unknown action 'start-stopped-vm'"):
        get_action(toy.name)
    with pytest.raises(KeyError):
        unregister("power-off")  # built-ins stay
    register(toy)  # the fixture removes it again


def test_the_doc_lists_every_action_with_its_flags() -> None:
    text = (ROOT / "docs" / "writing-an-action.md").read_text(encoding="utf-8")
    rows = {n: (i, d) for n, i, d in re.findall(r"^\| ([a-z-]+) \| (yes|no) \| ([^|]+?) \|", text, re.M)}
    assert {n: i for n, (i, _) in rows.items()} == \
        {n: "yes" if action_class(n).idempotent else "no" for n in ACTION_NAMES}
    assert {n for n, (_, d) in rows.items() if d != "no"} == {n for n in ACTION_NAMES if action_class(n).disruptive}
