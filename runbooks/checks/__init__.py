"""Cause checks of the newer error codes (issue #14), one module per family; each module's CHECKS maps a cause id
to its check. A check reads the Facts snapshot, or names an action whose read-only preview decides it (`probe`)."""

from __future__ import annotations

from ..finding import Check
from . import jobs, linux, locks, platform, vss, windows

__all__ = ["CHECKS"]

CHECKS: dict[str, Check] = {**locks.CHECKS, **jobs.CHECKS, **vss.CHECKS, **windows.CHECKS, **linux.CHECKS, **platform.CHECKS}
