"""Issue #11: every command in README.md and docs/*.md is run by a test, as a reader would type it.

The commands are read from the Markdown, so that a new one is picked up without a change here: every line
of a ```bash (sh, shell, zsh) block, and the `$ ` lines of any other block (a console session: its other
lines are output, skipped). A line is split as the shell splits it (`&&`, `;`, `|`; a `#` comment is
dropped, and says `exit N` when the command is meant to exit N, else 0). Each simple command is one of:

- a runbooks command (`python -m runbooks …`, `azure-backup-runbooks …`): checked against the CLI's parser
  (an unknown command, flag or choice fails, quoting the line), then run in a temporary folder through the
  warm interpreter (tests/support/runs.py). A command for real Azure runs against this worker's armsim, reset
  to the demo, with the names in SUBSTITUTE and the environment a user sets for a custom endpoint
  (RUNBOOKS_ARM_ENDPOINT, RUNBOOKS_CA_BUNDLE and AZURE_SUBSCRIPTION_ID: `cli_env`); `--simulator` and `demo`
  runs bring their own simulator and get none of those. A command that asks (fix, apply or action without
  --yes, --dry-run, --plan-out or -o json) runs in a pty and is answered "yes". No run prints a traceback.
- `python -m armsim …`: started, its one JSON line read, stopped with SIGTERM; it exits as documented (0).
- `python <file>.py`, a file of the repository: run (from a temporary folder).
- `export NAME=VALUE` with NAME in ENVIRONMENT: set for the rest of that line's commands.
- a runbooks command's output piped into one of FILTERS.
- a command in NOT_RUN: not run here, for the reason given there, whose evidence is checked.
Anything else (a word that is not a command, a redirection, `||`, a background `&`) fails with the line quoted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from support.prefork import python
from support.runs import ROOT, cli_env, runbooks

from armsim import DEMO_SUBSCRIPTION, Server
from runbooks.cli import build_parser

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"bash", "sh", "shell", "zsh"}

# Real Azure in the docs -> the demo fleet in armsim (armsim/scenarios.py). The VM is the one whose failure the
# README's sample output shows (ExtensionSnapshotFailedNoNetwork, an NSG rule to add, a backup to run).
SUBSTITUTE = {"rg-prod": "rg-demo", "vm-app-01": "vm-nsg-blocked", "rsv-prod": "rsv-demo",
              "<subscription-id>": DEMO_SUBSCRIPTION}
# `export NAME=…` lines a reader types before the commands for real Azure; `cli_env` sets the same names.
ENVIRONMENT = {"AZURE_SUBSCRIPTION_ID"}
FILTERS = {"head", "tail", "grep", "jq", "wc", "sort"}  # what a runbooks command's output may be piped into
PROMPT = "Only 'yes' is accepted: "
SETUP = "set-up of the environment this test runs in; .ci/run does it on a fresh machine"

# command (its words joined by one space) -> (why this test does not run it, (file, text) that shows the reason
# holds: where it is run instead)
NOT_RUN: dict[str, tuple[str, tuple[str, str]]] = {
    "python3 -m venv .venv": (SETUP, (".ci/run", "python3 -m venv .venv")),
    ". .venv/bin/activate": (SETUP, (".ci/run", ". .venv/bin/activate")),
    "pip install -e .[dev]": (SETUP, (".ci/run", 'pip install --quiet -e ".[dev]"')),
    "pip install -e .[sim]": ("an install; the dev extra this test runs in includes sim, and a run without the "
                              "sim extra is tested by test_cli_fix", ("pyproject.toml", 'dev = ["azure-backup-runbooks[sim]"')),
    "python -m pytest -q": (".ci/run runs the tests, this one among them", (".ci/run", "python -m pytest -q")),
    "python -m runbooks demo": ("the whole demo fleet fixed for real (~6 s); test_cli_output runs it once, with its "
                                "document on stdout", ("tests/test_cli_output.py", 'runbooks("demo"')),
    "az login": ("signs in to real Azure; armsim on loopback takes no credential",
                 ("tests/support/runs.py", '"RUNBOOKS_ARM_ENDPOINT": server.endpoint')),
    "eval $(register-python-argcomplete azure-backup-runbooks)": (
        "shell set-up; run in a real bash (and zsh when installed) by test_cli_shell",
        ("tests/test_cli_shell.py", '"script": (\'eval "$(register-python-argcomplete azure-backup-runbooks)"\'')),
    "eval $(activate-global-python-argcomplete --dest=-)": (
        "shell set-up; run in a real bash by test_cli_shell",
        ("tests/test_cli_shell.py", '"module": (\'eval "$(activate-global-python-argcomplete --dest=-)"\'')),
    "python benchmarks/fleet_fix.py": ("a timing run of about half a minute (the fleet fixed twice with 50 ms "
                                       "added to every request); test_cli_fix fixes the fleet",
                                       ("tests/test_cli_fix.py", "def test_from_vault_fixes_every_failed_vm")),
    "python benchmarks/fleet.py --sizes 100,250,500": (
        "a timing run of about ten minutes (500 VMs under ARM's throttle); test_benchmarks runs it at 3 VMs",
        ("tests/test_benchmarks.py", 'str(BENCH / "fleet.py"), "--sizes", "3"')),
    "python benchmarks/vs_az.py": (
        "installs azure-cli from PyPI into a throwaway venv, then times minutes of az runs; test_benchmarks runs "
        "its diagnosis and its token source", ("tests/test_benchmarks.py", "def test_vs_az_times_a_real_diagnosis")),
}


@dataclass(frozen=True)
class Step:
    """One simple command of a line, and how it joins the one before ("" first, "&&", ";" or "|")."""

    op: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class DocLine:
    """A command line of a document: where, as written, its steps, the exit code it states, what is wrong."""

    where: str
    text: str
    steps: tuple[Step, ...]
    exit: int
    problem: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: `{self.text}`"


# --- reading the Markdown ------------------------------------------------------------------------------------
def split_comment(line: str) -> tuple[str, str]:
    """The line without its shell comment, and the comment (a `#` that starts a word outside quotes)."""
    quote = ""
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def parse_line(where: str, text: str) -> DocLine:
    """Split one command line as the shell would (for what this test supports)."""
    code, comment = split_comment(text)
    stated = re.search(r"\bexit (\d+)\b", comment)
    exit_code = int(stated.group(1)) if stated else 0
    for word, value in SUBSTITUTE.items():
        if word.startswith("<"):
            code = code.replace(word, value)
    lexer = shlex.shlex(code, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as e:
        return DocLine(where, text, (), exit_code, f"not a shell command ({e})")
    steps: list[Step] = []
    op, words = "", list[str]()
    for token in tokens:
        if token and set(token) <= set("();<>|&"):
            if token not in ("&&", ";", "|"):
                return DocLine(where, text, (), exit_code, f"{token!r} is not run by this test")
            if not words:
                return DocLine(where, text, (), exit_code, f"{token!r} with no command before it")
            steps.append(Step(op, tuple(words)))
            op, words = token, []
        else:
            words.append(token)
    if words:
        steps.append(Step(op, tuple(words)))
    problem = next((p for step in steps if (p := problem_of(step))), None)
    return DocLine(where, text, tuple(steps), exit_code, problem)


def extract(text: str, name: str) -> list[DocLine]:
    """The command lines of a Markdown text: bash blocks line by line, other blocks' `$ ` lines."""
    lines: list[DocLine] = []
    fence, info, pending, start = "", "", "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not fence:
            m = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if m:
                fence, info = m.group(1), m.group(2).lower()
            continue
        if stripped.startswith(fence) and not stripped.strip(fence[0]):
            fence = ""
            continue
        if info in SHELL_BLOCKS:
            command = stripped
        elif stripped.startswith("$ "):
            command = stripped[2:].strip()
        elif pending and info not in SHELL_BLOCKS:
            command = stripped  # the continuation of a `$ ` line
        else:
            continue  # output, or a line of another language
        if not pending:
            start = n
        if command.endswith("\\"):
            pending += command[:-1] + " "
            continue
        command, pending = pending + command, ""
        if command and not command.startswith("#"):
            lines.append(parse_line(f"{name}:{start}", command))
    return lines


