"""A fake Linux guest for the Run Command scripts: os-release, waagent.conf, and stand-ins for systemd,
waagent and the package managers that log their calls and act on a state folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from remediations.scripts import parse_result, script

__all__ = ["BASH", "DASH", "DISTROS", "FORBIDDEN", "MANAGERS", "OS_RELEASE", "WAAGENT_CONF_N", "WAAGENT_CONF_NO_KEY",
           "Guest", "Run"]

BASH = shutil.which("bash") or "/bin/bash"
DASH = shutil.which("dash") or "/usr/bin/dash"

# os-release files as the distributions ship them (ID / VERSION_ID are what the scripts read).
OS_RELEASE = {
    "ubuntu": 'NAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\nID=ubuntu\nID_LIKE=debian\n',
    "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
              'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
    "rhel": 'NAME="Red Hat Enterprise Linux"\nVERSION="8.9 (Ootpa)"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n',
    "centos": 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n',
    "almalinux": 'NAME="AlmaLinux"\nVERSION="9.4 (Seafoam Ocelot)"\nID="almalinux"\nID_LIKE="rhel centos fedora"\n'
                 'VERSION_ID="9.4"\n',
    "rocky": 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
             'VERSION_ID="9.3"\n',
    "ol": 'NAME="Oracle Linux Server"\nVERSION="8.9"\nID="ol"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n',
    "sles": 'NAME="SLES"\nVERSION="15-SP5"\nVERSION_ID="15.5"\nID="sles"\nID_LIKE="suse"\n',
    "opensuse-leap": 'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
                     'VERSION_ID="15.5"\n',
    "arch": 'NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n',
}
# distro -> (package manager, package, unit). Packages: MicrosoftDocs/azure-compute-docs articles/virtual-machines/
# extensions/update-linux-agent.md. Units: Ubuntu's walinuxagent package and Debian's waagent package both ship
# walinuxagent.service (Debian bookworm waagent 2.7.3.0-4.1: /lib/systemd/system/walinuxagent.service);
# the RHEL family and SLES ship waagent.service (Azure/WALinuxAgent init/).
DISTROS = {
    "ubuntu": ("apt", "walinuxagent", "walinuxagent"),
    "debian": ("apt", "waagent", "walinuxagent"),
    "rhel": ("dnf", "WALinuxAgent", "waagent"),
    "centos": ("yum", "WALinuxAgent", "waagent"),
    "almalinux": ("dnf", "WALinuxAgent", "waagent"),
    "rocky": ("dnf", "WALinuxAgent", "waagent"),
    "ol": ("dnf", "WALinuxAgent", "waagent"),
    "sles": ("zypper", "python-azure-agent", "waagent"),
    "opensuse-leap": ("zypper", "python-azure-agent", "waagent"),
}
WAAGENT_CONF_N = """# Microsoft Azure Linux Agent Configuration
Provisioning.Agent=auto
# AutoUpdate.Enabled=n
AutoUpdate.Enabled=n
Logs.Verbose=n
"""
WAAGENT_CONF_NO_KEY = "Provisioning.Agent=auto\nLogs.Verbose=n\n"

# Stand-ins: bash scripts that log their invocation and act on the state directory $FAKE_STATE.
_HEADER = f'#!{BASH}\nprintf "%s\\n" "${{0##*/}} $*" >> "$FAKE_STATE/calls.log"\n'
SYSTEMCTL = r"""
args=()
for a in "$@"; do case "$a" in -*) ;; *) args+=("$a") ;; esac; done
cmd=${args[0]:-} unit=${args[1]:-}
if [ "$cmd" = daemon-reload ]; then  # units pick up their drop-ins' Environment= lines
  for d in "$FAKE_STATE"/units/*; do
    env=
    for f in "$RUNBOOKS_SYSTEMD_DIR/${d##*/}.service.d"/*.conf; do
      [ -e "$f" ] && env+=" $(sed -n 's/^Environment=//p' "$f" | tr -d '"')"
    done
    printf '%s' "${env# }" > "$d/environment"
  done
  exit 0
