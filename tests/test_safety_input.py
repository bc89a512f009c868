"""Issue #10, "bad input that still gives a traceback": one line, exit 2, zero requests (armsim's log)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import reset
from support.runs import child_env, cli, run_entry

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure, AzureConfig
from remediations.endpoint import check_endpoint
from remediations.errors import BadInput

VM_ID = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-sql-vss"
SPOOF = "https://192.0.2.2:P\\@127.0.0.1"


def one_line_exit_2(server: Server, *args: str) -> str:
    r = cli(server, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert server.sim.requests() == []  # nothing was sent, not even a read
    return lines[0]


@pytest.mark.parametrize("since", ["99999999999999999999d", "1000000d", "\u0664\u0662h", "0h", "0d", "-3d", "4321d"])
def test_since_out_of_range_or_not_ascii(armsim: Server, since: str) -> None:
    assert "--since" in one_line_exit_2(armsim, "fix", "--from-vault", "rsv-demo", "-g", "rg-demo", "--since", since)


def test_plan_out_into_a_missing_folder_is_refused_before_any_read(armsim: Server, tmp_path: Path) -> None:
    line = one_line_exit_2(armsim, "fix", "vm-sql-vss", "-g", "rg-demo", "--plan-out", str(tmp_path / "no" / "p.json"))
    assert "does not exist" in line
    assert "folder" in one_line_exit_2(armsim, "fix", "vm-sql-vss", "-g", "rg-demo", "--plan-out", str(tmp_path))


def test_a_ca_bundle_that_does_not_exist(armsim: Server, tmp_path: Path) -> None:
    assert "no such file" in one_line_exit_2(armsim, "diagnose", "vm-sql-vss", "-g", "rg-demo",
                                             "--ca-bundle", str(tmp_path / "nope.pem"))


@pytest.mark.parametrize("command", ["fix", "diagnose"])
def test_an_unknown_error_code_is_not_taken_as_e5(armsim: Server, command: str) -> None:
    assert "unknown error code" in one_line_exit_2(armsim, command, "vm-sql-vss", "-g", "rg-demo",
                                                   "--error", "NoSuchErrorCode")


def test_a_known_error_code_still_passes(armsim: Server) -> None:
    r = cli(armsim, "diagnose", "vm-sql-vss", "-g", "rg-demo", "--error", "ExtensionSnapshotFailedNoNetwork")
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_audit_file_that_cannot_be_written_is_refused_before_any_request(armsim: Server, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")  # its "folder" is a file (root ignores permission bits)
    line = one_line_exit_2(armsim, "fix", "vm-sql-vss", "-g", "rg-demo", "--yes",
                           "--audit-file", str(tmp_path / "a-file" / "audit.jsonl"))
    assert "audit file" in line


# --- tampered plan files ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(armsim_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A plan saved once per module (each test tampers a copy; `armsim` resets the simulator after this)."""
    plan = tmp_path_factory.mktemp("saved") / "plan.json"
    assert cli(reset(armsim_server), "fix", "vm-sql-vss", "-g", "rg-demo", "--plan-out", str(plan)).returncode == 0
    doc: dict[str, Any] = json.loads(plan.read_text())
    assert doc["format"] == "azure-backup-runbooks/plan" and doc["version"] == 2
    return doc


def _edit(doc: dict[str, Any], how: str) -> Any:
    d = json.loads(json.dumps(doc))
    if how == "list":
        return [1]
    if how == "options-list":
        d["options"] = list(d["options"].values())
    elif how == "bool-as-string":
        d["options"]["allow_disruptive"] = "false"
    elif how == "bool-as-int":
        d["options"]["backup"] = 1
    elif how == "int-as-string":
        d["options"]["retention_days"] = "30"
    elif how == "changes-wrong-type":
        d["vms"][0]["changes"] = "none"
    elif how == "change-too-short":
        d["vms"][0]["changes"] = [["configure-vss", "run"]]
    elif how == "target-bad-name":
        d["vms"][0]["target"]["name"] = "vm;reboot"
    elif how == "target-wrong-type":
        d["vms"][0]["target"] = ["a", "b", "c"]
    elif how == "extra-key":
        d["options"]["force"] = True
    elif how == "old-version":
        d["version"] = 1
    elif how == "no-version":
        del d["version"]
    elif how == "no-vms":
        d["vms"] = []
    elif how == "null-options":
        d["options"] = None
    return d


@pytest.mark.parametrize("how", ["list", "options-list", "bool-as-string", "bool-as-int", "int-as-string",
                                 "changes-wrong-type", "change-too-short", "target-bad-name", "target-wrong-type",
                                 "extra-key", "old-version", "no-version", "no-vms", "null-options"])
def test_a_tampered_plan_is_bad_input_not_drift(armsim: Server, tmp_path: Path, saved: dict[str, Any],
                                                how: str) -> None:
    path = tmp_path / f"{how}.json"
    path.write_text(json.dumps(_edit(saved, how)))
    line = one_line_exit_2(armsim, "apply", str(path), "--yes")
    assert "plan" in line and "Refusing" not in line


def test_a_plan_that_is_not_json_or_too_deep(armsim: Server, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{not json")
    one_line_exit_2(armsim, "apply", str(tmp_path / "a.json"), "--yes")
    (tmp_path / "b.json").write_text("[" * 100000 + "]" * 100000)
    one_line_exit_2(armsim, "apply", str(tmp_path / "b.json"), "--yes")


# --- the loopback check -------------------------------------------------------------------------
@pytest.mark.parametrize("url", [SPOOF, "https://user@127.0.0.1:8443", "https://127.0.0.1:8443@10.0.0.1",
                                 "https://127.0.0.1:99999", "https://127.0.0.1/ x", "https://127.0.0.1?x=1",
                                 "https://127.0.0.1#f", "https://l\u043ecalhost"])
def test_endpoints_that_parsers_could_read_two_ways_are_refused(url: str) -> None:
    with pytest.raises(BadInput, match="https URL"):
        check_endpoint(url)
    with pytest.raises(BadInput):
        Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=url))


def test_the_spoofed_endpoint_is_refused_on_the_cli(armsim: Server) -> None:
    one_line_exit_2(armsim, "diagnose", "vm-sql-vss", "-g", "rg-demo", "--arm-endpoint", SPOOF)


def test_the_spoofed_endpoint_is_refused_in_the_automation_entry(armsim: Server, tmp_path: Path) -> None:
    run = run_entry(armsim, "fix_backup_failure.py", VM_ID, "mode=dry-run", cwd=tmp_path, timeout=60,
                    env=child_env(armsim, RUNBOOKS_ARM_ENDPOINT=SPOOF))
    assert run.code == 2, (run.lines, run.stderr)
    assert "https URL" in run.text
    assert armsim.sim.requests() == []