def doc_lines() -> list[DocLine]:
    return [line for doc in DOCS for line in extract(doc.read_text(encoding="utf-8"), doc.name
                                                      if doc.parent == ROOT else f"docs/{doc.name}")]


# --- what each command is ------------------------------------------------------------------------------------
def cli_args(argv: tuple[str, ...]) -> list[str] | None:
    """The CLI arguments of a runbooks command, else None."""
    if argv[:3] in (("python", "-m", "runbooks"), ("python3", "-m", "runbooks")):
        return list(argv[3:])
    if argv[0] == "azure-backup-runbooks":
        return list(argv[1:])
    return None


def substituted(args: list[str]) -> list[str]:
    return [SUBSTITUTE.get(a, a) for a in args]


def kind(step: Step) -> str:
    """runbooks, armsim, script, export, filter or not-run; "" when none."""
    argv = step.argv
    if step.op == "|":
        return "filter" if argv[0] in FILTERS else ""
    if " ".join(argv) in NOT_RUN:
        return "not-run"
    if cli_args(argv) is not None:
        return "runbooks"
    if argv[:3] in (("python", "-m", "armsim"), ("python3", "-m", "armsim")):
        return "armsim"
    if argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].endswith(".py") and (ROOT / argv[1]).is_file():
        return "script"
    if argv[0] == "export" and len(argv) == 2 and argv[1].partition("=")[0] in ENVIRONMENT:
        return "export"
    return ""


