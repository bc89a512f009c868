"""The CLI ends without tearing the interpreter down (runbooks/__main__.py), both as `python -m runbooks` and as the
`azure-backup-runbooks` console script, yet as CPython's exit would: threads joined, atexit run, output flushed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from support.runs import ROOT

_ATEXIT = """
import atexit, runpy, sys, threading, time
atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(1.5), print("thread ended"))).start()  # not a daemon: joined first
sys.argv = ["runbooks", *sys.argv[1:]]
runpy.run_module("runbooks", run_name="__main__", alter_sys=True)
"""


def test_the_console_script_takes_the_same_exit_as_python_m() -> None:
    (script,) = entry_points(group="console_scripts", name="azure-backup-runbooks")
    assert script.value == "runbooks.__main__:run"


@pytest.mark.parametrize("args, code", [(["list"], 0), (["explain", "NoSuchCode"], 2)])
def test_the_exit_joins_threads_runs_atexit_flushes_and_keeps_the_code(args: list[str], code: int) -> None:
    done = subprocess.run([sys.executable, "-c", _ATEXIT, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == code, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2:] == ["thread ended", "atexit ran"], lines[-3:]  # the thread outlived the command: joined
    if code == 0:
        assert lines[0].startswith("E1 "), lines[:2]  # the command's whole output came first, flushed


def test_the_installed_console_script_runs_and_keeps_the_exit_code() -> None:
    exe = shutil.which("azure-backup-runbooks", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the package is not installed in this interpreter's environment (pip install -e .)")
    assert subprocess.run([exe, "explain", "NoSuchCode"], capture_output=True, timeout=60).returncode == 2
    listed = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.startswith("E1 ")
