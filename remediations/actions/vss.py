"""restart-vss-writers, restart-vss-service, set-snapshot-without-threads: the VSS causes (C9.writers, C9.service).

All three read the guest with `windows-vss-writers-get` (read-only: the writers as `vssadmin list writers` shows
them, the VSS service, SnapshotWithoutThreads). The guide ("Troubleshoot backup failures on Azure VMs",
ExtensionFailedVssWriterInBadState / ExtensionFailedVssServiceInBadState) restarts the service of every writer not
"[1] Stable", then, if that did not help, sets SnapshotWithoutThreads; for the service it restarts VSS. Its warning
makes both restarts disruptive: "Restarting some services can have an impact on your production environment.
Ensure the approval process is followed and the service is restarted at the scheduled downtime."
The runbook (C9.writers) plans set-snapshot-without-threads before restart-vss-writers: the restart clears the
"Timed out" that calls for the value, and setting it is harmless (runbooks/catalog_codes.py).
Writer names reach `windows-vss-writers-restart` only as its Run Command parameter Writers, each checked here
against WRITER_SERVICES (and again by the script against its own table), never spliced into its text.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..action import ActionParams, Executed, Progress
from ..azure import Azure
from ..errors import BadInput
from ..model import Change, Plan
from .guest import _WindowsGuestAction
from .guest_agent import script_step

__all__ = ["WRITER_SERVICES", "RestartVssService", "RestartVssWriters", "SetSnapshotWithoutThreads", "vss_trouble",
           "writers_param"]

PROBE = "windows-vss-writers-get"
NO_THREADS_KEY = r"HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys"
NO_THREADS_VALUE = "SnapshotWithoutThreads"
GUIDE_NOTE = ("the guide: restarting some services can have an impact on your production environment; follow the "
              "approval process and restart at the scheduled downtime")
# Writer -> the Windows service that hosts it; the same table is in windows-vss-writers-get/-restart.ps1 and
# armsim/vss.py (tests hold them equal). System Writer: CryptSvc (In-Box VSS Writers); SqlServerWriter: the SQL
# Writer Service; the VSS service hosts the Registry, COM+ REGDB, Shadow Copy Optimization and ASR writers.
WRITER_SERVICES: dict[str, str] = {
    "System Writer": "CryptSvc", "SqlServerWriter": "SQLWriter", "WMI Writer": "Winmgmt",
    "Registry Writer": "VSS", "COM+ REGDB Writer": "VSS", "Shadow Copy Optimization Writer": "VSS",
    "ASR Writer": "VSS", "BITS Writer": "BITS", "IIS Config Writer": "AppHostSvc", "IIS Metabase Writer": "IISADMIN",
    "DFS Replication service writer": "DFSR", "Dhcp Jet Writer": "DHCPServer", "Certificate Authority": "CertSvc",
    "FSRM Writer": "srmsvc", "MSSearch Service Writer": "WSearch", "NPS VSS Writer": "IAS", "WINS Jet Writer": "WINS",
    "FRS Writer": "NtFrs",
}
_PENDING = ("StopPending", "StartPending", "PausePending", "ContinuePending")


def writers_param(names: list[str]) -> str:
    """The Writers parameter: known writer names joined by |; BadInput for any other name (nothing is spliced)."""
    unknown = [n for n in names if n not in WRITER_SERVICES]
    if not names or unknown:
        raise BadInput(f"VSS writers {unknown or names!r}: only these can be restarted: {', '.join(WRITER_SERVICES)}")
    return "|".join(names)


def vss_trouble(r: dict[str, Any]) -> str | None:
    """Why the VSS service is in a bad state from what the probe reported (hung, disabled, vssadmin fails), or None."""
    svc = r.get("vss") or {}
    status, start = str(svc.get("status") or ""), str(svc.get("start_type") or "")
    if start == "Disabled":
        return "the VSS service is Disabled"
    if status in _PENDING:
        return f"the VSS service hangs in {status}"
    if r.get("writers_error"):
        return f"vssadmin list writers fails: {r['writers_error']}"
    return None


def _failed(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The writers whose state is not [1] Stable."""
    return [w for w in r.get("writers") or [] if not str(w.get("state") or "").startswith("[1]")]


