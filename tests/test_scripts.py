"""Tests for the fixed Run Command scripts: the Linux ones run for real under bash against stand-ins."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from remediations import scripts
from remediations.scripts import SCRIPTS, ScriptOutputError, lines, output_text, parse_result, script

SCRIPTS_DIR = Path(scripts.__file__).parent
FIXTURES = Path(__file__).parent / "fixtures" / "azure-rest-examples"
BASH = shutil.which("bash") or "/bin/bash"

EXPECTED = {  # id -> (os, command_id, mutating), per the contract's table
    "linux-agent-status": ("Linux", "RunShellScript", False),
    "linux-agent-restart": ("Linux", "RunShellScript", True),
    "linux-agent-upgrade": ("Linux", "RunShellScript", True),
    "windows-vss-get": ("Windows", "RunPowerShellScript", False),
    "windows-vss-set": ("Windows", "RunPowerShellScript", True),
    "windows-agent-restart": ("Windows", "RunPowerShellScript", True),
    "windows-provider-get": ("Windows", "RunPowerShellScript", False),
    "windows-provider-enable": ("Windows", "RunPowerShellScript", True),
}
LINUX_IDS = [i for i, (os_, _, _) in EXPECTED.items() if os_ == "Linux"]

UBUNTU_2204 = """PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
"""
RHEL_8 = """NAME="Red Hat Enterprise Linux"
VERSION="8.9 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.9"
PRETTY_NAME="Red Hat Enterprise Linux 8.9 (Ootpa)"
"""
RHEL_7 = """NAME="Red Hat Enterprise Linux Server"
VERSION="7.9 (Maipo)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="7.9"
"""
SLES_15 = """NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
"""
ARCH = """NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
"""
WAAGENT_CONF_N = """# Microsoft Azure Linux Agent Configuration
Provisioning.Agent=auto
# AutoUpdate.Enabled=n
AutoUpdate.Enabled=n
Logs.Verbose=n
"""
WAAGENT_CONF_NO_KEY = """Provisioning.Agent=auto
Logs.Verbose=n
"""

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
  restart|start) if [ -e "$FAKE_STATE/fail-restart" ]; then exit 1; fi; : > "$dir/active" ;;
  *) exit 1 ;;
esac
"""
WAAGENT = r"""
[ "${1:-}" = "--version" ] || exit 1
echo "WALinuxAgent-$(<"$FAKE_STATE/installed") running on somedistro 1.0"
echo "Python: 3.10.12"
if [ -e "$FAKE_STATE/goal" ]; then echo "Goal state agent: $(<"$FAKE_STATE/goal")"; fi
"""
# A package manager: `<trigger> ... <package>` installs the repo version; fail-<name> holds an exit code.
PACKAGE_MANAGER = r"""
name=${0##*/}
echo "$name: doing things"
if [ -e "$FAKE_STATE/fail-$name" ]; then exit "$(<"$FAKE_STATE/fail-$name")"; fi
if [[ " $* " == *" TRIGGER "* && " $* " == *" $(<"$FAKE_STATE/package") "* ]]; then
  cp "$FAKE_STATE/repo" "$FAKE_STATE/installed"
fi
exit 0
"""
FORBIDDEN = ["git", "curl", "wget", "pip", "pip3", "python", "python3", "make"]
TOOLS = ["sed", "grep", "head", "tail", "tr", "cp"]  # the only real executables the scripts may use
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

    def __init__(self, tmp_path: Path, os_release: str, *, units: dict[str, tuple[bool, bool]] | None = None,
                 installed: str | None = "2.2.45", repo: str = "2.9.1.1", package: str = "walinuxagent",
                 managers: tuple[str, ...] = ("apt-get", "dnf", "yum", "zypper"),
                 waagent_conf: str | None = WAAGENT_CONF_N) -> None:
        self.root = tmp_path
        self.state = tmp_path / "state"
        self.bin = tmp_path / "bin"
        self.tools = tmp_path / "tools"
        for d in (self.state, self.bin, self.tools):
            d.mkdir(parents=True)
        self.os_release = tmp_path / "os-release"
        self.os_release.write_text(os_release)
        self.conf = tmp_path / "waagent.conf"
        if waagent_conf is not None:
            self.conf.write_text(waagent_conf)
        units = {"walinuxagent": (True, True)} if units is None else units
        for name, (active, enabled) in units.items():
            (self.state / "units" / name).mkdir(parents=True)
            if active:
                (self.state / "units" / name / "active").touch()
            if enabled:
                (self.state / "units" / name / "enabled").touch()
        (self.state / "repo").write_text(repo)
        (self.state / "package").write_text(package)
        self._standin("systemctl", SYSTEMCTL)
        if installed is not None:
            (self.state / "installed").write_text(installed)
            self._standin("waagent", WAAGENT)
        for manager in managers:
            self._standin(manager, PACKAGE_MANAGER.replace("TRIGGER", MANAGERS[manager]))
        for name in FORBIDDEN:
            self._standin(name, "exit 1\n")
        for tool in TOOLS:
            real = shutil.which(tool)
            assert real, f"{tool} is needed on the test host"
            (self.tools / tool).symlink_to(real)

    def _standin(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(_HEADER + body)
        path.chmod(0o755)

    def run(self, script_id: str) -> Run:
        env = {"PATH": f"{self.bin}:{self.tools}", "FAKE_STATE": str(self.state), "LC_ALL": "C",
               "RUNBOOKS_OS_RELEASE": str(self.os_release), "RUNBOOKS_WAAGENT_CONF": str(self.conf)}
        sent = self.state / f"{script_id}.sh"  # exactly the text Run Command would send (helpers inlined)
        sent.write_text(script(script_id).text, encoding="utf-8")
        proc = subprocess.run([BASH, str(sent)], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        log = self.state / "calls.log"
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        out_lines = proc.stdout.splitlines()
        assert out_lines and out_lines[-1].startswith("RUNBOOKS_RESULT "), proc.stdout + proc.stderr
        assert sum(line.startswith("RUNBOOKS_RESULT ") for line in out_lines) == 1
        assert json.loads(out_lines[-1].split(" ", 1)[1])["script"] == script_id
        assert not any(c.split()[0] in FORBIDDEN for c in calls), calls
        return Run(proc.returncode, proc.stdout, proc.stderr, calls)

    def unit_state(self, name: str) -> tuple[bool, bool]:
        d = self.state / "units" / name
        return (d / "active").exists(), (d / "enabled").exists()

    def installed(self) -> str:
        return (self.state / "installed").read_text()


def _managers_called(calls: list[str]) -> list[str]:
    return [c for c in calls if c.split()[0] in MANAGERS]


# --- linux-agent-status ---------------------------------------------------------------------------


def test_status_ubuntu_reports_everything_and_changes_nothing(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204)
    run = guest.run("linux-agent-status")
    assert run.rc == 0
    assert run.result == {"script": "linux-agent-status", "unit": "walinuxagent", "active": True, "enabled": True,
                          "version": "2.2.45", "distro": "ubuntu", "distro_version": "22.04",
                          "package_manager": "apt", "auto_update": False}
    assert all(c.startswith(("systemctl cat", "systemctl is-", "waagent --version")) for c in run.calls), run.calls
    assert guest.conf.read_text() == WAAGENT_CONF_N


def test_status_goal_state_version_wins_and_waagent_unit(tmp_path: Path) -> None:
    guest = Guest(tmp_path, RHEL_8, units={"waagent": (False, False)}, waagent_conf=WAAGENT_CONF_NO_KEY)
    (guest.state / "goal").write_text("2.10.0.8")
    result = guest.run("linux-agent-status").result
    assert result["unit"] == "waagent" and result["active"] is False and result["enabled"] is False
    assert result["version"] == "2.10.0.8"
    assert (result["distro"], result["distro_version"], result["package_manager"]) == ("rhel", "8.9", "dnf")
    assert result["auto_update"] is True  # absent key means true


def test_status_rhel7_yum_sles_zypper_and_unknown(tmp_path: Path) -> None:
    assert Guest(tmp_path / "a", RHEL_7, managers=("yum",)).run("linux-agent-status").result["package_manager"] == "yum"
    assert Guest(tmp_path / "b", SLES_15).run("linux-agent-status").result["package_manager"] == "zypper"
    result = Guest(tmp_path / "c", ARCH).run("linux-agent-status").result
    assert (result["distro"], result["distro_version"], result["package_manager"]) == ("arch", None, None)


def test_status_without_agent_unit_or_waagent_or_conf(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204, units={}, installed=None, waagent_conf=None)
    run = guest.run("linux-agent-status")
    assert run.rc == 0
    r = run.result
    assert (r["unit"], r["active"], r["enabled"], r["version"], r["auto_update"]) == (None, False, False, None, None)


@pytest.mark.parametrize(("conf", "expected"), [
    ("AutoUpdate.Enabled=y\n", True),
    ("AutoUpdate.Enabled = n  # off\n", False),
    ("AutoUpdate.Enabled=n\nAutoUpdate.Enabled=y\n", True),  # the last one wins, as in the agent
    ("# AutoUpdate.Enabled=n\n", True),
    ("", True),
])
def test_status_auto_update(tmp_path: Path, conf: str, expected: bool) -> None:
    assert Guest(tmp_path, UBUNTU_2204, waagent_conf=conf).run("linux-agent-status").result["auto_update"] is expected


def test_quotes_and_shell_syntax_in_os_release_stay_inert(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    os_release = (f'NAME="Ubuntu"\nVERSION="22.04 \\"Jammy\\" $(: > {marker}) \\\\ back"\n'
                  'ID=ubuntu\nVERSION_ID="22.04\\"x\\\\y"\n')
    run = Guest(tmp_path, os_release).run("linux-agent-status")
    assert run.result["distro"] == "ubuntu"
    assert run.result["distro_version"] == '22.04"x\\y'
    assert not marker.exists()


# --- linux-agent-restart --------------------------------------------------------------------------


def test_restart_starts_an_inactive_unit(tmp_path: Path) -> None:
    guest = Guest(tmp_path, RHEL_8, units={"waagent": (False, True)})
    run = guest.run("linux-agent-restart")
    assert run.rc == 0
    assert run.result == {"script": "linux-agent-restart", "unit": "waagent", "active": True}
    assert "systemctl restart waagent.service" in run.calls
    assert guest.unit_state("waagent") == (True, True)


def test_restart_prefers_walinuxagent(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204, units={"walinuxagent": (True, True), "waagent": (True, True)})
    assert guest.run("linux-agent-restart").result["unit"] == "walinuxagent"


def test_restart_failure_is_reported_as_inactive(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204, units={"walinuxagent": (False, True)})
    (guest.state / "fail-restart").touch()
    run = guest.run("linux-agent-restart")
    assert (run.rc, run.result["active"]) == (0, False)
    assert "restart walinuxagent.service failed" in run.stderr


def test_restart_without_agent_unit(tmp_path: Path) -> None:
    run = Guest(tmp_path, UBUNTU_2204, units={}).run("linux-agent-restart")
    assert run.rc == 3
    assert run.result["error"] == "no-agent-unit"
    assert not any(c.startswith("systemctl restart") for c in run.calls)


# --- linux-agent-upgrade --------------------------------------------------------------------------


def test_upgrade_ubuntu_apt(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204, units={"walinuxagent": (False, False)})
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 0, run.stderr
    assert run.result == {"script": "linux-agent-upgrade", "unit": "walinuxagent", "package": "walinuxagent",
                          "package_manager": "apt", "before": "2.2.45", "after": "2.9.1.1", "auto_update": True,
                          "enabled": True, "active": True}
    managers = _managers_called(run.calls)
    assert managers[0] == "apt-get update"
    assert managers[1].startswith("apt-get ") and managers[1].endswith(" install -y --only-upgrade walinuxagent")
    assert len(managers) == 2
    assert "systemctl enable walinuxagent.service" in run.calls
    assert "systemctl restart walinuxagent.service" in run.calls
    assert guest.unit_state("walinuxagent") == (True, True)
    assert guest.conf.read_text() == WAAGENT_CONF_N.replace("\nAutoUpdate.Enabled=n", "\nAutoUpdate.Enabled=y")
    assert "doing things" in run.stderr and run.stdout.count("\n") == 1  # package manager chatter on stderr


def test_upgrade_rhel8_dnf_appends_auto_update(tmp_path: Path) -> None:
    guest = Guest(tmp_path, RHEL_8, units={"waagent": (True, True)}, package="WALinuxAgent",
                  waagent_conf=WAAGENT_CONF_NO_KEY)
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 0, run.stderr
    r = run.result
    assert (r["unit"], r["package"], r["package_manager"]) == ("waagent", "WALinuxAgent", "dnf")
    assert (r["before"], r["after"], r["auto_update"]) == ("2.2.45", "2.9.1.1", True)
    assert _managers_called(run.calls) == ["dnf -y update WALinuxAgent"]
    assert guest.conf.read_text() == WAAGENT_CONF_NO_KEY + "AutoUpdate.Enabled=y\n"


def test_upgrade_rhel7_with_only_yum(tmp_path: Path) -> None:
    guest = Guest(tmp_path, RHEL_7, units={"waagent": (True, True)}, package="WALinuxAgent", managers=("yum",))
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 0, run.stderr
    assert (run.result["package_manager"], run.result["after"]) == ("yum", "2.9.1.1")
    assert _managers_called(run.calls) == ["yum -y update WALinuxAgent"]


def test_upgrade_sles15_zypper(tmp_path: Path) -> None:
    guest = Guest(tmp_path, SLES_15, units={"waagent": (True, False)}, package="python-azure-agent")
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 0, run.stderr
    r = run.result
    assert (r["package"], r["package_manager"], r["after"], r["enabled"]) == (
        "python-azure-agent", "zypper", "2.9.1.1", True)
    assert _managers_called(run.calls) == ["zypper --non-interactive update python-azure-agent"]


@pytest.mark.parametrize(("code", "ok"), [(103, True), (104, False), (7, False)])
def test_upgrade_zypper_exit_codes(tmp_path: Path, code: int, ok: bool) -> None:
    guest = Guest(tmp_path, SLES_15, package="python-azure-agent")
    (guest.state / "fail-zypper").write_text(str(code))
    run = guest.run("linux-agent-upgrade")
    assert (run.rc == 0) is ok
    if not ok:
        assert (run.rc, run.result["error"], run.result["exit_code"]) == (4, "upgrade-failed", code)


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204)
    first = guest.run("linux-agent-upgrade").result
    conf_after_first = guest.conf.read_text()
    mtime = guest.conf.stat().st_mtime_ns
    second = guest.run("linux-agent-upgrade").result
    assert (first["before"], first["after"]) == ("2.2.45", "2.9.1.1")
    assert second["before"] == second["after"] == "2.9.1.1"
    assert {k: v for k, v in second.items() if k != "before"} == {k: v for k, v in first.items() if k != "before"}
    assert guest.conf.read_text() == conf_after_first
    assert guest.conf.stat().st_mtime_ns == mtime  # already y: the file is not rewritten


def test_upgrade_unsupported_distro(tmp_path: Path) -> None:
    guest = Guest(tmp_path, ARCH)
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 3
    assert run.result == {"script": "linux-agent-upgrade", "error": "unsupported-distro", "distro": "arch"}
    assert _managers_called(run.calls) == [] and not any("restart" in c for c in run.calls)
    assert guest.conf.read_text() == WAAGENT_CONF_N


def test_upgrade_without_agent_unit(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204, units={})
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["error"]) == (3, "no-agent-unit")
    assert _managers_called(run.calls) == []
    assert guest.installed() == "2.2.45"


def test_upgrade_failure_leaves_config_and_unit_alone(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204, units={"walinuxagent": (False, False)})
    (guest.state / "fail-apt-get").write_text("100")
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 4
    assert run.result == {"script": "linux-agent-upgrade", "error": "upgrade-failed", "exit_code": 100,
                          "unit": "walinuxagent", "package": "walinuxagent", "package_manager": "apt",
                          "before": "2.2.45"}
    assert guest.conf.read_text() == WAAGENT_CONF_N
    assert guest.unit_state("walinuxagent") == (False, False)


def test_upgrade_rhel_without_dnf_or_yum(tmp_path: Path) -> None:
    run = Guest(tmp_path, RHEL_8, managers=()).run("linux-agent-upgrade")
    assert (run.rc, run.result["error"], run.result["package_manager"]) == (4, "upgrade-failed", None)


def test_upgrade_does_not_create_a_missing_waagent_conf(tmp_path: Path) -> None:
    guest = Guest(tmp_path, UBUNTU_2204, waagent_conf=None)
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["auto_update"]) == (0, None)
    assert not guest.conf.exists()


