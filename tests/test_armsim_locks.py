"""armsim's management locks and restore point collections through the real SDK (shapes of the REST examples), and
what a lock denies (409 ScopeLocked)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from conftest import mutating

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.locks import Lock
from armsim.restorepoints import LIMIT_CODE, RETAINED, RP_CAP
from remediations.azure import Azure

RP_GROUP = "AzureBackupRG_eastus_1"
SUB = f"/subscriptions/{DEMO_SUBSCRIPTION}"


def vm(server: Server, name: str) -> object:
    return next(v for v in server.sim.compute.vms.values() if v.name == name)


def test_locks_list_at_subscription_level_has_the_examples_shape(azure: Azure) -> None:
    locks = {lk.name: lk for lk in azure.locks.management_locks.list_at_subscription_level()}
    rg = locks["backup-rg-nodelete"]
    assert rg.id == f"{SUB}/resourceGroups/{RP_GROUP}/providers/Microsoft.Authorization/locks/backup-rg-nodelete"
    assert rg.type == "Microsoft.Authorization/locks" and rg.level == "CanNotDelete"
    assert rg.notes and rg.owners[0].application_id
    assert locks["freeze-for-audit"].level == "ReadOnly"


def test_lists_at_group_and_resource_level_and_get(azure: Azure) -> None:
    ops = azure.locks.management_locks
    assert [lk.name for lk in ops.list_at_resource_group_level(RP_GROUP)] == ["backup-rg-nodelete"]
    on_vm = [lk.name for lk in ops.list_at_resource_level("rg-demo", "Microsoft.Compute", "", "virtualMachines",
                                                          "vm-locked")]
    assert on_vm == ["freeze-for-audit"]
    assert ops.get_at_resource_group_level(RP_GROUP, "backup-rg-nodelete").level == "CanNotDelete"
    with pytest.raises(HttpResponseError) as e:
        ops.get_at_resource_group_level(RP_GROUP, "nope")
    assert e.value.status_code == 404


def test_delete_a_group_lock_then_again(armsim: Server, azure: Azure) -> None:
    ops = azure.locks.management_locks
    ops.delete_at_resource_group_level(RP_GROUP, "backup-rg-nodelete")
    ops.delete_at_resource_group_level(RP_GROUP, "backup-rg-nodelete")  # 204: nothing left
    assert [e["status"] for e in mutating(armsim)] == [200, 204]
    assert not armsim.sim.locks.under(f"{SUB}/resourceGroups/{RP_GROUP}")


def test_a_delete_lock_denies_deleting_the_collection(armsim: Server, azure: Azure) -> None:
    with pytest.raises(HttpResponseError) as e:
        azure.compute.restore_point_collections.begin_delete(RP_GROUP, "AzureBackup_vm-rp-locked_1").result()
    assert e.value.status_code == 409 and e.value.error.code == "ScopeLocked"
    assert "cannot perform delete operation" in e.value.error.message and RP_GROUP in e.value.error.message


def test_a_read_only_lock_denies_writes_and_posts_but_not_reads(armsim: Server, azure: Azure) -> None:
    vms = azure.compute.virtual_machines
    assert vms.get("rg-demo", "vm-locked").name == "vm-locked"
    for write in (lambda: vms.begin_power_off("rg-demo", "vm-locked").result(),
                  lambda: azure.compute.virtual_machine_extensions.begin_delete(
                      "rg-demo", "vm-locked", "VMSnapshotLinux").result()):
        with pytest.raises(HttpResponseError) as e:
            write()
        assert e.value.error.code == "ScopeLocked" and "vm-locked" in e.value.error.message
    assert vm(armsim, "vm-locked").power == "running"  # type: ignore[attr-defined]


def test_a_lock_at_the_group_is_inherited(armsim: Server, azure: Azure) -> None:
    armsim.sim.locks.add(Lock("rg-ro", f"{SUB}/resourceGroups/rg-demo", "ReadOnly"))
    with pytest.raises(HttpResponseError) as e:
        azure.compute.virtual_machines.begin_restart("rg-demo", "vm-healthy").result()
    assert e.value.error.code == "ScopeLocked" and f"'{SUB}/resourceGroups/rg-demo'" in e.value.error.message


def test_restore_point_collections_list_get_expand_and_delete(armsim: Server, azure: Azure) -> None:
    rpc = azure.compute.restore_point_collections
    everything = {c.name: c for c in rpc.list_all()}
    c = everything["AzureBackup_vm-rp-locked_1"]
    assert c.type == "Microsoft.Compute/restorePointCollections" and c.location == "eastus"
    assert c.source.id.endswith("/virtualMachines/vm-rp-locked") and c.provisioning_state == "Succeeded"
    assert {x.name for x in rpc.list(RP_GROUP)} == {"AzureBackup_vm-rp-locked_1", "AzureBackup_vm-locked_1"}
    assert not rpc.get(RP_GROUP, c.name).restore_points
    assert len(rpc.get(RP_GROUP, c.name, expand="restorePoints").restore_points) == RP_CAP
    rpc.begin_delete("AzureBackupRG_eastus_2", "AzureBackup_vm-rp-full_1").result()  # no lock on its group
    assert "AzureBackup_vm-rp-full_1" not in {x.name for x in rpc.list_all()}


def test_the_first_backup_after_the_lock_goes_fails_and_cleans_up(armsim: Server, azure: Azure) -> None:
    sim = armsim.sim
    target = vm(armsim, "vm-rp-locked")
    vault, item = sim.backup.item_for(target)  # type: ignore[arg-type,misc]
    blocked = sim.backup.start_job(vault, item, finished=True)
    assert blocked.error == LIMIT_CODE and len(sim.restore_points.for_vm(target.id).points) == RP_CAP  # type: ignore
    azure.locks.management_locks.delete_at_resource_group_level(RP_GROUP, "backup-rg-nodelete")
    first = sim.backup.start_job(vault, item, finished=True)
    assert first.error == LIMIT_CODE  # "Expect this on-demand operation to fail the first time"
    assert len(sim.restore_points.for_vm(target.id).points) == RETAINED  # type: ignore[attr-defined,union-attr]
    assert sim.backup.start_job(vault, item, finished=True).error is None
    assert sim.backup.verdict(target) is None  # type: ignore[arg-type]