def problem_of(step: Step) -> str | None:
    """Why a step is not something this test can run: an unknown word, or what the CLI's parser says."""
    what = kind(step)
    if not what:
        return (f"{step.argv[0]!r} is not a command this test knows: a runbooks command, a file of the repository "
                "run by python, or an entry of NOT_RUN (with the reason)")
    args = cli_args(step.argv)
    if args is None:
        return None
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(substituted(args))
        except SystemExit as e:
            if e.code:
                return f"not a valid runbooks command: {err.getvalue().strip()}"
    return None


def asks(args: list[str]) -> bool:
    """Whether the command asks before applying (on a terminal)."""
    quiet = {"--yes", "-y", "--dry-run", "--plan-out", "--help", "-h"}  # (in a pty, one that does not ask ends)
    return bool(args) and args[0] in ("fix", "apply", "action") and not quiet & set(args)


# --- running them --------------------------------------------------------------------------------------------
def own_env(tmp: Path) -> dict[str, str]:
    """A shell with no endpoint or subscription of ours (for --simulator and demo), its state in `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOKS_", "AZURE_"))}
    env.update(XDG_STATE_HOME=str(tmp), TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    return env


@dataclass
class Ran:
    """One command run: its arguments, exit code and output (stdout, then stderr; or the terminal's)."""

    argv: list[str]
    code: int
    output: str


def run_runbooks(args: list[str], env: dict[str, str], tmp: Path, pipe: Step | None) -> Ran:
    argv = runbooks(*args)
    if asks(args):
        child = pexpect.spawn(argv[0], argv[1:], env={**env, "NO_COLOR": "1"}, cwd=str(tmp), encoding="utf-8",
                              timeout=90, dimensions=(50, 200))
        seen = ""
        while child.expect_exact([PROMPT, pexpect.EOF]) == 0:
            seen += child.before + PROMPT
            child.sendline("yes")
        seen += child.before
        child.close()
        return Ran(args, child.exitstatus if child.exitstatus is not None else -1, seen)
    if pipe is None:
        r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp, timeout=120)
        return Ran(args, r.returncode, r.stdout + r.stderr)
    left = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp, text=True)
    right = subprocess.run(list(pipe.argv), stdin=left.stdout, capture_output=True, text=True, timeout=120)
    assert left.stdout is not None and left.stderr is not None
    left.stdout.close()
    err = left.stderr.read()
    code = left.wait(timeout=120)
    return Ran(args, 0 if code == 141 else code, right.stdout + err)  # 141: the reader went away, as Unix tools


