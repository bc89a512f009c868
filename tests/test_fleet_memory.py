"""A fleet keeps each VM's report slimmed once the VM is done (issue #13: memory flat in N): what it prints, and what a
saved plan records, are unchanged; and the LRO deadline records of finished operations are not kept."""

from __future__ import annotations

import copy

import pytest
from conftest import DEMO_VMS

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.azure import Azure
from remediations.target import Target
from runbooks import planfile
from runbooks.engine import Options, VmReport, run, slimmed
from runbooks.render import Style, report_json, report_text, summary_row


def shown(r: VmReport) -> tuple[object, ...]:
    return (report_json(r), report_text(r, Style(False)), summary_row(r), planfile.fingerprint(r))


@pytest.mark.parametrize("dry_run, vms", [(True, DEMO_VMS), (False, ("vm-nsg-blocked", "vm-ext-failed"))])
def test_a_slimmed_report_renders_and_fingerprints_as_before(armsim: Server, azure: Azure, dry_run: bool,
                                                              vms: tuple[str, ...]) -> None:
    opts = Options(dry_run=dry_run, allow_disruptive=True, backup_poll_seconds=0.2)
    for name in vms:
        report = run(azure, Target(subscription=DEMO_SUBSCRIPTION, resource_group="rg-demo", name=name), opts)
        before = shown(report)
        kept = copy.copy(report.investigation)
        slim = slimmed(report)
        assert shown(slim) == before, name
        if kept is not None and slim.investigation is not None:
            f = slim.investigation.facts
            assert f.vm.raw == {} and f.nsgs is None and f.jobs == () and f.proxy is None, name
            assert kept.facts.vm.raw, name  # the full facts were there before
    assert azure.poll_guard._ops == {}  # every operation ended, and the guard keeps no record of it


def test_operations_never_polled_to_their_end_are_swept_past_their_deadline() -> None:
    from remediations.polling import _SWEEP_AT, PollGuard

    guard = PollGuard(60.0, seconds=0.0)  # every deadline already past
    guard._ops.update({f"https://arm/op/{i}": [0.0, "POST x", "Accepted"] for i in range(_SWEEP_AT + 1)})

    class Resp:
        status_code, headers = 202, {"location": "https://arm/op/new"}

    class Req:
        http_request = type("H", (), {"method": "POST", "url": "https://arm/x"})()

    guard.on_response(Req(), type("P", (), {"http_response": Resp()})())
    assert list(guard._ops) == ["https://arm/op/new"]
