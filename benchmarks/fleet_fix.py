"""Wall time of a fleet fix with armsim latency on: bounded-concurrency vs serial, and the lower bound.

Run: python benchmarks/fleet_fix.py [--latency 0.05] [--concurrency 4]   (needs the sim extra)
Every ARM request is delayed by --latency seconds in armsim (a loopback stand-in for ARM's
round trip). The lower bound for N workers is the larger of the slowest single VM's fix time and
the serial work divided by N (no schedule can beat either).
"""

from __future__ import annotations

import argparse
import time

from armsim import DEMO_SUBSCRIPTION, Settings, Simulator, serve
from remediations.azure import Azure, AzureConfig
from remediations.inventory import list_vms
from runbooks.engine import Options, run


def fleet(latency: float, concurrency: int) -> tuple[float, dict[str, float], dict[str, str], int]:
    from concurrent.futures import ThreadPoolExecutor

    server = serve(Simulator("demo", settings=Settings(latency=latency)))
    try:
        azure = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint,
                                  ca_bundle=server.ca_bundle))
        targets = list_vms(azure, "rg-demo")
        server.sim.clear_requests()
        opts = Options(allow_disruptive=True, backup_poll_seconds=0.05)
        per_vm: dict[str, float] = {}
        status: dict[str, str] = {}

        def one(t):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            r = run(azure, t, opts)
            per_vm[t.name] = time.perf_counter() - t0
            status[t.name] = r.status

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, targets))
        return time.perf_counter() - t0, per_vm, status, len(server.sim.requests())
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--concurrency", type=int, default=4)
    a = p.parse_args()
    serial, per_vm, status, reqs = fleet(a.latency, 1)
    wall, _, status2, reqs2 = fleet(a.latency, a.concurrency)
    bound = max(max(per_vm.values()), sum(per_vm.values()) / a.concurrency)  # no schedule of N workers beats it
    print(f"armsim latency {a.latency * 1000:.0f} ms/request, {len(per_vm)} demo VMs")
    for name in sorted(per_vm):
        print(f"  {name:<26}{per_vm[name]:6.2f} s  {status[name]}")
    print(f"serial (concurrency 1):        {serial:6.2f} s  ({reqs} ARM requests)")
    print(f"bounded (concurrency {a.concurrency}):       {wall:6.2f} s  ({reqs2} ARM requests)")
    print(f"lower bound:                   {bound:6.2f} s  (max of the slowest VM and serial work / {a.concurrency})")
    print(f"speed-up {serial / wall:.1f}x; {wall / bound:.2f}x the lower bound")
    if status != status2:
        print(f"WARNING: results differ between runs: {status} vs {status2}")


if __name__ == "__main__":
    main()