# --- every script ---------------------------------------------------------------------------------


def test_scripts_table() -> None:
    assert set(SCRIPTS) == set(EXPECTED)
    for sid, (os_, command_id, mutating) in EXPECTED.items():
        s = script(sid)
        assert (s.id, s.os, s.command_id, s.mutating) == (sid, os_, command_id, mutating)
        suffix = ".sh" if os_ == "Linux" else ".ps1"
        source = (SCRIPTS_DIR / f"{sid}{suffix}").read_text(encoding="utf-8")
        lib = (SCRIPTS_DIR / "_lib.sh").read_text(encoding="utf-8")
        assert s.text == (source.replace("# @lib\n", lib, 1) if os_ == "Linux" else source)
        assert "# @lib" not in s.text
    assert {p.stem for p in SCRIPTS_DIR.glob("[!_]*.sh")} | {p.stem for p in SCRIPTS_DIR.glob("*.ps1")} \
        == set(EXPECTED)


@pytest.mark.parametrize("sid", sorted(EXPECTED))
def test_script_text(sid: str) -> None:
    s = script(sid)
    ls = lines(sid)
    assert ls == s.text.splitlines() and "\r" not in s.text
    if s.os == "Linux":
        assert ls[0] == "#!/bin/bash" and ls[1] == f"# runbooks-script: {sid}"
        assert "set -u" in ls and not any(re.match(r"\s*set -\w*e", line) for line in ls)
    else:
        assert ls[0] == f"# runbooks-script: {sid}"
        assert "$ErrorActionPreference = 'Stop'" in ls and "ConvertTo-Json -Compress" in s.text
        assert "} catch {" in s.text and "    exit 1" in ls
    assert sum("# runbooks-script:" in line for line in ls) == 1
    assert not re.search(r"(?<![$@])\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}", s.text), "format placeholder"
    assert "{{" not in s.text and "}}" not in s.text
    for bad in ("curl", "wget", "git clone", "pip install", "Invoke-WebRequest", "Invoke-Expression"):
        assert bad not in s.text


