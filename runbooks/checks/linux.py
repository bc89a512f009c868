"""Checks of the Linux file-system freeze cause (C12) and of the platform's wire server 168.63.129.16 (C1.wireserver): issue #14."""

from __future__ import annotations

from ..finding import Check

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {}
