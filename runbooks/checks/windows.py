"""Checks of the Windows in-guest causes of the newer codes (C10 strong crypto and host snapshots, C11 COM+ and
MSDTC): issue #14. ARM shows none of them, so each asks its fix's read-only preview in the guest (Run Command):
the cause is present iff that preview plans a change, with the change's reason as evidence. C10.host is asked
only when the failed job's code says the snapshot's network calls timed out."""

from __future__ import annotations

from remediations.actions.winguest import TIMEOUT_CODE
from remediations.facts import Facts

from ..finding import Check, Finding, guest_probe

__all__ = ["CHECKS"]

_host_keys = guest_probe("C10.host", "set-snapshot-from-host",
                         "the host snapshot keys (BcdrAgentPersistentKeys SnapshotMethod, CalculateSnapshotTimeFromHost)")


def _c10_host(f: Facts) -> Finding:
    """Present only when the failed job says the snapshot's network calls timed out and the keys are not set: a guest
    shows nothing of slow network calls, so without that code the keys' absence is no evidence (unknown)."""
    job = f.last_failed
    if f.vm.os_type != "Windows":
        return _host_keys(f)  # absent: the keys are Windows'
    if job is None or job.error_code != TIMEOUT_CODE:
        said = f"the latest failed job reports {job.error_code}" if job is not None and job.error_code else \
            "no failed job reports it"
        return Finding("C10.host", "unknown", f"only a job failed with {TIMEOUT_CODE} shows slow network calls in "
                                              f"the guest ({said})")
    return _host_keys(f)

CHECKS: dict[str, Check] = {
    "C10.tls": guest_probe("C10.tls", "set-strong-crypto",
                           ".NET strong cryptography (SchUseStrongCrypto under each .NET Framework key)"),
    "C10.host": _c10_host,
    "C11.com": guest_probe("C11.com", "repair-com-msdtc",
                           "COM+ System Application and MSDTC (running, MSDTC as Network Service)"),
}
