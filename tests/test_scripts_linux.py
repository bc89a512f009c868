"""The Linux Run Command scripts, run for real under bash and dash against stand-in systemd and package managers.

Run Command's Linux handler writes the script to a file and executes it (Azure/run-command-extension-linux
main/exec.go: `/bin/bash -c <dir>/script.sh`), so the `#!/bin/bash` line picks the shell; the scripts are
POSIX sh anyway and must pass under dash, /bin/sh on Debian and Ubuntu.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from remediations.scripts import parse_result, script

BASH = shutil.which("bash") or "/bin/bash"
DASH = shutil.which("dash") or "/usr/bin/dash"
SHELLS = [pytest.param(BASH, id="bash"), pytest.param(DASH, id="dash")]

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
dir="$FAKE_STATE/units/${unit%.service}"
if [ -z "$unit" ] || [ ! -d "$dir" ]; then echo "Unit $unit could not be found." >&2; exit 4; fi
case "$cmd" in
  cat) echo "[Service]"; echo "ExecStart=/usr/sbin/waagent -daemon" ;;
  is-active) if [ -e "$dir/active" ]; then echo active; else echo inactive; exit 3; fi ;;
  is-enabled) if [ -e "$dir/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
  enable) : > "$dir/enabled" ;;
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
TOOLS = ["sed", "grep", "head", "tail", "tr", "cp", "date"]  # the only real executables the scripts may use
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
                    "RUNBOOKS_JOB_LOG": str(self.state / "job.log")}

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


def managers_called(calls: list[str]) -> list[str]:
    return [c for c in calls if c.split()[0] in MANAGERS]


def restarts_called(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith(("systemctl restart", "systemctl stop", "systemctl try-restart"))]


# --- linux-agent-status ---------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_status_per_distribution(tmp_path: Path, distro: str, shell: str) -> None:
    pm, pkg, unit = DISTROS[distro]
    managers = ("yum",) if pm == "yum" else ("apt-get", "dnf", "yum", "zypper")
    guest = Guest(tmp_path, distro, managers=managers, shell=shell)
    run = guest.run("linux-agent-status")
    assert run.rc == 0, run.stderr
    r = run.result
    assert (r["distro"], r["package_manager"], r["package"], r["unit"]) == (distro, pm, pkg, unit)
    assert (r["active"], r["enabled"], r["version"], r["auto_update"]) == (True, True, "2.2.45", False)
    assert all(c.startswith(("systemctl cat", "systemctl is-", "waagent --version")) for c in run.calls), run.calls
    assert guest.conf.read_text() == WAAGENT_CONF_N


@pytest.mark.parametrize("shell", SHELLS)
def test_status_goal_state_version_unknown_distro_and_nothing_installed(tmp_path: Path, shell: str) -> None:
    guest = Guest(tmp_path / "a", "rhel", units={"waagent": (False, False)}, waagent_conf=WAAGENT_CONF_NO_KEY,
                  shell=shell)
    (guest.state / "goal").write_text("2.10.0.8")
    r = guest.run("linux-agent-status").result
    assert (r["unit"], r["active"], r["enabled"], r["version"], r["auto_update"]) == (
        "waagent", False, False, "2.10.0.8", True)  # absent keys mean on
    r = Guest(tmp_path / "b", "arch", shell=shell).run("linux-agent-status").result
    assert (r["distro"], r["distro_version"], r["package_manager"], r["package"]) == ("arch", None, None, None)
    guest = Guest(tmp_path / "c", "ubuntu", units={}, installed=None, waagent_conf=None, shell=shell)
    r = guest.run("linux-agent-status").result
    assert (r["unit"], r["active"], r["enabled"], r["version"], r["auto_update"]) == (None, False, False, None, None)


@pytest.mark.parametrize(("conf", "expected"), [
    ("AutoUpdate.Enabled=y\n", True),
    ("AutoUpdate.Enabled = n  # off\n", False),
    ("AutoUpdate.Enabled=n\nAutoUpdate.Enabled=y\n", True),  # the last one wins, as in the agent
    ("# AutoUpdate.Enabled=n\n", True),
    ("", True),
    ("AutoUpdate.UpdateToLatestVersion=n\n", False),
    ("AutoUpdate.UpdateToLatestVersion=y\n", True),
    ("AutoUpdate.UpdateToLatestVersion=y\nAutoUpdate.Enabled=n\n", False),  # an older agent reads Enabled
    ("AutoUpdate.UpdateToLatestVersion=n\nAutoUpdate.Enabled=y\n", False),  # a newer one reads UpdateToLatest
    ("AutoUpdate.UpdateToLatestVersion=y\nAutoUpdate.Enabled=y\n", True),
])
def test_status_auto_update(tmp_path: Path, conf: str, expected: bool) -> None:
    for shell in (BASH, DASH):
        guest = Guest(tmp_path / shell.rsplit("/", 1)[-1], waagent_conf=conf, shell=shell)
        assert guest.run("linux-agent-status").result["auto_update"] is expected


def test_quotes_and_shell_syntax_in_os_release_stay_inert(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    os_release = (f'NAME="Ubuntu"\nVERSION="22.04 \\"Jammy\\" $(: > {marker}) \\\\ back"\n'
                  'ID=ubuntu\nVERSION_ID="22.04\\"x\\\\y"\n')
    for shell in (BASH, DASH):
        run = Guest(tmp_path / shell.rsplit("/", 1)[-1], os_release=os_release, shell=shell).run("linux-agent-status")
        assert run.result["distro"] == "ubuntu"
        assert run.result["distro_version"] == '22.04"x\\y'
    assert not marker.exists()


# --- linux-agent-restart --------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
def test_restart_is_scheduled_detached_and_returns_at_once(tmp_path: Path, shell: str) -> None:
    guest = Guest(tmp_path, "rhel", units={"waagent": (False, True)}, shell=shell)
    run = guest.run("linux-agent-restart")
    assert run.rc == 0, run.stderr
    r = run.result
    assert {k: r[k] for k in ("unit", "scheduled", "how", "delay")} == {
        "unit": "waagent", "scheduled": True, "how": "systemd-run", "delay": 10}
    assert r["restart_at"].endswith("Z") and len(r["restart_at"]) == 20
    assert restarts_called(run.calls) == []  # nothing restarts while the Run Command runs
    assert "systemd-run --on-active=10 --timer-property=AccuracySec=1s" in run.calls
    assert guest.unit_state("waagent") == (False, True)
    assert restarts_called(guest.fire()) == ["systemctl restart waagent.service"]  # the timer fires later
    assert guest.unit_state("waagent") == (True, True)


def test_restart_prefers_walinuxagent(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={"walinuxagent": (True, True), "waagent": (True, True)})
    assert guest.run("linux-agent-restart").result["unit"] == "walinuxagent"
    assert restarts_called(guest.fire()) == ["systemctl restart walinuxagent.service"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("why", ["systemd-run fails", "no systemd-run"])
def test_restart_falls_back_to_setsid_nohup(tmp_path: Path, shell: str, why: str) -> None:
    guest = Guest(tmp_path, "sles", systemd_run=why == "systemd-run fails", shell=shell)
    (guest.state / "fail-systemd-run").touch()
    started = time.monotonic()
    run = guest.run("linux-agent-restart", RUNBOOKS_RESTART_DELAY="1")
    assert time.monotonic() - started < 1  # the script does not wait for the restart
    assert (run.rc, run.result["how"], run.result["delay"]) == (0, "setsid", 1)
    assert guest.restarts("waagent") == 0
    for _ in range(100):  # the detached sh sleeps 1 s, then restarts the unit
        if guest.restarts("waagent"):
            break
        time.sleep(0.05)
    assert guest.restarts("waagent") == 1


def test_restart_without_any_way_to_detach(tmp_path: Path) -> None:
    run = Guest(tmp_path, systemd_run=False, detach_tools=False).run("linux-agent-restart")
    assert (run.rc, run.result["error"]) == (5, "cannot-detach")
    assert restarts_called(run.calls) == []


def test_restart_without_agent_unit(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={})
    run = guest.run("linux-agent-restart")
    assert (run.rc, run.result["error"]) == (3, "no-agent-unit")
    assert not (guest.state / "timer").exists()


def test_restart_delay_is_validated(tmp_path: Path) -> None:
    guest = Guest(tmp_path)
    run = guest.run("linux-agent-restart", RUNBOOKS_RESTART_DELAY="5; touch pwned")
    assert run.result["delay"] == 10 and "systemd-run --on-active=10 --timer-property=AccuracySec=1s" in run.calls


# --- linux-agent-upgrade --------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_upgrade_per_distribution(tmp_path: Path, distro: str, shell: str) -> None:
    pm, pkg, unit = DISTROS[distro]
    managers = ("yum",) if pm == "yum" else ("apt-get", "dnf", "yum", "zypper")
    guest = Guest(tmp_path, distro, units={unit: (True, False)}, managers=managers, shell=shell)
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 0, run.stderr
    r = run.result
    assert {k: r[k] for k in ("unit", "package", "package_manager", "before", "auto_update", "enabled", "scheduled",
                              "how")} == {"unit": unit, "package": pkg, "package_manager": pm, "before": "2.2.45",
                                          "auto_update": True, "enabled": True, "scheduled": True, "how": "systemd-run"}
    # while the Run Command runs: download only, nothing installed, nothing restarted
    download = {"apt": ["apt-get update", f"apt-get install -y --only-upgrade --download-only {pkg}"],
                "dnf": [f"dnf -y update --downloadonly {pkg}"], "yum": [f"yum -y update --downloadonly {pkg}"],
                "zypper": [f"zypper --non-interactive update --download-only {pkg}"]}[pm]
    assert managers_called(run.calls) == download
    assert restarts_called(run.calls) == [] and guest.installed() == "2.2.45"
    assert f"systemctl enable {unit}.service" in run.calls and guest.unit_state(unit) == (True, True)
    assert guest.conf.read_text() == WAAGENT_CONF_N.replace("\nAutoUpdate.Enabled=n", "\nAutoUpdate.Enabled=y")
    assert "doing things" in run.stderr and run.stdout.count("\n") == 1  # package manager chatter on stderr
    # later, detached: the install, then the restart
    calls = guest.fire()
    install = {"apt": f"apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install -y "
                      f"--only-upgrade {pkg}", "dnf": f"dnf -y update {pkg}", "yum": f"yum -y update {pkg}",
               "zypper": f"zypper --non-interactive update {pkg}"}[pm]
    assert managers_called(calls) == [install] and restarts_called(calls) == [f"systemctl restart {unit}.service"]
    assert calls.index(install) < calls.index(f"systemctl restart {unit}.service")
    assert guest.installed() == "2.9.1.1" and guest.restarts(unit) == 1
    assert "runbooks: upgrade exit code 0" in (guest.state / "job.log").read_text()


@pytest.mark.parametrize(("conf", "after"), [
    ("AutoUpdate.Enabled=n\n", "AutoUpdate.Enabled=y\n"),
    ("AutoUpdate.UpdateToLatestVersion=n\n", "AutoUpdate.UpdateToLatestVersion=y\n"),
    ("AutoUpdate.UpdateToLatestVersion=n\nAutoUpdate.Enabled=n\n",
     "AutoUpdate.UpdateToLatestVersion=y\nAutoUpdate.Enabled=y\n"),
    ("AutoUpdate.UpdateToLatestVersion=y\n# AutoUpdate.Enabled=n\nAutoUpdate.Enabled = n # old\n",
     "AutoUpdate.UpdateToLatestVersion=y\n# AutoUpdate.Enabled=n\nAutoUpdate.Enabled=y\n"),
    (WAAGENT_CONF_NO_KEY, WAAGENT_CONF_NO_KEY),  # neither key: both default to on, the file stays as it is
])
def test_upgrade_leaves_auto_update_on(tmp_path: Path, conf: str, after: str) -> None:
    for shell in (BASH, DASH):
        guest = Guest(tmp_path / shell.rsplit("/", 1)[-1], "debian", waagent_conf=conf, shell=shell)
        run = guest.run("linux-agent-upgrade")
        assert (run.rc, run.result["auto_update"]) == (0, True), run.stderr
        assert guest.conf.read_text() == after
        assert guest.run("linux-agent-status").result["auto_update"] is True


@pytest.mark.parametrize(("code", "ok"), [(103, True), (104, False), (7, False)])
def test_upgrade_zypper_exit_codes(tmp_path: Path, code: int, ok: bool) -> None:
    guest = Guest(tmp_path, "sles")
    (guest.state / "fail-zypper").write_text(str(code))
    run = guest.run("linux-agent-upgrade")
    assert (run.rc == 0) is ok
    if not ok:
        assert (run.rc, run.result["error"], run.result["exit_code"]) == (4, "upgrade-failed", code)


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    guest = Guest(tmp_path)
    first = guest.run("linux-agent-upgrade").result
    guest.fire()
    conf_after_first = guest.conf.read_text()
    mtime = guest.conf.stat().st_mtime_ns
    second = guest.run("linux-agent-upgrade").result
    guest.fire()
    assert (first["before"], second["before"], guest.installed()) == ("2.2.45", "2.9.1.1", "2.9.1.1")
    assert {k: v for k, v in second.items() if k not in ("before", "restart_at")} == \
        {k: v for k, v in first.items() if k not in ("before", "restart_at")}
    assert guest.conf.read_text() == conf_after_first
    assert guest.conf.stat().st_mtime_ns == mtime  # already y: the file is not rewritten


def test_upgrade_unsupported_distro(tmp_path: Path) -> None:
    guest = Guest(tmp_path, "arch")
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 3
    assert run.result == {"script": "linux-agent-upgrade", "error": "unsupported-distro", "distro": "arch"}
    assert managers_called(run.calls) == [] and not any("restart" in c or "systemd-run" in c for c in run.calls)
    assert guest.conf.read_text() == WAAGENT_CONF_N


def test_upgrade_without_agent_unit(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={})
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["error"]) == (3, "no-agent-unit")
    assert managers_called(run.calls) == [] and guest.installed() == "2.2.45"


def test_upgrade_download_failure_leaves_config_unit_and_agent_alone(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={"walinuxagent": (False, False)})
    (guest.state / "fail-apt-get").write_text("100")
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 4
    assert run.result == {"script": "linux-agent-upgrade", "error": "upgrade-failed", "exit_code": 100,
                          "unit": "walinuxagent", "package": "walinuxagent", "package_manager": "apt",
                          "before": "2.2.45"}
    assert guest.conf.read_text() == WAAGENT_CONF_N
    assert guest.unit_state("walinuxagent") == (False, False) and not (guest.state / "timer").exists()


def test_upgrade_rhel_without_dnf_or_yum(tmp_path: Path) -> None:
    run = Guest(tmp_path, "rhel", managers=()).run("linux-agent-upgrade")
    assert (run.rc, run.result["error"], run.result["package_manager"]) == (4, "upgrade-failed", None)


def test_upgrade_does_not_create_a_missing_waagent_conf(tmp_path: Path) -> None:
    guest = Guest(tmp_path, waagent_conf=None)
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["auto_update"]) == (0, None)
    assert not guest.conf.exists()


def test_upgrade_without_any_way_to_detach_installs_nothing(tmp_path: Path) -> None:
    guest = Guest(tmp_path, systemd_run=False, detach_tools=False)
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["error"]) == (5, "cannot-detach")
    assert guest.installed() == "2.2.45" and restarts_called(run.calls) == []
