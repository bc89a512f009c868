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
    """A known scenario name, fleet:N or fleet-failing:N (argparse reports anything else as a usage error)."""
    from .fleet import fleet_size

    if name in SCENARIOS or fleet_size(name) is not None:  # fleet_size raises ValueError for a bad N
        return name
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    """Run armsim until SIGTERM/SIGINT."""
    p = argparse.ArgumentParser(prog="python -m armsim", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    p.add_argument("--scenario", default="demo", type=scenario,
                   help=f"{', '.join(sorted(SCENARIOS))}, fleet:N (N VMs across subscriptions, groups and vaults), or fleet-failing:N (no healthy ones)")
    p.add_argument("--lro-polls", type=int, default=1, help="status polls before an operation ends")
    p.add_argument("--backup-job-polls", type=int, default=2, help="job reads before a backup job ends")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every ARM request")
    p.add_argument("--throttle", action="store_true",
                   help="throttle like ARM: token buckets per subscription and principal, 429 with Retry-After")
    p.add_argument("--op-seconds", type=float, default=None, metavar="S",
                   help="every operation and backup job ends after S seconds by time alone (polls do not hurry it)")
    p.add_argument("--lro-retry-after", type=int, default=None, metavar="S",
                   help="Retry-After (seconds) on every accepted operation and its in-progress polls")
    args = p.parse_args(argv)
    settings = Settings(lro_polls=args.lro_polls, backup_job_polls=args.backup_job_polls, latency=args.latency,
                        throttle=args.throttle, lro_retry_after=args.lro_retry_after)
    if args.op_seconds is not None:
        if args.op_seconds <= 0:
            p.error("--op-seconds: want a number of seconds > 0")
        settings.op_seconds = settings.backup_job_seconds = args.op_seconds
        settings.backup_job_polls = 0
    sim = Simulator(args.scenario, settings=settings)
    server = serve(sim, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the line: a reader may signal as soon as it has it
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps({"endpoint": server.endpoint, "ca_bundle": server.ca_bundle}), flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
