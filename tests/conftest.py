"""Shared fixtures: an armsim over HTTPS per test session, reset before each test that uses it."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from armsim import DEMO_SUBSCRIPTION, Server, Settings, Simulator, serve
from remediations.azure import Azure, AzureConfig, RetrySettings

FAST_RETRY = RetrySettings(attempts=5, max_seconds=20, backoff=0.01, backoff_max=0.05, retry_after_cap=1.0)


@pytest.fixture(scope="session")
def armsim_server() -> Iterator[Server]:
    server = serve(Simulator("demo", settings=Settings()))
    yield server
    server.stop()


@pytest.fixture
def armsim(armsim_server: Server) -> Server:
    """The session's armsim, restored to the demo scenario with an empty log and no faults."""
    sim = armsim_server.sim
    sim.faults.clear()
    sim.settings.__init__()  # type: ignore[misc]
    sim.reset("demo")
    sim.clear_requests()
    return armsim_server


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
