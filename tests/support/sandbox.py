"""An Automation sandbox, played over HTTPS: take one New job of a runbook at a time from armsim, run it, report it.

    python tests/support/sandbox.py <runbook>      (environment: support.runs.child_env)

Automation runs each job in a sandbox process; several sandboxes run at once, and jobs share nothing but
Azure. A test starts K of these processes to get K jobs in flight, each process running its jobs one after
another, so two jobs in flight never share a process (no in-process lock or cache can coordinate them: only
ARM can). A job runs as Automation runs a Python runbook: the entry script's main() with its parameter values
as argv; everything it prints is its output stream, and its exit code decides Completed or Failed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import ssl
import sys
import urllib.request
from pathlib import Path
from typing import Any

AA_DIR = Path(__file__).resolve().parents[2] / "azure-automation"


def _control(path: str, body: dict[str, Any]) -> Any:
    """POST to armsim's worker harness (/_armsim/automation/...)."""
    ctx = ssl.create_default_context(cafile=os.environ["RUNBOOKS_CA_BUNDLE"])
    req = urllib.request.Request(f"{os.environ['RUNBOOKS_ARM_ENDPOINT']}/_armsim/automation/{path}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=60) as resp:
        return json.loads(resp.read())


class _Stdout(io.TextIOBase):
    """Whatever sys.stdout is at the moment of writing (the entry scripts' logging goes to the job's output)."""

    def write(self, s: str) -> int:
        return sys.stdout.write(s)


def main(runbook: str) -> int:
    """Run jobs of `runbook` until none is New; print how many."""
    spec = importlib.util.spec_from_file_location(runbook, AA_DIR / f"{runbook}.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    logging.basicConfig(stream=_Stdout(), level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ran = 0
    while True:
        jobs = _control("claim", {"runbook": runbook, "limit": 1})
        if not jobs:
            break
        job = jobs[0]
        argv = [f"{runbook}.py", *(str(v) for v in (job["properties"].get("parameters") or {}).values())]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                code = script.main(argv)
            except BaseException as e:  # a crash is the job's failure, never the sandbox's end
                print(f"error: {type(e).__name__}: {e}")
                code = 1
        _control(f"jobs/{job['name']}/report", {"status": "Completed" if code == 0 else "Failed",
                                                "output": buf.getvalue().rstrip("\n").splitlines()})
        ran += 1
    print(json.dumps({"ran": ran}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
