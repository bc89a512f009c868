"""Checks of the Windows in-guest causes of the newer codes (C10 strong crypto and host snapshots, C11 COM+ and
MSDTC): issue #14."""

from __future__ import annotations

from ..finding import Check

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {}
