"""Fix N failing VMs through the CLI within ARM's throttle: wall time against the lower bound, 429s, requests per VM,
the client's peak RSS.

Run: python benchmarks/fleet.py [--sizes 100,250,500] [--concurrency 32] [--latency 0.05] [--op-seconds 2]
     [--retry-after 1]
(needs the sim extra). Not part of the test suite.

Each size N starts `python -m armsim --scenario fleet-failing:N --throttle --latency L --op-seconds S
--lro-retry-after R` (N VMs across two subscriptions, every one with a failed backup job and a cause; ARM's token
buckets; L seconds added to every request; every operation and backup job takes S seconds; operations ask for the
next poll R seconds later, as ARM's Retry-After does: learn.microsoft.com azure-resource-manager/management/
async-operations.md; the value is assumed) and runs `python -m runbooks fix <N resource IDs> --yes
--allow-disruptive --concurrency K -o json` in a process of its own, so the peak RSS (os.wait4) is the client's.

The lower bound no schedule can beat, per subscription (each has its own buckets, armsim/throttle.py):
max(critical path, (reads - 250) / 25 per s, (writes - 200) / 10 per s, (deletes - 200) / 10 per s), where
the critical path is the wall time of one CLI run fixing one VM of each cause the N VMs have, side by side on a
fresh armsim (the slowest chain, process start included), and the request counts are what the fleet run sent (armsim's log).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from armsim.fleet import FLEET_SUBSCRIPTIONS, slots  # noqa: E402
from armsim.throttle import LIMITS, kind_of  # noqa: E402


def vm_ids(n: int) -> list[str]:
    """The resource IDs of fleet-failing:N's VMs, as armsim/fleet.py names them (no simulator needed)."""
    subs = len(FLEET_SUBSCRIPTIONS)
    return [f"/subscriptions/{FLEET_SUBSCRIPTIONS[i % subs]}/resourceGroups/rg-fleet-{(i // subs) % 3}"
            f"/providers/Microsoft.Compute/virtualMachines/vm-fleet-{i:04d}" for i in range(n)]


class Armsim:
    """`python -m armsim` in a process of its own; its endpoint, CA bundle and request log."""

    def __init__(self, scenario: str, latency: float, op_seconds: float, retry_after: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "armsim", "--port", "0", "--scenario", scenario, "--throttle",
             "--latency", str(latency), "--op-seconds", str(op_seconds), "--lro-retry-after", str(retry_after)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.endpoint, self.ca_bundle = info["endpoint"], info["ca_bundle"]

    def requests(self) -> list[dict[str, Any]]:
        ctx = ssl.create_default_context(cafile=self.ca_bundle)
        with urllib.request.urlopen(self.endpoint + "/_armsim/requests", context=ctx) as resp:
            return list(json.loads(resp.read()))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def fix(sim: Armsim, ids: list[str], concurrency: int, tmp: Path) -> tuple[float, int, int, dict[str, Any]]:
    """Run the CLI's fix over `ids`: (wall seconds, exit code, peak RSS in KiB, its JSON output)."""
    env = {**os.environ, "RUNBOOKS_ARM_ENDPOINT": sim.endpoint, "RUNBOOKS_CA_BUNDLE": sim.ca_bundle,
           "AZURE_SUBSCRIPTION_ID": FLEET_SUBSCRIPTIONS[0], "XDG_STATE_HOME": str(tmp), "PYTHONPATH": str(ROOT)}
    out = tmp / "out.json"
    started = time.perf_counter()
    with out.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "runbooks", "fix", *ids, "--yes", "--allow-disruptive",
                                 "--concurrency", str(concurrency), "-o", "json"],
                                cwd=ROOT, env=env, stdout=f, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    text = out.read_text()
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        doc = {}
    return wall, os.waitstatus_to_exitcode(status), int(usage.ru_maxrss), doc


def bound_of(log: list[dict[str, Any]], critical: float) -> tuple[float, dict[str, Counter[str]]]:
    """The lower bound (see the module docstring) and the request counts by subscription and kind."""
    counts: dict[str, Counter[str]] = {}
    for e in log:
        parts = e["path"].split("/")
        if len(parts) > 2 and parts[1].lower() == "subscriptions":
            counts.setdefault(parts[2].lower(), Counter())[kind_of(e["method"])] += 1
    paced = [max(0.0, n - LIMITS[kind][0]) / LIMITS[kind][1] for c in counts.values() for kind, n in c.items()]
    return max([critical, *paced]), counts


