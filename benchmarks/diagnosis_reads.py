"""ARM requests per diagnosis, per demo VM (target: at most 5 facts-only reads for a running one-NIC VM).

Run: python benchmarks/diagnosis_reads.py   (needs the sim extra: pip install -e ".[sim]")
Counts every request armsim receives while `runbooks` investigates one VM through the real SDK
(read-only pipeline), first gathering the facts alone, then the whole investigation with a cold service-tag
cache. The route check (C1.route: the service tags if not read yet, the effective-routes POST and its polls)
is made only when no cause found so far explains a failed backup, so a VM whose NSG explains it pays nothing.
"""

from __future__ import annotations

import time
from typing import Any

from armsim import DEMO_SUBSCRIPTION, Simulator, serve
from remediations import facts, netreads
from remediations.azure import Azure, AzureConfig
from remediations.target import Target
from runbooks.engine import Options, investigate

_POLL = ("/operationresults/", "/operations/")


def route_reads(log: list[dict[str, Any]]) -> int:
    """Requests of the route check: the effective-routes POST, its polls, and a service-tags read just before it."""
    n = 0
    for i, e in enumerate(log):
        if e["operation"] != "NetworkInterfaces_GetEffectiveRouteTable":
            continue
        n += 1
        if i and log[i - 1]["operation"] == "ServiceTags_List":
            n += 1
        for after in log[i + 1:]:
            if not any(p in after["path"].lower() for p in _POLL):
                break
            n += 1
    return n


def guest_probes(log: list[dict[str, Any]]) -> int:
    """Requests of in-guest probes: each read-only Run Command POST and its polls."""
    n, polling = 0, False
    for e in log:
        if e["path"].endswith("/runCommand"):
            n, polling = n + 1, True
        elif polling and any(p in e["path"].lower() for p in _POLL) and "Microsoft.Compute" in e["path"]:
            n += 1
        else:
            polling = False
    return n


def main() -> None:
    server = serve(Simulator("demo"))
    try:
        azure = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint,
                                  ca_bundle=server.ca_bundle, read_only=True))
        names = [vm.name for vm in server.sim.compute.vms.values() if vm.group == "rg-demo"]
        print(f"{'VM':<26}{'ARM reads':>10}{'facts only':>12}{'route check':>13}{'in-guest probes':>17}"
              f"{'mutating':>10}{'ms':>8}")
        worst = 0
        for name in names:
            target = Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name)
            netreads._tags_cache.clear()
            server.sim.clear_requests()
            t0 = time.perf_counter()
            facts.gather(azure, target)
            gathered = len(server.sim.requests())
            server.sim.clear_requests()
            netreads._tags_cache.clear()
            investigate(azure, target, Options())
            ms = (time.perf_counter() - t0) * 1000
            log = server.sim.requests()
            if server.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", name)].power == "running":
                worst = max(worst, gathered)
            print(f"{name:<26}{len(log):>10}{gathered:>12}{route_reads(log):>13}{guest_probes(log):>17}"
                  f"{sum(e['mutating'] for e in log):>10}{ms:>8.0f}")
        print(f"\nworst facts-only reads for a running one-NIC VM: {worst} (target <= 5; the effective-NSG poll "
              "counts).")
        print("A stopped VM costs more reads: its NIC, subnet and NSGs instead of the effective NSGs, and Resource "
              "Health, which tells a guest shut down from inside from a stop through the platform.")
        print("'ARM reads' includes the route check (only when no cause found explains a failed backup) and the "
              "in-guest probes (read-only Run Command: POST + LRO polls).")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
