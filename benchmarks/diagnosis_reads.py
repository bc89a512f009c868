"""ARM requests per diagnosis, per demo VM (target: at most 5 for a one-NIC VM).

Run: python benchmarks/diagnosis_reads.py   (needs the sim extra: pip install -e ".[sim]")
Counts every request armsim receives while `runbooks` investigates one VM through the real SDK
(read-only pipeline), first with a cold service-tag cache, then warm (as in a fleet run).
"""

from __future__ import annotations

import time

from armsim import DEMO_SUBSCRIPTION, Simulator, serve
from remediations import facts, netreads
from remediations.azure import Azure, AzureConfig
from remediations.target import Target
from runbooks.engine import Options, investigate

VMS = ["vm-healthy", "vm-nsg-blocked", "vm-subnet-blocked", "vm-win-agent-hung", "vm-linux-agent-old",
       "vm-sql-vss", "vm-rdp-shutdown", "vm-ext-failed", "vm-win-provider-disabled"]


def main() -> None:
    server = serve(Simulator("demo"))
    try:
        azure = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint,
                                  ca_bundle=server.ca_bundle, read_only=True))
        print(f"{'VM':<26}{'ARM reads':>10}{'facts only':>12}{'in-guest probes':>17}{'mutating':>10}{'ms':>8}")
        worst = 0
        for name in VMS:
            netreads._tags_cache.clear()
            server.sim.clear_requests()
            t0 = time.perf_counter()
            facts.gather(azure, Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name))
            gathered = len(server.sim.requests())
            server.sim.clear_requests()
            netreads._tags_cache.clear()
            investigate(azure, Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name), Options())
            ms = (time.perf_counter() - t0) * 1000
            log = server.sim.requests()
            probes = sum(1 for e in log if e["path"].endswith("/runCommand"))
            if server.sim.compute.vms[(DEMO_SUBSCRIPTION, "rg-demo", name)].power == "running":
                worst = max(worst, gathered)
            print(f"{name:<26}{len(log):>10}{gathered:>12}{probes:>17}{sum(e['mutating'] for e in log):>10}"
                  f"{ms:>8.0f}")
        print(f"\nworst facts-only reads for a running one-NIC VM: {worst} (target <= 5; the effective-NSG poll "
              "counts).")
        print("A stopped VM costs more reads: its NIC, subnet and NSGs instead of the effective NSGs, and Resource "
              "Health, which tells a guest shut down from inside from a stop through the platform.")
        print("'ARM reads' includes in-guest probes (read-only Run Command: POST + LRO polls) that the "
              "runbook asks only for Windows guest-level causes.")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
