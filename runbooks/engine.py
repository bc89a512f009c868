"""The engine: diagnose → plan (the union of fixes for the causes found) → confirm → apply → verify → report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from remediations.action import Action, ActionParams, OnChange, RunSettings
from remediations.actions import get_action
from remediations.actions.proxy import ProxyProbe, probe_proxy
from remediations.azure import Azure
from remediations.backupjobs import JobView, latest_failure
from remediations.facts import Facts, gather, read_routes
from remediations.model import Change, Outcome, Plan
from remediations.netreads import service_tags, with_firewalls
from remediations.reads import VmView
from remediations.routes import NO_NETWORK_CODES, RouteFacts
from remediations.target import Target

from .catalog import CAUSES, VERIFY, ErrorEntry, lookup, match_error
from .checks.platform import BLOCKS_BACKUP
from .diagnose import Finding, check, decided, diagnose
from .live import BEFORE_WRITE, READING, Step, ended, job_progress
from .stop import follow

__all__ = ["Investigation", "Options", "VmReport", "investigate", "plan_fixes", "run", "slimmed"]

Status = Literal["fixed", "nothing", "planned", "diagnosed", "applied", "failed", "withheld", "manual"]
EXIT = {"fixed": 0, "nothing": 0, "planned": 0, "diagnosed": 0, "applied": 0, "failed": 1, "withheld": 3, "manual": 3}
DRY_RUN = "Dry run: nothing was changed."
Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    """How a fix runs: the error (else the latest failed job's), consent, verification, action options.

    `prompt` (with dry_run): plan only, to ask before applying, so the report is not called a dry run.
    `consent` names whose consent `allow_disruptive` carries; it is shown with each disruptive step that runs."""

    error: str | None = None
    dry_run: bool = False
    prompt: bool = False
    allow_disruptive: bool = False
    consent: str = "allow_disruptive"
    backup: bool = True
    retention_days: int = 30
    egress_mode: str = "service-tag"
    backup_wait_seconds: float = 3600.0
    backup_poll_seconds: float | None = None
    wait_ready_seconds: float = 300.0
    proxy: str | None = None  # the working guest proxy set-guest-proxy sets (fix --proxy)

    def settings(self) -> RunSettings:
        """What every action's Params.for_run may take from these options."""
        return RunSettings(egress_mode=self.egress_mode, retention_days=self.retention_days,
                           wait_ready_seconds=self.wait_ready_seconds, proxy=self.proxy)


@dataclass
class Investigation:
    """Facts, the error and its runbook, the findings, and the previews made while probing."""

    facts: Facts
    entry: ErrorEntry
    error_code: str | None
    matched_by: str
    job: JobView | None
    findings: list[Finding]
    previews: dict[str, Plan] = field(default_factory=dict)

    @property
    def present(self) -> list[Finding]:
        """The causes found, in the runbook's order."""
        return [f for f in self.findings if f.verdict == "present"]


@dataclass
class VmReport:
    """Everything that happened for one VM, ready to render as text or JSON."""

    target: Target
    status: Status
    message: str
    investigation: Investigation | None = None
    plans: list[Plan] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    backup: Outcome | None = None
    manual: list[str] = field(default_factory=list)
    shown: bool = False  # its diagnosis and plan were shown before a prompt: the text then shows what happened
    consent: str | None = None  # whose consent lets its disruptive steps run (None: they are withheld)
    waiting: list[str] = field(default_factory=list)  # fixes that wait for a person's value (Plan.needs_input)

    @property
    def exit_code(self) -> int:
        """0 fixed or nothing to do, 1 failed, 3 a manual or withheld step."""
        return EXIT[self.status]

    def changes(self) -> list[Change]:
        """Every planned change, in order."""
        return [c for p in self.plans for c in p.changes]


def _params(name: str, target: Target, opts: Options, **extra: Any) -> tuple[Action[Any, Any], ActionParams]:
    """The action called `name` and its Params for this run (the action's own `for_run` takes the settings)."""
    action = get_action(name)
    return action, action.Params.for_run(target, opts.settings(), **extra)


def slimmed(report: VmReport) -> VmReport:
    """The report as a fleet keeps it once its VM is done: all that rendering and plan files read, without the raw
    ARM JSON, the NSG rules, the job history and the probes' output behind the findings (issue #13: the memory of a
    500-VM run). The findings keep their evidence; `investigate` is where the facts are used, never afterwards."""
    inv = report.investigation
    if inv is not None:
        f = inv.facts
        inv.facts = replace(f, vm=replace(f.vm, raw={}), nsgs=None, tags=None, health=None, jobs=(), proxy=None,
                            routes=None)
        inv.job = replace(inv.job, raw={}) if inv.job is not None else None
    return report


def _error(opts: Options, job: JobView | None) -> tuple[ErrorEntry, str, str | None]:
    """The runbook to judge, how it was matched, and the error code: --error's, else the latest failed job's."""
    if opts.error:
        entry = lookup(opts.error)
        entry, how = (entry, f"--error {opts.error}") if entry else match_error(opts.error)
        return entry, how, opts.error
    if job is not None:
        entry, how = match_error(job.error_title, job.error_message, job.error_number)
        return entry, how, job.error_code
    entry, how = match_error(None)
    return entry, how, None


def investigate(azure: Azure, target: Target, opts: Options) -> Investigation:
    """Gather facts, know the error, judge every cause of its runbook, resolve in-guest probes."""
    def guest(vm: VmView, jobs: tuple[JobView, ...]) -> ProxyProbe | None:
        """C1.proxy's one read-only Run Command (and the proxy VM's NSGs when it is one), made beside the NSG reads."""
        failed = latest_failure(jobs)
        if "C1.proxy" not in _error(opts, failed)[0].causes:
            return None
        return probe_proxy(azure, vm, target) if failed is not None or opts.error \
            else ProxyProbe(None, skipped="no failed backup to explain")

    facts = gather(azure, target, guest=guest)
    job = facts.last_failed
    entry, how, code = _error(opts, job)
    inv = Investigation(facts, entry, code, how, job, diagnose(facts, entry))
    for i, f in enumerate(inv.findings):
        if f.verdict == "unknown" and f.probe:
            action, params = _params(f.probe, target, opts)
            plan = action.preview(azure, params)
            inv.previews[f.probe] = plan
            evidence = "; ".join(c.reason for c in plan.changes) or plan.reason
            inv.findings[i] = (replace(f, evidence=evidence) if plan.unread  # stays unknown: the guest was not read
                               else decided(f, bool(plan.changes), evidence))
    _judge_routes(azure, inv, opts)
    return inv


def _judge_routes(azure: Azure, inv: Investigation, opts: Options) -> None:
    """C1.route: the effective routes are read only when no cause found so far explains a failure of a running VM."""
    i = next((i for i, f in enumerate(inv.findings) if f.cause == "C1.route" and f.verdict == "unknown"), None)
    if i is None:
        return
    vm = inv.facts.vm
    found = next((f.cause for f in inv.findings if f.verdict == "present"), None)
    why = ("no failed backup to explain" if inv.job is None and not opts.error
           else f"{vm.name} is {vm.power_state or 'not running'}; a NIC has effective routes only while its VM runs"
           if not vm.running else f"{found} already explains the failure" if found else None)
    # The extension said it had no network: the failed job's code, else the error named for the run is that runbook's.
    said = [c for c in (inv.job.error_code if inv.job else None, inv.error_code) if c in NO_NETWORK_CODES]
    named = [c for c in inv.entry.codes if c in NO_NETWORK_CODES]
    no_network = next(iter(said + named), None)
    routes = RouteFacts(skipped=why) if why else read_routes(azure, inv.facts, no_network=no_network)
    if routes.path is not None and routes.path.appliances():  # an Azure Firewall's rules may decide (one list read)
        resolver = inv.facts.tags or service_tags(azure, vm.location)
        routes = with_firewalls(azure, routes, resolver.prefixes(routes.path.tag))
    inv.facts = replace(inv.facts, routes=routes)
    inv.findings[i] = check("C1.route", inv.facts)


def plan_fixes(azure: Azure, inv: Investigation, opts: Options) -> tuple[list[Plan], list[str]]:
    """The plans of every fix for the causes found (probe previews reused), and the manual steps."""
    plans: list[Plan] = []
    manual: list[str] = []
    seen: set[tuple[str, str]] = set()
    for finding in inv.present:
        cause = CAUSES[finding.cause]
        fixed_here = False
        target = finding.on or inv.facts.target  # e.g. the guest's proxy VM, whose own NSG blocks Storage
        for name in cause.fixes if finding.fixes is None else finding.fixes:
            if (name, str(target)) in seen:
                continue
            seen.add((name, str(target)))
            if name in inv.previews and finding.on is None:
                plan = inv.previews[name]
            else:
                action, params = _params(name, target, opts)
                plan = action.preview(azure, params)
            manual.extend(m for m in plan.manual if m not in manual)
            if plan.changes and finding.on is not None:  # say which VM it acts on: not the one diagnosed
                plan.notes.append(f"{name} acts on {target.name} ({target.resource_group}), named by "
                                  f"{finding.cause}, not on {inv.facts.target.name}")
            if plan.changes or plan.needs_input:  # one waiting for a person's value is kept: it holds the proof
                plans.append(plan)
                fixed_here = bool(plan.changes)
        if not fixed_here:
            manual.extend(m for m in (*finding.manual, *cause.manual) if m not in manual)
    return plans, manual


def _unchecked(inv: Investigation) -> list[str]:
    """Manual steps of the causes ARM cannot see (unknown verdicts), in the runbook's order."""
    return [m for f in inv.findings if f.verdict == "unknown" and not f.probe for m in CAUSES[f.cause].manual]


SKEW = timedelta(seconds=60)  # clock skew margin between this machine and Azure's job start times


def _backup_plan(azure: Azure, inv: Investigation, opts: Options, *,
                 fixing: bool) -> tuple[Action[Any, Any], ActionParams, Plan]:
    """The verification backup's action, params (see _backup_params) and read-only preview."""
    action, params = _backup_params(inv, opts, fixing=fixing)
    return action, params, action.preview(azure, params)


def _backup_params(inv: Investigation, opts: Options, *, fixing: bool) -> tuple[Action[Any, Any], ActionParams]:
    """A job proves the fix if it began after this run's last change (now, less SKEW).

    While fixing, jobs listed before the fix prove nothing; without a fix of this run, a job another run began
    meanwhile is followed (docs/concurrency.md)."""
    since = datetime.now(timezone.utc) - SKEW
    seen = tuple(j.id for j in inv.facts.jobs) if fixing else ()
    extra: dict[str, Any] = {"since": since, "exclude_jobs": seen, "wait": True,
                             "wait_seconds": opts.backup_wait_seconds}
    if opts.backup_poll_seconds is not None:
        extra["poll_seconds"] = opts.backup_poll_seconds
    return _params(VERIFY, inv.facts.target, opts, **extra)


def run(azure: Azure, target: Target, opts: Options, *, confirm: Callable[[VmReport], bool] | None = None,
        on_change: OnChange | None = None, say: Say | None = None) -> VmReport:
    """Fix one VM (or, with dry_run, only plan it); `confirm` is asked before anything is applied."""
    say = say or (lambda _line: None)
    try:
        return _run(azure, target, opts, confirm, on_change, say)
    finally:
        ended(say, target.name)  # a live display drops the VM's line


def _run(azure: Azure, target: Target, opts: Options, confirm: Callable[[VmReport], bool] | None,
         on_change: OnChange | None, say: Say) -> VmReport:
    say(Step(target.name, "reading facts", hint=READING))
    inv = investigate(azure, target, opts)
    report, verify = _plan_run(azure, inv, opts)
    if report.status != "planned":
        return report
    if opts.dry_run:
        report.message = "" if opts.prompt else DRY_RUN
        return report
    if confirm is not None and not confirm(report):
        report.status, report.message = "withheld", "Not applied: confirmation declined (use --yes)."
        return report
    _apply_fixes(azure, report, opts, on_change, say)
    if _stopped(report):
        return report
    if verify is None and report.waiting:
        report.status = "manual"
        report.message = f"Applied; not verified: {', '.join(report.waiting)} needs a value only a person can give."
        return report
    if verify is None:
        report.status, report.message = "applied", "Applied; no verification backup (--no-backup)."
        return report
    if any(o.status == "changed" for o in report.outcomes):  # proof must begin after this run's last change
        verify = _backup_params(inv, opts, fixing=True)
    say(Step(target.name, "verifying with an on-demand backup", hint="Ctrl-C stops before the backup is triggered"))
    action, params = verify
    report.backup = action.apply(azure, params, consent=True, on_change=on_change,
                                 progress=follow(target, job_progress(target.name, say)))
    _judge_backup(report, report.backup, inv)
    return report


def _plan_run(azure: Azure, inv: Investigation,
              opts: Options) -> tuple[VmReport, tuple[Action[Any, Any], ActionParams] | None]:
    """The report of the fixes planned (status "planned") or of why none are (a final status); the verification."""
    target = inv.facts.target
    latest = inv.facts.latest
    if latest is not None and latest.succeeded:  # whatever the error was, the VM backs up again
        return VmReport(target, "nothing", "No changes. The VM's latest backup succeeded.", inv), None
    if inv.facts.backup is None:
        return VmReport(target, "manual", f"{target.name} is not protected by Azure Backup; nothing to verify.",
                        inv, manual=["Protect the VM in a Recovery Services vault (Backup > Enable backup)."]), None
    plans, manual = plan_fixes(azure, inv, opts)
    verify: tuple[Action[Any, Any], ActionParams] | None = None
    bplan: Plan | None = None
    waiting = [p.action for p in plans if p.needs_input]  # a fix waits for a person's value: no backup can prove it
    # A cause only a person can fix fails every backup until they act: with no fix planned, no backup is wasted on it.
    blocked = [f.cause for f in inv.present if f.cause in BLOCKS_BACKUP]
    if not inv.present and inv.entry.causes and set(inv.entry.causes) <= BLOCKS_BACKUP:  # ARM cannot see them
        blocked = [f.cause for f in inv.findings if f.verdict == "unknown"]
    if blocked and any(p.changes for p in plans):
        blocked = []
    if opts.backup and not waiting and not blocked:
        action, params, bplan = _backup_plan(azure, inv, opts, fixing=any(p.changes for p in plans))
        verify = (action, params)
        if bplan.changes or bplan.manual:
            plans.append(bplan)
    report = VmReport(target, "planned", "", inv, plans, manual=manual,
                      consent=opts.consent if opts.allow_disruptive else None)
    if not any(p.changes for p in plans) and bplan is not None and bplan.proven_by and not manual:
        # another run's backup began after this run started and succeeded meanwhile (an alert storm's second alert)
        return VmReport(target, "nothing", f"No changes: {bplan.reason} (another run proved the VM).", inv, plans), None
    if not any(p.changes for p in plans):
        held = bplan.reason if bplan is not None and bplan.manual else None  # a job from before this run holds it
        if bplan is not None and held is not None:
            _add_manual(report, bplan.manual)
        _add_manual(report, _unchecked(inv))
        report.status = "manual" if report.manual else "nothing"
        report.message = "No changes." + (" Manual steps remain." if report.manual else "") + (
            f" Not verified: {held}." if held is not None else "") + (
            f" Not verified: {', '.join(waiting)} needs a value only a person can give." if waiting else "") + (
            f" Not verified: a backup fails again until a person acts on {', '.join(blocked)}." if blocked else "")
    report.waiting = waiting
    return report, verify


def _apply_fixes(azure: Azure, report: VmReport, opts: Options, on_change: OnChange | None, say: Say) -> None:
    """Apply every planned fix in order (the verification backup comes later), keeping each Outcome."""
    for plan in report.plans:
        if plan.action == VERIFY:
            continue
        say(Step(report.target.name, f"applying {plan.action}", hint=BEFORE_WRITE))
        action, params = _params(plan.action, _fix_target(report, plan), opts)
        outcome = action.apply(azure, params, consent=opts.consent if opts.allow_disruptive else False,
                               on_change=on_change)
        report.outcomes.append(outcome)
        _add_manual(report, outcome.manual)


def _fix_target(report: VmReport, plan: Plan) -> Target:
    """The VM a plan acts on: the report's, or another VM a finding named (the guest's proxy VM)."""
    findings = report.investigation.findings if report.investigation else []
    return next((f.on for f in findings if f.on is not None and str(f.on) == plan.target), report.target)


def _stopped(report: VmReport) -> bool:
    """When a fix failed or was withheld: say so in the report (its final status) and return True."""
    failed = [o for o in report.outcomes if o.status == "failed"]
    withheld = [o for o in report.outcomes if o.status == "withheld"]
    if failed:
        report.status = "failed"
        report.message = "; ".join(f"{o.action} failed: {o.reason}" for o in failed)
    elif withheld:
        report.status = "withheld"
        report.message = "Withheld: " + ", ".join(o.action for o in withheld) + " needs --allow-disruptive."
        _add_manual(report, [m for o in withheld for m in o.manual])
    return bool(failed or withheld)


def _judge_backup(report: VmReport, b: Outcome, inv: Investigation) -> None:
    """The report's final status from the verification backup: fixed, manual (not verified) or failed."""
    if b.status == "changed" and not b.error_code or b.status == "unchanged" and not b.manual:
        report.status = "fixed"
        job = b.result.get("job_id")
        whose = (f" (it held the VM: this run's trigger was refused as job {b.result['refused_job']})"
                 if b.result.get("refused_job") else " (found running and followed)" if b.result.get("followed")
                 else "")
        report.message = f"Fixed: backup job {job} completed{whose}." if job else f"Fixed: {b.reason}"
    elif b.status == "unchanged":
        report.status = "manual"
        report.message = f"Applied, but not verified: {b.reason}"
        _add_manual(report, b.manual)
    else:
        report.status = "failed"
        report.message = f"Verification backup did not succeed: {b.reason}"
        _add_manual(report, _unchecked(inv))


def _add_manual(report: VmReport, steps: list[str]) -> None:
    """Append manual steps the report does not list yet, in order."""
    report.manual.extend(m for m in steps if m not in report.manual)
