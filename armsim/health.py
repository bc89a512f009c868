"""Microsoft.ResourceHealth: a VM's current availability status.

The signal that tells a guest shut down from inside (platform still says running, Resource Health
says Unavailable, "Customer Initiated", shut down from within the guest) from a hung agent
(Resource Health Available).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .arm import Request, Response, iso

if TYPE_CHECKING:
    from .sim import Simulator

__all__ = ["availability"]


def _now() -> str:
    return iso(datetime.now(timezone.utc))


def availability(sim: Simulator, r: Request) -> Response:
    """AvailabilityStatuses_GetByResource for a VM: its current availability status."""
    vm = sim.compute.get(r.params)
    g = vm.guest
    if vm.power != "running":
        state, reason, summary = ("Unavailable", "Customer Initiated",
                                  "This virtual machine is stopped: it was stopped through the Azure platform "
                                  "by a user request.")
    elif g.shut_down_inside:
        state, reason, summary = ("Unavailable", "Customer Initiated",
                                  "We're sorry, your virtual machine isn't available because the guest operating "
                                  "system was shut down from inside the virtual machine.")
    else:
        state, reason, summary = ("Available", "",
                                  "There aren't any known Azure platform problems affecting this virtual machine.")
    props: dict[str, Any] = {"availabilityState": state, "summary": summary, "reasonChronicity": "Persistent",
                             "occuredTime": _now(), "reportedTime": _now(), "detailedStatus": ""}
    if reason:
        props["reasonType"] = reason
    return Response(200, {"id": f"{vm.id}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
                          "name": "current", "type": "Microsoft.ResourceHealth/AvailabilityStatuses",
                          "location": vm.location, "properties": props})
