"""Tests for the fixed Run Command scripts: the table, their text, and the output parser (the Linux scripts run
for real under bash and dash in tests/test_scripts_linux.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.linux_guest import Guest

from remediations import scripts
from remediations.scripts import SCRIPTS, ScriptOutputError, lines, output_text, parse_result, script

SCRIPTS_DIR = Path(scripts.__file__).parent
FIXTURES = Path(__file__).parent / "fixtures" / "azure-rest-examples"
BASH = shutil.which("bash") or "/bin/bash"
DASH = shutil.which("dash") or "/usr/bin/dash"

EXPECTED = {  # id -> (os, command_id, mutating), per the contract's table
    "linux-agent-status": ("Linux", "RunShellScript", False),
    "linux-agent-restart": ("Linux", "RunShellScript", True),
    "linux-agent-upgrade": ("Linux", "RunShellScript", True),
    "windows-vss-get": ("Windows", "RunPowerShellScript", False),
    "windows-vss-set": ("Windows", "RunPowerShellScript", True),
    "windows-agent-restart": ("Windows", "RunPowerShellScript", True),
    "windows-provider-get": ("Windows", "RunPowerShellScript", False),
    "windows-provider-enable": ("Windows", "RunPowerShellScript", True),
    "linux-proxy-get": ("Linux", "RunShellScript", False),
    "linux-proxy-set": ("Linux", "RunShellScript", True),
    "linux-vmbackup-conf-get": ("Linux", "RunShellScript", False),
    "linux-vmbackup-conf-set": ("Linux", "RunShellScript", True),
    "windows-proxy-get": ("Windows", "RunPowerShellScript", False),
    "windows-proxy-set": ("Windows", "RunPowerShellScript", True),
    "windows-vss-writers-get": ("Windows", "RunPowerShellScript", False),
    "windows-vss-writers-restart": ("Windows", "RunPowerShellScript", True),
    "windows-vss-restart": ("Windows", "RunPowerShellScript", True),
    "windows-vss-writers-nothreads": ("Windows", "RunPowerShellScript", True),
    "windows-crypto-get": ("Windows", "RunPowerShellScript", False),
    "windows-crypto-set": ("Windows", "RunPowerShellScript", True),
    "windows-bcdr-keys-get": ("Windows", "RunPowerShellScript", False),
    "windows-bcdr-keys-set": ("Windows", "RunPowerShellScript", True),
    "windows-com-get": ("Windows", "RunPowerShellScript", False),
    "windows-com-start": ("Windows", "RunPowerShellScript", True),
    "windows-msdtc-repair": ("Windows", "RunPowerShellScript", True),
}
LINUX_IDS = [i for i, (os_, _, _) in EXPECTED.items() if os_ == "Linux"]

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


@pytest.mark.parametrize("shell", [BASH, DASH], ids=["bash", "dash"])
@pytest.mark.parametrize("sid", LINUX_IDS)
def test_linux_syntax(sid: str, shell: str) -> None:
    subprocess.run([shell, "-n"], input=script(sid).text, text=True, check=True)


def test_detached_jobs_are_fixed_text() -> None:
    """The agent's restart and the upgrade run detached from a single-quoted block; values are arguments."""
    for sid in ("linux-agent-restart", "linux-agent-upgrade"):
        text = script(sid).text
        job = text.split("AGENT_JOB='\n", 1)[1].split("\n'\n", 1)[0]
        assert "'" not in job and "systemctl restart \"$" in job
        assert 'schedule_detached "$AGENT_JOB" ' in text
    ps = script("windows-agent-restart").text
    assert "$job = '-NoProfile -NonInteractive -Command \"Restart-Service -Name RdAgent, WindowsAzureGuestAgent " \
           "-Force\"'" in ps
    assert "Register-ScheduledTask" in ps and "New-ScheduledTaskTrigger -Once" in ps and "Restart-Service" not in \
        ps.replace(ps[ps.index("$job = '"):ps.index("\n", ps.index("$job = '"))], "")
    for sid in ("windows-vss-get", "windows-vss-set"):
        t = script(sid).text
        assert "[Microsoft.Win32.RegistryView]::Registry64" in t and "HKLM:" not in t


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
    run = Guest(tmp_path).run("linux-agent-upgrade")
    message = f"Enable succeeded: \n[stdout]\n{run.stdout}\n[stderr]\n{run.stderr}"
    stdout, stderr = output_text([{"code": "ProvisioningState/succeeded", "message": message}])
    assert parse_result(stdout) == run.result and stderr == run.stderr


@pytest.mark.parametrize("statuses", [[], [{"code": "Something/else", "message": "x"}]])
def test_output_text_unrecognised(statuses: list[dict]) -> None:
    with pytest.raises(ScriptOutputError, match="no StdOut/StdErr or ProvisioningState"):
        output_text(statuses)