def _show(w: dict[str, Any]) -> str:
    return f"{w.get('name')} is {w.get('state') or 'in an unknown state'} (last error: {w.get('last_error') or '?'})"


class RestartVssWriters(_WindowsGuestAction):
    """Restart the services hosting the VSS writers that are not [1] Stable (C9.writers); disruptive."""

    name = "restart-vss-writers"
    summary = "restart the Windows services of the VSS writers that are not [1] Stable (vssadmin list writers)"
    probe = PROBE
    subject = "the VSS writers"
    disruptive = True  # the guide: restarting services affects production; needs approval and a downtime
    idempotent: ClassVar[bool] = True

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """One change naming each failed writer and the service it restarts; nothing while VSS itself is bad."""
        plan = Plan(action=self.name, target=str(params.target))
        trouble = vss_trouble(r)
        if trouble:
            plan.reason = f"{trouble} on {name}: the writers cannot be listed; restart-vss-service first"
            return plan
        writers = r.get("writers") or []
        failed = _failed(r)
        if not failed:
            plan.reason = (f"all {len(writers)} VSS writers on {name} are [1] Stable" if writers
                           else f"no VSS writer could be read on {name}" + (
                               ": vssadmin's output is not in English" if r.get("unparsed") else ""))
            return plan
        known = [w for w in failed if w.get("name") in WRITER_SERVICES]
        for w in failed:
            if w not in known:
                plan.manual.append(f"{_show(w)} on {name}: its service is not known here; restart it by hand "
                                   "(net stop, net start) at a scheduled downtime, or restart the VM")
        if not known:
            plan.reason = "; ".join(_show(w) for w in failed) + "; no service of these writers is known here"
            return plan
        names = [str(w["name"]) for w in known]
        services = list(dict.fromkeys(WRITER_SERVICES[n] for n in names))
        each = ", ".join(f"{WRITER_SERVICES[n]} ({n})" for n in names)
        plan.changes.append(Change(
            action=self.name, kind="run", resource=f"{name}/vss-writers", resource_id=vm_id,
            summary=f"restart {each} on {name}",
            reason="; ".join(_show(w) for w in known) + "; the guide restarts the service of each writer that is not "
                   "[1] Stable",
            before={"writers": {str(w["name"]): w.get("state") for w in known}},
            after={"writers": dict.fromkeys(names, "[1] Stable")},
            disruptive=True, data={"script": "windows-vss-writers-restart", "writers": names, "services": services}))
        plan.notes.append(GUIDE_NOTE)
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `windows-vss-writers-restart` with the writers (checked again) as its parameter Writers."""
        names = [str(n) for n in change.data.get("writers") or []]
        out = script_step(azure, params.target, "windows-vss-writers-restart", {"Writers": writers_param(names)})
        after = {str(w.get("name")): w.get("state") for w in out.get("writers") or []}
        done = ", ".join(f"{s.get('service')} ({s.get('before')} -> {s.get('status')})"
                         for s in out.get("restarted") or [])
        states = ", ".join(f"{n} {after.get(n) or 'not listed'}" for n in names)
        return Executed(f"restarted {done} on {params.target.name}; now {states}",
                        {"restarted": out.get("restarted"), "writers": after})


class RestartVssService(_WindowsGuestAction):
    """Restart the Volume Shadow Copy service when it is in a bad state (C9.service); disruptive."""

    name = "restart-vss-service"
    summary = "restart the Volume Shadow Copy service (VSS) when it hangs or fails vssadmin"
    probe = PROBE
    subject = "the VSS service"
    disruptive = True  # the guide restarts it at a scheduled window; writers hosted in VSS restart with it
    idempotent: ClassVar[bool] = True

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """One change when VSS hangs in a pending state or vssadmin fails; a manual step when it is Disabled."""
        plan = Plan(action=self.name, target=str(params.target))
        svc = r.get("vss") or {}
        trouble = vss_trouble(r)
        if trouble is None:
            plan.reason = (f"the VSS service on {name} is {svc.get('status') or 'unknown'} "
                           f"({svc.get('start_type') or 'start type unknown'}) and answers vssadmin")
            return plan
        if svc.get("start_type") == "Disabled":
            plan.reason = f"{trouble} on {name}"
            plan.manual.append(f"set the Volume Shadow Copy service on {name} back to Manual (its default) if it "
                               "was disabled by mistake, then start it")
            return plan
        plan.changes.append(Change(
            action=self.name, kind="run", resource=f"{name}/services/VSS", resource_id=vm_id,
            summary=f"restart the Volume Shadow Copy service (VSS) on {name}",
            reason=f"{trouble}; the guide restarts VSS (net stop VSS, net start VSS)",
            before={"status": svc.get("status"), "start_type": svc.get("start_type")},
            after={"status": "Running", "start_type": svc.get("start_type")},
            disruptive=True, data={"script": "windows-vss-restart"}))
        plan.notes.append(GUIDE_NOTE)
        plan.manual.append(f"if VSS is still in a bad state on {name} after the restart, restart the VM at the "
                           "scheduled downtime")
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `windows-vss-restart`."""
        out = script_step(azure, params.target, "windows-vss-restart")
        how = " (its hung process was ended)" if out.get("killed") else ""
        answers = "answers vssadmin" if out.get("answers") else "does not answer vssadmin yet"
        return Executed(f"VSS on {params.target.name}: {out.get('before')} -> {out.get('status')}{how}; {answers}",
                        {k: out.get(k) for k in ("before", "status", "killed", "answers")})