def run_armsim(args: list[str], env: dict[str, str], tmp: Path) -> Ran:
    proc = subprocess.Popen([*python(), "-m", "armsim", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=tmp, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        first = proc.stdout.readline() if ready else ""
        info = json.loads(first) if first else {}
        assert set(info) == {"endpoint", "ca_bundle"}, f"armsim's first line: {first!r}"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        return Ran(["armsim", *args], proc.returncode, first + out + err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_line(line: DocLine, server: Server, tmp: Path) -> list[Ran]:
    """Run what the line runs, in order, as the shell would; the runs, for the assertions."""
    ran: list[Ran] = []
    exports: dict[str, str] = {}
    steps = list(line.steps)
    for i, step in enumerate(steps):
        what = kind(step)
        pipe = steps[i + 1] if i + 1 < len(steps) and steps[i + 1].op == "|" else None
        if what == "export":
            name, _, value = step.argv[1].partition("=")
            exports[name] = value
            continue
        if what in ("not-run", "filter"):
            continue
        if what == "runbooks":
            args = substituted(cli_args(step.argv) or [])
            simulated = "--simulator" in args or args[:1] == ["demo"]  # its own simulator: none of armsim's env
            env = {**(own_env(tmp) if simulated else cli_env(server, tmp)), **exports}
            ran.append(run_runbooks(args, env, tmp, pipe))
        elif what == "armsim":
            ran.append(run_armsim(list(step.argv[3:]), {**own_env(tmp), **exports}, tmp))
        else:  # a script of the repository
            env = {**own_env(tmp), **exports}
            r = subprocess.run([*python(), str(ROOT / step.argv[1]), *step.argv[2:]], capture_output=True,
                               text=True, env=env, cwd=tmp, timeout=120)
            ran.append(Ran(list(step.argv), r.returncode, r.stdout + r.stderr))
        if ran[-1].code != 0 and i + 1 < len(steps) and steps[i + 1].op == "&&":
            break
    return ran


# --- the tests -------------------------------------------------------------------------------------------------
LINES = doc_lines()
RUNNABLE = [line for line in LINES if not line.problem and any(kind(s) in ("runbooks", "armsim", "script")
                                                                   for s in line.steps)]


def test_every_command_in_the_docs_is_one_this_test_runs_or_says_why_not() -> None:
    problems = [f"{line}: {line.problem}" for line in LINES if line.problem]
    assert not problems, "\n".join(problems)
    written = {" ".join(s.argv) for line in LINES for s in line.steps}
    assert not set(NOT_RUN) - written, f"NOT_RUN lists commands no document has: {set(NOT_RUN) - written}"
    for command, (_why, (file, evidence)) in NOT_RUN.items():
        assert evidence in (ROOT / file).read_text(encoding="utf-8"), f"{command!r} is not run because {file} has " \
                                                                      f"{evidence!r}: it no longer has"
    words = {w for line in LINES for s in line.steps for w in s.argv} | {line.text for line in LINES}
    unused = [w for w in SUBSTITUTE if not any(w in x for x in words)]
    assert not unused, f"SUBSTITUTE names what no document has: {unused}"


def test_the_readme_commands_are_found() -> None:
    readme = {line.text.split("#")[0].strip() for line in LINES if line.where.startswith("README.md:")}
    for expected in ("python -m runbooks diagnose vm-app-01 -g rg-prod", "python -m runbooks list",
                     "python -m runbooks explain ExtensionSnapshotFailedNoNetwork",
                     "python -m runbooks fix vm-nsg-blocked -g rg-demo --simulator --dry-run",
                     "python benchmarks/diagnosis_reads.py"):
        assert expected in readme, f"{expected!r} not found among {sorted(readme)}"
    assert any("python -m runbooks demo" in x for x in readme)


SAMPLE = """\
Text with `python -m runbooks inline` is not a command block.

```bash
# a comment line
python -m runbooks list            # the catalog
python -m runbooks fix vm-a \\
    -g rg-prod --dry-run
python -m runbooks list | explain ExtensionSnapshotFailedNoNetwork
```

```console
$ python -m runbooks list -o table
ID  ERROR
E1  UserErrorGuestAgentStatusUnavailable
$ python -m runbooks diagnose vm-a -g rg-prod --query "vms[?status=='planned'] | [0].vm"    # exit 3
"vm-a"
$ python -m runbooks fix --no-such-flag
```

```python
print("$ not a command")
```
"""


def test_the_extractor_reads_bash_lines_and_dollar_lines_and_skips_output() -> None:
    lines = extract(SAMPLE, "SAMPLE.md")
    assert [(line.where, line.text) for line in lines] == [
        ("SAMPLE.md:5", "python -m runbooks list            # the catalog"),
        ("SAMPLE.md:6", "python -m runbooks fix vm-a  -g rg-prod --dry-run"),
        ("SAMPLE.md:8", "python -m runbooks list | explain ExtensionSnapshotFailedNoNetwork"),
        ("SAMPLE.md:12", "python -m runbooks list -o table"),
        ("SAMPLE.md:15", "python -m runbooks diagnose vm-a -g rg-prod --query \"vms[?status=='planned'] | [0].vm\""
                         "    # exit 3"),
        ("SAMPLE.md:17", "python -m runbooks fix --no-such-flag"),
    ]
    assert [line.problem is None for line in lines] == [True, True, False, True, True, False]
    assert "'explain' is not a command" in str(lines[2].problem)
    assert "unrecognized arguments: --no-such-flag" in str(lines[5].problem)
    assert lines[4].exit == 3 and lines[4].steps[0].argv[-2:] == ("--query", "vms[?status=='planned'] | [0].vm")
    assert [s.op for s in lines[2].steps] == ["", "|"]


@pytest.mark.parametrize("line", RUNNABLE, ids=[line.where for line in RUNNABLE])
def test_the_command_runs_as_the_docs_say(armsim: Server, tmp_path: Path, line: DocLine) -> None:
    ran = run_line(line, armsim, tmp_path)
    assert ran, f"{line}: nothing was run"
    for i, r in enumerate(ran):
        expected = line.exit if i == len(ran) - 1 else 0
        assert r.code == expected, f"{line}\nran {r.argv}: exit {r.code}, the docs imply {expected}\n{r.output[-3000:]}"
        assert "Traceback (most recent call last)" not in r.output, f"{line}\nran {r.argv}:\n{r.output[-3000:]}"
