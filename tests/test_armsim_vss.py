"""armsim's VSS model (armsim/vss.py): the causal link, the scripts' effects through the real Run Command route."""

from __future__ import annotations

from typing import Any

import pytest
from support.demo import sim_vm, target

from armsim.guest import RESTARTS_AGENT, restart_mode, run_script
from armsim.vss import Writer, vss_verdict
from remediations.actions.guest_agent import script_step
from remediations.azure import Azure
from remediations.scripts import script

NO_THREADS = (r"hklm\software\microsoft\bcdragentpersistentkeys", "snapshotwithoutthreads")


def test_the_service_is_judged_before_the_writers(armsim: Any) -> None:
    g = sim_vm(armsim, "vm-vss-writer").guest
    assert vss_verdict(g) == "ExtensionFailedVssWriterInBadState"
    g.vss.broken = True
    assert vss_verdict(g) == "ExtensionFailedVssServiceInBadState"
    g.vss.broken, g.vss.status = False, "StartPending"
    assert vss_verdict(g) == "ExtensionFailedVssServiceInBadState"
    assert vss_verdict(sim_vm(armsim, "vm-healthy").guest) is None  # a Linux guest's default VSS is healthy


def test_a_timed_out_writer_needs_snapshot_without_threads(armsim: Any) -> None:
    g = sim_vm(armsim, "vm-vss-writer").guest
    for w in g.vss.writers:
        w.state = "[1] Stable"
    assert vss_verdict(g) == "ExtensionFailedVssWriterInBadState"  # SqlServerWriter times out with threads
    g.registry[NO_THREADS] = ("REG_SZ", "true")
    assert vss_verdict(g) is None
    g.vss.writers.append(Writer("WMI Writer", "Winmgmt", "[5] Waiting for completion", "No error"))
    assert vss_verdict(g) == "ExtensionFailedVssWriterInBadState"  # any state but [1] Stable


def test_the_get_script_through_run_command(azure: Azure, armsim: Any) -> None:
    out = script_step(azure, target("vm-vss-writer"), "windows-vss-writers-get")
    assert out["script"] == "windows-vss-writers-get" and out["view"] == "Registry64"
    assert out["vss"] == {"name": "VSS", "status": "Running", "start_type": "Manual"}
    system = next(w for w in out["writers"] if w["name"] == "System Writer")
    assert system == {"name": "System Writer", "state": "[8] Failed", "last_error": "Non-retryable error",
                      "service": "CryptSvc"}
    assert out["writers_error"] is None and out["snapshot_without_threads"] == {"exists": False, "value": None,
                                                                                "type": None}
    hung = script_step(azure, target("vm-vss-service"), "windows-vss-writers-get")
    assert hung["writers"] == [] and hung["writers_error"] == "Error: the VSS service is StopPending"


def test_restarting_vss_makes_the_writers_it_hosts_stable_only(azure: Azure, armsim: Any) -> None:
    g = sim_vm(armsim, "vm-vss-service").guest
    for w in g.vss.writers:
        if w.name in ("Registry Writer", "WMI Writer"):
            w.state = "[7] Failed"
    out = script_step(azure, target("vm-vss-service"), "windows-vss-restart")
    assert out == {"script": "windows-vss-restart", "service": "VSS", "before": "StopPending", "status": "Running",
                   "start_type": "Manual", "killed": True, "answers": True}
    by_name = {w.name: w.state for w in g.vss.writers}
    assert by_name["Registry Writer"] == "[1] Stable" and by_name["WMI Writer"] == "[7] Failed"


def test_the_vss_scripts_are_not_agent_restarts() -> None:
    """They stop and restart services inline on purpose: armsim must not take them for an inline agent restart."""
    for sid in ("windows-vss-writers-restart", "windows-vss-restart"):
        assert sid not in RESTARTS_AGENT and restart_mode(sid, script(sid).text) is None


@pytest.mark.parametrize("sid", ["windows-vss-writers-get", "windows-vss-writers-restart", "windows-vss-restart",
                                 "windows-vss-writers-nothreads"])
def test_a_script_without_what_its_effect_needs_is_refused(armsim: Any, sid: str) -> None:
    g = sim_vm(armsim, "vm-vss-writer").guest
    gutted = "\n".join(line for line in script(sid).text.splitlines()
                       if "vssadmin.exe" not in line and "SetValue" not in line)
    run = run_script(g, gutted, params={"Writers": "System Writer"})
    assert run.code == 127 and "lacks what its effect needs" in run.err
    assert g.vss.restarts == {} and g.registry_value(*NO_THREADS) is None
