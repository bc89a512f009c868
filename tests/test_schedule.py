"""runbooks.schedule: items in order, at most `concurrency` in flight, SSM-style error budget; and run_fleet on it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from armsim import DEMO_SUBSCRIPTION, Server
from remediations.target import parse_target
from runbooks.cli import build_parser
from runbooks.connection import connect, where_from
from runbooks.fleet import options, run_fleet
from runbooks.schedule import Gate, Remote, allowed_failures, check_max_errors, run_local


@pytest.mark.parametrize("text, total, allowed", [
    (None, 50, None), ("0", 50, 0), ("3", 50, 3), ("10%", 50, 5), ("10%", 15, 1), ("10%", 9, 0), ("100%", 7, 7),
    (" 4 ", 2, 4)])
def test_allowed_failures_is_ssm_max_errors(text: str | None, total: int, allowed: int | None) -> None:
    assert allowed_failures(text, total) == allowed


@pytest.mark.parametrize("text", ["", "-1", "1.5", "101%", "%", "ten", "10 %", "1234567", "٣"])
def test_a_bad_error_budget_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="count of failures allowed"):
        check_max_errors(text)


@dataclass
class Probe:
    """A function per item that records how many run at once; items named 'x…' fail. With `hold`, an item waits
    (up to 5 s) until `hold` items run at once, so a loaded machine cannot hide the bound."""

    hold: int = 0
    now: int = 0
    peak: int = 0
    ran: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, item: str) -> str:
        with self.cond:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.ran.append(item)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.peak >= self.hold, timeout=5)
        time.sleep(0.02)
        with self.cond:
            self.now -= 1
        return "failed" if item.startswith("x") else "ok"


def local(items: list[str], concurrency: int, max_errors: str | None, hold: int = 0) -> tuple[list[str], Probe]:
    probe = Probe(hold)
    gate = Gate(concurrency, allowed_failures(max_errors, len(items)), f"max_errors={max_errors}")
    out = run_local(items, probe, gate, failed=lambda r: r == "failed", withheld=lambda i, why: f"withheld {i}: {why}")
    return out, probe


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_run_local_keeps_the_order_and_the_bound(concurrency: int) -> None:
    items = [f"vm{i}" for i in range(8)]
    out, probe = local(items, concurrency, None, hold=concurrency)
    assert out == ["ok"] * 8 and sorted(probe.ran) == sorted(items)
    assert probe.peak == concurrency


def test_run_local_without_a_budget_runs_every_item_whatever_fails() -> None:
    out, probe = local(["x1", "x2", "x3", "a"], 1, None)
    assert out == ["failed", "failed", "failed", "ok"] and len(probe.ran) == 4


def test_past_the_budget_nothing_new_starts_and_the_rest_are_withheld_with_the_reason() -> None:
    out, probe = local(["a", "x1", "b", "x2", "c", "d"], 1, "1")  # 1 allowed: the 2nd failure stops it
    assert probe.ran == ["a", "x1", "b", "x2"]
    assert out[:4] == ["ok", "failed", "ok", "failed"]
    assert out[4:] == ["withheld c: error budget spent (2 failed; max_errors=1)",
                       "withheld d: error budget spent (2 failed; max_errors=1)"]


def test_zero_stops_at_the_first_failure_and_items_in_flight_finish() -> None:
    out, probe = local(["x1", "a", "b", "c", "d"], 2, "0")  # x1 and a start together; a finishes
    assert sorted(probe.ran) == ["a", "x1"]
    assert out[:2] == ["failed", "ok"] and all(o.startswith("withheld") for o in out[2:])


def test_a_percentage_counts_against_all_the_items() -> None:
    out, probe = local(["x1", "x2", "x3", "a"] + [f"b{i}" for i in range(16)], 1, "10%")  # 2 of 20 allowed
    assert probe.ran == ["x1", "x2", "x3"] and sum(o.startswith("withheld") for o in out) == 17


@dataclass
class Job:
    """A remote job that ends after `polls` reads."""

    item: str
    polls: int
    reads: int = 0
    status: str = "Running"


def remote(items: list[str], concurrency: int, max_errors: str | None, adopted: dict[int, Job] | None = None
           ) -> tuple[Remote[str, Job], list[str], int]:
    started: list[str] = []
    live = [sum(j.status == "Running" for j in (adopted or {}).values())]  # in flight now, and the most at once
    peak = live[0]

    def start(item: str) -> Job:
        nonlocal peak
        started.append(item)
        live[0] += 1
        peak = max(peak, live[0])
        return Job(item, 2)

    def read(job: Job) -> None:
        job.reads += 1
        if job.reads >= job.polls:
            job.status = "Failed" if job.item.startswith("x") else "Completed"
            live[0] -= 1

    run: Remote[str, Job] = Remote(items, Gate(concurrency, allowed_failures(max_errors, len(items))), start, read,
                                   ended=lambda j: j.status != "Running", failed=lambda j: j.status == "Failed",
                                   adopted=adopted or {})
    while not run.finished:
        run.round()
    return run, started, peak


def test_remote_rounds_keep_the_bound_and_the_budget() -> None:
    run, started, peak = remote(["a", "b", "x1", "c", "x2", "d", "e"], 2, "1")
    assert peak == 2
    assert started == ["a", "b", "x1", "c", "x2", "d"]  # x2 and d ran together; x2's failure spends the budget
    results = run.results(lambda i, why: Job(i, 0, status=f"NotStarted: {why}"))
    assert [j.status for j in results] == ["Completed", "Completed", "Failed", "Completed", "Failed", "Completed",
                                           "NotStarted: error budget spent (2 failed; max_errors)"]


def test_remote_adopts_earlier_work_and_starts_only_the_rest() -> None:
    earlier = {1: Job("b", 5, reads=4), 2: Job("c", 1, status="Completed")}  # b still runs; c ended before
    run, started, peak = remote(["a", "b", "c", "d"], 2, None, adopted=earlier)
    assert started == ["a", "d"] and peak == 2
    assert [j.status for j in run.results(lambda i, why: Job(i, 0, status=why))] == ["Completed"] * 4
    assert run.handles[1] is earlier[1]


def test_an_adopted_failure_counts_against_the_budget() -> None:
    run, started, _ = remote(["a", "b", "c"], 1, "0", adopted={0: Job("a", 1, status="Failed")})
    assert started == [] and [j.status for j in run.results(lambda i, why: Job(i, 0, status="NotStarted"))] == \
        ["Failed", "NotStarted", "NotStarted"]


MISSING = ["vm-gone-1", "vm-gone-2", "vm-gone-3", "vm-gone-4"]


@pytest.mark.parametrize("max_errors, concurrency, tried", [(None, 1, 4), ("0", 1, 1), ("1", 1, 2), ("50%", 1, 3),
                                                            ("0", 2, 2)])
def test_run_fleet_withholds_vms_past_the_error_budget(armsim: Server, max_errors: str | None, concurrency: int,
                                                      tried: int) -> None:
    """The CLI's fleet path (fix VM… / --from-vault) against armsim: VMs that are not there fail; past the budget
    the rest send no request at all and are withheld with the reason (exit 1: some failed)."""
    args = build_parser().parse_args(["fix", *MISSING, "-g", "rg-demo", "--dry-run", "--subscription", DEMO_SUBSCRIPTION,
                                      "--arm-endpoint", armsim.endpoint, "--ca-bundle", armsim.ca_bundle])
    args.max_errors = max_errors  # the flag (--max-errors) is parsed by runbooks/cli.py
    where = where_from(args)
    targets = [parse_target(v, "rg-demo", DEMO_SUBSCRIPTION) for v in MISSING]
    with connect(where, read_only=True) as clients:
        reports = run_fleet(clients, targets, options(args, clients, dry_run=True), args, concurrency=concurrency)
    assert [r.target.name for r in reports] == MISSING
    assert [r.status for r in reports] == ["failed"] * tried + ["withheld"] * (4 - tried)
    assert all("not found" in r.message for r in reports[:tried])
    assert all(r.message == f"Not started: error budget spent ({tried} failed; --max-errors {max_errors})."
               for r in reports[tried:])
    asked = {vm for vm in MISSING for e in armsim.sim.requests() if f"/virtualMachines/{vm}" in e["path"]}
    assert asked == set(MISSING[:tried])
