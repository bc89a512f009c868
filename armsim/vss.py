"""The guest's Volume Shadow Copy Service: its VSS writers, the VSS service, their Run Command scripts, the demo VMs.

Sources (rows in armsim/COVERAGE.md):
- The codes and their fixes: "Troubleshoot backup failures on Azure VMs" (MicrosoftDocs/azure-docs
  articles/backup/backup-azure-vms-troubleshoot.md, ms.date 11/12/2025): ExtensionFailedVssWriterInBadState when a
  writer is not "[1] Stable" in `vssadmin list writers` (restart each such writer's service; then, if that did not
  help, REG_SZ SnapshotWithoutThreads=True under HKLM\\SOFTWARE\\Microsoft\\BcdrAgentPersistentKeys "to prevent the
  threads from being created for blob-snapshots"); ExtensionFailedVssServiceInBadState when the VSS service is in a
  bad state (`net stop VSS`, `net start VSS`).
- Writer states: the VSS_WRITER_STATE enumeration (vss.h; 1 stable, 2-5 waiting, 6-15 failed at a phase), which
  vssadmin prints as "[n] Stable|Waiting for completion|Failed"; last errors "No error", "Timed out",
  "Retryable error", "Non-retryable error".
- Which service hosts a writer (`WRITER_SERVICES`): System Writer runs in Cryptographic Services (CryptSvc)
  (MicrosoftDocs/win32 desktop-src/VSS/in-box-vss-writers.md); SqlServerWriter is the SQL Writer Service, SQLWriter
  (learn.microsoft.com/sql/database-engine/configure-windows/sql-writer-service); the rest are assumed from common
  practice: WMI Writer Winmgmt; Registry, COM+ REGDB, Shadow Copy Optimization and ASR writers the VSS service
  itself; BITS Writer BITS; IIS Config Writer AppHostSvc; IIS Metabase Writer IISADMIN; DFS Replication service
  writer DFSR; Dhcp Jet Writer DHCPServer; Certificate Authority CertSvc; FSRM Writer srmsvc; MSSearch Service
  Writer WSearch; NPS VSS Writer IAS; WINS Jet Writer WINS; FRS Writer NtFrs.

Assumed: the VSS service is "in a bad state" when it hangs in StopPending/StartPending, or answers vssadmin with an
unexpected error (`broken`); a restart brings it back Running (unless Disabled) and makes the writers it hosts
Stable; writers hosted elsewhere stay as they are. A writer marked `times_out` fails the snapshot (Timed out)
whenever the extension takes blob snapshots with threads, i.e. unless SnapshotWithoutThreads is True: restarting
its service makes it Stable, but the backup still fails with ExtensionFailedVssWriterInBadState (the guide's
"if restarting the VSS writers did not resolve the issue"). armsim does not leave the writer failed again after
such a backup (a simplification).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backup import Vault
    from .guest import Guest
    from .network import Subnet
    from .sim import Simulator

__all__ = ["NO_THREADS_KEY", "NO_THREADS_VALUE", "VSS_MUTATES", "VSS_NEEDS", "WRITER_SERVICES", "VssGuest", "Writer",
           "run_vss_script", "seed_demo", "vss_verdict"]

NO_THREADS_KEY = r"HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys"
NO_THREADS_VALUE = "SnapshotWithoutThreads"
STABLE = "[1] Stable"
VSS_SERVICE_ERROR = "Error: A Volume Shadow Copy Service component encountered an unexpected error."

WRITER_SERVICES: dict[str, str] = {
    "System Writer": "CryptSvc", "SqlServerWriter": "SQLWriter", "WMI Writer": "Winmgmt",
    "Registry Writer": "VSS", "COM+ REGDB Writer": "VSS", "Shadow Copy Optimization Writer": "VSS",
    "ASR Writer": "VSS", "BITS Writer": "BITS", "IIS Config Writer": "AppHostSvc", "IIS Metabase Writer": "IISADMIN",
    "DFS Replication service writer": "DFSR", "Dhcp Jet Writer": "DHCPServer", "Certificate Authority": "CertSvc",
    "FSRM Writer": "srmsvc", "MSSearch Service Writer": "WSearch", "NPS VSS Writer": "IAS", "WINS Jet Writer": "WINS",
    "FRS Writer": "NtFrs",
}

VSS_MUTATES = {"windows-vss-writers-get": False, "windows-vss-writers-restart": True, "windows-vss-restart": True,
               "windows-vss-writers-nothreads": True}
_REG64 = ("OpenBaseKey", "[Microsoft.Win32.RegistryView]::Registry64", "SOFTWARE\\Microsoft\\BcdrAgentPersistentKeys",
          "SnapshotWithoutThreads")
VSS_NEEDS: dict[str, tuple[str, ...]] = {
    "windows-vss-writers-get": ("vssadmin.exe list writers", "Writer name:", "State:", "Last error:",
                                "Get-Service -Name 'VSS'", *_REG64, "GetValue"),
    "windows-vss-writers-restart": ("param([string]$Writers)", "$services = @{", "ContainsKey", "Restart-Service",
                                    "vssadmin.exe list writers", "'bad-writer'"),
    "windows-vss-restart": ("Get-Service -Name 'VSS'", "Stop-Service", "WaitForStatus", "Stop-Process",
                            "Start-Service", "'service-disabled'", "vssadmin.exe list writers"),
    "windows-vss-writers-nothreads": (*_REG64, "SetValue", "[Microsoft.Win32.RegistryValueKind]::String", "'True'"),
}


@dataclass
class Writer:
    """A VSS writer as `vssadmin list writers` shows it, and the service that hosts it."""

    name: str
    service: str
    state: str = STABLE
    last_error: str = "No error"
    times_out: bool = False  # its freeze times out while the extension snapshots with threads (see the docstring)

    @property
    def stable(self) -> bool:
        """Whether vssadmin shows it [1] Stable."""
        return self.state.startswith("[1]")


def _default_writers() -> list[Writer]:
    return [Writer(n, WRITER_SERVICES[n]) for n in ("System Writer", "Registry Writer", "COM+ REGDB Writer",
                                                      "Shadow Copy Optimization Writer", "ASR Writer", "WMI Writer",
                                                      "BITS Writer")]


@dataclass
class VssGuest:
    """A Windows guest's VSS: the service's status and start type, whether it answers, its writers, restarts so far."""

    status: str = "Running"
    start_type: str = "Manual"  # VSS starts on demand
    broken: bool = False  # vssadmin gets an unexpected error from the service
    writers: list[Writer] = field(default_factory=_default_writers)
    restarts: dict[str, int] = field(default_factory=dict)  # service -> restarts by the scripts

    @property
    def bad(self) -> str | None:
        """Why the VSS service is in a bad state, or None."""
        if self.start_type == "Disabled":
            return "the VSS service is Disabled"
        if self.status in ("StopPending", "StartPending"):
            return f"the VSS service hangs in {self.status}"
        if self.broken:
            return VSS_SERVICE_ERROR
        return None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for /_armsim/state."""
        return {"status": self.status, "start_type": self.start_type, "broken": self.broken,
                "restarts": dict(self.restarts),
                "writers": [{"name": w.name, "service": w.service, "state": w.state, "last_error": w.last_error,
                             "times_out": w.times_out} for w in self.writers]}


