"""Checks of the lock and restore-point causes (C6 restore-point collection limit, C8 a lock on the VM): issue #14."""

from __future__ import annotations

from ..finding import Check

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {}