@pytest.mark.parametrize("sid", LINUX_IDS)
def test_linux_syntax(sid: str) -> None:
    subprocess.run([BASH, "-n"], input=script(sid).text, text=True, check=True)


def test_powershell_syntax() -> None:
    pwsh = shutil.which("pwsh")
    if not pwsh:
        pytest.skip("pwsh is not installed")
    check = ("foreach ($f in $args) { $errs = $null; "
             "[System.Management.Automation.Language.Parser]::ParseFile($f, [ref]$null, [ref]$errs) | Out-Null; "
             "if ($errs) { $errs | ForEach-Object { Write-Error $_.Message }; exit 1 } }")
    files = [str(p) for p in sorted(SCRIPTS_DIR.glob("*.ps1"))]
    subprocess.run([pwsh, "-NoProfile", "-NonInteractive", "-Command", check, *files], check=True, timeout=120)


def test_unknown_script() -> None:
    with pytest.raises(KeyError, match="unknown Run Command script 'nope'.*linux-agent-status"):
        script("nope")
    with pytest.raises(KeyError):
        lines("nope")


# --- parse_result / output_text -------------------------------------------------------------------


def test_parse_result_takes_the_last_result_line() -> None:
    out = ('log\r\nRUNBOOKS_RESULT {"script": "a", "n": 1}\r\n  RUNBOOKS_RESULT {"indented": true}\r\n'
           'echo RUNBOOKS_RESULT {"x": 1}\r\nRUNBOOKS_RESULT {"script": "a", "n": 2}\r\ntrailing log\r\n')
    assert parse_result(out) == {"script": "a", "n": 2}


