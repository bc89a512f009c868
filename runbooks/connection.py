"""Connection settings and clients: validated before any client exists; one set of clients per subscription.

With --simulator (and `demo`) an in-process armsim stands behind the clients (`simulator`, the sim extra).
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from remediations.armid import is_guid
from remediations.azure import Azure, AzureConfig
from remediations.endpoint import check_endpoint
from remediations.errors import BadInput

from . import simulator

__all__ = ["DEMO_GROUP", "Clients", "Where", "connect", "group_of", "where_from"]

DEMO_GROUP = "rg-demo"


@dataclass
class Where:
    """The validated connection settings of a command (no client built yet); subscription is only a default."""

    subscription: str | None
    cloud: str
    endpoint: str | None
    ca_bundle: str | None
    credential: str
    client_id: str | None
    simulator: bool


def where_from(args: argparse.Namespace) -> Where:
    """Where from flags and environment; BadInput for anything malformed (nothing is sent)."""
    sub = args.subscription or os.environ.get("AZURE_SUBSCRIPTION_ID") or None
    if sub is not None and not is_guid(sub.strip()):
        raise BadInput(f"subscription {sub!r} is not a GUID")
    if args.simulator:  # the sim extra is checked here, before anything else happens
        sub = sub or simulator.demo_subscription()
    endpoint = args.arm_endpoint or os.environ.get("RUNBOOKS_ARM_ENDPOINT") or None
    if args.simulator and endpoint:
        raise BadInput("--simulator and --arm-endpoint are exclusive")
    if endpoint:
        check_endpoint(endpoint)
    ca = args.ca_bundle or os.environ.get("RUNBOOKS_CA_BUNDLE") or None
    if ca and not os.path.isfile(ca):
        raise BadInput(f"--ca-bundle {ca!r}: no such file")
    return Where(sub.strip().lower() if sub else None, args.cloud, endpoint, ca, args.credential, args.client_id,
                 args.simulator)


def group_of(args: argparse.Namespace, where: Where) -> str | None:
    """The -g resource group, or the demo's with --simulator."""
    return args.resource_group or (DEMO_GROUP if where.simulator else None)


class Clients:
    """SDK clients per subscription, all sharing one endpoint, CA, credential choice and read-only mode."""

    def __init__(self, where: Where, endpoint: str | None, ca_bundle: str | None, *, read_only: bool) -> None:
        self.where = where
        self._endpoint, self._ca, self.read_only = endpoint, ca_bundle, read_only
        self._by_sub: dict[str, Azure] = {}
        self._lock = threading.Lock()
        self.loopback = self._config("00000000-0000-0000-0000-000000000000").loopback

    def _config(self, subscription: str) -> AzureConfig:
        w = self.where
        return AzureConfig(subscription=subscription, cloud=w.cloud, arm_endpoint=self._endpoint,  # type: ignore[arg-type]
                           ca_bundle=self._ca, read_only=self.read_only, credential=w.credential,  # type: ignore[arg-type]
                           client_id=w.client_id)

    def __call__(self, subscription: str) -> Azure:
        """The clients of one subscription (built once, on first use)."""
        key = subscription.lower()
        with self._lock:
            if key not in self._by_sub:
                self._by_sub[key] = Azure(self._config(key))
            return self._by_sub[key]

    @property
    def endpoint(self) -> str:
        """The ARM base URL in use."""
        return self._config("00000000-0000-0000-0000-000000000000").endpoint

    def default(self) -> Azure:
        """The clients of the default subscription (--subscription / AZURE_SUBSCRIPTION_ID)."""
        if not self.where.subscription:
            raise BadInput("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID")
        return self(self.where.subscription)


@contextmanager
def connect(where: Where, *, read_only: bool) -> Iterator[Clients]:
    """Clients for the validated settings; with --simulator, an in-process armsim behind them."""
    server = None
    endpoint, ca = where.endpoint, where.ca_bundle
    if where.simulator:
        server = simulator.serve()
        endpoint, ca = server.endpoint, server.ca_bundle
    try:
        yield Clients(where, endpoint, ca, read_only=read_only)
    finally:
        if server is not None:
            server.stop()
