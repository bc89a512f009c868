"""Issue #11: NO_COLOR, TERM=dumb and FORCE_COLOR are honoured: in a real terminal (pexpect) and piped."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
import pytest
from support.runs import ROOT, cli, cli_env, runbooks

from armsim import Server
from runbooks.term import colour, live_ok

SGR = re.compile(r"\x1b\[[0-9;]*m")  # a colour / bold / dim sequence
PLUS = "\x1b[32m+\x1b[0m"  # the plan's "+" sign in green
DRY = ("fix", "vm-nsg-blocked", "-g", "rg-demo", "--dry-run")


def _env(server: Server, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in cli_env(server, tmp).items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env.update(extra)
    return env


def in_pty(server: Server, tmp: Path, *args: str, **env: str) -> str:
    """Everything the CLI wrote to its terminal (raw, escape sequences included); asserts exit 0."""
    command = runbooks(*args)
    child = pexpect.spawn(command[0], command[1:], env=_env(server, tmp, **env), cwd=str(ROOT), encoding="utf-8",
                          timeout=60, dimensions=(60, 200))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return str(child.before)


def test_a_terminal_gets_colour_and_the_live_line_by_default(armsim: Server, tmp_path: Path) -> None:
    out = in_pty(armsim, tmp_path, *DRY, TERM="xterm-256color")
    assert PLUS in out
    assert "\x1b[2m… vm-nsg-blocked: reading facts" in out  # the finished step, dimmed
    assert "\x1b[J" in out  # the live area was drawn and cleared


def test_no_color_removes_every_colour_in_a_terminal_but_keeps_the_live_line(armsim: Server,
                                                                             tmp_path: Path) -> None:
    out = in_pty(armsim, tmp_path, *DRY, TERM="xterm-256color", NO_COLOR="1")
    assert not SGR.search(out), SGR.findall(out)[:5]
    assert "\n  + rule" in out.replace("\r", "")  # the sign, plain
    assert "… vm-nsg-blocked: reading facts" in out
    assert "\x1b[J" in out  # NO_COLOR is about colour only


def test_term_dumb_gets_plain_lines_without_any_escape_sequence(armsim: Server, tmp_path: Path) -> None:
    out = in_pty(armsim, tmp_path, *DRY, TERM="dumb")
    assert "\x1b" not in out
    lines = out.replace("\r", "").splitlines()
    assert "… vm-nsg-blocked: reading facts" in lines  # a plain progress line, not a live one
    assert not [ln for ln in lines if ln.startswith("▸")]


def test_force_color_colours_piped_output_without_cursor_movement(armsim: Server, tmp_path: Path) -> None:
    proc = cli(armsim, *DRY, env=_env(armsim, tmp_path, FORCE_COLOR="1"))
    assert proc.returncode == 0, proc.stderr
    assert PLUS in proc.stdout
    assert "\x1b[2m… vm-nsg-blocked: reading facts\x1b[0m\n" in proc.stdout  # dimmed, one plain line
    assert "\x1b[J" not in proc.stdout and "\r" not in proc.stdout and "▸" not in proc.stdout


def test_no_color_wins_over_force_color(armsim: Server, tmp_path: Path) -> None:
    proc = cli(armsim, *DRY, env=_env(armsim, tmp_path, NO_COLOR="1", FORCE_COLOR="1"))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "+ rule" in proc.stdout


class _Tty:
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("env", "tty", "want"), [
    ({}, True, True), ({}, False, False),
    ({"NO_COLOR": "1"}, True, False), ({"NO_COLOR": ""}, True, True),  # an empty NO_COLOR is not set
    ({"FORCE_COLOR": "1"}, False, True), ({"FORCE_COLOR": ""}, False, False),
    ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),  # NO_COLOR wins
    ({"TERM": "dumb"}, True, False), ({"TERM": "dumb", "FORCE_COLOR": "1"}, True, True),
])
def test_the_colour_rules(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, want: bool) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream = _Tty() if tty else object()
    assert colour(stream) is want
    assert live_ok(stream) is (tty and env.get("TERM") != "dumb")
