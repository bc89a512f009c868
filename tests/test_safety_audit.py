"""Issue #10 items 5 and 4: the audit trail records intent then outcome; every poll is bounded."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import FAST_RETRY, mutating
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure, AzureConfig, RetrySettings
from remediations.errors import Interrupted, OperationTimedOut
from remediations.polling import STOP, poll_until


def audit_of(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (tmp / "azure-backup-runbooks" / "audit.jsonl").read_text().splitlines()]


def azure_with(server: Server, **kw: Any) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=server.endpoint,
                             ca_bundle=server.ca_bundle, read_timeout=30, **{"retry": FAST_RETRY, **kw}))


# --- item 5: audit ------------------------------------------------------------------------------
def test_audit_file_is_0600_in_a_0700_folder_and_records_intent_then_outcome(armsim: Server, tmp_path: Path) -> None:
    r = cli(armsim, "action", "remove-backup-extension", "vm-ext-failed", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    folder = tmp_path / "azure-backup-runbooks"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "audit.jsonl").stat().st_mode) == 0o600
    lines = audit_of(tmp_path)
    assert [x["outcome"] for x in lines] == ["sending", "applied"]
    assert lines[0]["time"] <= lines[1]["time"] and lines[1]["correlation_id"]


def test_a_429_on_the_poll_is_not_reported_unchanged(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="throttle", method="GET", path="*/operations/*", retry_after=1, count=1)
    r = cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", "rg-demo", "--yes", "-o", "json",
            tmp=tmp_path)
    doc = json.loads(r.stdout)
    assert doc["outcome"]["status"] == "changed", doc["outcome"]
    assert r.returncode == 0
    assert [x["outcome"] for x in audit_of(tmp_path)] == ["sending", "unknown"]  # the write's fate was not known then
    assert len([e for e in mutating(armsim) if e["method"] == "PUT"]) == 1  # re-read and found done: no second PUT


def test_a_404_on_the_poll_is_not_reported_unchanged(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="status", method="GET", path="*/operations/*", status=404, code="OperationNotFound",
                          count=1)
    r = cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", "rg-demo", "--yes", "-o", "json",
            tmp=tmp_path)
    assert json.loads(r.stdout)["outcome"]["status"] == "changed", r.stdout
    assert [x["outcome"] for x in audit_of(tmp_path)] == ["sending", "unknown"]


def test_a_refused_write_is_audited_failed(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="status", method="PUT", status=403, code="AuthorizationFailed", count=None)
    r = cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", "rg-demo", "--yes", tmp=tmp_path)
    assert r.returncode == 1
    lines = audit_of(tmp_path)
    assert [x["outcome"] for x in lines] == ["sending", "failed"] and lines[1]["error"] == "AuthorizationFailed"


# --- item 4: poll bounds --------------------------------------------------------------------------
def _effective(azure: Azure) -> Any:
    return azure.network.network_interfaces.begin_list_effective_network_security_groups(
        "rg-demo", "vm-nsg-blocked-nic").result()


def test_retry_after_on_a_poll_is_capped_like_every_other_wait(armsim: Server) -> None:
    armsim.sim.settings.lro_retry_after = 150
    armsim.sim.settings.lro_polls = 2
    azure = azure_with(armsim, retry=RetrySettings(retry_after_cap=0.5), polling_interval=0.05)
    started = time.monotonic()
    _effective(azure)
    assert time.monotonic() - started < 5  # not 150 s


def test_a_poll_that_never_ends_stops_at_the_deadline_with_one_clear_line(armsim: Server) -> None:
    armsim.sim.settings.lro_polls = 10**9
    armsim.sim.settings.lro_seconds = 10**6
    azure = azure_with(armsim, operation_seconds=1.0, polling_interval=0.05)
    started = time.monotonic()
    with pytest.raises(OperationTimedOut) as e:
        _effective(azure)
    assert time.monotonic() - started < 4
    msg = str(e.value)
    assert "\n" not in msg and "effectiveNetworkSecurityGroups" in msg and "last status" in msg, msg
    assert "InProgress" in msg or "HTTP 202" in msg, msg
    polls = [x for x in armsim.sim.requests() if x["method"] == "GET"]
    assert len(polls) < 40, len(polls)  # bounded, not 1,358 in 90 s


# --- poll_until (the client layer's one loop for hand-written polls) -----------------------------
def test_poll_until_returns_when_done_and_retries_transient_errors_with_a_capped_pause() -> None:
    err = HttpResponseError(message="throttled")
    err.status_code = 429
    seen: list[int] = []

    def read() -> int:
        seen.append(1)
        if len(seen) == 1:
            raise err
        return len(seen)

    started = time.monotonic()
    assert poll_until(read, lambda n: n >= 3, name="job x", interval=0.01, seconds=5, cap=0.2) == 3
    assert time.monotonic() - started < 1


def test_poll_until_names_the_operation_and_its_last_status_at_the_deadline() -> None:
    with pytest.raises(OperationTimedOut, match=r"backup job 1 did not finish within 0.2s; last status InProgress"):
        poll_until(lambda: "InProgress", lambda s: s == "Completed", name="backup job 1", interval=0.05, seconds=0.2)


def test_poll_until_stops_at_once_on_ctrl_c() -> None:
    STOP.set()
    try:
        with pytest.raises(Interrupted):
            poll_until(lambda: "InProgress", lambda s: False, name="job", interval=10, seconds=60)
    finally:
        STOP.clear()