fi
[ "$cmd" = show ] && unit=${args[2]:-}  # show -p Environment <unit>
dir="$FAKE_STATE/units/${unit%.service}"
if [ -z "$unit" ] || [ ! -d "$dir" ]; then echo "Unit $unit could not be found." >&2; exit 4; fi
case "$cmd" in
  cat) echo "[Service]"; echo "ExecStart=/usr/sbin/waagent -daemon" ;;
  is-active) if [ -e "$dir/active" ]; then echo active; else echo inactive; exit 3; fi ;;
  is-enabled) if [ -e "$dir/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
  enable) : > "$dir/enabled" ;;
  show) env=; [ -e "$dir/environment" ] && env=$(<"$dir/environment"); printf 'Environment=%s\n' "$env" ;;
  restart|start) if [ -e "$FAKE_STATE/fail-restart" ]; then exit 1; fi; : > "$dir/active"; echo x >> "$dir/restarts" ;;
  *) exit 1 ;;
esac
"""
# systemd-run: logs its options (not the job text), saves the whole command NUL-separated for fire().
SYSTEMD_RUN = f"""#!{BASH}
opts=()
for a in "$@"; do case "$a" in --*) opts+=("$a") ;; *) break ;; esac; done
printf '%s\\n' "systemd-run ${{opts[*]}}" >> "$FAKE_STATE/calls.log"
if [ -e "$FAKE_STATE/fail-systemd-run" ]; then echo "Failed to start transient timer unit" >&2; exit 1; fi
printf '%s\\0' "$@" > "$FAKE_STATE/timer"
echo "Running timer as unit: run-u42.timer" >&2
"""
WAAGENT = r"""
[ "${1:-}" = "--version" ] || exit 1
echo "WALinuxAgent-$(<"$FAKE_STATE/installed") running on somedistro 1.0"
echo "Python: 3.10.12"
if [ -e "$FAKE_STATE/goal" ]; then echo "Goal state agent: $(<"$FAKE_STATE/goal")"; fi
"""
# A package manager: a download-only call only downloads; `<trigger> ... <package>` installs the repo version
# (recorded in installed); fail-<name> holds an exit code.
PACKAGE_MANAGER = r"""
name=${0##*/}
echo "$name: doing things"
if [ -e "$FAKE_STATE/fail-$name" ]; then exit "$(<"$FAKE_STATE/fail-$name")"; fi
if [[ " $* " == *" --download-only "* || " $* " == *" --downloadonly "* ]]; then echo "downloaded"; exit 0; fi
if [[ " $* " == *" TRIGGER "* && " $* " == *" $(<"$FAKE_STATE/package") "* ]]; then
  cp "$FAKE_STATE/repo" "$FAKE_STATE/installed"
fi
exit 0
"""
FORBIDDEN = ["git", "curl", "wget", "pip", "pip3", "python", "python3", "make"]
TOOLS = ["sed", "grep", "head", "tail", "tr", "cp", "date", "mkdir", "timeout", "bash"]  # the only real executables the scripts may use
DETACH_TOOLS = ["setsid", "nohup", "sleep"]  # the fallback when systemd-run is missing or fails
MANAGERS = {"apt-get": "install", "dnf": "update", "yum": "update", "zypper": "update"}


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    calls: list[str]

    @property
    def result(self) -> dict:
        return parse_result(self.stdout)


class Guest:
    """A fake Linux guest: os-release, waagent.conf, systemd units and package managers as stand-ins."""

    def __init__(self, tmp_path: Path, distro: str = "ubuntu", *, units: dict[str, tuple[bool, bool]] | None = None,
                 installed: str | None = "2.2.45", repo: str = "2.9.1.1", package: str | None = None,
                 managers: tuple[str, ...] = ("apt-get", "dnf", "yum", "zypper"), systemd_run: bool = True,
                 detach_tools: bool = True, waagent_conf: str | None = WAAGENT_CONF_N, shell: str = BASH,
                 os_release: str | None = None) -> None:
        self.root, self.shell = tmp_path, shell
        self.state, self.bin, self.tools = tmp_path / "state", tmp_path / "bin", tmp_path / "tools"
        for d in (self.state, self.bin, self.tools):
            d.mkdir(parents=True)
        self.os_release = tmp_path / "os-release"
        self.os_release.write_text(os_release if os_release is not None else OS_RELEASE[distro])
        self.conf = tmp_path / "waagent.conf"
        if waagent_conf is not None:
            self.conf.write_text(waagent_conf)
        pm, pkg, unit = DISTROS.get(distro, ("", "walinuxagent", "walinuxagent"))
        units = {unit: (True, True)} if units is None else units
        for name, (active, enabled) in units.items():
            (self.state / "units" / name).mkdir(parents=True)
            if active:
                (self.state / "units" / name / "active").touch()
            if enabled:
                (self.state / "units" / name / "enabled").touch()
        (self.state / "repo").write_text(repo)
        (self.state / "package").write_text(package or pkg)
        self._standin("systemctl", SYSTEMCTL)
        if systemd_run:
            (self.bin / "systemd-run").write_text(SYSTEMD_RUN)
            (self.bin / "systemd-run").chmod(0o755)
        if installed is not None:
            (self.state / "installed").write_text(installed)
            self._standin("waagent", WAAGENT)
        for manager in managers:
            self._standin(manager, PACKAGE_MANAGER.replace("TRIGGER", MANAGERS[manager]))
        for name in FORBIDDEN:
            self._standin(name, "exit 1\n")
        for tool in TOOLS + (DETACH_TOOLS if detach_tools else []):
            real = shutil.which(tool)
            assert real, f"{tool} is needed on the test host"
            (self.tools / tool).symlink_to(real)
        self.env = {"PATH": f"{self.bin}:{self.tools}", "FAKE_STATE": str(self.state), "LC_ALL": "C",
                    "RUNBOOKS_OS_RELEASE": str(self.os_release), "RUNBOOKS_WAAGENT_CONF": str(self.conf),
                    "RUNBOOKS_JOB_LOG": str(self.state / "job.log"), "RUNBOOKS_SYSTEMD_DIR": str(tmp_path / "systemd"),
                    "RUNBOOKS_ETC_ENVIRONMENT": str(tmp_path / "environment")}

    def _standin(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(_HEADER + body)
        path.chmod(0o755)

    def run(self, script_id: str, **env: str) -> Run:
        sent = self.state / f"{script_id}.sh"  # exactly the text Run Command would send (helpers inlined)
        sent.write_text(script(script_id).text, encoding="utf-8")
        proc = subprocess.run([self.shell, str(sent)], env={**self.env, **env}, capture_output=True,
                              text=True, timeout=60, check=False)
        calls = self._calls()
        out_lines = proc.stdout.splitlines()
        assert out_lines and out_lines[-1].startswith("RUNBOOKS_RESULT "), proc.stdout + proc.stderr
        assert sum(line.startswith("RUNBOOKS_RESULT ") for line in out_lines) == 1
        assert json.loads(out_lines[-1].split(" ", 1)[1])["script"] == script_id
        assert not any(c.split()[0] in FORBIDDEN for c in calls), calls
        return Run(proc.returncode, proc.stdout, proc.stderr, calls)

    def fire(self) -> list[str]:
        """Run the job systemd-run was given, as its timer would, and return the calls it made."""
        timer = self.state / "timer"
        args = timer.read_text().split("\0")[:-1]
        timer.unlink()
        command = [a for a in args if not a.startswith("--")]
        assert command[:2] == ["/bin/sh", "-c"], command
        subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60, check=True)
        return self._calls()

    def _calls(self) -> list[str]:
        log = self.state / "calls.log"
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return calls

    def unit_state(self, name: str) -> tuple[bool, bool]:
        d = self.state / "units" / name
        return (d / "active").exists(), (d / "enabled").exists()

    def restarts(self, name: str) -> int:
        f = self.state / "units" / name / "restarts"
        return len(f.read_text().splitlines()) if f.exists() else 0

    def installed(self) -> str:
        return (self.state / "installed").read_text()
