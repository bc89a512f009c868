"""UserErrorFsFreezeFailed (C12.freeze): diagnosis with evidence, skip-freeze-mounts' plan and apply on armsim,
idempotence from armsim's request log, dry-run, a person's MountsToSkip entries, and vm-fsfreeze fixed by `fix`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import mutating
from support.demo import RG, sim_vm, target
from support.runs import cli

from armsim.fsfreeze import extension_skips
from remediations.actions.fsfreeze import SkipFreezeMounts, SkipMountsParams, check_mounts, freeze_plan
from remediations.azure import Azure
from remediations.errors import BadInput
from remediations.reads import vm_view
from runbooks.catalog import lookup
from runbooks.engine import Options, investigate

VM = "vm-fsfreeze"
PERSON = "[SnapshotThread]\n# kept by hand\nfsfreeze: True\nmountstoskip = /person, /srv/nfs\n"


def _run_commands(server: Any) -> list[dict[str, Any]]:
    return [e for e in server.sim.requests() if e["path"].lower().endswith("/runcommand")]


@pytest.mark.parametrize("bad", ["/", "data", "/data/", "/a/../b", "/a/./b", "//a", "/a b", "/a;reboot", "/$(x)",
                                 "/a,b", ""])
def test_a_bad_mount_point_is_refused(bad: str) -> None:
    with pytest.raises(BadInput):
        check_mounts([bad])
    with pytest.raises(ValueError):
        SkipMountsParams(target=target(VM), mounts=(bad,))


def test_mounts_come_as_a_comma_separated_parameter() -> None:
    assert SkipMountsParams(target=target(VM), mounts="/data, /srv/x").mounts == ("/data", "/srv/x")


def _vm() -> Any:
    return vm_view({"id": f"/subscriptions/s/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}",
                    "name": VM, "properties": {"storageProfile": {"osDisk": {"osType": "Linux"}}}})


def test_plan_adds_only_what_the_extension_does_not_skip() -> None:
    r = {"exists": True, "keys": 1, "skip": ["/person", " /data"], "failed": ["/data", "/person"], "duplicates": []}
    [c] = freeze_plan("skip-freeze-mounts", _vm(), r, SkipMountsParams(target=target(VM))).changes
    assert c.data["mounts"] == ["/data"], c  # " /data" is not "/data" to the extension: it splits without trimming
    assert c.after == {"skip": ["/person", "/data"]} and "failed to freeze" in c.reason
    done = freeze_plan("skip-freeze-mounts", _vm(), {**r, "skip": ["/person", "/data"]},
                       SkipMountsParams(target=target(VM)))
    assert not done.changes and " skips /data, /person" in done.reason
    nothing = freeze_plan("skip-freeze-mounts", _vm(), {**r, "failed": []}, SkipMountsParams(target=target(VM)))
    assert not nothing.changes and "no mount point failed" in nothing.reason
    twice = freeze_plan("skip-freeze-mounts", _vm(), {**r, "keys": 2}, SkipMountsParams(target=target(VM)))
    assert not twice.changes and twice.manual


def test_diagnosis_finds_the_mount_in_the_extension_log(armsim: Any, azure: Azure) -> None:
    inv = investigate(azure, target(VM), Options())
    assert inv.entry is lookup("UserErrorFsFreezeFailed")
    [f] = [f for f in inv.findings if f.cause == "C12.freeze"]
    assert f.verdict == "present" and "/data failed to freeze" in f.evidence, f
    assert mutating(armsim) == []  # the probe is the read-only get script


def test_apply_then_a_second_run_changes_nothing(armsim: Any, azure: Azure) -> None:
    params = SkipMountsParams(target=target(VM))
    out = SkipFreezeMounts().apply(azure, params)
    assert out.status == "changed", out
    fs = sim_vm(armsim, VM).guest.freeze
    assert extension_skips(fs.conf) == ["/data"] and fs.conf.startswith("[SnapshotThread]\n")
    assert armsim.sim.backup.verdict(sim_vm(armsim, VM)) is None
    armsim.sim.clear_requests()
    again = SkipFreezeMounts().apply(azure, params)
    assert again.status == "unchanged" and mutating(armsim) == [], again
    assert len(_run_commands(armsim)) == 1  # only the get script


def test_a_persons_entries_survive(armsim: Any, azure: Azure) -> None:
    sim_vm(armsim, VM).guest.freeze.conf = PERSON
    out = SkipFreezeMounts().apply(azure, SkipMountsParams(target=target(VM), mounts=("/srv/extra",)))
    assert out.status == "changed", out
    conf = sim_vm(armsim, VM).guest.freeze.conf
    assert extension_skips(conf) == ["/person", "/srv/nfs", "/data", "/srv/extra"], conf
    assert "# kept by hand\nfsfreeze: True\n" in conf


def test_dry_run_writes_nothing(armsim: Any, tmp_path: Any) -> None:
    r = cli(armsim, "action", "skip-freeze-mounts", VM, "-g", RG, "--dry-run", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    [c] = json.loads(r.stdout)["plan"]["changes"]
    assert "/data" in c["summary"] and c["after"] == {"skip": ["/data"]}, c
    assert mutating(armsim) == [] and sim_vm(armsim, VM).guest.freeze.conf is None


def test_fix_skips_the_mount_and_a_backup_proves_it(armsim: Any, tmp_path: Any) -> None:
    r = cli(armsim, "fix", VM, "-g", RG, "--yes", "-o", "json", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    [vm] = json.loads(r.stdout)["vms"]
    assert vm["status"] == "fixed" and "backup job" in vm["message"], vm
    assert [o["action"] for o in vm["outcomes"] if o["status"] == "changed"] == ["skip-freeze-mounts"]
    assert extension_skips(sim_vm(armsim, VM).guest.freeze.conf) == ["/data"]
