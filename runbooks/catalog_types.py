"""The catalog's two shapes: a cause (`Cause`) and a runbook (`ErrorEntry`), and the cause groups they expand."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GROUPS", "Cause", "ErrorEntry"]

# Cause group -> its sub-causes in the order they are checked (filled by runbooks.catalog).
GROUPS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class Cause:
    """One cause or sub-cause: its title, the actions that fix it, and what only a person can do."""

    id: str
    title: str
    fixes: tuple[str, ...] = ()
    manual: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErrorEntry:
    """One runbook: the error's message, the codes Azure reports for it, the causes in order, the guide's section.

    `groups` name cause groups (C1…C13, expanded by GROUPS) or single sub-causes."""

    id: str
    message: str
    codes: tuple[str, ...]
    groups: tuple[str, ...]
    old_messages: tuple[str, ...] = field(default=())
    guide: str = ""  # the troubleshooting guide's section for its codes (empty: the 2017 article, docs/playbook.md)

    @property
    def causes(self) -> tuple[str, ...]:
        """Sub-cause ids in the order to check them."""
        return tuple(dict.fromkeys(c for g in self.groups for c in GROUPS.get(g, (g,))))
