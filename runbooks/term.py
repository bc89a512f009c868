"""The terminal side of output: the progress display (live on a terminal, plain lines when piped) and colour.

Colour, in this order (https://no-color.org, https://force-color.org):
- NO_COLOR set and not empty: no colour at all (plan signs, bold, the dimmed progress lines, the live line);
- FORCE_COLOR set and not empty: colour even when piped or with TERM=dumb;
- TERM=dumb: no colour;
- otherwise colour iff the stream is a terminal.
The live line needs a terminal whose TERM is not `dumb` (it moves the cursor); otherwise progress is plain
lines (runbooks/live.py). NO_COLOR keeps the live line, without colour.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import render
from .live import Display

__all__ = ["colour", "live_ok", "say_for", "style"]


def _tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def colour(stream: Any) -> bool:
    """Whether to colour what goes to `stream`: NO_COLOR, then FORCE_COLOR, then TERM=dumb, then "a terminal"."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return os.environ.get("TERM") != "dumb" and _tty(stream)


def live_ok(stream: Any) -> bool:
    """Whether a live line (cursor movement) may be drawn on `stream`: a terminal, and TERM is not dumb."""
    return _tty(stream) and os.environ.get("TERM") != "dumb"


def say_for(args: argparse.Namespace) -> Display:
    """The progress display: on stderr when stdout holds one document (-o json/table/tsv, --query), else stdout."""
    machine = getattr(args, "output", "text") != "text" or bool(getattr(args, "query", None))
    stream = sys.stderr if machine else sys.stdout
    return Display(stream, live=live_ok(stream), colour=colour(stream))


def style() -> render.Style:
    """Colour for what goes to stdout, as `colour` decides."""
    return render.Style(colour(sys.stdout))
