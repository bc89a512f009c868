"""The in-process armsim behind `demo` and `--simulator`: imported only here, only then; without the sim extra, one error line.

armsim and its dependencies (werkzeug, trustme) are the `sim` extra, never a runtime dependency: the
production path (the Automation bundle) carries none of them, so nothing else in runbooks imports armsim.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from remediations.errors import BadInput

if TYPE_CHECKING:
    from armsim import Server

__all__ = ["NEEDS_EXTRA", "armsim_main", "demo_subscription", "require", "serve"]

NEEDS_EXTRA = "pip install 'azure-backup-runbooks[sim]' (from a clone: pip install -e \".[sim]\")"
_PARTS = frozenset({"armsim", "werkzeug", "trustme"})  # what the sim extra (and the source tree) provides


def require(what: str = "the simulator") -> None:
    """Import armsim; BadInput (exit 2, one line) naming the sim extra when it or its dependencies are missing."""
    try:
        import armsim  # noqa: F401
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if missing not in _PARTS:
            raise
        raise BadInput(f"{what} needs the sim extra ({missing} is not installed): {NEEDS_EXTRA}") from None


def demo_subscription() -> str:
    """The subscription of armsim's demo fleet."""
    require()
    from armsim import DEMO_SUBSCRIPTION

    return DEMO_SUBSCRIPTION


def serve() -> Server:
    """A started in-process armsim with the demo fleet (the caller stops it)."""
    require()
    from armsim import serve as start

    return start()


def armsim_main(argv: list[str] | None = None) -> int:
    """The `armsim` console script: armsim's own command line, or one line naming the sim extra and exit 2."""
    try:
        require("armsim")
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from armsim.__main__ import main

    return main(argv)
