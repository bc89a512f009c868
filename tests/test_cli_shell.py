"""Issue #11, the CLI in an operator's shell: --version and the console script's own name, tab completion
(argcomplete, driven as bash and zsh drive it, and in a real bash), and simulator runs kept out of the user's
real audit trail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pexpect
import pytest
from support.runs import ROOT, runbooks

from remediations.actions import action_names
from runbooks.catalog import CATALOG

BIN = Path(sys.executable).parent  # the venv's bin: `pip install -e ".[dev]"` puts the console script there
SCRIPT = BIN / "azure-backup-runbooks"
VERSION = version("azure-backup-runbooks")


def own_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A user's shell with no ARM endpoint or subscription of ours, its state (audit files) in `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOKS_", "AZURE_", "_ARC", "COMP_"))}
    env.update(PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp), TMPDIR=str(tmp), NO_COLOR="1")
    env.update(extra)
    return env


def run(argv: list[str], tmp: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=own_env(tmp, **extra), cwd=tmp, timeout=120)


def audit(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# --- simulator runs keep out of the real audit file -------------------------------------------------------
def test_a_simulator_fix_writes_the_simulator_audit_file_never_the_users(tmp_path: Path) -> None:
    r = run(runbooks("fix", "vm-nsg-blocked", "--simulator", "--yes"), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    folder = tmp_path / "azure-backup-runbooks"
    assert not (folder / "audit.jsonl").exists(), "a simulator run wrote the user's real audit trail"
    lines = audit(folder / "audit-simulator.jsonl")
    assert [x["outcome"] for x in lines][:2] == ["sending", "applied"]
    assert {str(x["vm"]).rsplit("/", 1)[-1] for x in lines} == {"vm-nsg-blocked"}


def test_an_explicit_audit_file_still_wins_over_the_simulators(tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "trail.jsonl"
    r = run(runbooks("action", "remove-backup-extension", "vm-ext-failed", "--simulator", "--yes",
                     "--audit-file", str(mine)), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [x["outcome"] for x in audit(mine)] == ["sending", "applied"]
    assert not (tmp_path / "azure-backup-runbooks").exists()


def test_help_says_where_simulator_runs_are_audited(tmp_path: Path) -> None:
    r = run(runbooks("fix", "--help"), tmp_path, COLUMNS="200")
    assert r.returncode == 0
    flat = " ".join(r.stdout.split())
    assert "audit-simulator.jsonl" in flat and "~/.local/state/azure-backup-runbooks/audit.jsonl" in flat


# --- --version, and the console script's own name ----------------------------------------------------------
installed = pytest.mark.skipif(not SCRIPT.exists(), reason=f"no console script at {SCRIPT} (pip install -e .)")


def test_version_prints_the_installed_version_and_exits_0(tmp_path: Path) -> None:
    r = run(runbooks("--version"), tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"python -m runbooks {VERSION}\n", "")


@installed
def test_the_console_script_prints_the_version_under_its_own_name(tmp_path: Path) -> None:
    r = run([str(SCRIPT), "--version"], tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"azure-backup-runbooks {VERSION}\n", "")


@installed
@pytest.mark.parametrize("args", [["--help"], ["fix", "--help"]])
def test_the_console_script_shows_its_own_name_in_help(tmp_path: Path, args: list[str]) -> None:
    r = run([str(SCRIPT), *args], tmp_path)
    assert r.returncode == 0, r.stderr
    usage = f"usage: azure-backup-runbooks {args[0] if args[0] != '--help' else ''}".rstrip()
    assert r.stdout.startswith(usage), r.stdout[:200]
    assert "python -m runbooks" not in r.stdout


@installed
@pytest.mark.parametrize("args, says", [
    (["fix", "vm-a", "--concurrency", "many"], "(see azure-backup-runbooks fix --help)"),
    (["fix", "vm-a", "--no-such-flag"], "(see azure-backup-runbooks fix --help)"),  # unknown: the command's help
    (["explain", "E2", "extra"], "(see azure-backup-runbooks explain --help)"),
    (["no-such-command"], "(see azure-backup-runbooks --help)"),
])
def test_the_console_script_names_itself_in_usage_errors(tmp_path: Path, args: list[str], says: str) -> None:
    r = run([str(SCRIPT), *args], tmp_path)
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.rstrip("\n").endswith(says), r.stderr
    assert r.stderr.count("\n") == 1


# --- tab completion (argcomplete), asked as the shell code of `register-python-argcomplete` asks ------------
def complete(line: str, tmp: Path, *, shell: str = "bash", module: bool = False) -> list[str]:
    """What the program answers for `line` (cursor at its end): run as argcomplete's shell function runs it, with
    _ARGCOMPLETE, COMP_LINE and COMP_POINT set, stdout and stderr muted and the answer read from fd 8."""
    argv = [sys.executable, "-m", "runbooks"] if module else [str(SCRIPT)]
    env = own_env(tmp, COMP_LINE=line, COMP_POINT=str(len(line)), _ARGCOMPLETE="3" if module else "1",
                  _ARGCOMPLETE_SHELL=shell, _ARGCOMPLETE_SUPPRESS_SPACE="1", _ARGCOMPLETE_IFS="\n")
    r = subprocess.run(["/bin/sh", "-c", 'exec "$@" 8>&1 9>/dev/null 1>/dev/null 2>&1 </dev/null', "sh", *argv],
                       capture_output=True, text=True, env=env, cwd=tmp, timeout=30)
    assert r.returncode == 0, f"completion of {line!r} exited {r.returncode}"
    return [c.rstrip() for c in r.stdout.split("\n") if c.strip()]


CODES = [e.id for e in CATALOG] + [c for e in CATALOG for c in e.codes]


@installed
@pytest.mark.parametrize("line, expected", [
    ("azure-backup-runbooks exp", ["explain"]),                                  # a command
    ("azure-backup-runbooks d", ["diagnose", "demo"]),
    ("azure-backup-runbooks fix vm-a --dry", ["--dry-run"]),                     # an option
    ("azure-backup-runbooks diagnose vm-a --detailed", ["--detailed-exitcode"]),
    ("azure-backup-runbooks list -o t", ["text", "table", "tsv"]),              # an option's choices
    ("azure-backup-runbooks action ", list(action_names())),                   # every action name
    ("azure-backup-runbooks action restart-", ["restart-guest-agent", "restart-vss-service", "restart-vss-writers"]),
    ("azure-backup-runbooks explain ", CODES),                                  # E1..E5 and every code
    ("azure-backup-runbooks explain ExtensionSnapshotFailedNoN", ["ExtensionSnapshotFailedNoNetwork"]),
    ("azure-backup-runbooks fix vm-a --error UserErrorGuestAgentStatusU", ["UserErrorGuestAgentStatusUnavailable"]),
    ("azure-backup-runbooks diagnose vm-a -g rg --error E", [c for c in CODES if c.startswith("E")]),
])
def test_completion_of_commands_options_action_names_and_error_codes(tmp_path: Path, line: str,
                                                                      expected: list[str]) -> None:
    assert sorted(complete(line, tmp_path)) == sorted(set(expected))


def test_completion_of_python_dash_m_runbooks(tmp_path: Path) -> None:
    assert complete("python -m runbooks exp", tmp_path, module=True) == ["explain"]
    assert complete("python -m runbooks action power", tmp_path, module=True) == ["power-off"]


@installed
def test_completion_for_zsh_carries_the_help_of_each_choice(tmp_path: Path) -> None:
    answers = complete("azure-backup-runbooks ex", tmp_path, shell="zsh")
    assert answers == ["explain:show one runbook: its causes in order and their fixes"], answers


def importtime(tmp: Path, *args: str, **env: str) -> tuple[list[str], str]:
    """The modules `python -m runbooks <args>` imports (python -X importtime), and what it answered on fd 1/file."""
    out = tmp / "answer"
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "runbooks", *args], capture_output=True,
                       text=True, env=own_env(tmp, _ARGCOMPLETE_STDOUT_FILENAME=str(out), **env), cwd=tmp,
                       timeout=30)
    modules = [ln.rsplit("|", 1)[-1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")]
    return modules, out.read_text() if out.exists() else r.stdout


@pytest.mark.parametrize("line", ["python -m runbooks action rem", "python -m runbooks fix --error Ext"])
def test_completing_names_and_codes_imports_no_sdk(tmp_path: Path, line: str) -> None:
    modules, answer = importtime(tmp_path, COMP_LINE=line, COMP_POINT=str(len(line)), _ARGCOMPLETE="3")
    assert answer.strip(), f"no completions for {line!r}"
    heavy = [m for m in modules if m.startswith(("azure", "pydantic", "requests")) or m == "remediations.action"]
    assert heavy == [], f"completing {line!r} imported {heavy[:5]}"


def test_argcomplete_is_not_imported_unless_a_shell_asks(tmp_path: Path) -> None:
    modules, answer = importtime(tmp_path, "--help")
    assert "usage:" in answer
    assert "argparse" in modules and not [m for m in modules if m.startswith("argcomplete")]


# --- in a real shell: bash (and zsh when installed), in a pty ----------------------------------------------
def interactive(shell: list[str], tmp: Path) -> pexpect.spawn:
    env = own_env(tmp, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", HOME=str(tmp), INPUTRC="/dev/null",
                  PS1="ready$ ", PROMPT="ready$ ", TERM="dumb")
    child = pexpect.spawn(shell[0], shell[1:], env=env, cwd=str(tmp), encoding="utf-8", timeout=60,  # a completion under a loaded suite can take a while
                          dimensions=(40, 200))
    child.expect_exact("ready$ ")
    return child


def finish(child: pexpect.spawn) -> None:
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()


BASH_WAYS = {  # the README's two lines: the console script's own registration, and global completion
    "script": ('eval "$(register-python-argcomplete azure-backup-runbooks)"', "azure-backup-runbooks"),
    "module": ('eval "$(activate-global-python-argcomplete --dest=-)"', "python -m runbooks"),
}


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("way", sorted(BASH_WAYS))
def test_tab_in_bash_completes_the_command_then_runs_it(tmp_path: Path, way: str) -> None:
    register, program = BASH_WAYS[way]
    if way == "script" and not SCRIPT.exists():
        pytest.skip("the azure-backup-runbooks console script is not installed")
    child = interactive(["bash", "--norc", "--noprofile", "-i"], tmp_path)
    try:
        child.sendline(register)
        child.expect_exact("ready$ ")
        child.send(f"{program} exp\t")
        child.expect_exact("explain")  # readline wrote the rest of the word on the screen
        child.sendline("E2 -o json")  # ran as `explain E2` only if the word was completed
        child.expect_exact('"ExtensionSnapshotFailedNoNetwork"')
        child.expect_exact("ready$ ")
        child.send(f"{program} action restart-g\t")
        child.expect_exact("uest-agent")
        # ran only if the name was completed; Enter, not Ctrl-C: bash on some machines hangs on a SIGINT that
        # reaches readline just after a completion (CI, stop 18), which says nothing about ours
        child.sendline("--help")
        child.expect_exact("usage:")
        child.expect_exact("action")
        child.expect_exact("ready$ ")
    finally:
        finish(child)


@installed
@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_tab_in_zsh_completes_the_command(tmp_path: Path) -> None:
    child = interactive(["zsh", "-f", "-i"], tmp_path)
    try:
        child.sendline('autoload -U compinit && compinit -u && eval "$(register-python-argcomplete azure-backup-runbooks)"')
        child.expect_exact("ready$ ")
        child.send("azure-backup-runbooks exp\t")
        child.expect_exact("explain")
        child.sendline("E2 -o json")
        child.expect_exact('"ExtensionSnapshotFailedNoNetwork"')
        child.expect_exact("ready$ ")
    finally:
        finish(child)
