"""Errors with hints and not-found answers (issue #11): an untrusted certificate or a refused connection is one
line on stderr naming the endpoint, at once (never retried); a missing VM and a missing resource group give the
same kind of answer with the same exit code, in text and in JSON."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.runs import cli, cli_env

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure, AzureConfig
from remediations.errors import Unreachable

BOUND = 5.0  # seconds: generous, and far below the 9-14 s of silent retries these took before
PYTHON_TEXT = re.compile(r"Traceback|Error\(|Errno|_ssl\.c|HTTPSConnection|ServiceRequestError|urllib3")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound (so nothing else takes it) but never listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def timed(server: Server, *args: str, env: dict[str, str]) -> tuple[float, int, str, str]:
    start = time.monotonic()
    run = cli(server, *args, env=env)
    return time.monotonic() - start, run.returncode, run.stdout, run.stderr


@pytest.mark.parametrize("output", ["text", "json"])
def test_an_untrusted_certificate_names_the_endpoint_and_the_fix_at_once(armsim: Server, tmp_path: Path,
                                                                         output: str) -> None:
    env = cli_env(armsim, tmp_path)
    for name in ("RUNBOOKS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(name, None)  # armsim's CA is not trusted
    seconds, code, out, err = timed(armsim, "diagnose", "vm-healthy", "vm-agent-stopped", "-g", "rg-demo",
                                    "-o", output, env=env)
    assert (code, out) == (1, "")
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert err.startswith(f"error: the TLS certificate of {armsim.endpoint} is not trusted (")
    assert "--ca-bundle" in err and "REQUESTS_CA_BUNDLE" in err and not PYTHON_TEXT.search(err), err
    assert seconds < BOUND, seconds
    assert armsim.sim.requests() == []  # no request got through


def test_a_refused_connection_names_the_endpoint_at_once(armsim: Server, tmp_path: Path, closed_port: int) -> None:
    endpoint = f"https://127.0.0.1:{closed_port}"
    env = cli_env(armsim, tmp_path)
    seconds, code, out, err = timed(armsim, "diagnose", "vm-x", "-g", "rg", "--arm-endpoint", endpoint, env=env)
    assert (code, out) == (1, "")
    assert err == f"error: cannot connect to {endpoint}: connection refused; check --arm-endpoint / " \
                  "RUNBOOKS_ARM_ENDPOINT\n"
    assert seconds < BOUND, seconds


def test_the_client_layer_does_not_retry_either(armsim: Server, waits: list[float], closed_port: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)  # requests would trust armsim's CA through it
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    untrusted = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint))
    refused = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=f"https://127.0.0.1:{closed_port}",
                                ca_bundle=armsim.ca_bundle))
    for azure, kind in ((untrusted, "tls"), (refused, "refused")):
        with pytest.raises(Unreachable) as e:
            azure.call(azure.compute.virtual_machines.get, "rg-demo", "vm-healthy")
        assert (e.value.kind, e.value.endpoint) == (kind, azure.config.endpoint)
    assert waits == []  # not one wait: nothing was retried


NOT_FOUND = {"vm": (("vm-nope", "-g", "rg-demo"), "not found: VM 'vm-nope' in resource group 'rg-demo' (ResourceNotFound)"),
             "group": (("vm-healthy", "-g", "rg-nope"), "not found: resource group 'rg-nope' (ResourceGroupNotFound)")}


@pytest.mark.parametrize("missing", ["vm", "group"])
def test_a_missing_vm_and_a_missing_group_answer_alike(armsim: Server, tmp_path: Path, missing: str) -> None:
    where, message = NOT_FOUND[missing]
    text = cli(armsim, "diagnose", *where, tmp=tmp_path)
    assert (text.returncode, text.stderr) == (1, "")
    assert text.stdout.strip().splitlines() == [f"{where[0]} ({where[2]})", message]
    doc = cli(armsim, "diagnose", *where, "-o", "json", tmp=tmp_path)
    assert (doc.returncode, doc.stderr) == (1, "")
    vm = json.loads(doc.stdout)["vms"][0]
    assert (vm["status"], vm["exit_code"], vm["message"]) == ("failed", 1, message)
    action = cli(armsim, "action", "power-off", *where, "--dry-run", tmp=tmp_path)
    assert (action.returncode, action.stdout, action.stderr) == (1, "", f"error: {message}\n")
    assert [e for e in armsim.sim.requests() if e["mutating"]] == []


def test_an_interrupted_vm_reads_interrupted_once() -> None:
    """The report line of a VM stopped by Ctrl-C is the stop's own words, not "Interrupted: interrupted: …"."""
    from remediations.errors import Interrupted, one_line

    assert one_line(Interrupted("interrupted: stopped before the next write")) == (
        "interrupted: stopped before the next write")
