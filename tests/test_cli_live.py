"""Issue #11 "Long waits": the live status line in a real terminal (pexpect + a VT100 screen), plain lines piped.

The terminal tests read the screen as a person would (pyte renders what the program wrote); the piped
heartbeat is driven by a fake clock passed to the display (no sleeping, no patching)."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pexpect
import pyte
from support.runs import ROOT, cli, cli_env, runbooks

from armsim import Server
from runbooks.live import BEFORE_WRITE, FOLLOW, READING, STOPPING, Display, Step, job_step

LIVE = "▸ "  # how a live line begins on screen


class Term:
    """The CLI in a pty whose output is fed to a VT100 screen (pyte): `lines()` is what a person sees."""

    def __init__(self, server: Server, tmp: Path, *args: str, rows: int = 80, cols: int = 160, **env: str) -> None:
        self.screen = pyte.Screen(cols, rows)
        self._stream = pyte.Stream(self.screen)
        self.raw: list[str] = []
        full = {k: v for k, v in cli_env(server, tmp).items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        full.update({"TERM": "xterm-256color", **env})
        command = runbooks(*args)
        self.child = pexpect.spawn(command[0], command[1:], env=full, cwd=str(ROOT), encoding="utf-8",
                                   timeout=60, dimensions=(rows, cols))
        self.child.logfile_read = self  # type: ignore[assignment]

    def write(self, text: str) -> None:  # pexpect's log of what was read
        self.raw.append(text)
        self._stream.feed(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [ln.rstrip() for ln in self.screen.display if ln.strip()]

    def live(self) -> list[str]:
        return [ln for ln in self.lines() if ln.startswith(LIVE)]

    def wait_for(self, cond, seconds: float = 30.0,  # type: ignore[no-untyped-def]
                 server: Server | None = None) -> list[str]:
        """Wait until `cond(lines)`; with `server`, a timeout also ends its backup jobs and shows what the run
        then printed (its reports say why a VM stopped early), so that a failure explains itself."""
        end = time.monotonic() + seconds
        while not cond(self.lines()):
            if time.monotonic() >= end:
                raise AssertionError("not seen on screen:\n" + "\n".join(self.lines()) + self._then(server))
            assert self.child.isalive(), "exited early:\n" + "\n".join(self.lines())
            self.child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.1)
        return self.lines()

    def _then(self, server: Server | None) -> str:
        if server is None:
            return ""
        end_backup_jobs(server)
        try:
            self.child.expect(pexpect.EOF, timeout=30)
        except pexpect.TIMEOUT:
            return "\n--- still running 30 s after its backup jobs were ended"
        return "\n--- then, once its backup jobs were ended, the run printed:\n" + "\n".join(self.lines())

    def finish(self, seconds: float = 60) -> int:
        self.child.expect(pexpect.EOF, timeout=seconds)
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)


def end_backup_jobs(server: Server) -> None:
    """Let every running backup job end at its next read."""
    with server.sim.lock:
        for vault in server.sim.backup.vaults.values():
            for job in vault.jobs:
                if job.status == "InProgress":
                    job.polls_needed = job.polls + 1


def _elapsed(line: str) -> str:
    m = re.search(r" · ([0-9.]+ s|[0-9]+ min [0-9]+ s) · ", line)
    assert m, line
    return m.group(1)


# --- in a terminal -------------------------------------------------------------------------------------
def test_a_followed_backup_job_ticks_on_a_live_line_and_ctrl_c_clears_it_for_the_note(armsim: Server,
                                                                                       tmp_path: Path) -> None:
    armsim.sim.settings.backup_job_polls = 100000  # the verification backup runs until Ctrl-C
    term = Term(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes")
    screen = term.wait_for(lambda ls: any(ln.startswith(LIVE + "vm-nsg-blocked: backup job") for ln in ls),
                           server=armsim)
    live = term.live()
    assert len(live) == 1 and screen[-1] == live[0], screen  # one live line, at the bottom
    assert re.search(r"backup job [0-9a-f]{8}… InProgress [0-9]+%", live[0]), live
    assert live[0].endswith(FOLLOW), live
    # the finished steps stay above, as normal lines with how long they took
    above = "\n".join(screen[:-1])
    assert re.search(r"^… vm-nsg-blocked: reading facts \([0-9.]+ s\)$", above, re.M), above
    assert re.search(r"^… vm-nsg-blocked: applying allow-backup-egress \([0-9.]+ s\)$", above, re.M), above
    first = _elapsed(live[0])
    term.wait_for(lambda ls: any(ln.startswith(LIVE) and _elapsed(ln) != first for ln in ls), seconds=5)
    term.child.sendintr()
    assert term.finish(20) == 130, "\n".join(term.lines())
    final = term.lines()
    assert not [ln for ln in final if ln.startswith(LIVE) or FOLLOW in ln], final  # no live residue
    assert "interrupted: stopping before the next write (Ctrl-C again to exit at once)" in final, final
    assert "vm-nsg-blocked (rg-demo)" in final  # the report's head line, whole
    assert "Interrupted. Changes made (or possibly made) before stopping:" in final, final
    assert any("az backup job show --name" in ln for ln in final), final


def test_after_ctrl_c_the_live_line_says_it_is_stopping(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="latency", method="PUT", seconds=3.0, count=1)  # a write in flight
    term = Term(armsim, tmp_path, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", "--no-backup")
    term.wait_for(lambda ls: any(ln.startswith(LIVE) and ln.endswith(BEFORE_WRITE) for ln in ls)
                  and armsim.sim.faults.describe()[0]["hits"] > 0)  # the PUT is held in armsim now
    term.child.sendintr()
    screen = term.wait_for(lambda ls: any(ln.startswith(LIVE) and ln.endswith(STOPPING) for ln in ls), seconds=5)
    assert screen[-1].endswith(STOPPING) and "interrupted: stopping before the next write" in "\n".join(screen)
    assert term.finish() == 130, "\n".join(term.lines())
    assert not term.live()


def test_diagnose_shows_a_live_line_while_reading_and_none_when_piped(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.faults.add(kind="latency", method="GET", seconds=2.0, count=1)  # one slow read
    term = Term(armsim, tmp_path, "diagnose", "vm-nsg-blocked", "-g", "rg-demo")
    seen = term.wait_for(lambda ls: any(ln.startswith(LIVE + "vm-nsg-blocked: reading facts") for ln in ls))
    assert any(ln.endswith(READING) for ln in seen if ln.startswith(LIVE)), seen
    assert term.finish() == 0, "\n".join(term.lines())
    assert not term.live() and any(ln.startswith("Causes  [x] C1") for ln in term.lines())
    piped = cli(armsim, "diagnose", "vm-nsg-blocked", "-g", "rg-demo", tmp=tmp_path)
    assert piped.returncode == 0 and piped.stdout.startswith("Legend: "), piped.stdout  # verdicts only


def test_action_trigger_backup_follows_its_job_live_and_ctrl_c_leaves_the_note(armsim: Server,
                                                                                tmp_path: Path) -> None:
    armsim.sim.settings.backup_job_polls = 100000
    term = Term(armsim, tmp_path, "action", "trigger-backup", "vm-nsg-blocked", "-g", "rg-demo", "--yes",
                "--param", "wait=true", "--param", "poll_seconds=0.1", "--verbose")
    term.wait_for(lambda ls: any(ln.startswith(LIVE + "vm-nsg-blocked: backup job") for ln in ls), server=armsim)
    # five polls or more, each a --verbose log line on stderr while the live line is shown; between a log line and
    # the redraw under it the live line is briefly not the last: look once it is
    screen = term.wait_for(lambda ls: bool(ls) and ls[-1].startswith(LIVE) and ls[-1].endswith(FOLLOW)
                           and sum(ln.startswith("ARM GET ") and "/backupJobs/" in ln for ln in ls) >= 5, seconds=30)
    assert screen[-1].startswith(LIVE) and screen[-1].endswith(FOLLOW), screen  # still the bottom line
    assert len(term.live()) == 1, screen  # never left behind above a log line
    polls = [ln for ln in screen if ln.startswith("ARM GET ") and "/backupJobs/" in ln]
    assert len(polls) >= 5 and not [ln for ln in screen[:-1] if LIVE.strip() in ln], screen
    assert any(re.fullmatch(r"… vm-nsg-blocked: applying trigger-backup \([0-9.]+ s\)", ln) for ln in screen), screen
    term.child.sendintr()
    assert term.finish(20) == 130, "\n".join(term.lines())
    final = term.lines()
    assert not term.live(), final
    assert any("az backup job show --name" in ln for ln in final), final


def test_several_vms_have_one_live_line_each(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.settings.backup_job_polls = 100000
    term = Term(armsim, tmp_path, "fix", "vm-nsg-blocked", "vm-subnet-blocked", "-g", "rg-demo", "--yes")

    def both_following(ls: list[str]) -> bool:
        live = [ln for ln in ls if ln.startswith(LIVE)]
        return len(live) == 2 and all(ln.endswith(FOLLOW) for ln in live)

    screen = term.wait_for(both_following, server=armsim)
    live = term.live()
    assert screen[-2:] == live  # the live area is the bottom of the screen
    assert {ln.split(":")[0] for ln in live} == {LIVE + "vm-nsg-blocked", LIVE + "vm-subnet-blocked"}
    end_backup_jobs(armsim)
    assert term.finish() == 0, "\n".join(term.lines())
    final = term.lines()
    assert not [ln for ln in final if ln.startswith(LIVE) or FOLLOW in ln], final  # no live residue
    for vm in ("vm-nsg-blocked", "vm-subnet-blocked"):  # each job's last state stays above the reports
        done = [i for i, ln in enumerate(final)
                if re.fullmatch(rf"… {vm}: backup job [0-9a-f]{{8}}… Completed 100% .*\([0-9.]+ s\)", ln)]
        assert done and done[0] < final.index(f"{vm} (rg-demo)"), final  # each report's head line, whole
    assert final[-1].startswith("vm-subnet-blocked ") and final[-1].endswith("fixed"), final  # the table ends it


# --- piped ---------------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _job(pct: float, status: str = "InProgress") -> Step:
    return job_step("vm-a", status, {"job_id": "3f2c0000-aaaa", "progress": pct,
                                     "tasks": [{"task": "Take Snapshot", "status": "InProgress"}]})


def test_piped_one_line_per_change_and_a_heartbeat_at_most_once_a_minute() -> None:
    clock, out = FakeClock(), io.StringIO()
    d = Display(out, live=False, colour=False, clock=clock, heartbeat=60.0, ticker=False)
    d(Step("vm-a", "reading facts", hint=READING))
    d(Step("vm-a", "reading facts", hint=READING))  # no change: no line
    d(_job(10))
    clock.now += 59
    d.tick()
    d(_job(10))  # the same status again (a poll): no line
    d(_job(12))  # only the percentage moved: no line either (the heartbeat shows it)
    assert out.getvalue().splitlines() == [
        "… vm-a: reading facts",
        "… vm-a: backup job 3f2c0000… InProgress 10% (Take Snapshot InProgress)"]
    clock.now += 1.5  # 60.5 s of silence
    d.tick()
    d.tick()  # not twice
    clock.now += 59
    d.tick()  # within the minute since the heartbeat: nothing
    clock.now += 125  # three minutes of the job: one more line, not one per missed minute
    d.tick()
    d(_job(100, "Completed"))  # a change of status: a line at once
    clock.now += 30
    d.tick()  # 30 s after a change: nothing
    lines = out.getvalue().splitlines()
    assert lines[2:] == [
        "… still waiting: vm-a: backup job 3f2c0000… InProgress 12% (Take Snapshot InProgress), 1 min",
        "… still waiting: vm-a: backup job 3f2c0000… InProgress 12% (Take Snapshot InProgress), 4 min",
        "… vm-a: backup job 3f2c0000… Completed 100% (Take Snapshot InProgress)"], lines
    d.end("vm-a")
    clock.now += 600
    d.tick()  # nothing waits: no heartbeat
    assert len(out.getvalue().splitlines()) == 5
    assert "\033" not in out.getvalue() and "\r" not in out.getvalue()


def test_piped_heartbeat_names_every_vm_still_waiting_in_one_line() -> None:
    clock, out = FakeClock(), io.StringIO()
    d = Display(out, live=False, colour=False, clock=clock, heartbeat=60.0, ticker=False)
    d(Step("vm-a", "applying allow-backup-egress"))
    clock.now += 30
    d(Step("vm-b", "reading facts", hint=READING))
    clock.now += 61
    d.tick()
    assert out.getvalue().splitlines()[-1] == ("… still waiting: vm-a: applying allow-backup-egress, 1 min; "
                                               "vm-b: reading facts, 1 min")


def test_a_live_display_leaves_finished_steps_above_and_clears_its_area() -> None:
    clock, out = FakeClock(), io.StringIO()
    d = Display(out, live=True, colour=False, clock=clock, ticker=False, size=(60, 24))
    d(Step("vm-a", "reading facts", hint=READING))
    clock.now += 2
    d(Step("vm-a", "applying allow-backup-egress"))
    screen = pyte.Screen(60, 24)
    pyte.Stream(screen).feed(out.getvalue().replace("\n", "\r\n"))
    shown = [ln.rstrip() for ln in screen.display if ln.strip()]
    assert shown[0] == "… vm-a: reading facts (2.0 s)"
    assert shown[1].startswith("▸ vm-a: applying allow-backup-egress · 0.0 s") and len(shown) == 2
    assert len(shown[1]) == 59  # cut to the width
    d.end("vm-a")
    screen.reset()
    pyte.Stream(screen).feed(out.getvalue().replace("\n", "\r\n"))
    assert [ln.rstrip() for ln in screen.display if ln.strip()] == [
        "… vm-a: reading facts (2.0 s)", "… vm-a: applying allow-backup-egress (0.0 s)"]


def _screen(out: io.StringIO, cols: int = 160, rows: int = 24) -> list[str]:
    screen = pyte.Screen(cols, rows)
    pyte.Stream(screen).feed(out.getvalue().replace("\n", "\r\n"))  # as a pty's onlcr writes it
    return [ln.rstrip() for ln in screen.display if ln.strip()]


def test_two_vms_keep_one_live_line_each_through_every_step_until_each_ends() -> None:
    clock, out = FakeClock(), io.StringIO()
    d = Display(out, live=True, colour=False, clock=clock, ticker=False, size=(160, 24))
    verify = "verifying with an on-demand backup"
    for vm in ("vm-a", "vm-b"):
        d(Step(vm, "reading facts", hint=READING))
    # the run of #11's flake: the steps of the two VMs interleave, one VM's job is followed first
    for vm, step in (("vm-b", "applying allow-backup-egress"), ("vm-a", "applying allow-backup-egress"),
                     ("vm-a", verify), ("vm-b", verify)):
        clock.now += 0.1
        d(Step(vm, step))
        assert [ln.split(":")[0] for ln in _screen(out) if ln.startswith(LIVE)] == [LIVE + "vm-a", LIVE + "vm-b"]
    clock.now += 0.1
    d(job_step("vm-b", "InProgress", {"job_id": "0b000000-1111", "progress": 2, "tasks": []}))
    d.tick()
    clock.now += 0.1
    d(job_step("vm-a", "InProgress", {"job_id": "0a000000-2222", "progress": 1, "tasks": []}))
    clock.now += 28
    d.tick()
    shown = _screen(out)
    live = [ln for ln in shown if ln.startswith(LIVE)]
    assert shown[-2:] == live and len(live) == 2, shown  # one line per VM, at the bottom, none left behind
    assert live[0].startswith("▸ vm-a: backup job 0a000000… InProgress 1% · 28 s · ") and live[0].endswith(FOLLOW)
    assert live[1].startswith("▸ vm-b: backup job 0b000000… InProgress 2% · 28 s · ") and live[1].endswith(FOLLOW)
    assert [ln for ln in shown if ln.startswith(f"… vm-a: {verify}")] == [f"… vm-a: {verify} (0.3 s)"], shown
    d.end("vm-b")  # one VM ends: its job stays above, the other's live line stays
    shown = _screen(out)
    assert [ln for ln in shown if ln.startswith(LIVE)] == [shown[-1]] and shown[-1].startswith("▸ vm-a: backup job")
    assert shown[-2] == "… vm-b: backup job 0b000000… InProgress 2% (28 s)", shown
    d.end("vm-a")
    assert not [ln for ln in _screen(out) if ln.startswith(LIVE)]


def test_a_real_piped_run_prints_plain_lines_once_per_change(armsim: Server, tmp_path: Path) -> None:
    armsim.sim.settings.backup_job_polls = 30  # 30 polls, each a new percentage: a line per status or task change
    proc = cli(armsim, "fix", "vm-nsg-blocked", "-g", "rg-demo", "--yes", tmp=tmp_path,
               env={k: v for k, v in cli_env(armsim, tmp_path).items() if k not in ("NO_COLOR", "FORCE_COLOR")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\033" not in proc.stdout and "\r" not in proc.stdout
    progress = [ln for ln in proc.stdout.splitlines() if ln.startswith("… ")]
    assert progress[:3] == ["… vm-nsg-blocked: reading facts", "… vm-nsg-blocked: applying allow-backup-egress",
                            "… vm-nsg-blocked: verifying with an on-demand backup"]
    jobs = progress[3:]
    assert jobs and all(re.match(r"… vm-nsg-blocked: backup job [0-9a-f]{8}… ", ln) for ln in jobs), progress
    states = [re.sub(r" [0-9]+%", "", ln) for ln in jobs]
    assert len(states) == len(set(states)) and "Completed 100%" in jobs[-1], jobs  # one line per change
    assert len(jobs) == 3, jobs  # Take Snapshot InProgress, Transfer data to vault InProgress, Completed


def test_the_display_is_plain_when_not_a_terminal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import argparse

    from runbooks.term import say_for

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    display = say_for(argparse.Namespace(output="text"))
    assert display.live is (os.isatty(1) and os.environ.get("TERM") != "dumb")
