"""Windows guest causes of issue #14's C10/C11 codes: .NET strong crypto, host snapshots, COM+ and MSDTC.

The guest state lives in the Guest's registry and services (armsim/guest.py) plus `WinGuest` (logon accounts,
slow network calls); the scripts are remediations/scripts/windows-{crypto,bcdr-keys,com,msdtc}-*.ps1.

| id | what it does to the guest |
|---|---|
| windows-crypto-get | reads SchUseStrongCrypto under the four .NET keys (v4.0.30319, v2.0.50727; native and WOW6432Node) and SCHANNEL's TLS 1.0/1.1/1.2 client Enabled/DisabledByDefault |
| windows-crypto-set | writes SchUseStrongCrypto = DWORD 1 under each .NET key present (error no-dotnet4 without the native v4 key) |
| windows-bcdr-keys-get | reads BcdrAgentPersistentKeys SnapshotMethod and CalculateSnapshotTimeFromHost |
| windows-bcdr-keys-set | writes them as REG_SZ firstHostThenGuest and True |
| windows-com-get | reads COMSysApp and MSDTC: exists, start type, status, logon account |
| windows-com-start | sets a Disabled one to Manual, starts a stopped one; never restarts or changes an account |
| windows-msdtc-repair | MSDTC's account to NT AUTHORITY\\NetworkService, restarts MSDTC then COMSysApp; when MSDTC cannot start (`msdtc_broken`), msdtc -uninstall/-install first |

Causal links (BackupModel.verdict, Windows block; sources in armsim/COVERAGE.md):
- `com_failure` (first in the block): COMSysApp present and not running -> ExtensionInstallationFailedCOM while
  the backup extension is not installed yet, else ExtensionSnapshotFailedCOM (the split is assumed; the guide
  gives one cause for both); MSDTC present and Disabled, broken or not running as NetworkService ->
  ExtensionInstallationFailedMDTC (assumed: whether the extension is installed or not).
- `network_failure` (last): SCHANNEL TLS 1.0 and 1.1 client disabled and SchUseStrongCrypto not DWORD 1 under a
  present v4.0.30319 key -> ExtensionSnapshotFailedNoSecureNetwork (assumed: the extension's .NET then offers
  only the disabled protocols); slow network calls in the guest (`slow_network`) without SnapshotMethod =
  firstHostThenGuest and CalculateSnapshotTimeFromHost = True -> ExtensionFailedTimeoutVMNetworkUnresponsive.
Services and keys a guest does not have are healthy, so guests seeded before issue #14 keep their verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backup import Vault
    from .compute import VM
    from .guest import Guest
    from .network import Subnet
    from .sim import Simulator

__all__ = ["BCDR_KEY", "NET_KEYS", "NETWORK_SERVICE", "WINFIX_MUTATES", "WINFIX_NEEDS", "WinGuest", "com_failure",
           "network_failure", "run_winfix_script", "seed_demo"]

NET_KEYS = (r"HKLM\SOFTWARE\Microsoft\.NETFramework\v4.0.30319",
            r"HKLM\SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v4.0.30319",
            r"HKLM\SOFTWARE\Microsoft\.NETFramework\v2.0.50727",
            r"HKLM\SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v2.0.50727")
STRONG = "SchUseStrongCrypto"
SCHANNEL = r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols"
BCDR_KEY = r"HKLM\SOFTWARE\Microsoft\BcdrAgentPersistentKeys"
HOST_VALUES = {"SnapshotMethod": "firstHostThenGuest", "CalculateSnapshotTimeFromHost": "True"}
NETWORK_SERVICE = r"NT AUTHORITY\NetworkService"
LOCAL_SYSTEM = "LocalSystem"

WINFIX_MUTATES = {"windows-crypto-get": False, "windows-crypto-set": True, "windows-bcdr-keys-get": False,
                  "windows-bcdr-keys-set": True, "windows-com-get": False, "windows-com-start": True,
                  "windows-msdtc-repair": True}
_REG64 = ("OpenBaseKey", "[Microsoft.Win32.RegistryView]::Registry64")
_NET = (r"SOFTWARE\Microsoft\.NETFramework\v4.0.30319", r"SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v4.0.30319",
        r"SOFTWARE\Microsoft\.NETFramework\v2.0.50727", "SchUseStrongCrypto")
WINFIX_NEEDS: dict[str, tuple[str, ...]] = {
    "windows-crypto-get": (*_REG64, *_NET, "GetValue", "SCHANNEL\\Protocols", "'TLS 1.0'", "'TLS 1.1'"),
    "windows-crypto-set": (*_REG64, *_NET, "SetValue", "[Microsoft.Win32.RegistryValueKind]::DWord", "no-dotnet4"),
    "windows-bcdr-keys-get": (*_REG64, r"SOFTWARE\Microsoft\BcdrAgentPersistentKeys", "SnapshotMethod",
                              "CalculateSnapshotTimeFromHost", "GetValue"),
    "windows-bcdr-keys-set": (*_REG64, r"SOFTWARE\Microsoft\BcdrAgentPersistentKeys", "SetValue",
                              "SnapshotMethod = 'firstHostThenGuest'", "CalculateSnapshotTimeFromHost = 'True'",
                              "[Microsoft.Win32.RegistryValueKind]::String"),
    "windows-com-get": ("Get-Service", "Win32_Service", "StartName", "'COMSysApp'", "'MSDTC'"),
    "windows-com-start": ("Get-Service", "Start-Service", "-StartupType Manual", "'COMSysApp'", "'MSDTC'"),
    "windows-msdtc-repair": ("Win32_Service", "-MethodName Change", "StartName = $account",
                             "'NT AUTHORITY\\NetworkService'", "Restart-Service -Name 'MSDTC'",
                             "Restart-Service -Name 'COMSysApp'", "msdtc.exe -uninstall", "msdtc.exe -install"),
}
_COM = ("COMSysApp", "MSDTC")


@dataclass
class WinGuest:
    """What armsim keeps of a Windows guest beyond registry values and services."""

    accounts: dict[str, str] = field(default_factory=dict)  # service (lower) -> logon account; absent: LocalSystem
    slow_network: bool = False  # the guest's network calls during a snapshot are delayed (load, proxy, stack)
    msdtc_broken: bool = False  # MSDTC does not start until reinstalled (msdtc -uninstall / -install)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for /_armsim/state."""
        return {"accounts": dict(self.accounts), "slow_network": self.slow_network, "msdtc_broken": self.msdtc_broken}