@pytest.mark.parametrize(("out", "match"), [
    ("", "no RUNBOOKS_RESULT line"),
    ("just logs\nRUNBOOKS_RESULT\n", "no RUNBOOKS_RESULT line"),
    ("RUNBOOKS_RESULT {not json", "not valid JSON"),
    ('RUNBOOKS_RESULT ["a"]', "not a JSON object"),
    ("RUNBOOKS_RESULT null", "not a JSON object"),
])
def test_parse_result_errors(out: str, match: str) -> None:
    with pytest.raises(ScriptOutputError, match=match) as info:
        parse_result(out)
    assert isinstance(info.value, ValueError)


def test_output_text_windows_rest_example() -> None:
    example = json.loads((FIXTURES / "compute" / "VirtualMachineRunCommand.json").read_text())
    statuses = example["responses"]["200"]["body"]["value"]
    assert output_text(statuses) == ("This is a sample script with parameters value1 value2", "")


def test_output_text_windows_result() -> None:
    statuses = [
        {"code": "ComponentStatus/StdOut/succeeded", "level": "Info",
         "message": 'hello\nRUNBOOKS_RESULT {"script":"windows-vss-get","exists":false,"value":null,"type":null}'},
        {"code": "ComponentStatus/StdErr/succeeded", "level": "Info", "message": "a warning"},
    ]
    stdout, stderr = output_text(statuses)
    assert stderr == "a warning"
    assert parse_result(stdout) == {"script": "windows-vss-get", "exists": False, "value": None, "type": None}