def without_threads(g: Guest) -> bool:
    """Whether SnapshotWithoutThreads is True (REG_SZ, case-insensitive) in the guest's registry."""
    v = g.registry_value(NO_THREADS_KEY, NO_THREADS_VALUE)
    return v is not None and v[1].strip().lower() == "true"


def vss_verdict(g: Guest) -> str | None:
    """The VSS link of the causal model: the service's code first, then the writers'; None when VSS is fine."""
    v = g.vss
    if v.bad:
        return "ExtensionFailedVssServiceInBadState"
    if any(not w.stable for w in v.writers) or (any(w.times_out for w in v.writers) and not without_threads(g)):
        return "ExtensionFailedVssWriterInBadState"
    return None


Outcome = tuple[int, dict[str, Any], str]


def _writers(v: VssGuest) -> list[dict[str, Any]]:
    return [{"name": w.name, "state": w.state, "last_error": w.last_error,
             "service": WRITER_SERVICES.get(w.name)} for w in v.writers]


def _service(v: VssGuest) -> dict[str, Any]:
    return {"name": "VSS", "status": v.status, "start_type": v.start_type}


def _get(g: Guest) -> Outcome:
    v = g.vss
    reg = g.registry_value(NO_THREADS_KEY, NO_THREADS_VALUE)
    threads = {"exists": reg is not None, "value": reg[1] if reg else None, "type": reg[0] if reg else None}
    bad = v.bad
    error = (VSS_SERVICE_ERROR if v.broken else f"Error: the VSS service is {v.status}") if bad else None
    listing = {"writers": [] if bad else _writers(v), "writers_error": error, "unparsed": False}
    return 0, {"vss": _service(v), **listing, "snapshot_without_threads": threads, "view": "Registry64"}, ""


