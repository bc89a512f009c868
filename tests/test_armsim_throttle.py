"""armsim throttles like ARM (issue #13), and the client keeps to the budget ARM announces, through the real SDK."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from conftest import FAST_RETRY

from armsim import DEMO_SUBSCRIPTION, Server
from armsim.throttle import LIMITS, Throttle
from remediations.azure import Azure, AzureConfig, RetrySettings
from remediations.budget import BUDGETS, Budget, Budgets

RG = "rg-demo"


def throttled(server: Server) -> list[dict[str, Any]]:
    """The request-log entries armsim answered 429."""
    return [e for e in server.sim.requests() if e["status"] == 429]


def throttle_on(server: Server) -> None:
    server.sim.settings.throttle = True
    server.sim.throttle.enabled = True
    server.sim.throttle.reset()
    BUDGETS.clear()


# --- the buckets, on a clock of our own ----------------------------------------------------------
def test_reads_burst_250_then_refill_25_per_second() -> None:
    now = [0.0]
    t = Throttle(clock=lambda: now[0])
    answers = [t.admit("GET", f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/rg", None) for _ in range(251)]
    assert [w for w, _ in answers[:250]] == [None] * 250
    assert answers[0][1]["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert answers[249][1]["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    assert answers[250] == (1.0, {"x-ms-ratelimit-remaining-subscription-reads": "0"})
    now[0] = 1.0  # 25 tokens back
    again = [t.admit("GET", f"/subscriptions/{DEMO_SUBSCRIPTION}/x", None)[0] for _ in range(26)]
    assert again.count(None) == 25 and again[-1] == 1.0


@pytest.mark.parametrize(("method", "kind", "size"), [("PUT", "writes", 200), ("POST", "writes", 200),
                                                     ("DELETE", "deletes", 200)])
def test_writes_and_deletes_have_their_own_200_buckets(method: str, kind: str, size: int) -> None:
    t = Throttle(clock=lambda: 0.0)
    for _ in range(size):
        wait, headers = t.admit(method, f"/subscriptions/{DEMO_SUBSCRIPTION}/x", None)
        assert wait is None
    assert headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] == "0"
    assert t.admit(method, f"/subscriptions/{DEMO_SUBSCRIPTION}/x", None)[0] == 1.0
    assert t.admit("GET", f"/subscriptions/{DEMO_SUBSCRIPTION}/x", None)[0] is None  # reads are counted apart
    assert LIMITS[kind] == (200.0, 10.0)


def test_each_principal_has_its_own_bucket_and_all_share_fifteen_times_that() -> None:
    t = Throttle(clock=lambda: 0.0)
    path = f"/subscriptions/{DEMO_SUBSCRIPTION}/x"
    for _ in range(250):
        t.admit("GET", path, "Bearer one")
    assert t.admit("GET", path, "Bearer one")[0] == 1.0
    assert t.admit("GET", path, "Bearer two")[0] is None  # another principal still has its own 250
    assert t.admit("GET", "/providers/Microsoft.ResourceGraph/resources", "Bearer one")[0] is None  # tenant level


# --- over HTTPS ---------------------------------------------------------------------------------
def test_every_answer_carries_the_remaining_reads_and_a_429_says_when_to_come_back(armsim: Server) -> None:
    throttle_on(armsim)
    armsim.sim.throttle.limits["reads"] = (3.0, 0.5)  # a small bucket, so the test stays short
    raw = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint, ca_bundle=armsim.ca_bundle,
                            retry=RetrySettings(attempts=1)))
    seen: list[dict[str, str]] = []
    for _ in range(3):
        raw.compute.virtual_machines.get(RG, "vm-healthy", cls=lambda r, d, h: seen.append(dict(r.http_response.headers)))
    assert [h["x-ms-ratelimit-remaining-subscription-reads"] for h in seen] == ["2", "1", "0"]
    BUDGETS.clear()  # a client that forgot the budget: ARM answers 429, SubscriptionRequestsThrottled
    with pytest.raises(Exception) as e:
        raw.compute.virtual_machines.get(RG, "vm-healthy")
    response = e.value.response  # type: ignore[attr-defined]
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert e.value.error.code == "SubscriptionRequestsThrottled"  # type: ignore[attr-defined]
    assert "aka.ms/arm-throttling" in str(e.value)
    assert len(throttled(armsim)) == 1


def test_many_workers_keep_to_the_budget_no_burst_of_429s(armsim: Server) -> None:
    """Eight workers read 40 times each (320 reads against a 250 burst refilled at 25/s): the client paces itself
    from the headers; at most one 429 reaches ARM, and none follows it."""
    throttle_on(armsim)
    azure = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint, ca_bundle=armsim.ca_bundle,
                              retry=RetrySettings(attempts=5, retry_after_cap=5.0), read_timeout=30))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(40):
                azure.call(azure.compute.virtual_machines.get, RG, "vm-healthy")
        except BaseException as e:  # noqa: BLE001 - the assertion below names it
            errors.append(e)

    workers = [threading.Thread(target=reader) for _ in range(8)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    elapsed = time.monotonic() - started
    assert errors == []
    log = armsim.sim.requests()
    assert Counter(e["status"] for e in log) [200] == 320
    assert len(throttled(armsim)) <= 1, Counter(e["status"] for e in log)
    stats = BUDGETS.stats()[f"reads@{DEMO_SUBSCRIPTION}"]
    # the pacing is the client's own, not ARM's refusals: it waited, unless the reads were slow enough (a loaded
    # machine) for ARM's refill to keep up with them, (320 - 250) / 25 = 2.8 s
    assert stats["waited"] > 0 or elapsed >= (320 - 250) / 25, (stats, elapsed)


def test_an_endpoint_that_announces_no_budget_is_not_paced(armsim: Server) -> None:
    BUDGETS.clear()
    azure = Azure(AzureConfig(subscription=DEMO_SUBSCRIPTION, arm_endpoint=armsim.endpoint, ca_bundle=armsim.ca_bundle,
                              retry=FAST_RETRY))
    for _ in range(5):
        azure.compute.virtual_machines.get(RG, "vm-healthy")
    assert BUDGETS.stats()[f"reads@{DEMO_SUBSCRIPTION}"] == {"throttled": 0, "waited": 0.0}


def test_a_429_holds_every_worker_of_the_bucket_until_its_retry_after() -> None:
    now = [0.0]
    slept: list[float] = []
    b = Budgets(clock=lambda: now[0])
    key = ("https://arm", DEMO_SUBSCRIPTION, "anonymous", "reads")

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    assert b.acquire(key, sleep, 60) == 0  # nothing said yet: not paced
    b.heard(key, None, 3.0)  # a 429 from an endpoint that never announced a budget (a busy resource): no hold
    assert b.acquire(key, sleep, 60) == 0 and slept == []
    b.heard(key, 240, None)  # ARM announces the budget
    b.heard(key, None, 3.0)  # then throttles: every worker holds for the Retry-After
    assert b.acquire(key, sleep, 60) == pytest.approx(3.0) and sum(slept) == pytest.approx(3.0)
    b.heard(key, 0, None)  # ARM: nothing left; the refill (25/s) lets the next one go 40 ms later
    slept.clear()
    b.acquire(key, sleep, 60)
    assert sum(slept) == pytest.approx(0.04)
    held = Budget(250, 25)
    held.heard(0.0, 10, None)
    held.heard(0.0, None, 120.0)
    assert held.delay(0.0) == 120.0  # the cap is the caller's: acquire waits at most `cap`
    slept.clear()
    b.heard(key, None, 120.0)
    assert b.acquire(key, sleep, 2.0) == pytest.approx(2.0)
