"""The README's benchmarks work (issue #13): fleet.py end to end at a small size, vs_az.py's own parts.

Not timed: the figures are the scripts' business (README, Benchmarks). What is checked is that each script runs as
documented and measures what it says: the fleet run's counts come from armsim's log, the bound's critical path is the
one of the causes the fleet has, and vs_az's side of the comparison is a real diagnosis that az's token source answers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest
from support.runs import ROOT

from armsim import DEMO_SUBSCRIPTION, Server

BENCH = ROOT / "benchmarks"


def load(name: str) -> ModuleType:
    """A benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fleet_py_fixes_a_small_fleet_and_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, str(BENCH / "fleet.py"), "--sizes", "3", "--concurrency", "3",
                           "--latency", "0.01", "--op-seconds", "0.3"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("N=3:"))
    assert "429s 0," in line and "exit 0," in line and "{'fixed': 3}" in line, line
    assert "one VM of each of its 1 causes" in line, line  # VMs 0-2 are all NSG-blocked (armsim/fleet.py)
    figures = re.search(r"wall ([\d.]+) s, bound ([\d.]+) s .* ratio ([\d.]+)x", line)
    assert figures is not None, line
    wall, bound, ratio = map(float, figures.groups())
    assert bound > 0 and abs(ratio - wall / bound) <= 0.05 * (1 + ratio) / bound + 0.005  # shown to 0.1 s and 0.01
    reads = re.search(r"per VM ([\d.]+) reads ([\d.]+) writes", line)
    assert reads is not None and float(reads.group(1)) > 5 and float(reads.group(2)) >= 1, line


def test_the_critical_path_takes_only_the_causes_the_fleet_has() -> None:
    fleet = load("fleet")
    assert fleet.first_of_each_cause(3) == [0]
    every = fleet.first_of_each_cause(500)
    assert every == fleet.first_of_each_cause(15) and len(every) == len(set(fleet.slots(True))) == 4


def test_vs_az_times_a_real_diagnosis(armsim: Server, tmp_path: Path) -> None:
    vs_az = load("vs_az")
    cmd = vs_az.ours({"endpoint": armsim.endpoint, "ca_bundle": armsim.ca_bundle}, "vm-nsg-blocked")
    assert vs_az.SUBSCRIPTION == DEMO_SUBSCRIPTION and vs_az.GROUP == "rg-demo"
    env = vs_az.python_env()
    done = subprocess.run(cmd + ["-o", "json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    vm = json.loads(done.stdout)["vms"][0]
    assert vm["vm"] == "vm-nsg-blocked" and vm["error"]["runbook"] == "E2"
    assert vs_az.our_requests(cmd, env) >= 5  # --verbose: a line per ARM request


def test_vs_az_keeps_bytecode_cached_outside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    vs_az = load("vs_az")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("RUNBOOKS_ARM_ENDPOINT", "https://127.0.0.1:1")
    env = vs_az.python_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["PYTHONPYCACHEPREFIX"] == str(vs_az.PYCACHE)
    assert not any(k.startswith("RUNBOOKS_") for k in env)


def test_vs_az_token_source_answers_only_msals_managed_identity_request() -> None:
    vs_az = load("vs_az")
    with vs_az.token_server() as url:
        request = urllib.request.Request(f"{url}?api-version=2019-08-01&resource=https://armsim/",
                                         headers={"X-IDENTITY-HEADER": "armsim"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            token = json.loads(resp.read())
        assert token["token_type"] == "Bearer" and int(token["expires_on"]) > 0 and token["access_token"]
        try:
            urllib.request.urlopen(url, timeout=10)
            raise AssertionError("a request without X-IDENTITY-HEADER was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 401
