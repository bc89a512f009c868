"""A fleet keeps each VM's report slimmed once the VM is done (issue #13: memory flat in N): what it prints, and what a
saved plan records, are unchanged."""

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
