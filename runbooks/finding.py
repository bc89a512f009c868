"""A cause's verdict and its evidence (`Finding`), and the shapes of checks shared by every check module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from remediations.facts import Facts
from remediations.target import Target

from .catalog import CAUSES

__all__ = ["Check", "Finding", "Verdict", "guest_probe", "not_observable"]

Verdict = Literal["present", "absent", "unknown"]


@dataclass(frozen=True)
class Finding:
    """A cause's verdict and the evidence that decided it."""

    cause: str
    verdict: Verdict
    evidence: str
    probe: str | None = None
    fixes: tuple[str, ...] | None = None  # the fixes that apply to this finding (None: the cause's)
    on: Target | None = None  # the VM those fixes act on (None: the VM diagnosed), e.g. the guest's proxy VM
    manual: tuple[str, ...] = ()  # steps particular to this finding, before the cause's own

    @property
    def title(self) -> str:
        """The cause's title from the catalog."""
        return CAUSES[self.cause].title


Check = Callable[[Facts], Finding]


def guest_probe(cause: str, action: str, what: str, os_type: str = "Windows") -> Check:
    """A check that asks `action`'s read-only preview (Run Command) on a running `os_type` VM whose agent answers;
    absent on another OS, unknown (with the reason) when the guest cannot be asked."""
    def check(f: Facts) -> Finding:
        vm = f.vm
        if vm.os_type != os_type:
            return Finding(cause, "absent", f"{vm.name} runs {vm.os_type}; {what} applies to {os_type}")
        if not vm.running or not vm.agent_ready:
            return Finding(cause, "unknown", f"cannot look inside the guest: agent {vm.agent_status or 'absent'}")
        return Finding(cause, "unknown", f"{what}: read in the guest through Run Command", probe=action)
    return check


def not_observable(cause: str, why: str) -> Check:
    """A check for a cause ARM cannot see: always unknown, with the reason."""
    return lambda f: Finding(cause, "unknown", why)
