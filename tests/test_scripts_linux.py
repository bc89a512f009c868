"""The Linux Run Command scripts, run for real under bash and dash against stand-in systemd and package managers.

Run Command's Linux handler writes the script to a file and executes it (Azure/run-command-extension-linux
main/exec.go: `/bin/bash -c <dir>/script.sh`), so the `#!/bin/bash` line picks the shell; the scripts are
POSIX sh anyway and must pass under dash, /bin/sh on Debian and Ubuntu.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.linux_guest import (
    BASH,
    DASH,
    DISTROS,
    MANAGERS,
    WAAGENT_CONF_N,
    WAAGENT_CONF_NO_KEY,
    Guest,
)

SHELLS = [pytest.param(BASH, id="bash"), pytest.param(DASH, id="dash")]


def managers_called(calls: list[str]) -> list[str]:
    return [c for c in calls if c.split()[0] in MANAGERS]


def restarts_called(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith(("systemctl restart", "systemctl stop", "systemctl try-restart"))]


# --- linux-agent-status ---------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_status_per_distribution(tmp_path: Path, distro: str, shell: str) -> None:
    pm, pkg, unit = DISTROS[distro]
    managers = ("yum",) if pm == "yum" else ("apt-get", "dnf", "yum", "zypper")
    guest = Guest(tmp_path, distro, managers=managers, shell=shell)
    run = guest.run("linux-agent-status")
    assert run.rc == 0, run.stderr
    r = run.result
    assert (r["distro"], r["package_manager"], r["package"], r["unit"]) == (distro, pm, pkg, unit)
    assert (r["active"], r["enabled"], r["version"], r["auto_update"]) == (True, True, "2.2.45", False)
    assert all(c.startswith(("systemctl cat", "systemctl is-", "waagent --version")) for c in run.calls), run.calls
    assert guest.conf.read_text() == WAAGENT_CONF_N


@pytest.mark.parametrize("shell", SHELLS)
def test_status_goal_state_version_unknown_distro_and_nothing_installed(tmp_path: Path, shell: str) -> None:
    guest = Guest(tmp_path / "a", "rhel", units={"waagent": (False, False)}, waagent_conf=WAAGENT_CONF_NO_KEY,
                  shell=shell)
    (guest.state / "goal").write_text("2.10.0.8")
    r = guest.run("linux-agent-status").result
    assert (r["unit"], r["active"], r["enabled"], r["version"], r["auto_update"]) == (
        "waagent", False, False, "2.10.0.8", True)  # absent keys mean on
    r = Guest(tmp_path / "b", "arch", shell=shell).run("linux-agent-status").result
    assert (r["distro"], r["distro_version"], r["package_manager"], r["package"]) == ("arch", None, None, None)
    guest = Guest(tmp_path / "c", "ubuntu", units={}, installed=None, waagent_conf=None, shell=shell)
    r = guest.run("linux-agent-status").result
    assert (r["unit"], r["active"], r["enabled"], r["version"], r["auto_update"]) == (None, False, False, None, None)


@pytest.mark.parametrize(("conf", "expected"), [
    ("AutoUpdate.Enabled=y\n", True),
    ("AutoUpdate.Enabled = n  # off\n", False),
    ("AutoUpdate.Enabled=n\nAutoUpdate.Enabled=y\n", True),  # the last one wins, as in the agent
    ("# AutoUpdate.Enabled=n\n", True),
    ("", True),
    ("AutoUpdate.UpdateToLatestVersion=n\n", False),
    ("AutoUpdate.UpdateToLatestVersion=y\n", True),
    ("AutoUpdate.UpdateToLatestVersion=y\nAutoUpdate.Enabled=n\n", False),  # an older agent reads Enabled
    ("AutoUpdate.UpdateToLatestVersion=n\nAutoUpdate.Enabled=y\n", False),  # a newer one reads UpdateToLatest
    ("AutoUpdate.UpdateToLatestVersion=y\nAutoUpdate.Enabled=y\n", True),
])
def test_status_auto_update(tmp_path: Path, conf: str, expected: bool) -> None:
    for shell in (BASH, DASH):
        guest = Guest(tmp_path / shell.rsplit("/", 1)[-1], waagent_conf=conf, shell=shell)
        assert guest.run("linux-agent-status").result["auto_update"] is expected


def test_quotes_and_shell_syntax_in_os_release_stay_inert(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    os_release = (f'NAME="Ubuntu"\nVERSION="22.04 \\"Jammy\\" $(: > {marker}) \\\\ back"\n'
                  'ID=ubuntu\nVERSION_ID="22.04\\"x\\\\y"\n')
    for shell in (BASH, DASH):
        run = Guest(tmp_path / shell.rsplit("/", 1)[-1], os_release=os_release, shell=shell).run("linux-agent-status")
        assert run.result["distro"] == "ubuntu"
        assert run.result["distro_version"] == '22.04"x\\y'
    assert not marker.exists()


# --- linux-agent-restart --------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
def test_restart_is_scheduled_detached_and_returns_at_once(tmp_path: Path, shell: str) -> None:
    guest = Guest(tmp_path, "rhel", units={"waagent": (False, True)}, shell=shell)
    run = guest.run("linux-agent-restart")
    assert run.rc == 0, run.stderr
    r = run.result
    assert {k: r[k] for k in ("unit", "scheduled", "how", "delay")} == {
        "unit": "waagent", "scheduled": True, "how": "systemd-run", "delay": 10}
    assert r["restart_at"].endswith("Z") and len(r["restart_at"]) == 20
    assert restarts_called(run.calls) == []  # nothing restarts while the Run Command runs
    assert "systemd-run --on-active=10 --timer-property=AccuracySec=1s" in run.calls
    assert guest.unit_state("waagent") == (False, True)
    assert restarts_called(guest.fire()) == ["systemctl restart waagent.service"]  # the timer fires later
    assert guest.unit_state("waagent") == (True, True)


def test_restart_prefers_walinuxagent(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={"walinuxagent": (True, True), "waagent": (True, True)})
    assert guest.run("linux-agent-restart").result["unit"] == "walinuxagent"
    assert restarts_called(guest.fire()) == ["systemctl restart walinuxagent.service"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("why", ["systemd-run fails", "no systemd-run"])
def test_restart_falls_back_to_setsid_nohup(tmp_path: Path, shell: str, why: str) -> None:
    guest = Guest(tmp_path, "sles", systemd_run=why == "systemd-run fails", shell=shell)
    (guest.state / "fail-systemd-run").touch()
    started = time.monotonic()
    run = guest.run("linux-agent-restart", RUNBOOKS_RESTART_DELAY="1")
    assert time.monotonic() - started < 1  # the script does not wait for the restart
    assert (run.rc, run.result["how"], run.result["delay"]) == (0, "setsid", 1)
    assert guest.restarts("waagent") == 0
    for _ in range(100):  # the detached sh sleeps 1 s, then restarts the unit
        if guest.restarts("waagent"):
            break
        time.sleep(0.05)
    assert guest.restarts("waagent") == 1


def test_restart_without_any_way_to_detach(tmp_path: Path) -> None:
    run = Guest(tmp_path, systemd_run=False, detach_tools=False).run("linux-agent-restart")
    assert (run.rc, run.result["error"]) == (5, "cannot-detach")
    assert restarts_called(run.calls) == []


def test_restart_without_agent_unit(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={})
    run = guest.run("linux-agent-restart")
    assert (run.rc, run.result["error"]) == (3, "no-agent-unit")
    assert not (guest.state / "timer").exists()


def test_restart_delay_is_validated(tmp_path: Path) -> None:
    guest = Guest(tmp_path)
    run = guest.run("linux-agent-restart", RUNBOOKS_RESTART_DELAY="5; touch pwned")
    assert run.result["delay"] == 10 and "systemd-run --on-active=10 --timer-property=AccuracySec=1s" in run.calls


# --- linux-agent-upgrade --------------------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_upgrade_per_distribution(tmp_path: Path, distro: str, shell: str) -> None:
    pm, pkg, unit = DISTROS[distro]
    managers = ("yum",) if pm == "yum" else ("apt-get", "dnf", "yum", "zypper")
    guest = Guest(tmp_path, distro, units={unit: (True, False)}, managers=managers, shell=shell)
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 0, run.stderr
    r = run.result
    assert {k: r[k] for k in ("unit", "package", "package_manager", "before", "auto_update", "enabled", "scheduled",
                              "how")} == {"unit": unit, "package": pkg, "package_manager": pm, "before": "2.2.45",
                                          "auto_update": True, "enabled": True, "scheduled": True, "how": "systemd-run"}
    # while the Run Command runs: download only, nothing installed, nothing restarted
    download = {"apt": ["apt-get update", f"apt-get install -y --only-upgrade --download-only {pkg}"],
                "dnf": [f"dnf -y update --downloadonly {pkg}"], "yum": [f"yum -y update --downloadonly {pkg}"],
                "zypper": [f"zypper --non-interactive update --download-only {pkg}"]}[pm]
    assert managers_called(run.calls) == download
    assert restarts_called(run.calls) == [] and guest.installed() == "2.2.45"
    assert f"systemctl enable {unit}.service" in run.calls and guest.unit_state(unit) == (True, True)
    assert guest.conf.read_text() == WAAGENT_CONF_N.replace("\nAutoUpdate.Enabled=n", "\nAutoUpdate.Enabled=y")
    assert "doing things" in run.stderr and run.stdout.count("\n") == 1  # package manager chatter on stderr
    # later, detached: the install, then the restart
    calls = guest.fire()
    install = {"apt": f"apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install -y "
                      f"--only-upgrade {pkg}", "dnf": f"dnf -y update {pkg}", "yum": f"yum -y update {pkg}",
               "zypper": f"zypper --non-interactive update {pkg}"}[pm]
    assert managers_called(calls) == [install] and restarts_called(calls) == [f"systemctl restart {unit}.service"]
    assert calls.index(install) < calls.index(f"systemctl restart {unit}.service")
    assert guest.installed() == "2.9.1.1" and guest.restarts(unit) == 1
    assert "runbooks: upgrade exit code 0" in (guest.state / "job.log").read_text()


@pytest.mark.parametrize(("conf", "after"), [
    ("AutoUpdate.Enabled=n\n", "AutoUpdate.Enabled=y\n"),
    ("AutoUpdate.UpdateToLatestVersion=n\n", "AutoUpdate.UpdateToLatestVersion=y\n"),
    ("AutoUpdate.UpdateToLatestVersion=n\nAutoUpdate.Enabled=n\n",
     "AutoUpdate.UpdateToLatestVersion=y\nAutoUpdate.Enabled=y\n"),
    ("AutoUpdate.UpdateToLatestVersion=y\n# AutoUpdate.Enabled=n\nAutoUpdate.Enabled = n # old\n",
     "AutoUpdate.UpdateToLatestVersion=y\n# AutoUpdate.Enabled=n\nAutoUpdate.Enabled=y\n"),
    (WAAGENT_CONF_NO_KEY, WAAGENT_CONF_NO_KEY),  # neither key: both default to on, the file stays as it is
])
def test_upgrade_leaves_auto_update_on(tmp_path: Path, conf: str, after: str) -> None:
    for shell in (BASH, DASH):
        guest = Guest(tmp_path / shell.rsplit("/", 1)[-1], "debian", waagent_conf=conf, shell=shell)
        run = guest.run("linux-agent-upgrade")
        assert (run.rc, run.result["auto_update"]) == (0, True), run.stderr
        assert guest.conf.read_text() == after
        assert guest.run("linux-agent-status").result["auto_update"] is True


@pytest.mark.parametrize(("code", "ok"), [(103, True), (104, False), (7, False)])
def test_upgrade_zypper_exit_codes(tmp_path: Path, code: int, ok: bool) -> None:
    guest = Guest(tmp_path, "sles")
    (guest.state / "fail-zypper").write_text(str(code))
    run = guest.run("linux-agent-upgrade")
    assert (run.rc == 0) is ok
    if not ok:
        assert (run.rc, run.result["error"], run.result["exit_code"]) == (4, "upgrade-failed", code)


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    guest = Guest(tmp_path)
    first = guest.run("linux-agent-upgrade").result
    guest.fire()
    conf_after_first = guest.conf.read_text()
    mtime = guest.conf.stat().st_mtime_ns
    second = guest.run("linux-agent-upgrade").result
    guest.fire()
    assert (first["before"], second["before"], guest.installed()) == ("2.2.45", "2.9.1.1", "2.9.1.1")
    assert {k: v for k, v in second.items() if k not in ("before", "restart_at")} == \
        {k: v for k, v in first.items() if k not in ("before", "restart_at")}
    assert guest.conf.read_text() == conf_after_first
    assert guest.conf.stat().st_mtime_ns == mtime  # already y: the file is not rewritten


def test_upgrade_unsupported_distro(tmp_path: Path) -> None:
    guest = Guest(tmp_path, "arch")
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 3
    assert run.result == {"script": "linux-agent-upgrade", "error": "unsupported-distro", "distro": "arch"}
    assert managers_called(run.calls) == [] and not any("restart" in c or "systemd-run" in c for c in run.calls)
    assert guest.conf.read_text() == WAAGENT_CONF_N


def test_upgrade_without_agent_unit(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={})
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["error"]) == (3, "no-agent-unit")
    assert managers_called(run.calls) == [] and guest.installed() == "2.2.45"


def test_upgrade_download_failure_leaves_config_unit_and_agent_alone(tmp_path: Path) -> None:
    guest = Guest(tmp_path, units={"walinuxagent": (False, False)})
    (guest.state / "fail-apt-get").write_text("100")
    run = guest.run("linux-agent-upgrade")
    assert run.rc == 4
    assert run.result == {"script": "linux-agent-upgrade", "error": "upgrade-failed", "exit_code": 100,
                          "unit": "walinuxagent", "package": "walinuxagent", "package_manager": "apt",
                          "before": "2.2.45"}
    assert guest.conf.read_text() == WAAGENT_CONF_N
    assert guest.unit_state("walinuxagent") == (False, False) and not (guest.state / "timer").exists()


def test_upgrade_rhel_without_dnf_or_yum(tmp_path: Path) -> None:
    run = Guest(tmp_path, "rhel", managers=()).run("linux-agent-upgrade")
    assert (run.rc, run.result["error"], run.result["package_manager"]) == (4, "upgrade-failed", None)


def test_upgrade_does_not_create_a_missing_waagent_conf(tmp_path: Path) -> None:
    guest = Guest(tmp_path, waagent_conf=None)
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["auto_update"]) == (0, None)
    assert not guest.conf.exists()


def test_upgrade_without_any_way_to_detach_installs_nothing(tmp_path: Path) -> None:
    guest = Guest(tmp_path, systemd_run=False, detach_tools=False)
    run = guest.run("linux-agent-upgrade")
    assert (run.rc, run.result["error"]) == (5, "cannot-detach")
    assert guest.installed() == "2.2.45" and restarts_called(run.calls) == []
