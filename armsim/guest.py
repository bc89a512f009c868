"""The simulated guest OS of a VM, and the Run Command scripts armsim understands.

armsim does not run shell or PowerShell. It recognises the project's Run Command scripts by their
id line (`# runbooks-script: <id>`, see docs/run-command-scripts.md) and applies, to this guest
model, the effect each script has on a real guest:

| id | what it does to the guest |
|---|---|
| linux-agent-status | reads the agent unit, state, version, distro, package manager and package, auto-update |
| linux-agent-restart | schedules a detached restart of the agent unit (revives a hung agent; the version does not change) |
| linux-agent-upgrade | turns auto-update on and enables the unit at once; upgrades the package from the distro repository (to `repo_agent_version`, never down) and restarts the unit detached |
| windows-vss-get | reads HKLM\\SOFTWARE\\Microsoft\\BcdrAgent USEVSSCOPYBACKUP (64-bit view), and whether SQL Server is installed |
| windows-vss-set | writes it as REG_SZ TRUE (64-bit view) |
| windows-agent-restart | schedules a detached restart of RdAgent and WindowsAzureGuestAgent |
| windows-provider-get | reads the iaasvmprovider service's start type and status |
| windows-provider-enable | sets iaasvmprovider to Automatic and starts it |
| linux-proxy-get | reads waagent.conf HttpProxy.Host/Port, the agent unit's environment and /etc/environment; the proxy used and a TCP connect verdict computed by armsim (armsim/proxy.py) |
| linux-proxy-set | validates the PROXY parameter; writes HttpProxy.Host/Port and the unit's http-proxy.conf drop-in; restarts the agent detached (the drop-in's environment applies then) |
| windows-proxy-get | reads WinHTTP's proxy and LocalSystem's ProxyEnable/ProxyServer; the proxy used and the connect verdict |
| windows-proxy-set | validates the Proxy parameter; sets WinHTTP and LocalSystem's proxy; restarts both agent services detached |
| linux-vmbackup-conf-get | reads /etc/azure/vmbackup.conf's MountsToSkip, the mounts, their duplicates and the extension log's freeze failures (armsim/fsfreeze.py) |
| linux-vmbackup-conf-set | validates the MOUNTS parameter; creates vmbackup.conf from the extension's template when missing and appends the mounts to MountsToSkip, keeping every entry |
| windows-vss-writers-get | lists the VSS writers (name, state, last error, hosting service), the VSS service's status, and SnapshotWithoutThreads (armsim/vss.py) |
| windows-vss-writers-restart | validates the Writers parameter; restarts the services hosting those writers (they become Stable) |
| windows-vss-restart | restarts the VSS service (a hung StopPending one is killed first); refuses a Disabled one |
| windows-crypto-get, windows-crypto-set, windows-bcdr-keys-get, windows-bcdr-keys-set, windows-com-get, windows-com-start, windows-msdtc-repair | .NET strong crypto, the host-snapshot keys, COM+ System Application and MSDTC (armsim/winfix.py) |
| windows-vss-writers-nothreads | writes BcdrAgentPersistentKeys SnapshotWithoutThreads = REG_SZ True (64-bit view) |

Before applying a script, armsim checks that its text carries the commands and literals that
effect needs (`SCRIPT_NEEDS`: the registry path, view and value, the service names, the package
managers, the detaching commands…), so a script whose id line is right but whose body would not do
the job is refused too.

Scripts that restart the agent (`RESTARTS_AGENT`) must do it detached: Run Command runs through the
agent, and Microsoft's Run Command docs warn that a script which stops or updates the agent leaves
the Run Command Transitioning until it times out (azure-compute-docs run-command.md; Azure/azure-cli
issue #14642: "restart the walinuxagent process while a run command script is executing" hangs it).
`restart_mode` finds the detached job (the single-quoted `AGENT_JOB='…'` block on Linux, the
`$job = '…'` scheduled-task command line on Windows); a restart, stop or package upgrade of the agent
anywhere else in the text is inline, and the Run Command then hangs (see runcommand.py).

Any other script text is refused: Run Command succeeds but stderr says the script is not
understood and the exit code is 127, so a test can never pass on a script armsim did not model.

Over 300 lines on purpose: every Run Command script armsim recognises and its effect on the one guest model, side by side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .fsfreeze import FREEZE_MUTATES, FREEZE_NEEDS, FreezeState, run_freeze_script
from .proxy import PROXY_JOB_NEEDS, PROXY_MUTATES, PROXY_NEEDS, ProxySettings, Reach, run_proxy_script
from .vss import VSS_MUTATES, VSS_NEEDS, VssGuest, run_vss_script
from .winfix import WINFIX_MUTATES, WINFIX_NEEDS, WinGuest, run_winfix_script
from .wireserver import cut_off

__all__ = ["RESTARTS_AGENT", "SCRIPT_MUTATES", "Guest", "ScriptRun", "Service", "restart_mode", "run_script",
           "script_id", "version_tuple"]

VSS_KEY = r"HKLM\SOFTWARE\Microsoft\BcdrAgent"
VSS_VALUE = "USEVSSCOPYBACKUP"

SCRIPT_MUTATES = {
    "linux-agent-status": False,
    "linux-agent-restart": True,
    "linux-agent-upgrade": True,
    "windows-vss-get": False,
    "windows-vss-set": True,
    "windows-agent-restart": True,
    "windows-provider-get": False,
    "windows-provider-enable": True,
    **PROXY_MUTATES,
    **FREEZE_MUTATES,
    **VSS_MUTATES,
    **WINFIX_MUTATES,
}
RESTARTS_AGENT = frozenset({"linux-agent-restart", "linux-agent-upgrade", "windows-agent-restart", "linux-proxy-set",
                            "windows-proxy-set"})

_DETACH = ("AGENT_JOB='", "systemd-run", "--on-active", "setsid", "nohup")
_REG64 = ("OpenBaseKey", "[Microsoft.Win32.RegistryView]::Registry64", "SOFTWARE\\Microsoft\\BcdrAgent",
          "USEVSSCOPYBACKUP")
SCRIPT_NEEDS: dict[str, tuple[str, ...]] = {
    "linux-agent-status": ("systemctl cat", "waagent --version", "/etc/os-release", "AutoUpdate\\.Enabled",
                           "AutoUpdate\\.UpdateToLatestVersion", "pkg=waagent", "pkg=walinuxagent"),
    "linux-agent-restart": (*_DETACH, "walinuxagent", "waagent"),
    "linux-agent-upgrade": (*_DETACH, "apt-get", "--download-only", "dnf", "yum", "--downloadonly", "zypper",
                            "pkg=walinuxagent", "pkg=waagent", "pkg=WALinuxAgent", "pkg=python-azure-agent",
                            "AutoUpdate\\.UpdateToLatestVersion", "AutoUpdate\\.Enabled", "systemctl enable"),
    "windows-vss-get": (*_REG64, "GetValue", "MSSQL"),
    "windows-vss-set": (*_REG64, "SetValue", "[Microsoft.Win32.RegistryValueKind]::String", "'TRUE'"),
    "windows-agent-restart": ("$job = '", "Register-ScheduledTask", "New-ScheduledTaskTrigger -Once"),
    "windows-provider-get": ("Get-Service", "iaasvmprovider", "StartType"),
    "windows-provider-enable": ("Set-Service", "-StartupType Automatic", "iaasvmprovider", "Start-Service"),
    **PROXY_NEEDS,
    **FREEZE_NEEDS,
    **VSS_NEEDS,
    **WINFIX_NEEDS,
}
# What the detached job itself must carry (the restart, and for the upgrade the install).
JOB_NEEDS: dict[str, tuple[str, ...]] = {
    "linux-agent-restart": ("systemctl restart",),
    "linux-agent-upgrade": ("apt-get", "install -y --only-upgrade", "-y update", "zypper --non-interactive update",
                            "systemctl restart"),
    "windows-agent-restart": ("Restart-Service", "RdAgent", "WindowsAzureGuestAgent"),
    **PROXY_JOB_NEEDS,
}

_LINUX_JOB = re.compile(r"^AGENT_JOB='\n.*?^'$", re.MULTILINE | re.DOTALL)
_WINDOWS_JOB = re.compile(r"^\$job = '[^'\n]*'$", re.MULTILINE)
# A command that restarts, stops or upgrades the agent, on a line that is not a comment.
_INLINE_LINUX = re.compile(
    r"^[^#\n]*(?:\bsystemctl\s+(?:-\S+\s+)*(?:restart|stop|try-restart|reload-or-restart|kill)\b"
    r"|\bservice\s+\S+\s+(?:restart|stop)\b"
    r"|\bapt-get\b(?![^\n]*--download-only)[^\n]*\binstall\b(?![^\n]*--download-only)"
    r"|(?:\b(?:dnf|yum)|\"\$pm\")\s[^\n]*\b(?:update|upgrade|install)\b(?![^\n]*--downloadonly)"
    r"|\bzypper\b[^\n]*\b(?:update|install)\b(?![^\n]*--download-only))", re.MULTILINE)
_INLINE_WINDOWS = re.compile(r"^[^#\n]*(?:\b(?:Restart|Stop)-Service\b|\bnet(?:\.exe)?\s+stop\b)",
                             re.MULTILINE | re.IGNORECASE)

# Package per distribution (MicrosoftDocs/azure-compute-docs articles/virtual-machines/extensions/
# update-linux-agent.md): Ubuntu walinuxagent, Debian waagent, RHEL family WALinuxAgent, SLES python-azure-agent.
_DISTRO_PACKAGE = {
    "ubuntu": "walinuxagent", "debian": "waagent",
    "rhel": "WALinuxAgent", "centos": "WALinuxAgent", "almalinux": "WALinuxAgent", "rocky": "WALinuxAgent",
    "ol": "WALinuxAgent", "fedora": "WALinuxAgent", "azurelinux": "WALinuxAgent", "mariner": "WALinuxAgent",
    "sles": "python-azure-agent", "opensuse-leap": "python-azure-agent",
}
_DISTRO_PM = {
    "ubuntu": "apt", "debian": "apt",
    "rhel": "dnf", "centos": "yum", "almalinux": "dnf", "rocky": "dnf", "ol": "dnf",
    "fedora": "dnf", "azurelinux": "dnf", "mariner": "dnf",
    "sles": "zypper", "opensuse-leap": "zypper",
}


def version_tuple(v: str | None) -> tuple[int, ...]:
    """'2.2.10' -> (2, 2, 10); unknown -> ()."""
    return tuple(int(p) for p in re.findall(r"\d+", v or ""))


@dataclass
class Service:
    """A Windows service or systemd unit: start type and whether it runs."""

    name: str
    start_type: str = "Automatic"
    running: bool = True


@dataclass
class Guest:
    """What is inside the VM: OS, agent, registry, services, load, and whether it is really up."""

    os_type: str  # "Linux" | "Windows"
    os_name: str
    distro: str = "windows"  # os-release ID on Linux
    distro_version: str = ""
    agent_service: str = "WindowsAzureGuestAgent"
    agent_version: str = "2.7.41491.1102"
    repo_agent_version: str = ""  # what the distro repository offers (Linux)
    agent_hung: bool = False
    auto_update: bool = True
    registry: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    sql_server: bool = False
    dhcp_enabled: bool = True
    shut_down_inside: bool = False
    agent_restarts: int = 0  # detached or inline restarts of the agent so far
    agent_report_time: str | None = None  # while a restart is pending: the time of the agent's last report
    pending_restart: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    pending_reads: int = 0  # instance-view reads left before the pending restart lands anyway
    agent_started_at: str | None = None  # the restarted agent's first report (reads may hurry the restart)
    proxy: ProxySettings = field(default_factory=ProxySettings)  # the HTTP proxy the agent and extension use
    proxy_port: int | None = None  # this guest runs an HTTP proxy listening on this port
    freeze: FreezeState = field(default_factory=FreezeState)  # mounts and vmbackup.conf (armsim/fsfreeze.py)
    wireserver_blocked: tuple[int, ...] = ()  # TCP ports the guest firewall drops to 168.63.129.16
    vss: VssGuest = field(default_factory=VssGuest)  # Windows: the VSS service and writers (armsim/vss.py)
    winfix: WinGuest = field(default_factory=WinGuest)  # Windows: logon accounts, slow network (armsim/winfix.py)

    @property
    def package_manager(self) -> str | None:
        """The package manager this distro uses, None on Windows or unknown distros."""
        return _DISTRO_PM.get(self.distro) if self.os_type == "Linux" else None

    @property
    def responsive(self) -> bool:
        """Whether the agent answers (the guest is up and the agent not hung)."""
        return not self.agent_hung and not self.shut_down_inside and not cut_off(self.wireserver_blocked)

    def registry_value(self, key: str, name: str) -> tuple[str, str] | None:
        """(type, data) of a registry value, looked up case-insensitively."""
        return self.registry.get((key.lower(), name.lower()))

    def service(self, name: str) -> Service | None:
        """A service by name, case-insensitively."""
        return self.services.get(name.lower())

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for /_armsim/state."""
        return {
            "os_type": self.os_type, "os_name": self.os_name, "distro": self.distro,
            "agent_service": self.agent_service, "agent_version": self.agent_version,
            "agent_hung": self.agent_hung, "auto_update": self.auto_update,
            "shut_down_inside": self.shut_down_inside, "sql_server": self.sql_server,
            "agent_restarts": self.agent_restarts, "agent_report_time": self.agent_report_time,
            "proxy": self.proxy.describe(), "proxy_port": self.proxy_port,
            "freeze": self.freeze.describe(), "wireserver_blocked": list(self.wireserver_blocked),
            **({"vss": self.vss.describe()} if self.os_type == "Windows" else {}),
            **({"winfix": self.winfix.describe()} if self.os_type == "Windows" else {}),
            "registry": {f"{k}\\{n}": v for (k, n), v in self.registry.items()},
            "services": {s.name: {"start_type": s.start_type, "running": s.running}
                         for s in self.services.values()},
        }


