"""In-guest action test helpers: an action's params for a demo VM, with short waits for the agent."""

from __future__ import annotations

from typing import Any

from remediations.actions.guest import RestartGuestAgent, UpgradeLinuxAgent
from support.demo import target

__all__ = ["FAST_WAIT", "params"]

FAST_WAIT = {"wait_ready_seconds": 5.0, "poll_seconds": 0.01}


def params(cls: type, name: str, **kw: Any) -> Any:
    """`cls.Params` for a demo VM; the actions that wait for the agent wait briefly."""
    if cls in (RestartGuestAgent, UpgradeLinuxAgent):
        kw = {**FAST_WAIT, **kw}
    return cls.Params(target=target(name), **kw)
