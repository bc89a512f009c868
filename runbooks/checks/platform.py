"""Checks of the codes only a person can fix (C13: disk size, BitLocker, extension config, snapshot limit, Key Vault, protection, policy): issue #14."""

from __future__ import annotations

from ..finding import Check

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {}
