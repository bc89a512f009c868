"""Checks of the VSS causes of the newer codes (C9.writers VSS writers, C9.service the VSS service): issue #14."""

from __future__ import annotations

from ..finding import Check

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {}
