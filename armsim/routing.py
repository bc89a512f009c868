"""Routes as data: method + ARM path template -> handler, with the api-versions the route serves."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .arm import Request, Response

__all__ = ["Route", "Router"]

Handler = Callable[[Any, Request], Response]
Mutating = bool | Callable[[Any, Request], bool]


@dataclass(frozen=True)
class Route:
    """One served operation: `template` uses {name} placeholders; literal segments match case-insensitively."""

    method: str
    template: str
    handler: Handler
    operation: str
    mutating: Mutating = False
    oldest_api: str = "2015-01-01"
    newest_api: str = "2026-12-31"
    resource_type: str = ""
    arm: bool = True  # False: a data-plane endpoint (an Automation webhook) served without ARM's api-version check

    def pattern(self) -> re.Pattern[str]:
        """The compiled regular expression for `template`."""
        out, pos = [], 0
        for m in re.finditer(r"\{(\w+)\}", self.template):
            out.append(re.escape(self.template[pos : m.start()]))
            out.append(f"(?P<{m.group(1)}>[^/]+)")
            pos = m.end()
        out.append(re.escape(self.template[pos:]))
        return re.compile("^" + "".join(out) + "/?$", re.IGNORECASE)

    def is_mutating(self, sim: Any, request: Request) -> bool:
        """Whether this request changes (or would change) simulated state."""
        return self.mutating(sim, request) if callable(self.mutating) else self.mutating


class Router:
    """Matches a method and path to the first route that serves them."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = [(r, r.pattern()) for r in routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and its path parameters, or None when nothing serves this method and path."""
        for route, pattern in self._routes:
            if route.method != method:
                continue
            m = pattern.match(path)
            if m:
                return route, m.groupdict()
        return None

    def routes(self) -> list[Route]:
        """Every route, in table order."""
        return [r for r, _ in self._routes]