def script_id(text: str) -> str | None:
    """The `# runbooks-script: <id>` of a script, or None."""
    m = re.search(r"^#\s*runbooks-script:\s*([a-z0-9-]+)\s*$", text, re.MULTILINE)
    return m.group(1) if m else None


def restart_mode(sid: str | None, text: str) -> str | None:
    """For a script that restarts the agent: "inline" (it restarts, stops or upgrades the agent outside its
    detached job, or has no such job) or "detached"; None for any other script."""
    if sid not in RESTARTS_AGENT:
        return None
    body = text.replace("\\\n", " ")  # shell line continuations
    if sid.startswith("linux-"):
        jobs, inline = _LINUX_JOB.findall(body), _INLINE_LINUX.search(_LINUX_JOB.sub("", body))
    else:
        jobs, inline = _WINDOWS_JOB.findall(body), _INLINE_WINDOWS.search(_WINDOWS_JOB.sub("", body))
    return "inline" if inline or len(jobs) != 1 else "detached"


@dataclass
class ScriptRun:
    """What a script did: exit code, stdout, stderr, and the detached agent restart it left behind, if any."""

    code: int
    out: str
    err: str
    restart: Callable[[], None] | None = None


def _result(sid: str, **values: Any) -> str:
    return "RUNBOOKS_RESULT " + json.dumps({"script": sid, **values})


