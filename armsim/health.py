"""Microsoft.ResourceHealth: a VM's current availability status, carrying the VM health annotation.

Real signals (sources in armsim/COVERAGE.md):
- A guest shut down from inside shows `PowerState/stopped` (allocated, still billed): "can be the
  result of invoking the PowerOff API or shutdown from within the guest OS" (azure-docs
  `articles/virtual-machines/states-billing.md`).
- Resource Health annotates it `VirtualMachineStoppedInternally` ("…due to a guest activity from
  within the Virtual Machine"), Customer Initiated / Not Applicable; a stop through the platform is
  `VirtualMachineStopInitiatedByControlPlane`, a deallocation `VirtualMachineDeallocationInitiated`
  (azure-monitor-docs `articles/service-health/resource-health-vm-annotation.md`).
- The annotation's name is published to Resource Graph (`microsoft.resourcehealth/resourceannotations`,
  `properties.annotationName`) and Event Grid, not by this API (azure-compute-docs
  `articles/virtual-machines/resource-graph-availability.md`); AvailabilityStatuses_GetByResource
  (azure-mgmt-resourcehealth 1.0.0, api 2025-05-01) carries title, summary, reasonType, context and
  category. armsim puts the annotation's description in `summary` (assumed: the annotations doc says
  they are seen in Resource Health) and its Context/Category in `context`/`category`.
A hung agent on a running VM is invisible to Resource Health: the VM stays Available.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .arm import Request, Response, iso

if TYPE_CHECKING:
    from .compute import VM
    from .sim import Simulator

__all__ = ["ANNOTATIONS", "annotation", "availability"]

# name -> (description verbatim from resource-health-vm-annotation.md, context, category)
ANNOTATIONS: dict[str, tuple[str, str, str]] = {
    "VirtualMachineStoppedInternally": (
        "The Virtual Machine is stopping as requested by an authorized user or process, or due to a guest "
        "activity from within the Virtual Machine. No other action is required at this time.",
        "Customer Initiated", "Not Applicable"),
    "VirtualMachineStopInitiatedByControlPlane": (
        "The Virtual Machine is stopping as requested by an authorized user or process. No other action is "
        "required at this time.", "Customer Initiated", "Not Applicable"),
    "VirtualMachineDeallocationInitiated": (
        "The Virtual Machine is in the process of being stopped and deallocated as requested by an authorized "
        "user or process. No other action is required at this time.", "Customer Initiated", "Not Applicable"),
}


def _now() -> str:
    return iso(datetime.now(timezone.utc))


def annotation(vm: VM) -> str | None:
    """The annotation that explains a VM's current unavailability, None while it runs."""
    if vm.power == "running":
        return None
    if vm.power == "deallocated":
        return "VirtualMachineDeallocationInitiated"
    return "VirtualMachineStopInitiatedByControlPlane" if vm.stopped_by_platform else "VirtualMachineStoppedInternally"


def availability(sim: Simulator, r: Request) -> Response:
    """AvailabilityStatuses_GetByResource for a VM: its current availability status."""
    vm = sim.compute.get(r.params)
    name = annotation(vm)
    props: dict[str, Any]
    if name is None:
        props = {"availabilityState": "Available", "title": "Available",
                 "summary": "There aren't any known Azure platform problems affecting this virtual machine.",
                 "context": "Platform Initiated", "category": "Not Applicable"}
    else:
        summary, context, category = ANNOTATIONS[name]
        props = {"availabilityState": "Unavailable", "title": "Unavailable", "summary": summary,
                 "reasonType": context, "context": context, "category": category}
    props |= {"reasonChronicity": "Persistent", "detailedStatus": "", "occuredTime": _now(), "reportedTime": _now()}
    return Response(200, {"id": f"{vm.id}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
                          "name": "current", "type": "Microsoft.ResourceHealth/AvailabilityStatuses",
                          "location": vm.location, "properties": props})
