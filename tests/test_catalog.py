"""runbooks.catalog: the runbooks as data — lookup, error matching, and consistency with the playbook."""

from __future__ import annotations

import pytest

from remediations.actions import ACTION_NAMES
from runbooks.catalog import CATALOG, CAUSES, UNKNOWN, lookup, match_error
from runbooks.catalog import GROUPS as _GROUP

BY_ID = {e.id: e for e in CATALOG}

# docs/playbook.md, the table of errors and the cause groups to check, in order.
PLAYBOOK_ORDER = {
    "E1": ("C1", "C2", "C3", "C4", "C5"),
    "E2": ("C1", "C4", "C5"),
    "E3": ("C4", "C5", "C1", "C2", "C3"),
    "E4": ("C2", "C3", "C1"),
    "E5": ("C1", "C2", "C3", "C4", "C5"),
}


# --- lookup -----------------------------------------------------------------------------------
@pytest.mark.parametrize("eid", sorted(BY_ID))
def test_lookup_by_id_any_case(eid: str) -> None:
    assert lookup(eid) is BY_ID[eid]
    assert lookup(eid.lower()) is BY_ID[eid]
    assert lookup(f"  {eid} ") is BY_ID[eid]


@pytest.mark.parametrize(("eid", "code"), [(e.id, c) for e in CATALOG for c in e.codes])
def test_lookup_by_every_code_any_case(eid: str, code: str) -> None:
    assert lookup(code) is BY_ID[eid]
    assert lookup(code.upper()) is BY_ID[eid]
    assert lookup(code.lower()) is BY_ID[eid]


def test_lookup_of_unknown_keys() -> None:
    assert lookup("E25") is None
    assert lookup("SomethingElse") is None
    assert lookup("") is None


def test_codes_are_unique_across_entries() -> None:
    codes = [c.lower() for e in CATALOG for c in e.codes]
    assert len(codes) == len(set(codes))


# --- match_error ------------------------------------------------------------------------------
@pytest.mark.parametrize(("eid", "code"), [(e.id, c) for e in CATALOG for c in e.codes])
def test_match_by_title_code(eid: str, code: str) -> None:
    entry, why = match_error(code)
    assert entry is BY_ID[eid] and why == f"code {code}"


def test_match_by_code_embedded_in_text() -> None:
    text = "Snapshot operation failed due to no network connectivity (error code ExtensionSnapshotFailedNoNetwork)"
    entry, why = match_error(text)
    assert entry is BY_ID["E2"] and "ExtensionSnapshotFailedNoNetwork" in why
    entry, _ = match_error("job failed: guestagentsnapshottaskstatuserror.")
    assert entry is BY_ID["E4"]


def test_a_code_matches_only_as_a_whole_word() -> None:
    entry, why = match_error("code=BackUpOperationFailedV2")
    assert entry is BY_ID["E5"] and why.startswith("code BackUpOperationFailedV2 ")
    entry, why = match_error("XExtensionSnapshotFailedNoNetworkX")
    assert entry is UNKNOWN and why.startswith("unrecognised error")


def test_title_code_wins_over_the_message() -> None:
    entry, _ = match_error("GuestAgentSnapshotTaskStatusError", "VM agent unable to communicate with Azure Backup")
    assert entry is BY_ID["E4"]


def test_match_by_the_articles_old_message() -> None:
    entry, why = match_error(None, "Could not communicate with the VM agent for snapshot status")
    assert entry is BY_ID["E4"] and why.startswith("message")


@pytest.mark.parametrize("text", [
    "VM agent unable to communicate with Azure Backup",
    "vm agent unable to communicate with azure backup!!",
    "VM Agent: unable to communicate with Azure-Backup.",
    "  VM-AGENT unable to communicate, with Azure Backup  ",
])
def test_match_e1_message_ignores_punctuation_and_case(text: str) -> None:
    entry, why = match_error(text)
    assert entry is BY_ID["E1"] and why.startswith("message")


@pytest.mark.parametrize("eid", sorted(BY_ID))
def test_match_by_each_entrys_message(eid: str) -> None:
    assert match_error(BY_ID[eid].message)[0] is BY_ID[eid]


@pytest.mark.parametrize("texts", [("SomethingNobodyKnows",), ("Disk quota exceeded on the vault",), (None,), (),
                                   ("", None), ("short",)])