def first_of_each_cause(n: int) -> list[int]:
    """The index of the first VM of each cause present among fleet-failing:N's VMs (a VM's cause: i % the mix)."""
    mix = slots(True)
    return sorted({mix[i]: i for i in reversed(range(min(n, len(mix))))}.values())


def critical_path(n: int, latency: float, op_seconds: float, retry_after: int, tmp: Path) -> float:
    """Wall time of one CLI run fixing, side by side on a fresh armsim, the first VM of each cause the N VMs have."""
    mix = slots(True)
    first = first_of_each_cause(n)
    sim = Armsim(f"fleet-failing:{len(mix)}", latency, op_seconds, retry_after)
    try:
        wall, code, _, doc = fix(sim, [vm_ids(len(mix))[i] for i in first], len(first), tmp)
    finally:
        sim.stop()
    if code != 0:
        print(f"WARNING: the critical-path run exited {code}: {doc}", file=sys.stderr)
    return wall


def run_size(n: int, concurrency: int, latency: float, op_seconds: float, retry_after: int, critical: float,
             tmp: Path) -> dict[str, Any]:
    """One fleet run of N VMs; its figures."""
    sim = Armsim(f"fleet-failing:{n}", latency, op_seconds, retry_after)
    try:
        wall, code, rss, doc = fix(sim, vm_ids(n), concurrency, tmp)
        log = sim.requests()
    finally:
        sim.stop()
    bound, counts = bound_of(log, critical)
    statuses = Counter(str(v.get("status")) for v in doc.get("vms", []))
    reads = sum(c["reads"] for c in counts.values())
    writes = sum(c["writes"] + c["deletes"] for c in counts.values())
    return {"n": n, "wall": wall, "exit": code, "rss_mb": rss / 1024, "bound": bound, "ratio": wall / bound,
            "throttled": sum(1 for e in log if e["status"] == 429), "reads_per_vm": reads / n,
            "writes_per_vm": writes / n, "statuses": dict(statuses),
            "by_subscription": {s[:8]: dict(c) for s, c in counts.items()},
            "conflicts": sum(1 for e in log if e["status"] in (409, 412))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--sizes", default="500", help="comma-separated fleet sizes (e.g. 100,250,500)")
    p.add_argument("--concurrency", type=int, default=32, help="the CLI's --concurrency")
    p.add_argument("--latency", type=float, default=0.05, help="seconds armsim adds to every request")
    p.add_argument("--op-seconds", type=float, default=2.0, help="seconds every operation and backup job takes")
    p.add_argument("--retry-after", type=int, default=1, help="Retry-After armsim sends on operations (seconds)")
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"armsim: --throttle, {a.latency * 1000:.0f} ms per request, {a.op_seconds:g} s per operation, "
              f"Retry-After {a.retry_after} s; fix --concurrency {a.concurrency}", flush=True)
        paths: dict[tuple[int, ...], float] = {}  # the critical path of each set of causes, measured once
        for n in sizes:
            causes = tuple(first_of_each_cause(n))
            if causes not in paths:
                paths[causes] = critical_path(n, a.latency, a.op_seconds, a.retry_after, tmp)
            critical = paths[causes]
            r = run_size(n, a.concurrency, a.latency, a.op_seconds, a.retry_after, critical, tmp)
            print(f"N={n}: wall {r['wall']:.1f} s, bound {r['bound']:.1f} s (critical path {critical:.1f} s: one VM "
                  f"of each of its {len(causes)} causes), ratio {r['ratio']:.2f}x, "
                  f"429s {r['throttled']}, 409/412s {r['conflicts']}, per VM {r['reads_per_vm']:.1f} reads "
                  f"{r['writes_per_vm']:.1f} writes, client peak RSS {r['rss_mb']:.0f} MB, exit {r['exit']}, "
                  f"{r['statuses']}, by subscription {r['by_subscription']}", flush=True)


if __name__ == "__main__":
    main()
