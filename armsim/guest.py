"""The simulated guest OS of a VM, and the Run Command scripts armsim understands.

armsim does not run shell or PowerShell. It recognises the project's Run Command scripts by their
id line (`# runbooks-script: <id>`, see docs/run-command-scripts.md) and applies, to this guest
model, the effect each script has on a real guest:

| id | what it does to the guest |
|---|---|
| linux-agent-status | reads the agent unit, state, version, distro, package manager, AutoUpdate |
| linux-agent-restart | restarts the agent unit (revives a hung agent; the version does not change) |
| linux-agent-upgrade | upgrades the agent package from the distro repository (to `repo_agent_version`, never down), sets AutoUpdate.Enabled=y, enables the unit, restarts it |
| windows-vss-get | reads HKLM\\SOFTWARE\\Microsoft\\BcdrAgent USEVSSCOPYBACKUP, and whether SQL Server is installed |
| windows-vss-set | writes it as REG_SZ TRUE |
| windows-agent-restart | restarts WindowsAzureGuestAgent |
| windows-provider-get | reads the iaasvmprovider service's start type and status |
| windows-provider-enable | sets iaasvmprovider to Automatic and starts it |

Before applying a script, armsim checks that its text carries the commands and literals that
effect needs (`SCRIPT_NEEDS`: the registry path and value, the service names, the package
managers…), so a script whose id line is right but whose body would not do the job is refused too.

Any other script text is refused: Run Command succeeds but stderr says the script is not
understood and the exit code is 127, so a test can never pass on a script armsim did not model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCRIPT_MUTATES", "Guest", "Service", "run_script", "script_id", "version_tuple"]

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
}

SCRIPT_NEEDS: dict[str, tuple[str, ...]] = {
    "linux-agent-status": ("systemctl cat", "waagent --version", "/etc/os-release", "AutoUpdate"),
    "linux-agent-restart": ("systemctl restart", "walinuxagent", "waagent"),
    "linux-agent-upgrade": ("apt-get", "--only-upgrade walinuxagent", "dnf", "WALinuxAgent", "zypper",
                            "python-azure-agent", "AutoUpdate.Enabled=y", "systemctl enable", "systemctl restart"),
    "windows-vss-get": ("HKLM:\\SOFTWARE\\Microsoft\\BcdrAgent", "USEVSSCOPYBACKUP", "Get-ItemProperty", "MSSQL"),
    "windows-vss-set": ("HKLM:\\SOFTWARE\\Microsoft\\BcdrAgent", "USEVSSCOPYBACKUP", "New-ItemProperty",
                        "-PropertyType String", "'TRUE'"),
    "windows-agent-restart": ("Restart-Service", "WindowsAzureGuestAgent"),
    "windows-provider-get": ("Get-Service", "iaasvmprovider", "StartType"),
    "windows-provider-enable": ("Set-Service", "-StartupType Automatic", "iaasvmprovider", "Start-Service"),
}

_PACKAGES = {
    "apt": "walinuxagent",
    "dnf": "WALinuxAgent",
    "yum": "WALinuxAgent",
    "zypper": "python-azure-agent",
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
    cpu_percent: int = 15
    shut_down_inside: bool = False

    @property
    def package_manager(self) -> str | None:
        """The package manager this distro uses, None on Windows or unknown distros."""
        return _DISTRO_PM.get(self.distro) if self.os_type == "Linux" else None

    @property
    def responsive(self) -> bool:
        """Whether the agent answers (the guest is up and the agent not hung)."""
        return not self.agent_hung and not self.shut_down_inside

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
            "registry": {f"{k}\\{n}": v for (k, n), v in self.registry.items()},
            "services": {s.name: {"start_type": s.start_type, "running": s.running}
                         for s in self.services.values()},
        }


def script_id(text: str) -> str | None:
    """The `# runbooks-script: <id>` of a script, or None."""
    m = re.search(r"^#\s*runbooks-script:\s*([a-z0-9-]+)\s*$", text, re.MULTILINE)
    return m.group(1) if m else None


def _result(sid: str, **values: Any) -> str:
    return "RUNBOOKS_RESULT " + json.dumps({"script": sid, **values})


def run_script(guest: Guest, text: str) -> tuple[int, str, str]:
    """Apply a recognised script to the guest; returns (exit code, stdout, stderr)."""
    sid = script_id(text)
    if sid is None or sid not in SCRIPT_MUTATES:
        return 127, "", f"armsim: script not understood (id {sid!r}); see armsim/guest.py"
    missing = [t for t in (*SCRIPT_NEEDS[sid], "RUNBOOKS_RESULT") if t not in text]
    if missing:
        return 127, "", f"armsim: script {sid} lacks what its effect needs: {', '.join(missing)}"
    expected = "Linux" if sid.startswith("linux-") else "Windows"
    if guest.os_type != expected:
        return 127, "", f"armsim: a {expected} script cannot run on a {guest.os_type} guest"
    return _HANDLERS[sid](guest, sid)


def _linux_status(g: Guest, sid: str) -> tuple[int, str, str]:
    return 0, _result(sid, unit=g.agent_service, active=not g.agent_hung, enabled=True,
                      version=g.agent_version, distro=g.distro, distro_version=g.distro_version,
                      package_manager=g.package_manager, auto_update=g.auto_update), ""


def _linux_restart(g: Guest, sid: str) -> tuple[int, str, str]:
    g.agent_hung = False
    return 0, f"restarted {g.agent_service}.service\n" + _result(sid, unit=g.agent_service, active=True), ""


def _linux_upgrade(g: Guest, sid: str) -> tuple[int, str, str]:
    pm = g.package_manager
    if pm is None:
        return 3, _result(sid, error="unsupported-distro", distro=g.distro), f"unsupported distro {g.distro}\n"
    before = g.agent_version
    if version_tuple(g.repo_agent_version) > version_tuple(before):
        g.agent_version = g.repo_agent_version
    g.auto_update = True
    g.agent_hung = False
    log = f"{pm}: {_PACKAGES[pm]} {before} -> {g.agent_version}\n"
    return 0, log + _result(sid, unit=g.agent_service, package=_PACKAGES[pm], package_manager=pm,
                            before=before, after=g.agent_version, auto_update=True, enabled=True,
                            active=True), ""


def _vss_get(g: Guest, sid: str) -> tuple[int, str, str]:
    v = g.registry_value(VSS_KEY, VSS_VALUE)
    return 0, _result(sid, exists=v is not None, value=v[1] if v else None, type=v[0] if v else None,
                      sql_server=g.sql_server), ""


def _vss_set(g: Guest, sid: str) -> tuple[int, str, str]:
    v = g.registry_value(VSS_KEY, VSS_VALUE)
    g.registry[(VSS_KEY.lower(), VSS_VALUE.lower())] = ("REG_SZ", "TRUE")
    return 0, _result(sid, before=v[1] if v else None, value="TRUE", type="REG_SZ"), ""


def _win_agent_restart(g: Guest, sid: str) -> tuple[int, str, str]:
    g.agent_hung = False
    return 0, _result(sid, service="WindowsAzureGuestAgent", status="Running"), ""


def _provider_get(g: Guest, sid: str) -> tuple[int, str, str]:
    s = g.service("iaasvmprovider")
    return 0, _result(sid, service="iaasvmprovider", exists=s is not None,
                      start_type=s.start_type if s else None,
                      status=("Running" if s.running else "Stopped") if s else None), ""


def _provider_enable(g: Guest, sid: str) -> tuple[int, str, str]:
    s = g.service("iaasvmprovider")
    if s is None:
        return 1, _result(sid, error="service-missing", service="iaasvmprovider"), "service not found\n"
    before = s.start_type
    s.start_type, s.running = "Automatic", True
    return 0, _result(sid, service="iaasvmprovider", before=before, start_type="Automatic", status="Running"), ""


_HANDLERS = {
    "linux-agent-status": _linux_status,
    "linux-agent-restart": _linux_restart,
    "linux-agent-upgrade": _linux_upgrade,
    "windows-vss-get": _vss_get,
    "windows-vss-set": _vss_set,
    "windows-agent-restart": _win_agent_restart,
    "windows-provider-get": _provider_get,
    "windows-provider-enable": _provider_enable,
}