def run_script(guest: Guest, text: str, *, restart_at: str = "", params: Mapping[str, str] | None = None,
               probe: Callable[[str, int], Reach] | None = None) -> ScriptRun:
    """Apply a recognised script to the guest. A detached restart comes back as `restart` (the caller runs it
    when its time comes; `restart_at` is when the restarted agent reports). An inline restart is applied
    here; the caller makes its Run Command hang (`restart_mode`). `params` are the Run Command's parameters
    (name -> value); `probe` is the network's answer to a TCP connect from this guest (the proxy scripts)."""
    sid = script_id(text)
    if sid is None or sid not in SCRIPT_MUTATES:
        return ScriptRun(127, "", f"armsim: script not understood (id {sid!r}); see armsim/guest.py")
    expected = "Linux" if sid.startswith("linux-") else "Windows"
    if guest.os_type != expected:
        return ScriptRun(127, "", f"armsim: a {expected} script cannot run on a {guest.os_type} guest")
    if restart_mode(sid, text) == "inline":
        _restart(guest, upgrade=sid == "linux-agent-upgrade")
        return ScriptRun(0, "", "")
    job = "".join(_LINUX_JOB.findall(text) or _WINDOWS_JOB.findall(text))
    missing = [t for t in (*SCRIPT_NEEDS[sid], "RUNBOOKS_RESULT") if t not in text]
    missing += [f"{t} (in the detached job)" for t in JOB_NEEDS.get(sid, ()) if t not in job]
    if missing:
        return ScriptRun(127, "", f"armsim: script {sid} lacks what its effect needs: {', '.join(missing)}")
    if sid in PROXY_MUTATES:
        code, result, err, restart = run_proxy_script(guest, sid, restart_at, params or {}, probe,
                                                      lambda: _restart(guest))
        return ScriptRun(code, _result(sid, **result), err, restart)
    if sid in FREEZE_MUTATES:
        code, result, err = run_freeze_script(guest, sid, params or {})
        return ScriptRun(code, _result(sid, **result), err)
    if sid in VSS_MUTATES:  # armsim/vss.py: VSS writers and service, SnapshotWithoutThreads
        code, result, err = run_vss_script(guest, sid, params or {})
        return ScriptRun(code, _result(sid, **result), err)
    if sid in WINFIX_MUTATES:  # armsim/winfix.py: strong crypto, host snapshot keys, COM+ and MSDTC
        code, result, err = run_winfix_script(guest, sid)
        return ScriptRun(code, _result(sid, **result), err)
    return _HANDLERS[sid](guest, sid, restart_at)


