"""Run the CLI (`python -m runbooks`) or an Automation entry script in a process of its own, against armsim."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from armsim import DEMO_SUBSCRIPTION, Server
from support.prefork import python

__all__ = ["AA_DIR", "ROOT", "Run", "child_env", "cli", "cli_env", "run_entry", "runbooks"]

ROOT = Path(__file__).resolve().parents[2]
AA_DIR = ROOT / "azure-automation"


def runbooks(*args: str) -> list[str]:
    """The argv of `python -m runbooks <args>` (through the warm interpreter, see prefork)."""
    return [*python(), "-m", "runbooks", *args]


def cli_env(server: Server, tmp: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment a user sets to point the CLI at armsim; `tmp` holds the audit trail (XDG_STATE_HOME)."""
    env = {**os.environ, "RUNBOOKS_ARM_ENDPOINT": server.endpoint, "RUNBOOKS_CA_BUNDLE": server.ca_bundle,
           "AZURE_SUBSCRIPTION_ID": DEMO_SUBSCRIPTION, "PYTHONPATH": str(ROOT)}
    if tmp is not None:
        env["XDG_STATE_HOME"] = str(tmp)
    env.update(extra)
    return env


def cli(server: Server, *args: str, tmp: Path | None = None, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI against armsim with the environment a user would set (or `env` as given)."""
    return subprocess.run(runbooks(*args), capture_output=True, text=True, env=env or cli_env(server, tmp),
                          cwd=ROOT, timeout=120, input=stdin)


@dataclass
class Run:
    """What an entry script did: exit code, stdout lines, the JSON summary (last line), stderr."""

    code: int
    lines: list[str]
    summary: dict[str, Any]
    stderr: str

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def child_env(server: Server, **extra: str) -> dict[str, str]:
    """The environment of an Automation job pointed at armsim: no RUNBOOKS_/AZURE_/identity variables of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOKS_", "AZURE_", "IDENTITY_", "MSI_"))}
    env.update({"PYTHONPATH": str(ROOT), "RUNBOOKS_ARM_ENDPOINT": server.endpoint,
                "RUNBOOKS_CA_BUNDLE": server.ca_bundle, "AZURE_SUBSCRIPTION_ID": DEMO_SUBSCRIPTION,
                "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra)
    return env


def run_entry(server: Server, script: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 120) -> Run:
    """`python3 azure-automation/<script> <args>` in a process of its own, from another directory, as Automation runs it."""
    proc = subprocess.run([*python(), str(AA_DIR / script), *args], cwd=str(cwd or Path("/")),
                          env=env or child_env(server), capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.rstrip("\n").splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else {}
    except ValueError:
        raise AssertionError(f"the last line is not a JSON summary:\n{proc.stdout}\n{proc.stderr}") from None
    return Run(proc.returncode, lines, summary, proc.stderr)
