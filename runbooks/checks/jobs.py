"""Checks of the job and extension-state causes (C7 a backup already in progress, C5.stuck an extension stuck in deletion or a VM in provisioning state Failed): issue #14."""

from __future__ import annotations

from ..finding import Check

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {}