def _restart_service(v: VssGuest, name: str) -> None:
    v.restarts[name] = v.restarts.get(name, 0) + 1
    if name.lower() == "vss":
        v.status, v.broken = "Running", False
    for w in v.writers:
        if w.service.lower() == name.lower():
            w.state, w.last_error = STABLE, "No error"


def _param(params: Mapping[str, str], name: str) -> str | None:
    """A PowerShell parameter (names are case-insensitive)."""
    return next((val for k, val in params.items() if k.lower() == name.lower()), None)


def _restart_writers(g: Guest, params: Mapping[str, str]) -> Outcome:
    v = g.vss
    raw = _param(params, "Writers") or ""
    names = [n for n in raw.split("|") if n]
    unknown = [n for n in names if n not in WRITER_SERVICES]
    if not names or unknown:
        return 2, {"error": "bad-writer", "unknown": unknown, "restarted": []}, \
            "Writers must name known VSS writers, separated by |; nothing was restarted\n"
    if v.bad:
        return 4, {"error": "vss-bad-state", "restarted": []}, f"{v.bad}\n"
    services = list(dict.fromkeys(WRITER_SERVICES[n] for n in names))
    services.sort(key=lambda s: s.lower() == "vss")  # the VSS service last: the others' writers register with it
    before = {s: v.status if s == "VSS" else "Running" for s in services}  # other services: assumed running
    for s in services:
        _restart_service(v, s)
    return 0, {"restarted": [{"service": s, "writers": [n for n in names if WRITER_SERVICES[n] == s],
                              "before": before[s], "status": "Running"} for s in services],
               "writers": _writers(v)}, ""


def _restart_vss(g: Guest) -> Outcome:
    v = g.vss
    before = v.status
    if v.start_type == "Disabled":
        return 3, {"error": "service-disabled", "service": "VSS", "before": before}, "VSS is disabled\n"
    killed = v.status == "StopPending"
    _restart_service(v, "VSS")
    return 0, {"service": "VSS", "before": before, "status": "Running", "start_type": v.start_type,
               "killed": killed, "answers": True}, ""


def _no_threads(g: Guest) -> Outcome:
    reg = g.registry_value(NO_THREADS_KEY, NO_THREADS_VALUE)
    g.registry[(NO_THREADS_KEY.lower(), NO_THREADS_VALUE.lower())] = ("REG_SZ", "True")
    return 0, {"before": reg[1] if reg else None, "value": "True", "type": "REG_SZ", "view": "Registry64"}, ""


def run_vss_script(g: Guest, sid: str, params: Mapping[str, str]) -> Outcome:
    """Apply a VSS script to the guest: (exit code, result JSON without "script", stderr)."""
    if sid == "windows-vss-writers-get":
        return _get(g)
    if sid == "windows-vss-writers-restart":
        return _restart_writers(g, params)
    if sid == "windows-vss-restart":
        return _restart_vss(g)
    return _no_threads(g)


def seed_demo(sim: Simulator, vault: Vault, subnet: Subnet, when: datetime) -> None:
    """vm-vss-writer (System Writer failed, SqlServerWriter timed out) and vm-vss-service (VSS hangs in
    StopPending): each protected with a good backup a day old, then one failed job at `when` (+i minutes)."""
    from .scenarios import _windows, failed_at, protected_vm

    writer = _windows("Windows Server 2022 Datacenter", sql_server=True)
    writer.registry[(r"hklm\software\microsoft\bcdragent", "usevsscopybackup")] = ("REG_SZ", "TRUE")
    writer.vss.writers += [Writer("SqlServerWriter", "SQLWriter", "[9] Failed", "Timed out", times_out=True)]
    system = next(w for w in writer.vss.writers if w.name == "System Writer")
    system.state, system.last_error = "[8] Failed", "Non-retryable error"
    service = _windows("Windows Server 2019 Datacenter")
    service.vss.status = "StopPending"
    specs = [("vm-vss-writer", writer, "ExtensionFailedVssWriterInBadState"),
             ("vm-vss-service", service, "ExtensionFailedVssServiceInBadState")]
    prefix = subnet.prefix.rsplit(".", 1)[0]
    for i, (name, guest, code) in enumerate(specs):
        _, item = protected_vm(sim, vault, name, guest, subnet, f"{prefix}.{10 + i}", when=when)
        failed_at(sim, vault, item, code, when + timedelta(minutes=i))
