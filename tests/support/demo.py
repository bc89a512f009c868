"""The demo fleet's place (armsim/scenarios.py) and direct reads of armsim's model, for assertions."""

from __future__ import annotations

from typing import Any

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.target import Target

__all__ = ["RG", "sim_vm", "target", "vm_id"]

RG = "rg-demo"


def target(name: str) -> Target:
    """A demo VM as an action's target."""
    return Target(subscription=DEMO_SUBSCRIPTION, resource_group=RG, name=name)


def vm_id(name: str) -> str:
    """A demo VM's resource ID."""
    return f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{name}"


def sim_vm(server: Server, name: str) -> Any:
    """armsim's model of a demo VM (its guest, power state, extensions)."""
    return server.sim.compute.vms[(DEMO_SUBSCRIPTION, RG, name)]