def _is_network_service(account: str | None) -> bool:
    return (account or "").replace(" ", "").lower() == NETWORK_SERVICE.replace(" ", "").lower()


def _dword_one(v: tuple[str, str] | None) -> bool:
    return v is not None and v[0] == "REG_DWORD" and v[1].strip() == "1"


def _key_exists(g: Guest, key: str) -> bool:
    """A .NET key exists on every Windows guest for v4.0.30319; a v2.0.50727 one when a value is seeded under it."""
    return "v4.0.30319" in key or any(k == key.lower() for k, _ in g.registry)


def _schannel(g: Guest, protocol: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name in ("Enabled", "DisabledByDefault"):
        v = g.registry_value(f"{SCHANNEL}\\{protocol}\\Client", name)
        out[name] = int(v[1]) if v is not None and v[1].strip().lstrip("-").isdigit() else None
    return out


def legacy_tls_disabled(g: Guest) -> bool:
    """SCHANNEL's TLS 1.0 and TLS 1.1 client protocols are both Enabled = 0."""
    return _schannel(g, "TLS 1.0")["Enabled"] == 0 and _schannel(g, "TLS 1.1")["Enabled"] == 0


def host_snapshots(g: Guest) -> bool:
    """Both host-snapshot switches are set as the guide gives (values compared case-insensitively)."""
    return all((v := g.registry_value(BCDR_KEY, n)) is not None and v[1].strip().lower() == want.lower()
               for n, want in HOST_VALUES.items())


def com_failure(vm: VM) -> str | None:
    """The COM+ / MSDTC code a backup of this Windows VM fails with, or None."""
    g = vm.guest
    com, dtc = g.service("COMSysApp"), g.service("MSDTC")
    if com is not None and not com.running:
        return "ExtensionInstallationFailedCOM" if vm.backup_extension() is None else "ExtensionSnapshotFailedCOM"
    if dtc is not None and (dtc.start_type == "Disabled" or g.winfix.msdtc_broken
                            or not _is_network_service(g.winfix.accounts.get("msdtc", LOCAL_SYSTEM))):
        return "ExtensionInstallationFailedMDTC"
    return None


def network_failure(g: Guest) -> str | None:
    """The strong-crypto or host-snapshot code a backup of this Windows guest fails with, or None."""
    v4 = [k for k in NET_KEYS if "v4.0.30319" in k]
    if legacy_tls_disabled(g) and not all(_dword_one(g.registry_value(k, STRONG)) for k in v4):
        return "ExtensionSnapshotFailedNoSecureNetwork"
    if g.winfix.slow_network and not host_snapshots(g):
        return "ExtensionFailedTimeoutVMNetworkUnresponsive"
    return None


Outcome = tuple[int, dict[str, Any], str]


def _set(g: Guest, key: str, name: str, kind: str, data: str) -> None:
    g.registry[(key.lower(), name.lower())] = (kind, data)


def _crypto_get(g: Guest) -> Outcome:
    keys = []
    for k in NET_KEYS:
        v = g.registry_value(k, STRONG) if _key_exists(g, k) else None
        keys.append({"key": k, "exists": _key_exists(g, k), "value": v[1] if v else None, "type": v[0] if v else None})
    tls = {p: _schannel(g, p) for p in ("TLS 1.0", "TLS 1.1", "TLS 1.2")}
    return 0, {"keys": keys, "tls": tls, "legacy_tls_disabled": legacy_tls_disabled(g), "view": "Registry64"}, ""


def _crypto_set(g: Guest) -> Outcome:
    keys, changed = [], []
    for k in (k for k in NET_KEYS if _key_exists(g, k)):
        before = g.registry_value(k, STRONG)
        if not _dword_one(before):
            _set(g, k, STRONG, "REG_DWORD", "1")
            changed.append(k)
        keys.append({"key": k, "before": before[1] if before else None, "value": "1", "type": "REG_DWORD"})
    return 0, {"keys": keys, "changed": changed, "view": "Registry64"}, ""


def _bcdr_get(g: Guest) -> Outcome:
    values = {n: {"value": v[1] if (v := g.registry_value(BCDR_KEY, n)) else None, "type": v[0] if v else None}
              for n in HOST_VALUES}
    exists = any(k == BCDR_KEY.lower() for k, _ in g.registry)
    return 0, {"key": BCDR_KEY, "exists": exists, "values": values, "view": "Registry64"}, ""


def _bcdr_set(g: Guest) -> Outcome:
    before: dict[str, str | None] = {}
    changed = []
    for n, want in HOST_VALUES.items():
        v = g.registry_value(BCDR_KEY, n)
        before[n] = v[1] if v else None
        if v != ("REG_SZ", want):  # the script compares case-sensitively (-cne) and wants REG_SZ
            _set(g, BCDR_KEY, n, "REG_SZ", want)
            changed.append(n)
    return 0, {"key": BCDR_KEY, "before": before, "values": dict(HOST_VALUES), "type": "REG_SZ", "changed": changed,
               "view": "Registry64"}, ""


def _status(running: bool) -> str:
    return "Running" if running else "Stopped"


def _com_get(g: Guest) -> Outcome:
    services: dict[str, Any] = {}
    for name in _COM:
        s = g.service(name)
        services[name] = {"exists": s is not None, "start_type": s.start_type if s else None,
                          "status": _status(s.running) if s else None,
                          "account": g.winfix.accounts.get(name.lower(), LOCAL_SYSTEM) if s else None}
    return 0, {"services": services}, ""


def _missing(g: Guest) -> str | None:
    return next((n for n in ("MSDTC", "COMSysApp") if g.service(n) is None), None)


def _com_start(g: Guest) -> Outcome:
    if (gone := _missing(g)) is not None:
        return 3, {"error": "service-missing", "service": gone}, ""
    before, started = {}, []
    for name in ("MSDTC", "COMSysApp"):
        s = g.service(name)
        assert s is not None
        before[name] = {"start_type": s.start_type, "status": _status(s.running)}
        if s.start_type == "Disabled":
            s.start_type = "Manual"
        if not s.running:
            if name == "MSDTC" and g.winfix.msdtc_broken:
                return 1, {"error": "start-failed", "message": "Service 'MSDTC' cannot be started"}, \
                    "Start-Service : Service 'Distributed Transaction Coordinator (MSDTC)' cannot be started\n"
            s.running = True
            started.append(name)
    after = {n: {"start_type": s.start_type, "status": _status(s.running)} for n in _COM if (s := g.service(n))}
    return 0, {"before": before, "services": after, "started": started}, ""


def _msdtc_repair(g: Guest) -> Outcome:
    if (gone := _missing(g)) is not None:
        return 3, {"error": "service-missing", "service": gone}, ""
    dtc, com, w = g.service("MSDTC"), g.service("COMSysApp"), g.winfix
    assert dtc is not None and com is not None
    was = w.accounts.get("msdtc", LOCAL_SYSTEM)
    before = {"account": was, "status": _status(dtc.running), "comsysapp": _status(com.running)}
    how = "none"
    if not _is_network_service(was):
        how = "reinstall" if w.msdtc_broken else "change-account"
        w.accounts["msdtc"] = NETWORK_SERVICE
        w.msdtc_broken = False  # msdtc -uninstall / -install registers it afresh
        if dtc.start_type == "Disabled":
            dtc.start_type = "Manual"
        dtc.running = com.running = True  # restarted: MSDTC, then COM+
    if w.msdtc_broken:  # right account, but it will not start: the script's Start-Service fails
        return 1, {"error": "repair-failed", "message": "Service 'MSDTC' cannot be started"}, ""
    dtc.running = True
    if com.start_type == "Disabled":
        com.start_type = "Manual"
    com.running = True
    return 0, {"before": before, "account": NETWORK_SERVICE, "how": how, "status": "Running",
               "comsysapp": "Running"}, ""


_RUN = {"windows-crypto-get": _crypto_get, "windows-crypto-set": _crypto_set, "windows-bcdr-keys-get": _bcdr_get,
        "windows-bcdr-keys-set": _bcdr_set, "windows-com-get": _com_get, "windows-com-start": _com_start,
        "windows-msdtc-repair": _msdtc_repair}


def run_winfix_script(g: Guest, sid: str) -> Outcome:
    """Apply one of this module's scripts to the guest: (exit code, result JSON without "script", stderr)."""
    return _RUN[sid](g)


def seed_demo(sim: Simulator, vault: Vault, subnet: Subnet, when: datetime) -> None:
    """vm-tls-legacy, vm-snapshot-timeout and vm-com-msdtc: protected, a good backup a day old, then one failed
    job with their code at `when` (+i minutes)."""
    from .guest import Service
    from .scenarios import _windows, failed_at, protected_vm

    def com_services(g: Guest) -> None:  # COMSysApp and MSDTC as a default install has them
        g.services["comsysapp"] = Service("COMSysApp", "Manual", True)
        g.services["msdtc"] = Service("MSDTC", "Manual", True)
        g.winfix.accounts["msdtc"] = NETWORK_SERVICE

    tls = _windows("Windows Server 2019 Datacenter")
    for protocol in ("TLS 1.0", "TLS 1.1"):  # hardened: legacy TLS off, .NET strong crypto never turned on
        _set(tls, f"{SCHANNEL}\\{protocol}\\Client", "Enabled", "REG_DWORD", "0")
        _set(tls, f"{SCHANNEL}\\{protocol}\\Client", "DisabledByDefault", "REG_DWORD", "1")
    slow = _windows("Windows Server 2022 Datacenter")
    slow.winfix.slow_network = True
    com = _windows("Windows Server 2016 Datacenter")
    com_services(com)
    com.services["comsysapp"].running = False
    com.winfix.accounts["msdtc"] = LOCAL_SYSTEM  # someone changed its logon account
    specs = [("vm-tls-legacy", tls, "ExtensionSnapshotFailedNoSecureNetwork"),
             ("vm-snapshot-timeout", slow, "ExtensionFailedTimeoutVMNetworkUnresponsive"),
             ("vm-com-msdtc", com, "ExtensionSnapshotFailedCOM")]
    prefix = subnet.prefix.rsplit(".", 1)[0]
    for i, (name, guest, code) in enumerate(specs):
        _, item = protected_vm(sim, vault, name, guest, subnet, f"{prefix}.{4 + i}", when=when)
        failed_at(sim, vault, item, code, when + timedelta(minutes=i))
