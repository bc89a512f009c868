"""`python -m armsim --port 0 --scenario demo`: print one JSON line (endpoint, ca_bundle), then serve."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .scenarios import SCENARIOS
from .server import serve
from .sim import Settings, Simulator


def scenario(name: str) -> str:
    """A known scenario name, or fleet:N (argparse reports anything else as a usage error)."""
    from .fleet import fleet_size

    if name in SCENARIOS or fleet_size(name) is not None:  # fleet_size raises ValueError for a bad N
        return name
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    """Run armsim until SIGTERM/SIGINT."""
    p = argparse.ArgumentParser(prog="python -m armsim", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    p.add_argument("--scenario", default="demo", type=scenario,
                   help=f"{', '.join(sorted(SCENARIOS))}, or fleet:N (N VMs across subscriptions, groups and vaults)")
    p.add_argument("--lro-polls", type=int, default=1, help="status polls before an operation ends")
    p.add_argument("--backup-job-polls", type=int, default=2, help="job reads before a backup job ends")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every ARM request")
    p.add_argument("--throttle", action="store_true",
                   help="throttle like ARM: token buckets per subscription and principal, 429 with Retry-After")
    args = p.parse_args(argv)
    sim = Simulator(args.scenario, settings=Settings(lro_polls=args.lro_polls, backup_job_polls=args.backup_job_polls,
                                                     latency=args.latency, throttle=args.throttle))
    server = serve(sim, port=args.port)
    print(json.dumps({"endpoint": server.endpoint, "ca_bundle": server.ca_bundle}), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
