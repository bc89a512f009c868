"""armsim's clock (issue #9): time alone moves backup jobs and long-running operations on, as Azure's do.

A client that only watches the job list (as the portal and `az backup job list` do) sees a job end;
an operation nobody polls still ends, and its effect shows. Polls only hurry things.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from conftest import http

from armsim import Server
from armsim.clock import SimClock
from remediations.azure import Azure
from remediations.backupjobs import parse_time

RG, VAULT = "rg-demo", "rsv-demo"
CONTAINER = "IaasVMContainer;iaasvmcontainerv2;rg-demo;{vm}"
ITEM = "VM;iaasvmcontainerv2;rg-demo;{vm}"
BODY = {"properties": {"objectType": "IaasVMBackupRequest"}}


def trigger(azure: Azure, vm: str) -> None:
    """POST an on-demand backup of a demo VM (nothing polled afterwards)."""
    azure.backup.backups.trigger(VAULT, RG, "Azure", CONTAINER.format(vm=vm), ITEM.format(vm=vm), BODY)


def newest(azure: Azure, vm: str) -> Any:
    """The VM's newest job (JobResource), as the job LIST shows it (never JobDetails_Get)."""
    mine = [j for j in azure.backup.backup_jobs.list(VAULT, RG) if j.properties.entity_friendly_name == vm]
    return max(mine, key=lambda j: j.properties.start_time)


def tasks(job: Any) -> list[str]:
    return [t.status for t in job.extended_info.tasks_list]


def operations(server: Server) -> list[str]:
    return [str(e["operation"]) for e in server.sim.requests()]


# --- the clock itself ------------------------------------------------------------------------
def test_sim_clock_runs_at_its_speed_jumps_on_advance_and_resyncs() -> None:
    real = [100.0]
    clock = SimClock(lambda: real[0])
    start = clock.now()
    real[0] += 2
    assert clock() == 2.0
    clock.set_speed(10)  # from now on: the two seconds so far are kept
    real[0] += 1
    assert clock() == 12.0
    assert clock.advance(100) == 112.0 and clock.now() - start == timedelta(seconds=112)
    clock.resync()  # the wall time is the real one again; the seconds stay monotonic
    assert abs((clock.now() - datetime.now(timezone.utc)).total_seconds()) < 1 and clock() == 112.0
    for bad in (lambda: clock.advance(-1), lambda: clock.set_speed(0)):
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("accepted a clock going backwards or standing still")


def test_clock_control_route(armsim: Server) -> None:
    status, before = http(armsim, "GET", "/_armsim/clock")
    assert status == 200 and before["speed"] == 1.0
    status, after = http(armsim, "POST", "/_armsim/clock", {"advance": 3600})
    assert status == 200 and after["seconds"] - before["seconds"] >= 3600
    assert http(armsim, "POST", "/_armsim/clock", {"advance": -5})[0] == 400
    armsim.sim.reset()  # a reset brings the simulated wall time back to the real one
    assert abs((armsim.sim.clock.now() - datetime.now(timezone.utc)).total_seconds()) < 5


# --- backup jobs -----------------------------------------------------------------------------
def test_time_alone_finishes_a_job_watched_only_through_the_list(armsim: Server, azure: Azure) -> None:
    trigger(azure, "vm-healthy")
    job = newest(azure, "vm-healthy").properties
    assert job.status == "InProgress" and job.extended_info.progress_percentage < 1
    assert tasks(job) == ["InProgress", "NotStarted"]
    http(armsim, "POST", "/_armsim/clock", {"advance": 700})  # past the snapshot phase (the first half)
    job = newest(azure, "vm-healthy").properties
    assert job.status == "InProgress" and 50 <= job.extended_info.progress_percentage < 100
    assert tasks(job) == ["Completed", "InProgress"]
    http(armsim, "POST", "/_armsim/clock", {"advance": 600})  # past its duration (1223 s)
    job = newest(azure, "vm-healthy").properties
    assert job.status == "Completed" and job.extended_info.progress_percentage == 100.0
    assert tasks(job) == ["Completed", "Completed"]
    assert job.end_time - job.start_time == timedelta(seconds=armsim.sim.settings.backup_job_seconds)
    assert "JobDetails_Get" not in operations(armsim)
    item = azure.backup.protected_items.get(VAULT, RG, "Azure", CONTAINER.format(vm="vm-healthy"),
                                            ITEM.format(vm="vm-healthy")).as_dict()["properties"]
    assert item["lastBackupStatus"] == "Completed" and parse_time(item["lastBackupTime"]) == job.end_time


def test_a_faster_clock_finishes_a_job_in_real_time_without_polls(armsim: Server, azure: Azure) -> None:
    armsim.sim.settings.clock_speed = 6000.0  # 1223 simulated seconds in about 0.2 real ones
    trigger(azure, "vm-nsg-blocked")
    deadline = time.monotonic() + 10
    while (job := newest(azure, "vm-nsg-blocked").properties).status == "InProgress":
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.05)
    assert job.status == "Failed" and job.error_details[0].error_title == "ExtensionSnapshotFailedNoNetwork"
    assert "JobDetails_Get" not in operations(armsim)


def test_a_job_time_ended_unseen_does_not_block_the_next_backup(armsim: Server, azure: Azure) -> None:
    trigger(azure, "vm-healthy")
    armsim.sim.clock.advance(armsim.sim.settings.backup_job_seconds)  # nobody reads anything meanwhile
    trigger(azure, "vm-healthy")
    job = newest(azure, "vm-healthy").properties
    assert job.status == "InProgress" and not job.error_details


def test_polls_still_hurry_a_job(armsim: Server, azure: Azure) -> None:
    trigger(azure, "vm-healthy")
    job_id = newest(azure, "vm-healthy").name
    statuses = [azure.backup.job_details.get(VAULT, RG, job_id).properties.status for _ in range(2)]
    assert statuses == ["InProgress", "Completed"]  # backup_job_polls=2


# --- long-running operations -----------------------------------------------------------------
def test_time_alone_ends_an_operation_nobody_polls(armsim: Server, azure: Azure) -> None:
    armsim.sim.settings.lro_polls = 10**6  # polls would never end it
    azure.compute.virtual_machines.begin_power_off(RG, "vm-healthy", polling=False)  # accepted; never polled
    power = [s.code for s in azure.compute.virtual_machines.instance_view(RG, "vm-healthy").statuses
             if s.code.startswith("PowerState/")]
    assert power == ["PowerState/running"]
    http(armsim, "POST", "/_armsim/clock", {"advance": armsim.sim.settings.lro_seconds})
    power = [s.code for s in azure.compute.virtual_machines.instance_view(RG, "vm-healthy").statuses
             if s.code.startswith("PowerState/")]
    assert power == ["PowerState/stopped"]
    assert not any(op.endswith("operations/read") for op in operations(armsim))
