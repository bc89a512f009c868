"""allow-backup-egress: add outbound NSG allow rules so the backup extension reaches the region's Storage.

Read the VM's NICs, subnets and NSGs; judge TCP egress to the region's Storage prefixes with the pure
evaluator in `remediations.netrules`; place one allow rule per blocked port just ahead of the blocking
rule, its destination the Storage tag as the Service Tags API names it (`Storage.EastUS`) or that tag's
prefixes; refuse when the prefixes would not fit the NSG (`remediations.netlimits`); write each rule with a
child-rule PUT guarded by If-None-Match / If-Match. A rule priority taken, an etag gone stale or a
superseded write re-reads and re-plans.

One writer per NSG in a process: an `apply` whose plan writes an NSG holds that NSG's lock from its plan to its
verification; another worker of the process (a fleet fix of many VMs behind one NSG) that plans a write on it
waits for the lock, then re-reads and re-plans, and finds the rule there: no second PUT, no 412 from a stale
etag or If-None-Match. Other processes are still guarded by the If-None-Match / If-Match preconditions.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from ..action import Action, ActionParams, Executed, OnChange, Progress, RunSettings
from ..azure import Azure
from ..errors import arm_error
from ..model import Change, Outcome, Plan
from ..netlimits import MAX_NSG_PREFIXES, PrefixLimit, check_prefix_room
from ..netrules import (
    WIRESERVER_IP,
    Blocked,
    NoFreePriority,
    NsgView,
    Rule,
    TagResolver,
    UnknownTag,
    egress_verdicts,
    plan_allow_rules,
    same_rule,
    storage_tag,
    wireserver_blocks,
)
from ..polling import check_stop
from ..target import Target
from ..verdicts import BACKUP_PORTS
from .egress_read import EgressFacts, NsgFacts, read_egress

__all__ = ["NAME_PREFIX", "AllowBackupEgress", "EgressParams"]

NAME_PREFIX = "allow-azure-backup"
_OURS = re.compile(rf"^{NAME_PREFIX}-\d+(-\d+)?$", re.IGNORECASE)
_PIN = "~held"  # renames an existing rule of ours in the planning view so its priority counts as taken
# Write errors after which the unit re-reads and re-plans (beyond the transient ones azure.py retries).
_REPLAN_CODES = frozenset({
    "securityruleconflict", "preconditionfailed", "preconditionfailedetagmismatch", "canceled",
    "canceledandsupersededduetoanotheroperation", "operationpreempted", "anotheroperationinprogress",
    "retryableerror", "retryableerrorduetoanotheroperation",
})


class EgressParams(ActionParams):
    """Which VM, the destination form (service tag or IP ranges) and the ports; `force` is moot."""

    # ports None: 443 only. Port 8443 (a 2017 article, for managed disks) is obsolete: "You no longer have
    # to unblock port 8443" (docs maintainer, MicrosoftDocs/azure-docs.ja-jp issue #292), and 443 is "the only
    # port required" (MicrosoftDocs/azure-docs issue #29625). `force` changes nothing: with no blocking rule
    # there is nothing to place an allow rule ahead of.

    mode: Literal["service-tag", "ip-ranges"] = "service-tag"
    ports: tuple[int, ...] | None = None

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("ports must name at least one port (or be omitted)")
        bad = [p for p in v if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"ports must be 1-65535, not {bad}")
        return tuple(dict.fromkeys(v))

    @classmethod
    def for_run(cls, target: Target, settings: RunSettings, **values: Any) -> EgressParams:
        """A run's egress mode (service tag or IP ranges)."""
        return cls.model_validate({"target": target, "mode": settings.egress_mode, **values})


_LOCKS: dict[str, threading.Lock] = {}  # NSG id (lower-case) -> its writer's lock, for this process
_LOCKS_GUARD = threading.Lock()
_HELD = threading.local()  # .locks: {NSG id: lock} held by this thread's apply; absent outside apply


