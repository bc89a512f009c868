"""Windows in-guest fixes of issue #14 (C10, C11): .NET strong crypto, host snapshots, COM+ and MSDTC.

Source: "Troubleshoot backup failures on Azure VMs" (MicrosoftDocs/azure-docs articles/backup/
backup-azure-vms-troubleshoot.md, ms.date 11/12/2025), sections ExtensionSnapshotFailedNoSecureNetwork,
ExtensionFailedTimeoutVMNetworkUnresponsive and ExtensionSnapshotFailedCOM / ExtensionInstallationFailedCOM /
ExtensionInstallationFailedMDTC. Every read and write is a fixed script of remediations/scripts/ run through
Run Command (docs/run-command-scripts.md); the gate and the steps are guest.py's.

Only repair-com-msdtc's MSDTC step is disruptive: changing MSDTC's logon account takes effect at a restart of
MSDTC, which aborts the distributed transactions in flight, and the guide then restarts COM+ System Application,
which stops the COM+ applications running; it needs consent. Starting a stopped service, and the registry values
of the two other fixes (read by a process when it starts; nothing is restarted), are not.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..action import ActionParams, Executed, Progress
from ..azure import Azure
from ..backupjobs import latest_failure
from ..backupreads import backup_item, recent_jobs
from ..model import Change, Plan
from .guest import _WindowsGuestAction
from .guest_agent import GuestFacts, script_step

TIMEOUT_CODE = "ExtensionFailedTimeoutVMNetworkUnresponsive"  # the code whose fix the host snapshot keys are

__all__ = ["RepairComMsdtc", "SetSnapshotFromHost", "SetStrongCrypto"]

BCDR_KEY = r"HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys"
HOST_VALUES = {"SnapshotMethod": "firstHostThenGuest", "CalculateSnapshotTimeFromHost": "True"}
NET4 = r"HKLM\SOFTWARE\Microsoft\.NETFramework\v4.0.30319"
NETWORK_SERVICE = r"NT AUTHORITY\NetworkService"


def _plan(action: str, params: ActionParams, **kw: Any) -> Plan:
    return Plan(action=action, target=str(params.target), **kw)


class SetStrongCrypto(_WindowsGuestAction):
    """Set SchUseStrongCrypto = 1 (REG_DWORD) under every .NET Framework key present (C10.tls, E14)."""

    name = "set-strong-crypto"
    summary = "turn on .NET strong cryptography (SchUseStrongCrypto=1) so the backup extension can use TLS 1.2"
    probe = "windows-crypto-get"
    subject = ".NET strong cryptography"

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """A change when a present .NET key lacks SchUseStrongCrypto = DWORD 1 while SCHANNEL disables TLS 1.0 and
        1.1 (or `force`); nothing without .NET 4."""
        keys = [k for k in r.get("keys") or [] if k.get("exists")]
        tls = "TLS 1.0 and 1.1 are disabled in SCHANNEL" if r.get("legacy_tls_disabled") else \
            "TLS 1.0/1.1 are not disabled in SCHANNEL"
        if not any(k.get("key", "").lower() == NET4.lower() for k in keys):
            return _plan(self.name, params, reason=f"{NET4} is absent on {name}: .NET Framework 4 is not installed",
                         manual=[f"install .NET Framework 4.5 or later on {name} (the backup extension needs it)"])
        off = [k for k in keys if not (k.get("type") == "REG_DWORD" and str(k.get("value")).strip() == "1")]
        if not off:
            return _plan(self.name, params, reason=f"SchUseStrongCrypto is 1 under every .NET key on {name} ({tls})")
        if not r.get("legacy_tls_disabled") and not params.force:
            return _plan(self.name, params, reason=f"SchUseStrongCrypto is not 1 under {len(off)} .NET key(s) on {name}, "
                                                   f"but {tls}: .NET can still open a channel (force sets it anyway)")
        change = Change(
            action=self.name, kind="change", resource=f"{name}/registry/.NETFramework/SchUseStrongCrypto",
            resource_id=vm_id, summary=f"set SchUseStrongCrypto = 1 (REG_DWORD) under {len(off)} .NET key(s) on {name}",
            reason=(f"SchUseStrongCrypto is not 1 under {', '.join(k['key'] for k in off)}; {tls}: without strong "
                    "crypto .NET may offer only older protocols and the extension cannot open a secure channel"),
            before={k["key"]: k.get("value") for k in off}, after={k["key"]: "1" for k in off},
            data={"script": "windows-crypto-set"})
        return _plan(self.name, params, changes=[change])

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `windows-crypto-set`."""
        out = script_step(azure, params.target, "windows-crypto-set")
        changed = out.get("changed") or []
        return Executed(f"SchUseStrongCrypto = 1 (REG_DWORD) written under {len(changed)} key(s): "
                        + (", ".join(changed) or "none"), {"changed": changed})


