"""`demo`: start armsim in-process (the sim extra) with the demo fleet and fix every VM for real over HTTPS."""

from __future__ import annotations

import argparse
import os

from . import simulator
from .connection import DEMO_GROUP, Where, connect
from .fleet import options, run_fleet
from .output import emit

__all__ = ["cmd_demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    """Start armsim in-process with the demo fleet and fix every VM for real over HTTPS."""
    from remediations.inventory import list_vms

    subscription = simulator.demo_subscription()  # without the sim extra: one error line, exit 2
    where = Where(subscription, "AzureCloud", None, None, "default", None, True)
    args.audit_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), "azure-backup-runbooks-demo-audit.jsonl")
    with connect(where, read_only=False) as clients:
        print(f"armsim demo fleet at {clients.endpoint} (subscription {subscription}, {DEMO_GROUP})\n")
        targets = list_vms(clients.default(), DEMO_GROUP)
        opts = options(args, clients, allow_disruptive=not args.no_disruptive)
        reports = run_fleet(clients, targets, opts, args, concurrency=args.concurrency)
        code = emit(args, "demo", reports, extra={"audit_file": args.audit_file})
    if args.output == "text":
        print(f"\naudit trail: {args.audit_file}")
    return code