class SetSnapshotWithoutThreads(_WindowsGuestAction):
    """Set BcdrAgentPersistentKeys SnapshotWithoutThreads = True (REG_SZ) when a VSS writer timed out (C9.writers)."""

    name = "set-snapshot-without-threads"
    summary = "make the backup extension take blob snapshots without threads (SnapshotWithoutThreads=True)"
    probe = PROBE
    subject = "SnapshotWithoutThreads"
    idempotent: ClassVar[bool] = True

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """A change when the value is not True and a writer not [1] Stable timed out (or `force`)."""
        plan = Plan(action=self.name, target=str(params.target))
        reg = r.get("snapshot_without_threads") or {}
        value = reg.get("value") if reg.get("exists") else None
        where = f"{NO_THREADS_KEY}\\{NO_THREADS_VALUE}"
        if value is not None and str(value).strip().lower() == "true":
            plan.reason = f"{where} on {name} is {value} ({reg.get('type') or 'REG_SZ'})"
            return plan
        timed_out = [w for w in _failed(r) if "timed out" in str(w.get("last_error") or "").lower()]
        if not timed_out and not params.force:
            plan.reason = (f"no VSS writer on {name} timed out; {NO_THREADS_VALUE} is the guide's next step only "
                           f"when restarting the writers does not help (it is {value or 'not set'})")
            return plan
        why = "; ".join(_show(w) for w in timed_out) or "forced"
        plan.changes.append(Change(
            action=self.name, kind="add" if value is None else "change",
            resource=f"{name}/registry/{where}", resource_id=vm_id,
            summary=f"set {NO_THREADS_VALUE} = True (REG_SZ) under {NO_THREADS_KEY} on {name}",
            reason=f"{why}; the guide sets {NO_THREADS_VALUE} so that no threads are created for blob snapshots "
                   "when restarting the writers does not resolve it",
            before=None if value is None else {"value": value, "type": reg.get("type")},
            after={"value": "True", "type": "REG_SZ"}, data={"script": "windows-vss-writers-nothreads"}))
        return plan

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `windows-vss-writers-nothreads`."""
        out = script_step(azure, params.target, "windows-vss-writers-nothreads")
        return Executed(f"{NO_THREADS_VALUE} {out.get('before') or '(absent)'} -> {out.get('value')} ({out.get('type')})")
