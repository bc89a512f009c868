"""armsim and remediations keep twins on purpose (armsim imports nothing of ours): each pair must agree.

A twin is a fact about Azure both sides write down: which scripts change the guest, the NSG default
rules, the oldest supported Linux agent, and a few more. Each test imports both sides and compares.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import armsim
from armsim import backup as sim_backup
from armsim import compute as sim_compute
from armsim import guest as sim_guest
from armsim import health as sim_health
from armsim import netpolicy as sim_netpolicy
from armsim.network import NetworkModel
from remediations import backupjobs, netlimits, netrules, reads, verdicts
from remediations.actions import guest as guest_actions
from remediations.scripts import SCRIPTS


def test_script_mutates_matches_the_scripts_changes_the_guest_column() -> None:
    ours = {sid: s.mutating for sid, s in SCRIPTS.items()}
    assert ours == sim_guest.SCRIPT_MUTATES


def test_the_nsg_default_rules_are_the_same_six() -> None:
    theirs = [netrules.Rule.from_arm(r, default=True) for r in sim_netpolicy.DEFAULT_RULES]
    assert [r.name for r in theirs] == [r.name for r in netrules.DEFAULT_RULES]
    for sim_rule, ours in zip(theirs, netrules.DEFAULT_RULES, strict=True):
        assert netrules.same_rule(sim_rule, ours), (sim_rule, ours)
        assert (sim_rule.priority, sim_rule.default) == (ours.priority, ours.default)


def test_the_oldest_supported_linux_agent_and_how_versions_compare() -> None:
    assert sim_backup.MIN_LINUX_AGENT == verdicts.MIN_LINUX_AGENT
    for v in ("2.2.53.1", "2.2.10", "2.9.1.1", "v2.14.0.1-beta", "", None, "WALinuxAgent-2.2.53"):
        assert sim_guest.version_tuple(v) == verdicts.version_tuple(v), v


@pytest.mark.parametrize(("theirs", "ours"), [
    (sim_backup.ON_DEMAND_HARD_LIMIT, backupjobs.ON_DEMAND_HARD_LIMIT),
    (sim_compute.BACKUP_PUBLISHER, reads.BACKUP_PUBLISHER),
    ((sim_guest.VSS_KEY, sim_guest.VSS_VALUE), (guest_actions.VSS_KEY, guest_actions.VSS_VALUE)),
    (sim_netpolicy.MAX_PREFIXES_PER_NSG, netlimits.MAX_NSG_PREFIXES),
    (sim_backup.REFUSED.lower(), backupjobs.REFUSED_CODES[0]),
], ids=["on-demand-limit", "backup-publisher", "vss-key", "nsg-prefix-limit", "refused-code"])
def test_other_twin_constants(theirs: object, ours: object) -> None:
    assert theirs == ours


def test_the_backup_port_armsim_judges_is_the_one_the_fix_opens() -> None:
    default = inspect.signature(NetworkModel.storage_blocked).parameters["port"].default
    assert (default,) == verdicts.BACKUP_PORTS
    calls = [n for n in ast.walk(ast.parse(inspect.getsource(sim_backup)))
             if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "storage_blocked"]
    assert calls and all(len(c.args) < 2 or ast.literal_eval(c.args[1]) in verdicts.BACKUP_PORTS for c in calls)


def test_only_armsims_stopped_internally_annotation_reads_as_a_shutdown_inside() -> None:
    assert reads.STOPPED_INTERNALLY in sim_health.ANNOTATIONS
    for name, (description, *_rest) in sim_health.ANNOTATIONS.items():
        assert reads.shut_down_inside({"summary": description}) is (name == reads.STOPPED_INTERNALLY), name


def test_armsim_imports_nothing_of_ours() -> None:
    ours = ("remediations", "runbooks")
    for path in Path(armsim.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n.split(".")[0] in ours for n in names), f"{path.name} imports {names}"
