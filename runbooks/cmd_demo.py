"""`demo`: start armsim in-process (the sim extra) with the demo fleet and fix every VM for real over HTTPS."""

from __future__ import annotations

import argparse
import sys

from . import simulator
from .audit import audit_path
from .connection import DEMO_GROUP, Where, connect
from .fleet import options, run_fleet
from .formats import is_machine
from .output import emit

__all__ = ["DEMO_PROXY", "cmd_demo"]

DEMO_PROXY = "http://10.0.2.4:3128"  # the demo fleet's working proxy VM (vm-proxy), given as an operator would


def cmd_demo(args: argparse.Namespace) -> int:
    """Start armsim in-process with the demo fleet and fix every VM for real over HTTPS."""
    from remediations.inventory import list_vms

    subscription = simulator.demo_subscription()  # without the sim extra: one error line, exit 2
    where = Where(subscription, "AzureCloud", None, None, "default", None, True)
    args.audit_file = str(audit_path(args))  # the simulator's own trail (audit-simulator.jsonl), never the real one
    with connect(where, read_only=False) as clients:
        where_to = sys.stderr if is_machine(args) else sys.stdout  # stdout holds one document under -o json
        print(f"armsim demo fleet at {clients.endpoint} (subscription {subscription}, {DEMO_GROUP})\n"
              f"set-guest-proxy is given the working proxy {DEMO_PROXY} (the demo's proxy VM), as an operator "
              "would with fix --proxy\n", file=where_to)
        targets = list_vms(clients.default(), DEMO_GROUP)
        opts = options(args, clients, allow_disruptive=not args.no_disruptive, proxy=DEMO_PROXY)
        reports = run_fleet(clients, targets, opts, args, concurrency=args.concurrency)
        code = emit(args, "demo", reports, extra={"audit_file": args.audit_file})
    if not is_machine(args):
        print(f"\naudit trail: {args.audit_file}")
    return code
