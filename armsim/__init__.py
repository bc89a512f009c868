"""armsim: a stateful simulator of the Azure Resource Manager APIs this project calls, over HTTPS."""

from .arm import ArmError
from .faults import Fault
from .scenarios import DEMO_SUBSCRIPTION, SCENARIOS
from .server import Server, serve
from .sim import Settings, Simulator

__all__ = ["DEMO_SUBSCRIPTION", "SCENARIOS", "ArmError", "Fault", "Server", "Settings", "Simulator", "serve"]
