"""Shared fixtures and data: an armsim over HTTPS per test process, reset before each test that uses it; the
demo fleet's VM names (from armsim's own scenario) and the transient faults every action must ride out.

Under pytest-xdist each worker is a process of its own: its own armsim on a free port, its own CA, its own
prefork zygote (tests/support/prefork.py), and its own state folder (XDG_STATE_HOME), so no two tests
share a port, a file in the repository or a file in the user's home.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import prefork

from armsim import DEMO_SUBSCRIPTION, Server, Settings, Simulator, serve
from remediations.azure import Azure, AzureConfig, RetrySettings

if sys.dont_write_bytecode and sys.pycache_prefix is None:
    # PYTHONDONTWRITEBYTECODE keeps bytecode out of the tree; cache the test modules' (and the runs', see
    # support/prefork.py) in a folder of the temp dir instead: collecting them again costs a third.
    sys.pycache_prefix = os.path.join(tempfile.gettempdir(), f"azure-backup-runbooks-pycache-{os.getuid()}")
    sys.dont_write_bytecode = False

WAITS: list[float] = []  # every wait FAST_RETRY's policy asked for since the last `waits` fixture


def _recorded_sleep(seconds: float) -> None:
    """FAST_RETRY's wait between attempts: recorded in WAITS (tests assert it), slept for at most 50 ms."""
    WAITS.append(seconds)
    time.sleep(min(seconds, 0.05))


# Retry-After is honoured up to 1 s (a throttled attempt asks for 1.0, see `waits`), without waiting it out.
FAST_RETRY = RetrySettings(attempts=5, max_seconds=20, backoff=0.01, backoff_max=0.05, retry_after_cap=1.0,
                           sleep=_recorded_sleep)


def _demo_fleet() -> tuple[list[str], list[str]]:
    sim = Simulator("demo")
    names = [vm.name for vm in sim.compute.vms.values()]
    failed = {j.item.vm.name for vault in sim.backup.vaults.values() for j in vault.jobs if j.status == "Failed"}
    return names, [n for n in names if n in failed]


# The demo fleet (armsim/scenarios.py), in its order: every VM, and the broken ones (a failed backup job each).
DEMO_VMS, BROKEN = _demo_fleet()
# Faults every write must ride out (armsim/faults.py kinds): retried, then the write succeeds.
TRANSIENT_FAULTS: list[dict[str, Any]] = [
    {"kind": "throttle", "retry_after": 1},
    {"kind": "server_error"},
    {"kind": "unavailable", "retry_after": 1},
    {"kind": "reset"},
    {"kind": "conflict"},
]


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run in parallel by default (pytest-xdist): a worker per core and one more, as runs wait on processes and
    polls. `-n N` picks N; `-n 0`, `-p no:xdist`, --pdb and --collect-only run in this process."""
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return  # a worker (never spawn from one), or xdist is off
    option = config.option
    if option.numprocesses is None and not option.usepdb and not option.collectonly:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        option.numprocesses = cores + 1
        if option.dist == "no":
            option.dist = "worksteal"  # long tests (a whole sweep, a role check) do not hold up the end


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, the controller starts the warm interpreter for CLI runs; its workers share it."""
    distributing = not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None)
    if distributing and os.environ.get("TESTS_PREFORK", "1") != "0" and hasattr(os, "fork"):
        os.environ[prefork.SHARED] = prefork.start()


@pytest.fixture(scope="session", autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs that name no audit file write it in this session's folder, never in the user's home."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("state")
    mp.setenv("XDG_STATE_HOME", str(home))
    yield home
    mp.undo()


@pytest.fixture(scope="session")
def armsim_server() -> Iterator[Server]:
    server = serve(Simulator("demo", settings=Settings()))
    yield server
    server.stop()


def reset(server: Server) -> Server:
    """Restore armsim to the demo scenario with default settings, an empty log and no faults."""
    sim = server.sim
    sim.faults.clear()
    sim.settings.__init__()  # type: ignore[misc]
    sim.reset("demo")
    sim.clear_requests()
    return server


@pytest.fixture
def armsim(armsim_server: Server) -> Server:
    """The session's armsim, restored to the demo scenario with an empty log and no faults."""
    return reset(armsim_server)


@pytest.fixture
def waits() -> list[float]:
    """The waits FAST_RETRY's retries ask for during this test (Retry-After, capped; else the backoff)."""
    WAITS.clear()
    return WAITS


@pytest.fixture
def azure(armsim: Server) -> Azure:
    """Real SDK clients pointed at armsim (no credential: loopback)."""
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                             ca_bundle=armsim.ca_bundle, retry=FAST_RETRY, read_timeout=30))


def mutating(server: Server) -> list[dict[str, Any]]:
    """The request-log entries that changed (or would have changed) simulated state."""
    return [e for e in server.sim.requests() if e["mutating"]]


def http(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A raw HTTPS request to armsim (for control routes and shape checks)."""
    ctx = ssl.create_default_context(cafile=server.ca_bundle)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.endpoint + path, method=method, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None