def _nsg_lock(nsg_id: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(nsg_id.lower(), threading.Lock())


def _nsgs_written(plan: Plan) -> set[str]:
    return {c.resource_id.rsplit("/securityRules/", 1)[0].lower() for c in plan.changes if c.resource_id}


def _acquire(lock: threading.Lock, deadline: float) -> bool:
    """Wait for `lock` until `deadline` (Ctrl-C stops the wait); whether it was taken."""
    while True:
        check_stop("waiting for another writer of the NSG")
        if lock.acquire(timeout=max(0.0, min(0.5, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False


def _ours(name: str) -> bool:
    return bool(_OURS.match(name))


def _settled(raw: Any) -> bool:
    state = (raw.get("properties") or {}).get("provisioningState")
    return state in (None, "", "Succeeded")


def _dest(rule: Rule) -> str:
    shown = list(rule.dest_prefixes[:3])
    more = len(rule.dest_prefixes) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _describe(rule: Rule) -> str:
    return (f"{rule.direction} {rule.access} {rule.protocol.upper()} {','.join(rule.dest_ports)} → "
            f"{_dest(rule)} priority {rule.priority}")


def _views(nsg: NsgFacts) -> tuple[NsgView, NsgView]:
    """(verdict view, planning view): the first leaves out rules of ours still being written by someone."""
    full = NsgView.from_arm(nsg.raw, nsg.scope)
    unsettled = {str(r.get("name", "")).lower() for r in nsg.custom_rules()
                 if _ours(str(r.get("name", ""))) and not _settled(r)}
    verdict = dataclasses.replace(full, rules=tuple(r for r in full.rules
                                                    if r.default or r.name.lower() not in unsettled))
    return verdict, full


def _place(view: NsgView, blocked: list[Blocked], **kw: Any) -> list[Rule]:
    """plan_allow_rules, re-run so no planned rule lands on the priority of another existing rule of ours."""
    planned = plan_allow_rules(view, blocked, **kw)
    for _ in range(len(view.rules)):
        held = {r.priority: r for r in view.rules if not r.default and r.direction == "Outbound"}
        clash = next((held[p.priority].name for p in planned
                      if p.priority in held and held[p.priority].name.lower() != p.name.lower()), None)
        if clash is None:
            break
        # Pin one holder at a time (pinning both sides of a swap would shift every rule again).
        view = dataclasses.replace(view, rules=tuple(
            dataclasses.replace(r, name=r.name + _PIN) if r.name == clash else r for r in view.rules))
        planned = plan_allow_rules(view, blocked, **kw)
    return planned


def _no_room(e: PrefixLimit, tag: str, mode: str) -> str:
    """The one line that refuses a plan whose rules would not fit the NSG's prefix limit."""
    hint = (f"use --mode service-tag: one {tag} entry per port instead of its prefixes" if mode == "ip-ranges"
            else "free some of its prefixes first")
    return (f"refused: {e.nsg_name} holds {e.held:,} {e.side} prefixes and an NSG may hold {MAX_NSG_PREFIXES:,}; "
            f"the allow rules need {e.adding:,} more; {hint}")


def _blocker_text(nsg_name: str, rule: Rule) -> str:
    kind = "default rule" if rule.default else "rule"
    return f"{nsg_name} {kind} {rule.name} (priority {rule.priority})"


class AllowBackupEgress(Action[EgressParams, EgressFacts]):
    """Outbound allow rules to the region's Storage tag ahead of whatever NSG rule blocks backup egress."""

    name: ClassVar[str] = "allow-backup-egress"
    summary: ClassVar[str] = "allow outbound TCP 443 to the region's Storage on the blocking NSGs"
    Params: ClassVar[type[ActionParams]] = EgressParams
    permissions: ClassVar[tuple[str, ...]] = (
        "Microsoft.Compute/virtualMachines/read", "Microsoft.Network/networkInterfaces/read",
        "Microsoft.Network/virtualNetworks/subnets/read", "Microsoft.Network/networkSecurityGroups/read",
        "Microsoft.Network/locations/serviceTags/read", "Microsoft.Network/networkSecurityGroups/securityRules/write",
        "Microsoft.Network/networkSecurityGroups/securityRules/read", "Microsoft.Network/locations/operations/read")

    def read(self, azure: Azure, params: EgressParams) -> EgressFacts:
        """GET the VM, its NICs, their subnets, each distinct NSG and the region's service tags."""
        return read_egress(azure, params.target)

    def apply(self, azure: Azure, params: EgressParams, *, consent: bool | str = False,
              on_change: OnChange | None = None, progress: Progress | None = None) -> Outcome:
        """Action.apply, as this process's one writer of every NSG its plan changes (held until it ends)."""
        if getattr(_HELD, "locks", None) is not None:  # nested: the outer apply holds the locks
            return super().apply(azure, params, consent=consent, on_change=on_change, progress=progress)
        _HELD.locks = {}
        try:
            return super().apply(azure, params, consent=consent, on_change=on_change, progress=progress)
        finally:
            held, _HELD.locks = _HELD.locks, None
            for lock in held.values():
                lock.release()

    def preview(self, azure: Azure, params: EgressParams) -> Plan:
        """Read, then plan; inside `apply`, also take the lock of each NSG the plan writes: a lock another worker
        holds is waited for, and the facts are read again (that worker may have written the rule meanwhile)."""
        held: dict[str, threading.Lock] | None = getattr(_HELD, "locks", None)
        plan = super().preview(azure, params)
        if held is None:  # a dry run or a diagnosis: nothing is written, nothing is held
            return plan
        deadline = time.monotonic() + azure.config.operation_seconds
        while True:
            need = _nsgs_written(plan) - held.keys()
            if not need:
                return plan
            taken = {n: _nsg_lock(n) for n in need}
            got = {n: lock for n, lock in taken.items() if lock.acquire(blocking=False)}
            held.update(got)
            if len(got) == len(need):
                return plan
            for lock in held.values():  # never wait while holding: release all, take all in one order
                lock.release()
            wanted = sorted(need | held.keys())
            held.clear()
            for n in wanted:
                if not _acquire(_nsg_lock(n), deadline):
                    return plan  # past the deadline: the write's preconditions guard it (If-None-Match / If-Match)
                held[n] = _nsg_lock(n)
            plan = super().preview(azure, params)  # another writer may have written it meanwhile

    def plan(self, facts: EgressFacts, params: EgressParams) -> Plan:
        """Allow rules for every NSG that denies TCP egress to the region's Storage tag; pure."""
        target = str(params.target)
        ports = params.ports or BACKUP_PORTS
        resolver = facts.resolver()
        views = {n.id.lower(): _views(n) for n in facts.nsgs}
        chains = facts.chains()
        notes = self._notes(chains, views, resolver)

        def empty(reason: str, manual: list[str] | None = None) -> Plan:
            return Plan(action=self.name, target=target, reason=reason, notes=notes, manual=manual or [])

        tcp = f"outbound TCP {', '.join(map(str, ports))}"
        if not facts.nsgs:
            return empty(f"{tcp} is allowed: no NSG is attached to the NICs or subnets of {facts.vm_name}")
        try:
            tag = storage_tag(resolver, facts.location)
        except UnknownTag as e:
            return empty(f"cannot judge {tcp} to the region's Storage: {e}",
                         [f"check that the Service Tags API lists a Storage tag for region {facts.location!r}"])
        flows = f"{tcp} to {tag}"
        blocked: list[Blocked] = []
        try:
            for ip, chain in chains:
                blocked += egress_verdicts([views[n.id.lower()][0] for n, _ in chain], region=facts.location,
                                           ports=ports, resolver=resolver, src_ip=ip or None)
        except UnknownTag as e:
            return empty(f"cannot judge {flows}: {e}",
                         [f"check that {tag} exists for region {facts.location!r} in the Service Tags API"])
        if not blocked:
            names = ", ".join(n.name for n in facts.nsgs)
            return empty(f"{flows} is allowed by every NSG on {facts.vm_name} ({names})")
        changes: list[Change] = []
        stuck: list[str] = []
        manual: list[str] = []
        for nsg in facts.nsgs:
            mine = [b for b in blocked if b.nsg_id.lower() == nsg.id.lower()]
            if not mine:
                continue
            try:
                planned = _place(views[nsg.id.lower()][1], mine, region=facts.location, mode=params.mode,
                                 resolver=resolver, name_prefix=NAME_PREFIX)
                check_prefix_room(views[nsg.id.lower()][1], planned)
            except PrefixLimit as e:
                how = "with the service-tag mode" if params.mode == "ip-ranges" else "after freeing prefixes there"
                return empty(_no_room(e, tag, params.mode), [f"allow {flows} on {nsg.name} {how}"])
            except NoFreePriority as e:
                blocked_ports = ", ".join(str(p) for p in sorted({b.port for b in mine}))
                stuck.append(str(e))
                manual.append(f"renumber the rules of {nsg.name} to free a priority ahead of {e.blocker.name}, "
                              f"or allow outbound TCP {blocked_ports} to {tag} there by hand")
                continue
            changes += self._changes(nsg, planned, mine, tag)
        if stuck:
            return empty(f"cannot place an allow rule for {flows}: " + "; ".join(stuck), manual)
        if not changes:  # blocked, yet every rule we would write is already there as planned
            return empty(f"{flows} is blocked although the allow rules are in place; see notes",
                         [f"inspect the NSGs of {facts.vm_name}: " + "; ".join(
                             f"{b.nsg_name} denies TCP {b.port} via {b.rule.name}" for b in blocked)])
        return Plan(action=self.name, target=target, changes=changes, notes=notes)

    def _changes(self, nsg: NsgFacts, planned: list[Rule], blocked: list[Blocked], tag: str) -> list[Change]:
        blockers: dict[int, Rule] = {}
        for b in blocked:
            if b.port not in blockers or b.rule.priority < blockers[b.port].priority:
                blockers[b.port] = b.rule
        out: list[Change] = []
        for rule in planned:
            port = int(rule.dest_ports[0])
            raw = nsg.rule(rule.name)
            existing = Rule.from_arm(raw, default=False) if raw is not None else None
            if existing is not None and _settled(raw) and same_rule(existing, rule):
                continue
            reason = f"outbound TCP {port} to {tag} is denied by {_blocker_text(nsg.name, blockers[port])}"
            summary = f"rule {_describe(rule)}"
            if existing is not None:
                summary += f" (was {_describe(existing)})"
                if not _settled(raw):
                    state = (raw.get("properties") or {}).get("provisioningState")  # type: ignore[union-attr]
                    reason += f"; {rule.name} is {state}, not Succeeded"
            body = rule.to_arm()
            out.append(Change(
                action=self.name, kind="add" if existing is None else "change",
                resource=f"{nsg.name}/securityRules/{rule.name}", resource_id=f"{nsg.id}/securityRules/{rule.name}",
                summary=summary, reason=reason,
                before=existing.to_arm()["properties"] if existing is not None else None, after=body["properties"],
                data={"resource_group": nsg.resource_group, "nsg": nsg.name, "rule": rule.name, "body": body,
                      "etag": nsg.rule_etag(rule.name) if existing is not None else None}))
        return out

    @staticmethod
    def _notes(chains: list[Any], views: dict[str, tuple[NsgView, NsgView]], resolver: TagResolver) -> list[str]:
        notes: list[str] = []
        for ip, chain in chains:
            for nsg, _scope in chain:
                for rule in wireserver_blocks(views[nsg.id.lower()][0].rules, resolver, src_ip=ip or None):
                    note = (f"{_blocker_text(nsg.name, rule)} denies outbound TCP to {WIRESERVER_IP} (the Azure "
                            "platform endpoint the guest agent needs); not changed by this action, fix it by hand")
                    if note not in notes:
                        notes.append(note)
        return notes

    def execute(self, azure: Azure, params: EgressParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """PUT one security rule (If-None-Match: * to add, If-Match: <rule etag> to change) and wait for it."""
        d = change.data
        headers = {"If-None-Match": "*"} if change.kind == "add" else {"If-Match": d.get("etag") or "*"}

        def put() -> Any:
            poller = azure.network.security_rules.begin_create_or_update(
                d["resource_group"], d["nsg"], d["rule"], d["body"], headers=headers)
            return poller.result()

        result = azure.call(put)
        props = (result.as_dict() if hasattr(result, "as_dict") else {}).get("properties") or {}
        priority = props.get("priority", d["body"]["properties"]["priority"])
        return Executed(f"{change.resource} {'created' if change.kind == 'add' else 'updated'} at priority {priority}")

    def also_retry(self, exc: BaseException) -> bool:
        """A taken priority, a stale etag, a superseded or preempted write: re-read and re-plan."""
        from azure.core.exceptions import HttpResponseError

        if not isinstance(exc, HttpResponseError):
            return False
        e = arm_error(exc)
        return e.status == 412 or e.code.lower() in _REPLAN_CODES or (e.outer_code or "").lower() in _REPLAN_CODES