def test_unknown_falls_back_to_the_e5_order(texts: tuple[str | None, ...]) -> None:
    entry, why = match_error(*texts)
    assert entry is UNKNOWN
    assert why.startswith("unrecognised error")
    assert entry.id == "E5" and entry.codes == ()
    assert entry.groups == BY_ID["E5"].groups
    assert entry.causes == BY_ID["E5"].causes


def test_unknown_reason_quotes_the_text() -> None:
    assert match_error("SomethingNobodyKnows")[1] == "unrecognised error 'SomethingNobodyKnows'"
    assert match_error(None)[1] == "unrecognised error"


def test_a_bare_error_number_says_which_number_and_that_every_cause_is_checked() -> None:
    entry, why = match_error(None, "", 400235)
    assert entry.id == "E5" and entry.codes == () and entry.causes == UNKNOWN.causes  # no runbook for a number
    assert entry.message == ("only the error number 400235 was reported (no code or message): every cause is "
                             "checked in the E5 order")
    assert why == "only the error number 400235 was reported (no code or message); no runbook is known for a number"
    assert match_error("SomethingNobodyKnows", 400235)[0] is UNKNOWN  # a text beside it: the usual fallback


@pytest.mark.parametrize(("code", "eid"), [
    ("UserErrorVmProvisioningStateFailed", "E10"),  # failed extension puts the VM in Failed state: C5 uninstall
    ("ExtensionInstallationFailed", "E3"),  # the backup extension did not install: the extension runbook
    ("ExtensionSnapshotFailedNoSecureNetwork", "E14"),  # no secure channel: .NET strong crypto, then the network
])
def test_codes_that_used_to_fall_through_have_their_runbook(code: str, eid: str) -> None:
    entry, why = match_error(code)
    assert entry is BY_ID[eid] and why == f"code {code}"
    assert match_error(f"Backup failed (error code {code})")[0] is BY_ID[eid]
    assert match_error("ExtensionInstallationFailedCOM")[0] is BY_ID["E16"]  # its COM+ variant is another code


def test_c4_shutdown_is_a_persons_choice_not_a_power_off() -> None:
    cause = CAUSES["C4.shutdown"]
    assert cause.fixes == () and "az vm start" in cause.manual[0] and "az vm deallocate" in cause.manual[0]
    assert "still allocated" in cause.title and "reports it running" not in cause.title


# --- consistency ------------------------------------------------------------------------------
def test_every_entry_cause_exists() -> None:
    for e in (*CATALOG, UNKNOWN):
        assert e.causes, e.id
        for c in e.causes:
            assert c in CAUSES, f"{e.id}: cause {c} is not in CAUSES"
        assert len(e.causes) == len(set(e.causes)), e.id


def test_every_cause_is_reachable_from_some_group() -> None:
    grouped = {c for subs in _GROUP.values() for c in subs}
    assert grouped == set(CAUSES)
    for group, subs in _GROUP.items():
        assert all(c == group or c.startswith(group + ".") for c in subs), group


def test_every_fix_is_a_known_action() -> None:
    for cause in CAUSES.values():
        for fix in cause.fixes:
            assert fix in ACTION_NAMES, f"{cause.id}: fix {fix!r} is not a remediation action"


def test_every_cause_has_a_fix_or_a_manual_step() -> None:
    for cause in CAUSES.values():
        assert cause.fixes or cause.manual, cause.id
        assert cause.title, cause.id


@pytest.mark.parametrize("eid", sorted(PLAYBOOK_ORDER))
def test_cause_order_matches_the_playbook(eid: str) -> None:
    entry = BY_ID[eid]
    assert entry.groups == PLAYBOOK_ORDER[eid]
    groups_in_order: list[str] = []
    for c in entry.causes:  # the expanded sub-causes keep the group order
        g = c.split(".", 1)[0]
        if not groups_in_order or groups_in_order[-1] != g:
            groups_in_order.append(g)
    assert tuple(groups_in_order) == PLAYBOOK_ORDER[eid]


def test_catalog_ids_are_e1_to_e24_in_order() -> None:
    assert [e.id for e in CATALOG] == [f"E{i}" for i in range(1, 25)]  # E1-E5 the 2017 article's, E6- the guides'
    assert all(e.guide.startswith("https://learn.microsoft.com/azure/backup/") for e in CATALOG[5:])
