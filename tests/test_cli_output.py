"""Output as `az` users expect it: one document on stdout under -o json|table|tsv and --query (JMESPath, az's
rules), a quiet exit when the reader of stdout goes away, and a word when --from-vault finds nothing."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import mutating
from support.runs import ROOT, cli, runbooks

from armsim import Server
from remediations.errors import RemediationError
from runbooks.catalog import CATALOG, CAUSES, lookup
from runbooks.formats import format_doc, table, tsv
from runbooks.output import action_rows

RG = "rg-demo"


def parse_table(text: str) -> list[dict[str, str]]:
    """An `-o table` text back into rows: the dashes under the headers give each column's span."""
    head, dashes, *body = text.rstrip("\n").split("\n")
    spans, at = [], 0
    for run in dashes.split("  "):
        spans.append((at, at + len(run)))
        at += len(run) + 2
    names = [head[a:b].strip() for a, b in spans]
    assert all(names) and set(dashes) == {"-", " "}, text
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, spans, strict=True)} for line in body]


def plain_env() -> dict[str, str]:
    """The environment of a run that needs no armsim of the test's (list, demo): ours on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def ok(r: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert r.returncode == code, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


# --- one document on stdout -------------------------------------------------------------------------------

def test_every_command_prints_one_json_document_and_nothing_else(armsim: Server, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    runs = {
        "list": cli(armsim, "list", "-o", "json"),
        "explain": cli(armsim, "explain", "E2", "-o", "json"),
        "diagnose": cli(armsim, "diagnose", "vm-nsg-blocked", "-g", RG, "-o", "json"),
        "fix": cli(armsim, "fix", "vm-nsg-blocked", "vm-healthy", "-g", RG, "--dry-run", "--plan-out", str(plan),
                   "-o", "json", tmp=tmp_path),
    }
    runs["apply"] = cli(armsim, "apply", str(plan), "--dry-run", "-o", "json", tmp=tmp_path)
    runs["action"] = cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", RG, "--dry-run",
                         "-o", "json")
    docs = {name: json.loads(ok(r)) for name, r in runs.items()}
    assert [e["id"] for e in docs["list"]] == [e.id for e in CATALOG]
    assert docs["explain"]["id"] == "E2"
    assert [v["vm"] for v in docs["fix"]["vms"]] == ["vm-nsg-blocked", "vm-healthy"]
    assert docs["apply"]["applied"] is False and docs["apply"]["command"] == "apply"
    assert docs["action"]["plan"]["changes"]
    assert "Saved the plan" in runs["fix"].stderr  # the human line went to stderr
    assert mutating(armsim) == []


def test_demo_prints_one_document_and_its_rows_make_a_table() -> None:
    """One demo run (~6 s): the JSON document alone on stdout; the same document as a table, one row per VM."""
    r = subprocess.run(runbooks("demo", "-o", "json", "--concurrency", "8"), capture_output=True, text=True,
                       cwd=ROOT, env=plain_env(), timeout=120)
    doc = json.loads(ok(r))
    assert "armsim demo fleet at" in r.stderr and "armsim demo fleet" not in r.stdout
    by_vm = {v["vm"]: v for v in doc["vms"]}
    nsg = by_vm["vm-nsg-blocked"]
    assert [f["cause"] for f in nsg["findings"] if f["verdict"] == "present"] == ["C1"]
    assert "allow-backup-egress" in [o["action"] for o in nsg["outcomes"] if o["status"] == "changed"]
    assert nsg["backup"]["status"] == "changed" and not nsg["backup"]["error_code"]
    assert {v["status"] for v in doc["vms"]} <= {"fixed", "nothing", "withheld", "manual"}


def test_fix_table_rows_are_the_text_summary_rows(armsim: Server) -> None:
    """-o table and the text summary share one row per VM (render.summary_row): same cells, "" for "-"."""
    names = ["vm-nsg-blocked", "vm-ext-failed", "vm-healthy"]
    rows = parse_table(ok(cli(armsim, "fix", *names, "-g", RG, "--dry-run", "-o", "table")))
    assert [row["VM"] for row in rows] == names
    by_vm = {row["VM"]: row for row in rows}
    assert by_vm["vm-nsg-blocked"] == {**by_vm["vm-nsg-blocked"], "Causes": "C1", "Backup": "planned",
                                       "Actions": "allow-backup-egress (planned)", "Status": "planned"}
    assert by_vm["vm-healthy"]["Actions"] == "" and by_vm["vm-healthy"]["Status"] == "nothing"
    text = ok(cli(armsim, "fix", *names, "-g", RG, "--dry-run")).splitlines()
    table = text[next(i for i, ln in enumerate(text) if ln.startswith("VM ")):]
    assert any(ln.split()[:2] == ["vm-nsg-blocked", "ExtensionSnapshotFailedNoNetwork"]
               and "allow-backup-egress (planned)" in ln for ln in table)
    assert mutating(armsim) == []


# --- -o table and -o tsv ----------------------------------------------------------------------------------

def test_list_and_explain_as_table_and_tsv(armsim: Server) -> None:
    rows = parse_table(ok(cli(armsim, "list", "-o", "table")))
    assert [r["Id"] for r in rows] == [e.id for e in CATALOG]
    assert rows[1]["Causes"] == ",".join(CATALOG[1].causes)
    lines = ok(cli(armsim, "list", "-o", "tsv")).splitlines()
    fixes = [",".join(dict.fromkeys(a for c in e.causes for a in CAUSES[c].fixes)) for e in CATALOG]
    manual = [",".join(c for c in e.causes if not CAUSES[c].fixes and CAUSES[c].manual) for e in CATALOG]
    assert [ln.split("\t") for ln in lines] == [[e.id, ",".join(e.codes), ",".join(e.causes), f, m, e.message]
                                               for e, f, m in zip(CATALOG, fixes, manual, strict=True)]  # no header
    entry = lookup("E2")
    assert entry is not None
    rows = parse_table(ok(cli(armsim, "explain", "E2", "-o", "table")))
    assert [r["Cause"] for r in rows] == list(entry.causes)
    assert rows[0] == {**rows[0], "Order": "1", "Fixes": "allow-backup-egress"}
    assert [ln.split("\t")[1] for ln in ok(cli(armsim, "explain", "E2", "-o", "tsv")).splitlines()] == list(
        entry.causes)


def test_diagnose_table_has_a_row_per_vm_naming_causes_and_actions(armsim: Server) -> None:
    out = ok(cli(armsim, "diagnose", "vm-nsg-blocked", "vm-healthy", "-g", RG, "-o", "table"))
    assert out.split("\n")[0].split() == ["VM", "ResourceGroup", "Error", "Causes", "Actions", "Backup", "Status"]
    rows = {r["VM"]: r for r in parse_table(out)}
    assert rows["vm-nsg-blocked"] == {**rows["vm-nsg-blocked"], "ResourceGroup": RG, "Causes": "C1",
                                      "Error": "ExtensionSnapshotFailedNoNetwork",
                                      "Actions": "allow-backup-egress (catalog)"}
    assert rows["vm-healthy"]["Causes"] == "" and rows["vm-healthy"]["Actions"] == ""
    assert mutating(armsim) == []


def test_fix_dry_run_tsv_is_one_line_per_vm_and_nothing_else(armsim: Server) -> None:
    out = ok(cli(armsim, "fix", "vm-nsg-blocked", "vm-healthy", "-g", RG, "--dry-run", "-o", "tsv"))
    assert [ln.split("\t") for ln in out.splitlines()] == [
        ["vm-nsg-blocked", RG, "ExtensionSnapshotFailedNoNetwork", "C1", "allow-backup-egress (planned)", "planned",
         "planned"],
        ["vm-healthy", RG, "", "", "", "", "nothing"]]
    assert mutating(armsim) == []


def test_action_table_has_a_row_per_planned_change(armsim: Server) -> None:
    rows = parse_table(ok(cli(armsim, "action", "allow-backup-egress", "vm-nsg-blocked", "-g", RG, "--dry-run",
                              "-o", "table")))
    assert len(rows) == 1
    assert rows[0] == {**rows[0], "Action": "allow-backup-egress", "VM": "vm-nsg-blocked", "Kind": "add",
                       "Status": "planned"}
    assert rows[0]["Resource"].endswith("/securityRules/allow-azure-backup-443")


def test_action_rows_without_a_change_are_one_row_with_the_reason() -> None:
    doc = {"action": "allow-backup-egress", "vm": "/subscriptions/s/resourceGroups/g/providers/x/vm-a", "note": None,
           "plan": {"changes": [], "reason": "allowed already", "manual": []}, "outcome": None}
    assert action_rows(doc) == [{"Action": "allow-backup-egress", "VM": "vm-a", "Kind": "", "Resource": "",
                                 "Summary": "allowed already", "Status": "no changes"}]
    done = {**doc, "outcome": {"changes": [], "status": "unchanged", "reason": "nothing to do"}}
    assert [(r["Summary"], r["Status"]) for r in action_rows(done)] == [("nothing to do", "unchanged")]


# --- --query ------------------------------------------------------------------------------------------------

def test_query_with_each_output_format(armsim: Server) -> None:
    ids = [e.id for e in CATALOG]
    assert ok(cli(armsim, "list", "--query", "[].id", "-o", "tsv")).splitlines() == ids
    assert json.loads(ok(cli(armsim, "list", "--query", "[].id"))) == ids  # default text: JSON, as az's default
    doc = json.loads(ok(cli(armsim, "list", "-o", "json")))
    assert json.loads(format_doc(doc, "json", "[].id")) == ids
    assert format_doc(doc, "tsv", "length(@)") == f"{len(ids)}\n"
    assert format_doc(doc, "tsv", "contains([].id, 'E2')") == "true\n"
    out = ok(cli(armsim, "list", "--query", "[].{id: id, name: id, n: length(causes), codes: codes}", "-o", "table"))
    rows = parse_table(out)  # az's auto-table: keys capitalised; id and nested lists left out
    assert out.split("\n")[0].split() == ["Name", "N"]
    assert [(r["Name"], int(r["N"])) for r in rows] == [(e.id, len(e.causes)) for e in CATALOG]
    out = ok(cli(armsim, "list", "--query", "[?id=='E2'].[id, length(codes)]", "-o", "tsv"))
    assert out == f"E2\t{len(CATALOG[1].codes)}\n"


def test_query_over_a_fleet_document_keeps_the_exit_code(armsim: Server, tmp_path: Path) -> None:
    q = "vms[].{vm: vm, found: join(',', findings[?verdict=='present'].cause)}"
    rows = parse_table(ok(cli(armsim, "diagnose", "vm-nsg-blocked", "vm-sql-vss", "-g", RG, "--query", q,
                              "-o", "table")))
    assert rows == [{"Vm": "vm-nsg-blocked", "Found": "C1"}, {"Vm": "vm-sql-vss", "Found": "C4.sql"}]
    r = cli(armsim, "fix", "vm-win-agent-hung", "-g", RG, "--yes", "--query", "vms[0].status", "-o", "tsv",
            tmp=tmp_path)
    assert ok(r, 3) == "withheld\n"  # the command's own exit code (3: needs consent), whatever the query
    assert mutating(armsim) == []


@pytest.mark.parametrize("query", ["[?", "vms[?status=='x'", "a..b", "`x", "lenght(vms)", "length(vms, @)"])
def test_a_bad_query_is_bad_input_with_zero_requests(armsim: Server, tmp_path: Path, query: str) -> None:
    r = cli(armsim, "fix", "vm-nsg-blocked", "-g", RG, "--yes", "--query", query, "-o", "json", tmp=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: --query")
    assert armsim.sim.requests() == []


def test_formats_follow_az_for_odd_shapes() -> None:
    assert tsv([{"a": 1, "b": None, "c": [1, 2], "d": {"x": 1}, "e": True}]) == "1\tNone\t2\t\tTrue\n"
    assert tsv([[1, "x"], "y", False]) == "1\tx\ny\nfalse\n"
    assert tsv(None) == "None\n" and tsv([]) == ""
    assert table([]) == ""
    assert format_doc({"v": [[1, 2]]}, "table", "v") == "Column1    Column2\n---------  ---------\n1          2\n"
    assert format_doc({"v": ["a"]}, "table", "v") == "Result\n--------\na\n"
    assert [format_doc({"v": 1}, o, "w") for o in ("json", "tsv", "table", "text")] == ["", "", "", ""]
    with pytest.raises(RemediationError, match="only nested values"):
        format_doc({"v": [{"a": [1]}]}, "table", "v")


# --- a closed pipe ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("list", "-o", "json"), ("list",), ("explain", "E2", "-o", "table")])
def test_a_reader_that_goes_away_gets_a_quiet_exit(args: tuple[str, ...]) -> None:
    """As `| head -1` when head has already gone: no traceback, no "Exception ignored", exit 141 (128+SIGPIPE)."""
    proc = subprocess.Popen(runbooks(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=plain_env())
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads stdout any more: the first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


def test_pipe_into_head_in_a_shell_prints_no_traceback() -> None:
    cmd = " ".join(shlex.quote(a) for a in runbooks("list", "-o", "json"))
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], capture_output=True, text=True,
                       cwd=ROOT, env=plain_env(), timeout=60)
    assert r.stdout == "[\n" and r.stderr == ""
    assert r.returncode in (0, 141)  # 0 if it all fitted in the pipe before head left, else 141


# --- --from-vault with nothing to fix -----------------------------------------------------------------------

def test_from_vault_with_no_failed_job_in_the_window_says_so(armsim: Server, tmp_path: Path) -> None:
    vault = next(v for v in armsim.sim.backup.vaults.values() if v.name == "rsv-demo")
    assert any(j.status == "Failed" for j in vault.jobs)  # there are failed jobs, older than an hour
    args = ("fix", "--from-vault", "rsv-demo", "-g", RG, "--since", "1h", "--yes")
    out = ok(cli(armsim, *args, tmp=tmp_path))
    assert out.count("\n") == 1 and "rsv-demo" in out and "1h" in out and "No failed backup jobs" in out
    r = cli(armsim, *args, "-o", "json", tmp=tmp_path)
    doc: dict[str, Any] = json.loads(ok(r))
    assert doc["vms"] == [] and doc["exit_code"] == 0 and doc["message"] == out.strip()
    assert mutating(armsim) == []