def _restart(g: Guest, *, upgrade: bool = False) -> None:
    """The agent restarts (an upgrade first installs the repository's version, never a lower one)."""
    if upgrade and version_tuple(g.repo_agent_version) > version_tuple(g.agent_version):
        g.agent_version = g.repo_agent_version
    g.agent_hung = False
    g.agent_restarts += 1
    g.agent_report_time = None


def _linux_status(g: Guest, sid: str, _at: str) -> ScriptRun:
    return ScriptRun(0, _result(sid, unit=g.agent_service, active=not g.agent_hung, enabled=True,
                                version=g.agent_version, distro=g.distro, distro_version=g.distro_version,
                                package_manager=g.package_manager, package=_DISTRO_PACKAGE.get(g.distro),
                                auto_update=g.auto_update), "")


def _linux_restart(g: Guest, sid: str, at: str) -> ScriptRun:
    out = _result(sid, unit=g.agent_service, scheduled=True, how="systemd-run", delay=10, restart_at=at)
    return ScriptRun(0, f"Running timer as unit: run-u42.timer\n{out}", "", lambda: _restart(g))


def _linux_upgrade(g: Guest, sid: str, at: str) -> ScriptRun:
    pm, pkg = g.package_manager, _DISTRO_PACKAGE.get(g.distro)
    if pm is None or pkg is None:
        return ScriptRun(3, _result(sid, error="unsupported-distro", distro=g.distro), f"unsupported distro {g.distro}\n")
    g.auto_update = True
    out = _result(sid, unit=g.agent_service, package=pkg, package_manager=pm, before=g.agent_version,
                  auto_update=True, enabled=True, scheduled=True, how="systemd-run", delay=10, restart_at=at,
                  log="/var/log/azure-runbooks-agent-job.log")
    return ScriptRun(0, out, f"{pm}: {pkg} downloaded\n", lambda: _restart(g, upgrade=True))


