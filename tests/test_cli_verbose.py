"""--verbose and --debug (issue #11): each ARM call and each retry on stderr, request and response heads with
--debug, and no planted secret (a bearer token, a SAS) in any output stream; stdout stays one JSON document."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from support.runs import cli

from armsim import DEMO_SUBSCRIPTION, Server
from remediations import httplog
from remediations.azure import Azure, AzureConfig, RetrySettings

SIG = "PLANTEDsig0123456789abcdefSECRET%3D"  # as a SAS carries it: URL-encoded base64
SAS = f"sv=2024-11-04&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig={SIG}"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.PLANTED-TOKEN.c2lnbmF0dXJl"
CALL = re.compile(r"^ARM (GET|PUT|POST|PATCH|DELETE) (/\S*) -> (\d{3}|[a-z].*?) (?:in|after) \d+\.\d\d s"
                  r"(?: \(attempt (\d+)\))?$")


def calls(stderr: str) -> list[re.Match[str]]:
    """The call lines of a run's stderr."""
    return [m for m in map(CALL.match, stderr.splitlines()) if m]


def test_verbose_shows_each_call_and_each_retry_with_its_wait_and_reason(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="throttle", operation="VirtualMachines_Get", retry_after=1)
    armsim.sim.faults.add(kind="reset", operation="BackupStatus_Get")
    armsim.sim.faults.add(kind="unavailable", operation="BackupJobs_List", retry_after=0)
    run = cli(armsim, "diagnose", "vm-healthy", "-g", "rg-demo", "--verbose", "-o", "json", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    json.loads(run.stdout)  # stdout: the document and nothing else
    lines = calls(run.stderr)
    sent = armsim.sim.requests()
    assert len(lines) == len(sent) and len(sent) > 5  # each ARM call is shown, once
    assert [m[2] for m in lines] == [e["path"] for e in sent]
    vm = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-healthy"
    assert (lines[0][1], lines[0][2], lines[0][3], lines[0][4]) == ("GET", vm, "429", "1")
    assert (lines[1][2], lines[1][3], lines[1][4]) == (vm, "200", "2")
    assert any(m[3] == "connection reset" for m in lines) and any(m[3] == "503" for m in lines)
    retries = [ln for ln in run.stderr.splitlines() if ln.startswith("ARM retry:")]
    assert retries[0] == ("ARM retry: attempt 1 of 6 failed (429 SubscriptionRequestsThrottled, Retry-After 1 s); "
                          "attempt 2 in 1.0 s")
    assert re.fullmatch(r"ARM retry: attempt 1 of 6 failed \(connection reset\); attempt 2 in \d\.\d s", retries[1])
    assert retries[2] == ("ARM retry: attempt 1 of 6 failed (503 ServiceUnavailable, Retry-After 0 s); "
                          "attempt 2 in 0.0 s")
    assert len(retries) == 3 and "> GET" not in run.stderr  # heads only with --debug


def test_without_verbose_stderr_has_no_call_lines(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="throttle", operation="VirtualMachines_Get", retry_after=0)
    run = cli(armsim, "diagnose", "vm-healthy", "-g", "rg-demo", "-o", "json", tmp=tmp_path)
    assert run.returncode == 0 and run.stderr == ""
    json.loads(run.stdout)


def test_debug_shows_heads_and_no_planted_sas_in_any_stream(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.settings.extra["url_sas"] = SAS  # every Location / Azure-AsyncOperation armsim sends is signed
    audit = tmp_path / "audit.jsonl"
    run = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", "--debug", "-o", "json",
              "--audit-file", str(audit), tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["vms"][0]["status"] == "fixed", doc
    trail = audit.read_text()
    assert '"applied"' in trail  # the run wrote, so the audit trail is one of the streams checked
    for stream in (run.stdout, run.stderr, trail):
        assert SIG not in stream and SIG.replace("%3D", "=") not in stream and "PLANTED" not in stream
    # the SAS was there (armsim signed the operation URLs the SDK followed), and was redacted
    assert re.search(r"^< (Azure-AsyncOperation|Location): https://\S+&sig=REDACTED$", run.stderr, re.M)
    assert re.search(r"^> GET https://\S+/operations/\S+sv=REDACTED&se=REDACTED\S*&sig=REDACTED$", run.stderr, re.M)
    assert re.search(r"^> PUT https://\S+/securityRules/\S+\?api-version=\S+$", run.stderr, re.M)
    assert re.search(r"^< 20[01] ", run.stderr, re.M) and "> User-Agent: azsdk-python-mgmt-" in run.stderr
    assert calls(run.stderr)
    assert "Request URL:" not in run.stderr and "Response status:" not in run.stderr  # azure-core's own log


class _Planted:
    """A token credential that hands out the planted token (stands in for a real one against armsim)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, 2**31 - 1)


@pytest.fixture
def heads() -> Iterator[io.StringIO]:
    """The call log at DEBUG into a buffer, and every azure.* record (the SDK's own logging) at DEBUG too."""
    out = io.StringIO()
    sdk = logging.StreamHandler(out)
    handler = httplog.show(out, debug=True)
    azure_logger = logging.getLogger("azure")
    azure_logger.addHandler(sdk)
    level = azure_logger.level
    azure_logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        azure_logger.removeHandler(sdk)
        azure_logger.setLevel(level)
        httplog.LOG.removeHandler(handler)
        httplog.LOG.setLevel(logging.NOTSET)
        httplog.LOG.propagate = True


def test_debug_redacts_a_planted_bearer_token(armsim: Server, heads: io.StringIO,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    armsim.sim.settings.extra["url_sas"] = SAS
    azure = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint,
                              ca_bundle=armsim.ca_bundle, retry=RetrySettings(attempts=1)), credential=_Planted())
    poller = azure.network.network_interfaces.begin_list_effective_network_security_groups("rg-demo",
                                                                                             "vm-healthy-nic")
    assert poller.result() is not None
    out, err = capfd.readouterr()
    log = heads.getvalue()
    assert log.count("> Authorization: REDACTED") == 2  # the POST and its poll carried the token
    assert "< Location: https://" in log and "&sig=REDACTED" in log
    for stream in (log, out, err):
        assert TOKEN not in stream and "PLANTED" not in stream


@pytest.mark.parametrize(("text", "expected"), [
    ("https://a.blob.core.windows.net/c/b?sv=2024-11-04&se=2030&sig=abc%2Bdef%3D",
     "https://a.blob.core.windows.net/c/b?sv=REDACTED&se=REDACTED&sig=REDACTED"),
    ("https://x/y?api-version=1&SIG=abc", "https://x/y?api-version=1&SIG=REDACTED"),
    ("next=https%3A%2F%2Fx%2Fy%3Fsv%3D1%26sig%3Dabc", "next=https%3A%2F%2Fx%2Fy%3Fsv%3DREDACTED%26sig%3DREDACTED"),
    ("https://h.webhook.eus.azure-automation.net/webhooks?token=abc", "https://h.webhook.eus.azure-automation.net/webhooks?token=REDACTED"),
    ("Bearer eyJabc.def.ghi", "Bearer REDACTED"),
    ("https://x/subscriptions/s/resourceGroups/rg?api-version=2024-01-01&$filter=a eq 'b'",
     "https://x/subscriptions/s/resourceGroups/rg?api-version=2024-01-01&$filter=a eq 'b'"),
])
def test_redact(text: str, expected: str) -> None:
    assert httplog.redact(text) == expected