@pytest.mark.parametrize("code", ["ProvisioningState/succeeded", "ProvisioningState/failed"])
def test_output_text_linux(code: str) -> None:
    prefix = "Enable succeeded: " if code.endswith("succeeded") else "Enable failed: exit status=3"
    message = f'{prefix}\n[stdout]\nlog\nRUNBOOKS_RESULT {{"script":"s","n":1}}\n\n[stderr]\nwarn 1\nwarn 2\n'
    stdout, stderr = output_text([{"code": code, "level": "Info", "message": message}])
    assert stdout == 'log\nRUNBOOKS_RESULT {"script":"s","n":1}\n'
    assert stderr == "warn 1\nwarn 2\n"
    assert parse_result(stdout) == {"script": "s", "n": 1}


def test_output_text_linux_edge_cases() -> None:
    assert output_text([{"code": "ProvisioningState/succeeded", "message": "Enable succeeded: \n[stdout]\n\n[stderr]\n"}]) \
        == ("", "")
    assert output_text([{"code": "ProvisioningState/succeeded", "message": "Enable succeeded: \n[stdout]\nx\n[stderr]"}]) \
        == ("x", "")
    assert output_text([{"code": "ProvisioningState/succeeded", "message": None}]) == ("", "")


def test_output_text_from_a_real_linux_run(tmp_path: Path) -> None:
    run = Guest(tmp_path, UBUNTU_2204).run("linux-agent-upgrade")
    message = f"Enable succeeded: \n[stdout]\n{run.stdout}\n[stderr]\n{run.stderr}"
    stdout, stderr = output_text([{"code": "ProvisioningState/succeeded", "message": message}])
    assert parse_result(stdout) == run.result and stderr == run.stderr


@pytest.mark.parametrize("statuses", [[], [{"code": "Something/else", "message": "x"}]])
def test_output_text_unrecognised(statuses: list[dict]) -> None:
    with pytest.raises(ScriptOutputError, match="no StdOut/StdErr or ProvisioningState"):
        output_text(statuses)