def _vss_get(g: Guest, sid: str, _at: str) -> ScriptRun:
    v = g.registry_value(VSS_KEY, VSS_VALUE)
    return ScriptRun(0, _result(sid, exists=v is not None, value=v[1] if v else None, type=v[0] if v else None,
                                sql_server=g.sql_server, view="Registry64"), "")


def _vss_set(g: Guest, sid: str, _at: str) -> ScriptRun:
    v = g.registry_value(VSS_KEY, VSS_VALUE)
    g.registry[(VSS_KEY.lower(), VSS_VALUE.lower())] = ("REG_SZ", "TRUE")
    return ScriptRun(0, _result(sid, before=v[1] if v else None, value="TRUE", type="REG_SZ", view="Registry64"), "")


def _win_agent_restart(g: Guest, sid: str, at: str) -> ScriptRun:
    out = _result(sid, services=["RdAgent", "WindowsAzureGuestAgent"], scheduled=True, how="scheduled-task",
                  task="runbooks-agent-restart", delay=10, restart_at=at)
    return ScriptRun(0, out, "", lambda: _restart(g))


def _provider_get(g: Guest, sid: str, _at: str) -> ScriptRun:
    s = g.service("iaasvmprovider")
    return ScriptRun(0, _result(sid, service="iaasvmprovider", exists=s is not None,
                                start_type=s.start_type if s else None,
                                status=("Running" if s.running else "Stopped") if s else None), "")


def _provider_enable(g: Guest, sid: str, _at: str) -> ScriptRun:
    s = g.service("iaasvmprovider")
    if s is None:
        return ScriptRun(1, _result(sid, error="service-missing", service="iaasvmprovider"), "service not found\n")
    before = s.start_type
    s.start_type, s.running = "Automatic", True
    return ScriptRun(0, _result(sid, service="iaasvmprovider", before=before, start_type="Automatic",
                                status="Running"), "")


_HANDLERS: dict[str, Callable[[Guest, str, str], ScriptRun]] = {
    "linux-agent-status": _linux_status,
    "linux-agent-restart": _linux_restart,
    "linux-agent-upgrade": _linux_upgrade,
    "windows-vss-get": _vss_get,
    "windows-vss-set": _vss_set,
    "windows-agent-restart": _win_agent_restart,
    "windows-provider-get": _provider_get,
    "windows-provider-enable": _provider_enable,
}
