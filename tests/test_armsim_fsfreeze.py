"""armsim's file-system freeze model: the verdict, the vmbackup.conf scripts through the real SDK, and the set
script's edit run under bash and dash against files, matched by armsim's own implementation (merge_conf)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import mutating
from support.demo import sim_vm, target

from armsim.fsfreeze import TEMPLATE, extension_skips, merge_conf, valid_mounts
from remediations.azure import Azure
from remediations.reads import ScriptFailed, run_script
from remediations.scripts import parse_result, script

VM = "vm-fsfreeze"
CONFS = [None, "[SnapshotThread]\nfsfreeze: True\n", "[SnapshotThread]\nMountsToSkip = /a, /b\n",
         "[Other]\nx = 1\n", "[SnapshotThread]\nmountstoskip: /data\n", "[SnapshotThread]\nMountsToSkip =\n"]


def test_the_demo_vm_fails_until_data_is_skipped(armsim: Any) -> None:
    vm = sim_vm(armsim, VM)
    assert armsim.sim.backup.verdict(vm) == "UserErrorFsFreezeFailed"
    vm.guest.freeze.conf = "[SnapshotThread]\nMountsToSkip = /data\n"
    assert armsim.sim.backup.verdict(vm) is None
    vm.guest.freeze.conf = "[SnapshotThread]\nMountsToSkip = /data\nMountsToSkip = /data\n"  # ConfigParser refuses
    assert armsim.sim.backup.verdict(vm) == "UserErrorFsFreezeFailed"


def test_get_and_set_through_run_command(armsim: Any, azure: Azure) -> None:
    got = run_script(azure, target(VM), "linux-vmbackup-conf-get")
    assert (got["exists"], got["failed"], got["skip"]) == (False, ["/data"], []), got
    assert got["template"].endswith("/main/tempPlugin/vmbackup.conf") and mutating(armsim) == []
    out = run_script(azure, target(VM), "linux-vmbackup-conf-set", {"MOUNTS": "/data"})
    assert (out["changed"], out["created"], out["after"]) == (True, True, ["/data"]), out
    assert len(mutating(armsim)) == 1
    with pytest.raises(ScriptFailed):
        run_script(azure, target(VM), "linux-vmbackup-conf-set", {"MOUNTS": "/data;reboot"})


def _shell(tmp: Path, shell: str, conf: str | None, mounts: str) -> tuple[dict[str, Any], str | None]:
    plugin = tmp / "waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9170.0/main/tempPlugin"
    plugin.mkdir(parents=True, exist_ok=True)
    (plugin / "vmbackup.conf").write_text(TEMPLATE)
    path = tmp / "etc/vmbackup.conf"
    path.parent.mkdir(exist_ok=True)
    if conf is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(conf)
    (tmp / "set.sh").write_text(script("linux-vmbackup-conf-set").text)
    env = {**os.environ, "RUNBOOKS_VMBACKUP_CONF": str(path), "RUNBOOKS_WAAGENT_DIR": str(tmp / "waagent"),
           "MOUNTS": mounts}
    r = subprocess.run([shell, str(tmp / "set.sh")], env=env, capture_output=True, text=True, timeout=30)
    return parse_result(r.stdout), path.read_text() if path.exists() else None


@pytest.mark.parametrize("shell", [s for s in ("bash", "dash") if shutil.which(s)])
@pytest.mark.parametrize("conf", CONFS)
def test_the_script_and_armsim_edit_alike(tmp_path: Path, shell: str, conf: str | None) -> None:
    out, text = _shell(tmp_path, shell, conf, "/data,/srv/x")
    want, error, _ = merge_conf(conf if conf is not None else TEMPLATE, ["/data", "/srv/x"])
    assert error is None and out["changed"] is True, out
    assert text == want, (text, want)
    assert extension_skips(text)[-2:] == ["/data", "/srv/x"]
    again, same = _shell(tmp_path, shell, text, "/data")
    assert again["changed"] is False and same == text and merge_conf(text, ["/data"])[0] is None


@pytest.mark.parametrize("value", ["/data", "/a,/b", "/x/y_z-1.2@+", "/", "/a/", "/a/../b", "a", "/a,,/b", "/a b",
                                   "/a;b", "/a//b", ""])
def test_the_script_and_armsim_validate_alike(tmp_path: Path, value: str) -> None:
    out, _ = _shell(tmp_path, "bash", None, value)
    assert (out.get("error") != "bad-mounts") == (valid_mounts(value) is not None), (value, json.dumps(out))
