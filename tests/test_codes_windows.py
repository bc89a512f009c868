"""Issue #14, Windows guest: .NET strong crypto (E14), host snapshots (E15), COM+ and MSDTC (E16), through the
real SDK against armsim: diagnosis with evidence, plan, apply, idempotence, dry-run, consent, the demo VMs fixed."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import FAST_RETRY, mutating
from support.demo import sim_vm, target

from armsim import DEMO_SUBSCRIPTION
from armsim.guest import Service
from armsim.winfix import BCDR_KEY, NETWORK_SERVICE
from remediations.actions import get_action
from remediations.actions.winguest import RepairComMsdtc, SetSnapshotFromHost, SetStrongCrypto
from remediations.azure import Azure, AzureConfig
from remediations.errors import ReadOnlyViolation
from runbooks.engine import Options, investigate, run

NET4 = r"hklm\software\microsoft\.netframework\v4.0.30319"
NET4_WOW = r"hklm\software\wow6432node\microsoft\.netframework\v4.0.30319"
CASES = [  # demo VM, code, cause, fix
    ("vm-tls-legacy", "ExtensionSnapshotFailedNoSecureNetwork", "C10.tls", SetStrongCrypto),
    ("vm-snapshot-timeout", "ExtensionFailedTimeoutVMNetworkUnresponsive", "C10.host", SetSnapshotFromHost),
    ("vm-com-msdtc", "ExtensionSnapshotFailedCOM", "C11.com", RepairComMsdtc),
]


def params(cls: type, name: str) -> Any:
    return cls.Params(target=target(name))


def read_only(armsim: Any) -> Azure:
    return Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint, ca_bundle=armsim.ca_bundle,
                             retry=FAST_RETRY, read_timeout=30, read_only=True))


def scripts_run(armsim: Any) -> list[str]:
    return [e["path"] for e in armsim.sim.requests() if e["operation"] == "VirtualMachines_RunCommand"]


# --- diagnosis ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("vm", "code", "cause", "cls"), CASES, ids=[c[0] for c in CASES])
def test_diagnosis_finds_the_cause_with_evidence_read_only(armsim: Any, vm: str, code: str, cause: str,
                                                           cls: type) -> None:
    inv = investigate(read_only(armsim), target(vm), Options())
    assert inv.error_code == code
    found = {f.cause: f for f in inv.findings}[cause]
    assert found.verdict == "present", found
    assert cls.name in inv.previews and inv.previews[cls.name].changes
    assert mutating(armsim) == []
    if cause == "C10.tls":
        assert "SchUseStrongCrypto is not 1" in found.evidence and "TLS 1.0 and 1.1 are disabled" in found.evidence
    elif cause == "C10.host":
        assert "SnapshotMethod is not set" in found.evidence
    else:
        assert "MSDTC runs as LocalSystem" in found.evidence and "COMSysApp not running" in found.evidence


def test_checks_skip_a_linux_vm_and_are_absent_on_a_healthy_windows_vm(armsim: Any, azure: Azure) -> None:
    from remediations.facts import gather
    from runbooks.checks.windows import CHECKS

    linux = gather(azure, target("vm-proxy-dead"))
    assert all(CHECKS[c](linux).verdict == "absent" for c in ("C10.tls", "C10.host", "C11.com"))
    # vm-proxy-egress runs Windows: strong crypto is off there too, but its TLS 1.0/1.1 are on (no failure)
    plan = SetStrongCrypto().preview(azure, params(SetStrongCrypto, "vm-proxy-egress"))
    assert plan.empty and "TLS 1.0/1.1 are not disabled" in plan.reason and "force" in plan.reason
    forced = SetStrongCrypto().preview(azure, SetStrongCrypto.Params(target=target("vm-proxy-egress"), force=True))
    assert len(forced.changes) == 1 and "TLS 1.0/1.1 are not disabled" in forced.changes[0].reason
    com = RepairComMsdtc().preview(azure, params(RepairComMsdtc, "vm-proxy-egress"))
    assert com.empty and "run on vm-proxy-egress" in com.reason  # a default install: both services run


# --- set-strong-crypto -------------------------------------------------------------------------------
def test_strong_crypto_plan_apply_idempotent(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-tls-legacy")
    plan = SetStrongCrypto().preview(azure, params(SetStrongCrypto, "vm-tls-legacy"))
    [c] = plan.changes
    assert not c.disruptive and c.data["script"] == "windows-crypto-set"
    assert set(c.after or {}) == {r"HKLM\SOFTWARE\Microsoft\.NETFramework\v4.0.30319",
                                  r"HKLM\SOFTWARE\Wow6432Node\Microsoft\.NETFramework\v4.0.30319"}
    first = SetStrongCrypto().apply(azure, params(SetStrongCrypto, "vm-tls-legacy"))
    assert first.status == "changed", first
    assert "written under 2 key(s)" in first.evidence[0]
    assert vm.guest.registry_value(NET4, "SchUseStrongCrypto") == ("REG_DWORD", "1")
    assert vm.guest.registry_value(NET4_WOW, "SchUseStrongCrypto") == ("REG_DWORD", "1")
    assert armsim.sim.backup.verdict(vm) is None
    armsim.sim.clear_requests()
    second = SetStrongCrypto().apply(azure, params(SetStrongCrypto, "vm-tls-legacy"))
    assert second.status == "unchanged" and "SchUseStrongCrypto is 1" in second.reason
    assert mutating(armsim) == []


def test_strong_crypto_also_sets_a_present_v2_key_and_fixes_a_wrong_type(armsim: Any, azure: Azure) -> None:
    g = sim_vm(armsim, "vm-tls-legacy").guest
    v2 = r"hklm\software\microsoft\.netframework\v2.0.50727"
    g.registry[(v2, "install")] = ("REG_DWORD", "1")  # .NET 3.5 is installed
    g.registry[(NET4, "schusestrongcrypto")] = ("REG_SZ", "1")  # a string is not what .NET reads
    [c] = SetStrongCrypto().preview(azure, params(SetStrongCrypto, "vm-tls-legacy")).changes
    assert len(c.after or {}) == 3
    assert SetStrongCrypto().apply(azure, params(SetStrongCrypto, "vm-tls-legacy")).status == "changed"
    assert g.registry_value(v2, "SchUseStrongCrypto") == ("REG_DWORD", "1")
    assert g.registry_value(NET4, "SchUseStrongCrypto") == ("REG_DWORD", "1")
    assert g.registry_value(r"hklm\software\wow6432node\microsoft\.netframework\v2.0.50727",
                            "SchUseStrongCrypto") is None  # absent keys are not created


# --- set-snapshot-from-host --------------------------------------------------------------------------
def test_host_snapshot_plan_apply_idempotent(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-snapshot-timeout")
    [c] = SetSnapshotFromHost().preview(azure, params(SetSnapshotFromHost, "vm-snapshot-timeout")).changes
    assert c.kind == "add" and not c.disruptive
    assert c.after == {"SnapshotMethod": "firstHostThenGuest", "CalculateSnapshotTimeFromHost": "True"}
    first = SetSnapshotFromHost().apply(azure, params(SetSnapshotFromHost, "vm-snapshot-timeout"))
    assert first.status == "changed", first
    assert vm.guest.registry_value(BCDR_KEY, "SnapshotMethod") == ("REG_SZ", "firstHostThenGuest")
    assert vm.guest.registry_value(BCDR_KEY, "CalculateSnapshotTimeFromHost") == ("REG_SZ", "True")
    assert armsim.sim.backup.verdict(vm) is None
    armsim.sim.clear_requests()
    assert SetSnapshotFromHost().apply(azure, params(SetSnapshotFromHost, "vm-snapshot-timeout")).status == "unchanged"
    assert mutating(armsim) == []


def test_host_snapshot_keeps_the_key_other_values(armsim: Any, azure: Azure) -> None:
    g = sim_vm(armsim, "vm-snapshot-timeout").guest
    g.registry[(BCDR_KEY.lower(), "snapshotwithoutthreads")] = ("REG_SZ", "True")
    g.registry[(BCDR_KEY.lower(), "snapshotmethod")] = ("REG_SZ", "guest")
    [c] = SetSnapshotFromHost().preview(azure, params(SetSnapshotFromHost, "vm-snapshot-timeout")).changes
    assert c.kind == "change" and "SnapshotMethod is 'guest'" in c.reason
    assert SetSnapshotFromHost().apply(azure, params(SetSnapshotFromHost, "vm-snapshot-timeout")).status == "changed"
    assert g.registry_value(BCDR_KEY, "SnapshotWithoutThreads") == ("REG_SZ", "True")


# --- repair-com-msdtc --------------------------------------------------------------------------------
def test_com_msdtc_needs_consent_then_converges(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-com-msdtc")
    p = params(RepairComMsdtc, "vm-com-msdtc")
    [c] = RepairComMsdtc().preview(azure, p).changes
    assert c.disruptive and c.data["script"] == "windows-msdtc-repair"
    armsim.sim.clear_requests()
    held = RepairComMsdtc().apply(azure, p)
    assert held.status == "withheld" and "MSDTC" in held.reason
    assert mutating(armsim) == [] and vm.guest.winfix.accounts["msdtc"] != NETWORK_SERVICE
    done = RepairComMsdtc().apply(azure, p, consent="the on-call engineer")
    assert done.status == "changed", done
    assert done.evidence[0].startswith(r"MSDTC account LocalSystem -> NT AUTHORITY\NetworkService (change-account)")
    assert any(e.startswith("disruptive: ") and "the on-call engineer" in e for e in done.evidence)
    assert vm.guest.service("COMSysApp").running and vm.guest.service("MSDTC").running
    assert armsim.sim.backup.verdict(vm) is None
    armsim.sim.clear_requests()
    assert RepairComMsdtc().apply(azure, p, consent=True).status == "unchanged"
    assert mutating(armsim) == []


def test_com_stopped_only_is_started_without_consent(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-com-msdtc")
    vm.guest.winfix.accounts["msdtc"] = NETWORK_SERVICE
    vm.guest.services["comsysapp"] = Service("COMSysApp", "Disabled", False)
    vm.extensions.clear()  # the extension is not installed yet: the install fails
    assert armsim.sim.backup.verdict(vm) == "ExtensionInstallationFailedCOM"
    [c] = RepairComMsdtc().preview(azure, params(RepairComMsdtc, "vm-com-msdtc")).changes
    assert not c.disruptive and c.data["script"] == "windows-com-start"
    out = RepairComMsdtc().apply(azure, params(RepairComMsdtc, "vm-com-msdtc"))
    assert out.status == "changed" and out.evidence[0].startswith("started: COMSysApp")
    assert vm.guest.service("COMSysApp").start_type == "Manual"
    assert armsim.sim.backup.verdict(vm) is None


def test_msdtc_that_will_not_start_is_reinstalled(armsim: Any, azure: Azure) -> None:
    vm = sim_vm(armsim, "vm-com-msdtc")
    vm.guest.services["comsysapp"].running = True
    vm.guest.winfix.msdtc_broken = True
    assert armsim.sim.backup.verdict(vm) == "ExtensionInstallationFailedMDTC"
    out = RepairComMsdtc().apply(azure, params(RepairComMsdtc, "vm-com-msdtc"), consent=True)
    assert out.status == "changed" and "(reinstall)" in out.evidence[0]
    assert not vm.guest.winfix.msdtc_broken and armsim.sim.backup.verdict(vm) is None


# --- dry run and the read-only guard -----------------------------------------------------------------
@pytest.mark.parametrize(("vm", "code", "cause", "cls"), CASES, ids=[c[0] for c in CASES])
def test_dry_run_writes_nothing(armsim: Any, vm: str, code: str, cause: str, cls: type) -> None:
    ro = read_only(armsim)
    report = run(ro, target(vm), Options(dry_run=True, allow_disruptive=True))
    assert report.status == "planned" and [p.action for p in report.plans if p.changes][:1] == [cls.name]
    assert mutating(armsim) == [] and scripts_run(armsim)  # the probe ran, read-only
    with pytest.raises(ReadOnlyViolation):
        cls().apply(ro, params(cls, vm), consent=True)
    assert mutating(armsim) == []
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) == code


# --- the demo VMs, fixed and proven by a backup --------------------------------------------------------
@pytest.mark.parametrize(("vm", "code", "cause", "cls"), CASES, ids=[c[0] for c in CASES])
def test_demo_vm_is_fixed_and_proven_by_a_backup(armsim: Any, azure: Azure, vm: str, code: str, cause: str,
                                                 cls: type) -> None:
    report = run(azure, target(vm), Options(allow_disruptive=True, backup_poll_seconds=0.01))
    assert report.status == "fixed", (report.status, report.message)
    assert [o.action for o in report.outcomes if o.status == "changed"] == [cls.name]
    assert report.backup is not None and report.backup.status == "changed"
    assert armsim.sim.backup.verdict(sim_vm(armsim, vm)) is None
    assert type(get_action(cls.name)) is cls