class SetSnapshotFromHost(_WindowsGuestAction):
    """Make the backup extension snapshot through the host (BcdrAgentPersistentKeys; C10.host, E15)."""

    name = "set-snapshot-from-host"
    summary = "take backup snapshots through the host (SnapshotMethod=firstHostThenGuest, CalculateSnapshotTimeFromHost=True)"
    probe = "windows-bcdr-keys-get"
    subject = "the host snapshot keys"
    permissions: ClassVar[tuple[str, ...]] = (
        *_WindowsGuestAction.permissions, "Microsoft.RecoveryServices/locations/backupStatus/action",
        "Microsoft.RecoveryServices/Vaults/backupJobs/read")

    def read(self, azure: Azure, params: ActionParams) -> GuestFacts:
        """The keys in the guest, and the code of the VM's latest failed backup (only it shows slow network calls)."""
        facts = super().read(azure, params)
        if facts.result is None:
            return facts
        item = backup_item(azure, facts.vm)
        jobs = recent_jobs(azure, item, facts.vm.name or params.target.name) if item else ()
        failed = latest_failure(jobs)
        return GuestFacts(facts.vm, {**facts.result, "failed_code": failed.error_code if failed else None})

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """A change when either value is absent, not REG_SZ, or not the guide's (compared case-insensitively), and the
        latest failed backup timed out in the guest's network calls (or `force`)."""
        values = r.get("values") or {}
        now = {n: (values.get(n) or {}).get("value") for n in HOST_VALUES}
        wrong = [n for n, want in HOST_VALUES.items()
                 if (values.get(n) or {}).get("type") != "REG_SZ" or str(now[n] or "").strip().lower() != want.lower()]
        if not wrong:
            return _plan(self.name, params, reason=f"{BCDR_KEY} on {name} has SnapshotMethod = {now['SnapshotMethod']} "
                                                   f"and CalculateSnapshotTimeFromHost = "
                                                   f"{now['CalculateSnapshotTimeFromHost']}: snapshots go through the host")
        code = r.get("failed_code")
        if code != TIMEOUT_CODE and not params.force:
            said = f"reports {code}" if code else "is not a failure" if "failed_code" in r else "was not read"
            return _plan(self.name, params, reason=f"{', '.join(wrong)} not as the guide gives under {BCDR_KEY} on "
                                                   f"{name}, but the latest failed backup {said}, not {TIMEOUT_CODE}: "
                                                   "the keys are for snapshot network calls that time out (force to "
                                                   "set them anyway)")
        change = Change(
            action=self.name, kind="add" if all(now[n] is None for n in wrong) else "change",
            resource=f"{name}/registry/{BCDR_KEY}", resource_id=vm_id,
            summary=f"set SnapshotMethod = firstHostThenGuest and CalculateSnapshotTimeFromHost = True (REG_SZ) "
                    f"under {BCDR_KEY} on {name}",
            reason=", ".join(f"{n} is {now[n]!r}" if now[n] is not None else f"{n} is not set" for n in wrong)
                   + "; the snapshot's network calls from the guest time out, the host's do not",
            before=now, after=dict(HOST_VALUES), data={"script": "windows-bcdr-keys-set"})
        return _plan(self.name, params, changes=[change])

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run `windows-bcdr-keys-set`."""
        out = script_step(azure, params.target, "windows-bcdr-keys-set")
        values = out.get("values") or {}
        return Executed(f"{BCDR_KEY}: " + ", ".join(f"{n} {(out.get('before') or {}).get(n) or '(absent)'} -> "
                                                    f"{values.get(n)}" for n in HOST_VALUES),
                        {"changed": out.get("changed") or []})


def _network_service(account: object) -> bool:
    return str(account or "").replace(" ", "").lower() == NETWORK_SERVICE.replace(" ", "").lower()


class RepairComMsdtc(_WindowsGuestAction):
    """Start COM+ System Application and MSDTC; make MSDTC run as NetworkService (C11.com, E16)."""

    name = "repair-com-msdtc"
    summary = "start COM+ System Application and MSDTC, and run MSDTC as Network Service (restarts MSDTC: disruptive)"
    disruptive = True
    probe = "windows-com-get"
    subject = "COM+ and MSDTC"

    def decide(self, name: str, vm_id: str, r: dict[str, Any], params: ActionParams) -> Plan:
        """The disruptive MSDTC repair when MSDTC runs under another account; else a start of what is stopped."""
        svcs = r.get("services") or {}
        com, dtc = svcs.get("COMSysApp") or {}, svcs.get("MSDTC") or {}
        missing = [n for n, s in (("COMSysApp", com), ("MSDTC", dtc)) if not s.get("exists")]
        if missing:
            return _plan(self.name, params, reason=f"{' and '.join(missing)} not installed on {name}",
                         manual=[f"{' and '.join(missing)} is part of Windows: repair the Windows installation on "
                                 f"{name} (for MSDTC: msdtc -install from an elevated prompt)"])
        state = {n: {"start_type": s.get("start_type"), "status": s.get("status"), "account": s.get("account")}
                 for n, s in (("COMSysApp", com), ("MSDTC", dtc))}
        stopped = [n for n, s in (("MSDTC", dtc), ("COMSysApp", com))
                   if s.get("status") != "Running" or s.get("start_type") == "Disabled"]
        if not _network_service(dtc.get("account")):
            return _plan(self.name, params, changes=[Change(
                action=self.name, kind="change", resource=f"{name}/services/MSDTC", resource_id=vm_id,
                summary=f"run MSDTC on {name} as {NETWORK_SERVICE}: change its logon account, restart MSDTC and COM+ "
                        "System Application (msdtc -uninstall/-install if it does not start)",
                reason=f"MSDTC runs as {dtc.get('account') or 'an unknown account'}, not Network Service: COM+ cannot "
                       f"talk to it" + (f"; {', '.join(stopped)} not running" if stopped else ""),
                before=state, after={"MSDTC": {"status": "Running", "account": NETWORK_SERVICE},
                                     "COMSysApp": {"status": "Running"}},
                disruptive=True, data={"script": "windows-msdtc-repair"})])
        if not stopped:
            return _plan(self.name, params, reason=f"COM+ System Application and MSDTC run on {name}, MSDTC as "
                                                   f"{dtc.get('account')}")
        return _plan(self.name, params, changes=[Change(
            action=self.name, kind="change", resource=f"{name}/services/{'+'.join(stopped)}", resource_id=vm_id,
            summary=f"start {' and '.join(stopped)} on {name} (net start; Disabled becomes Manual)",
            reason=", ".join(f"{n} is {state[n]['status']} ({state[n]['start_type']})" for n in stopped)
                   + ": the backup extension needs COM+ System Application, and COM+ needs MSDTC",
            before={n: state[n] for n in stopped}, after={n: {"status": "Running"} for n in stopped},
            data={"script": "windows-com-start"})])

    def execute(self, azure: Azure, params: ActionParams, change: Change, *,
                progress: Progress | None = None) -> Executed:
        """Run the change's script: `windows-msdtc-repair` (disruptive) or `windows-com-start`."""
        sid = str(change.data.get("script"))
        out = script_step(azure, params.target, sid)
        if sid == "windows-msdtc-repair":
            before = out.get("before") or {}
            return Executed(f"MSDTC account {before.get('account')} -> {out.get('account')} ({out.get('how')}); MSDTC "
                            f"{out.get('status')}, COMSysApp {out.get('comsysapp')}", {"how": out.get("how")})
        return Executed(f"started: {', '.join(out.get('started') or []) or 'nothing'}; "
                        + ", ".join(f"{n} {(s or {}).get('status')}" for n, s in (out.get("services") or {}).items()),
                        {"started": out.get("started") or []})
