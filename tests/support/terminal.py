"""The CLI in a real terminal (a pty, through pexpect), pointed at armsim as a person's shell would be."""

from __future__ import annotations

from pathlib import Path

import pexpect

from armsim import Server
from support.runs import ROOT, cli_env, runbooks

__all__ = ["spawn"]


def spawn(server: Server, tmp: Path, *args: str, rows: int = 50, cols: int = 200, **env: str) -> pexpect.spawn:
    """`python -m runbooks <args>` in a pty against armsim, the audit trail under `tmp`; no colour unless `env`
    says otherwise (NO_COLOR="" turns it back on)."""
    full = {**cli_env(server, tmp), "NO_COLOR": "1", **env}
    command = runbooks(*args)
    return pexpect.spawn(command[0], command[1:], env=full, cwd=str(ROOT), encoding="utf-8",
                         timeout=60, dimensions=(rows, cols))
