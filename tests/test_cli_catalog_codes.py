"""`list` shows every code of issue #14 with its fix or its manual steps; `explain CODE` shows the guide's section;
-o json and -o table say the same. Anchors are learn.microsoft.com's: the heading lowercased, punctuation dropped,
spaces to hyphens (headings as in MicrosoftDocs/azure-docs, ms.date 11/12/2025; docs/error-codes.md §4)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from support.runs import ROOT, runbooks

from runbooks.catalog import CATALOG, CAUSES, lookup

ISSUE_CODES = {  # the codes issue #14 names -> fixable (an action) or only a person's
    "UserErrorRpCollectionLimitReached": "fix", "UserErrorBackupOperationInProgress": "fix",
    "ExtensionStuckInDeletionState": "fix", "UserErrorVmProvisioningStateFailed": "fix",
    "UserErrorResourceIsInLockedState": "fix", "ExtensionFailedVssWriterInBadState": "fix",
    "ExtensionFailedVssServiceInBadState": "fix", "ExtensionSnapshotFailedNoSecureNetwork": "fix",
    "ExtensionFailedTimeoutVMNetworkUnresponsive": "fix", "ExtensionSnapshotFailedCOM": "fix",
    "ExtensionInstallationFailedMDTC": "fix", "UserErrorFsFreezeFailed": "fix",
    "UserErrorGuestAgentVersionUnsupported": "fix",
    "UserErrorUnsupportedDiskSize": "manual", "ExtensionSnapshotBitlockerError": "manual",
    "ExtensionConfigParsingFailure": "manual", "ExtensionFailedSnapshotLimitReachedError": "manual",
    "UserErrorKeyvaultPermissionsNotConfigured": "manual", "UserErrorBcmDatasourceNotPresent": "manual",
    "UserErrorRequestDisallowedByPolicy": "manual",
}
GUIDES = ("https://learn.microsoft.com/azure/backup/backup-azure-troubleshoot-vm-backup-fails-snapshot-timeout#",
          "https://learn.microsoft.com/azure/backup/backup-azure-vms-troubleshoot#")


def run(*args: str) -> str:
    r = subprocess.run(runbooks(*args), capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def blocks(text: str) -> dict[str, str]:
    """`list`'s text, one block per runbook id."""
    parts = re.split(r"^(E\d+)  ", text.split("\nactions:")[0], flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_list_shows_every_code_with_its_fix_or_manual_steps_and_guide() -> None:
    listed = blocks(run("list"))
    assert list(listed) == [e.id for e in CATALOG]
    for code, kind in ISSUE_CODES.items():
        entry = lookup(code)
        assert entry is not None, code
        block = listed[entry.id]
        assert code in block and f"    guide:  {entry.guide}\n" in block
        if kind == "fix":
            assert "    fix:    " in block, code
        else:  # the steps themselves, a line per cause
            assert "    fix:" not in block
            for c in entry.causes:
                assert f"    manual: {CAUSES[c].manual[0]}\n" in block


def test_every_new_entry_links_a_section_of_a_guide() -> None:
    for e in CATALOG[5:]:
        assert e.guide.startswith(GUIDES), e.id
        anchor = e.guide.split("#", 1)[1]
        assert re.fullmatch(r"[a-z0-9_-]+", anchor), e.id
    for e in CATALOG[:5]:
        assert e.guide == ""  # the 2017 article's: docs/playbook.md


@pytest.mark.parametrize("key", ["UserErrorUnsupportedDiskSize", "E6", "ExtensionSnapshotFailedCOM"])
def test_explain_shows_the_guide_section(key: str) -> None:
    entry = lookup(key)
    assert entry is not None
    out = run("explain", key)
    assert out.splitlines()[2] == f"guide: {entry.guide}"
    doc = json.loads(run("explain", key, "-o", "json"))
    assert doc["guide"] == entry.guide and [c["id"] for c in doc["causes"]] == list(entry.causes)


def test_explain_of_an_old_runbook_points_at_the_playbook() -> None:
    assert "guide: docs/playbook.md (the 2017 article)" in run("explain", "E2")


def test_json_table_and_tsv_say_the_same() -> None:
    doc = json.loads(run("list", "-o", "json"))
    assert [d["id"] for d in doc] == [e.id for e in CATALOG]
    for d, e in zip(doc, CATALOG, strict=True):
        assert d["guide"] == (e.guide or None)
        assert d["fixes"] == list(dict.fromkeys(a for c in e.causes for a in CAUSES[c].fixes))
        assert d["manual"] == [c for c in e.causes if not CAUSES[c].fixes and CAUSES[c].manual]
    tsv = [ln.split("\t") for ln in run("list", "-o", "tsv").splitlines()]
    assert tsv == [[d["id"], ",".join(d["codes"]), ",".join(d["causes"]), ",".join(d["fixes"]),
                    ",".join(d["manual"]), d["message"]] for d in doc]
    table = run("list", "-o", "table").splitlines()
    assert table[0].split() == ["Id", "Codes", "Causes", "Fixes", "Manual", "Message"]
    e23 = next(ln for ln in table if ln.startswith("E23 "))
    assert "UserErrorBcmDatasourceNotPresent" in e23 and "C13.datasource" in e23
