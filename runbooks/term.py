"""The terminal side of output: progress lines (and, on a terminal, the live status line) and colour."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import render

__all__ = ["say_for", "style"]


def say_for(args: argparse.Namespace) -> Callable[[str], None]:
    """A progress printer: stderr under -o json (stdout stays one document), dimmed on a terminal."""
    stream = sys.stderr if getattr(args, "output", "text") == "json" else sys.stdout
    tty = stream.isatty()

    def say(line: str) -> None:
        stream.write(f"\033[2m… {line}\033[0m\n" if tty else f"… {line}\n")
        stream.flush()
    return say


def style() -> render.Style:
    """Colour only when stdout is a terminal."""
    return render.Style(sys.stdout.isatty())
