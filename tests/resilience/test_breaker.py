"""The circuit breaker's state machine, window, concurrency and error handling."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import threading
import tracemalloc
from typing import Any

import pytest

from swarmguard.resilience import (
    BreakerState,
    BreakerStateChanged,
    BulkheadFullError,
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    Event,
    RateLimitedError,
)
from swarmguard.resilience.testing import ManualClock


class Boom(Exception):
    """A failure of the protected service."""


def make(clock: ManualClock, **config: Any) -> CircuitBreaker:
    defaults: dict[str, Any] = {
        "failure_rate_threshold": 0.5,
        "window": 10.0,
        "buckets": 10,
        "minimum_calls": 4,
        "open_timeout": 5.0,
    }
    defaults.update(config)
    return CircuitBreaker("svc", clock=clock, **defaults)


def run(breaker: CircuitBreaker, fail: bool) -> None:
    @breaker
    def call() -> None:
        if fail:
            raise Boom

    try:
        call()
    except Boom:
        pass


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.minimum_calls):
        run(breaker, fail=True)
    assert breaker.state is BreakerState.OPEN


def test_opens_when_failure_rate_reaches_threshold(clock: ManualClock) -> None:
    """Two failures out of four calls (50%) open a breaker with threshold 0.5 and minimum 4."""
    breaker = make(clock)
    run(breaker, False)
    run(breaker, False)
    run(breaker, True)
    assert breaker.state is BreakerState.CLOSED  # 3 calls < minimum_calls
    run(breaker, True)
    assert breaker.state is BreakerState.OPEN


def test_stays_closed_below_threshold(clock: ManualClock) -> None:
    """One failure in four calls (25%) keeps a 50% breaker closed, however many calls follow."""
    breaker = make(clock)
    for _ in range(25):
        run(breaker, False)
        run(breaker, False)
        run(breaker, False)
        run(breaker, True)
    assert breaker.state is BreakerState.CLOSED
    stats = breaker.stats()
    assert stats["failures_total"] == 25
    assert stats["requests_total"] == 100


def test_failures_older_than_the_window_do_not_count(clock: ManualClock) -> None:
    """Failures age out bucket by bucket: after one window they no longer count."""
    breaker = make(clock, minimum_calls=4)
    run(breaker, True)
    run(breaker, True)
    run(breaker, True)
    clock.advance(10.0)  # a whole window later
    assert breaker.stats()["window_calls"] == 0
    run(breaker, True)
    run(breaker, False)
    run(breaker, False)
    run(breaker, False)
    assert breaker.state is BreakerState.CLOSED  # 1 of 4 in the window, not 4 of 7


def test_window_slides_per_bucket(clock: ManualClock) -> None:
    """Calls leave the window when their bucket (1 s wide here) falls out of the 10 s window."""
    breaker = make(clock, minimum_calls=100)
    run(breaker, True)
    clock.advance(5.0)
    run(breaker, True)
    assert breaker.stats()["window_failures"] == 2
    clock.advance(5.0)
    assert breaker.stats()["window_failures"] == 1
    clock.advance(5.0)
    assert breaker.stats()["window_failures"] == 0


def test_slow_calls_open_the_breaker(clock: ManualClock) -> None:
    """Successful calls that last slow_call_duration or more count towards the slow-call rate."""
    breaker = make(clock, slow_call_duration=1.0, slow_call_rate_threshold=0.5)

    @breaker
    def call(duration: float) -> str:
        clock.advance(duration)
        return "ok"

    assert call(0.1) == "ok"
    assert call(0.1) == "ok"
    assert call(1.0) == "ok"
    assert breaker.state is BreakerState.CLOSED
    assert call(2.0) == "ok"
    assert breaker.state is BreakerState.OPEN
    assert breaker.stats()["slow_calls_total"] == 2


def test_open_rejects_with_name_and_remaining_time(clock: ManualClock) -> None:
    """An open breaker raises CircuitOpenError naming itself and the time left until a probe."""
    breaker = make(clock)
    open_breaker(breaker)
    clock.advance(2.0)
    with pytest.raises(CircuitOpenError) as caught:
        run(breaker, False)
    assert caught.value.name == "svc"
    assert caught.value.remaining == pytest.approx(3.0)
    assert "svc" in str(caught.value)
    assert breaker.stats()["rejections_total"] == 1


def test_half_open_after_timeout_then_closes_after_n_successes(clock: ManualClock) -> None:
    """After open_timeout, half_open_successes successful probes close the breaker."""
    breaker = make(clock, half_open_successes=3, half_open_max_probes=1)
    open_breaker(breaker)
    clock.advance(5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    run(breaker, False)
    run(breaker, False)
    assert breaker.state is BreakerState.HALF_OPEN
    run(breaker, False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.stats()["window_failures"] == 0  # closing starts from an empty window


def test_any_failure_in_half_open_reopens(clock: ManualClock) -> None:
    """One failed probe reopens the breaker for a full open_timeout."""
    breaker = make(clock, half_open_successes=3)
    open_breaker(breaker)
    clock.advance(5.0)
    run(breaker, False)
    run(breaker, True)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        run(breaker, False)
    assert caught.value.remaining == pytest.approx(5.0)


def test_half_open_admits_at_most_max_probes_concurrently(clock: ManualClock) -> None:
    """A half-open breaker allows exactly half_open_max_probes calls at the same time."""
    breaker = make(clock, half_open_max_probes=2, half_open_successes=2)
    open_breaker(breaker)
    clock.advance(5.0)
    first = breaker.guard()
    second = breaker.guard()
    first.__enter__()
    second.__enter__()
    with pytest.raises(CircuitOpenError) as caught, breaker.guard():
        pass
    assert caught.value.remaining == 0.0
    first.__exit__(None, None, None)
    assert breaker.state is BreakerState.HALF_OPEN
    with breaker.guard():  # a slot is free again
        pass
    second.__exit__(None, None, None)
    assert breaker.state is BreakerState.CLOSED


def test_probe_ending_in_cancellation_frees_its_slot(clock: ManualClock) -> None:
    """A probe that ends in neither success nor failure releases its slot without a verdict."""
    breaker = make(clock)
    open_breaker(breaker)
    clock.advance(5.0)
    with pytest.raises(KeyboardInterrupt), breaker.guard():
        raise KeyboardInterrupt
    assert breaker.state is BreakerState.HALF_OPEN
    run(breaker, False)
    assert breaker.state is BreakerState.CLOSED


def test_stale_probe_cannot_decide_a_later_half_open_period(clock: ManualClock) -> None:
    """A probe admitted in one half-open period has no say once the breaker moved on."""
    breaker = make(clock, half_open_max_probes=2)
    open_breaker(breaker)
    clock.advance(5.0)
    stale = breaker.guard()
    stale.__enter__()
    run(breaker, True)  # reopens
    clock.advance(5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(Boom):
        stale.__exit__(Boom, Boom(), None)
        raise Boom
    assert breaker.state is BreakerState.HALF_OPEN


def test_record_and_ignore_predicates(clock: ManualClock) -> None:
    """Ignored errors count as nothing; errors outside ``record`` count as successes."""
    breaker = make(
        clock,
        record=(Boom, ConnectionError),
        ignore=lambda exc: isinstance(exc, ConnectionError) and "ignore" in str(exc),
    )

    @breaker
    def call(exc: BaseException) -> None:
        raise exc

    for _ in range(10):
        with pytest.raises(ConnectionError):
            call(ConnectionError("ignore me"))
        with pytest.raises(KeyError):
            call(KeyError("not recorded"))
    stats = breaker.stats()
    assert stats["requests_total"] == 10
    assert stats["successes_total"] == 10
    assert stats["failures_total"] == 0
    assert breaker.state is BreakerState.CLOSED


def test_inner_policy_rejections_are_not_failures(clock: ManualClock) -> None:
    """Rate-limit, bulkhead and nested-breaker rejections never count; inner timeouts do."""
    breaker = make(clock, minimum_calls=2)

    @breaker
    def call(exc: BaseException) -> None:
        raise exc

    for error in (
        RateLimitedError("r", 1.0),
        BulkheadFullError("b", 1, False),
        CircuitOpenError("inner", 1.0),
    ):
        for _ in range(5):
            with pytest.raises(type(error)):
                call(error)
    assert breaker.stats()["requests_total"] == 0
    assert breaker.state is BreakerState.CLOSED
    for _ in range(2):
        with pytest.raises(DeadlineExceededError):
            call(DeadlineExceededError("t", 1.0))
    assert breaker.state is BreakerState.OPEN


def test_listeners_hear_every_transition_and_rejection(clock: ManualClock) -> None:
    """Listeners get BreakerStateChanged for each edge and CallRejected for each rejection."""
    events: list[Event] = []
    breaker = make(clock, listeners=[events.append])
    open_breaker(breaker)
    with pytest.raises(CircuitOpenError):
        run(breaker, False)
    clock.advance(5.0)
    run(breaker, False)
    transitions = [(e.source, e.target) for e in events if isinstance(e, BreakerStateChanged)]
    assert transitions == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert sum(isinstance(e, CallRejected) for e in events) == 1


def test_listener_added_while_open_hears_rejections(clock: ManualClock) -> None:
    """Subscribing to an open breaker turns on rejection events at once (and off again)."""
    events: list[Event] = []
    breaker = make(clock)
    open_breaker(breaker)
    with pytest.raises(CircuitOpenError):
        run(breaker, False)
    breaker.add_listener(events.append)
    with pytest.raises(CircuitOpenError):
        run(breaker, False)
    assert [type(e) for e in events] == [CallRejected]
    breaker.remove_listener(events.append)
    with pytest.raises(CircuitOpenError):
        run(breaker, False)
    assert len(events) == 1
    assert breaker.stats()["rejections_total"] == 3


def test_failing_listener_does_not_change_the_outcome(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; the call's own result and the transition stand."""

    def bad_listener(event: Event) -> None:
        raise RuntimeError("listener bug")

    breaker = make(clock, listeners=[bad_listener])
    open_breaker(breaker)
    assert "listener bug" in caplog.text


def test_manual_control(clock: ManualClock) -> None:
    """force_open rejects; disable admits unrecorded; metrics_only records but never opens."""
    breaker = make(clock)
    breaker.force_open()
    with pytest.raises(CircuitOpenError) as caught:
        run(breaker, False)
    assert math.isinf(caught.value.remaining)
    clock.advance(1000.0)
    assert breaker.state is BreakerState.FORCED_OPEN

    breaker.disable()
    for _ in range(20):
        run(breaker, True)
    assert breaker.stats()["failures_total"] == 0

    breaker.metrics_only()
    for _ in range(20):
        run(breaker, True)
    assert breaker.state is BreakerState.METRICS_ONLY
    assert breaker.stats()["failures_total"] == 20

    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.stats()["window_calls"] == 0


def test_call_and_guard_shapes(clock: ManualClock) -> None:
    """The explicit call and the context manager record like the decorator does."""
    breaker = make(clock)

    def fail() -> None:
        raise Boom

    assert breaker.call(lambda x: x + 1, 1) == 2
    with pytest.raises(Boom):
        breaker.call(fail)
    with pytest.raises(Boom), breaker.guard():
        raise Boom
    with breaker.guard():
        pass
    assert breaker.stats()["requests_total"] == 4
    assert breaker.stats()["failures_total"] == 2
    # Rule 2: only a failure or a slow call triggers evaluation; a success never opens.
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(Boom), breaker.guard():
        raise Boom
    assert breaker.state is BreakerState.OPEN


def test_async_shapes_and_cancellation(clock: ManualClock) -> None:
    """Async decorator, call_async and async guard; a cancelled call is counted as nothing."""
    breaker = make(clock, minimum_calls=3)

    @breaker
    async def work(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise Boom
        return "ok"

    async def hang() -> None:
        await asyncio.sleep(3600)

    async def scenario() -> None:
        assert await work(False) == "ok"
        assert await breaker.call_async(work.__wrapped__, False) == "ok"  # type: ignore[attr-defined]
        async with breaker.guard():
            pass
        task = asyncio.ensure_future(breaker.call_async(hang))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(Boom):
            await work(True)

    asyncio.run(scenario())
    stats = breaker.stats()
    assert stats["successes_total"] == 3
    assert stats["failures_total"] == 1


def test_async_rejection(clock: ManualClock) -> None:
    """An open breaker rejects async calls before running them."""
    breaker = make(clock)
    open_breaker(breaker)
    ran = []

    @breaker
    async def work() -> None:
        ran.append(True)

    async def scenario() -> None:
        with pytest.raises(CircuitOpenError):
            await work()

    asyncio.run(scenario())
    assert ran == []


def test_concurrent_calls_are_not_serialised() -> None:
    """Two threads are inside the protected call at once: the breaker holds no lock meanwhile."""
    breaker = CircuitBreaker("svc")
    barrier = threading.Barrier(2, timeout=5.0)

    @breaker
    def meet() -> None:
        barrier.wait()  # deadlocks (BrokenBarrierError) if calls were serialised

    threads = [threading.Thread(target=meet) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.stats()["successes_total"] == 2


def test_concurrent_counts_are_exact() -> None:
    """8 threads x 5,000 calls: every success and failure is counted, none lost or doubled."""
    breaker = CircuitBreaker("svc", minimum_calls=10**9, window=3600.0)

    @breaker
    def call(fail: bool) -> None:
        if fail:
            raise Boom

    def worker() -> None:
        for index in range(5000):
            try:
                call(index % 5 == 0)
            except Boom:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = breaker.stats()
    assert stats["requests_total"] == 40_000
    assert stats["failures_total"] == 8_000
    assert stats["window_calls"] == 40_000


def test_rejections_do_not_grow_memory(clock: ManualClock) -> None:
    """100,000 rejections allocate nothing that outlives them (no cycles, no retained errors)."""
    breaker = make(clock)
    open_breaker(breaker)

    @breaker
    def call() -> None:
        raise AssertionError("never runs")

    def reject_many(count: int) -> None:
        for _ in range(count):
            try:
                call()
            except CircuitOpenError:
                pass

    reject_many(1000)
    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        reject_many(100_000)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    finally:
        gc.enable()
    assert after - before < 10_000, f"grew by {after - before} bytes"


def test_stats_are_json_ready(clock: ManualClock) -> None:
    """stats() serialises to JSON as it is, open or forced open."""
    breaker = make(clock)
    open_breaker(breaker)
    json.dumps(breaker.stats())
    breaker.force_open()
    assert json.loads(json.dumps(breaker.stats()))["open_remaining_seconds"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_rate_threshold", 0.0),
        ("failure_rate_threshold", 1.5),
        ("failure_rate_threshold", float("nan")),
        ("window", -1.0),
        ("window", 0),
        ("buckets", 0),
        ("buckets", 10_000),
        ("minimum_calls", 0),
        ("slow_call_duration", -0.5),
        ("slow_call_rate_threshold", 0.0),
        ("open_timeout", float("inf")),
        ("half_open_max_probes", 0),
        ("half_open_successes", True),
        ("record", "ValueError"),
        ("ignore", (ValueError, 3)),
    ],
)
def test_invalid_configuration_names_the_field(field: str, value: object) -> None:
    """Each invalid value is refused at construction with the field's name in the message."""
    with pytest.raises(ConfigError, match=f"CircuitBreaker.{field}"):
        CircuitBreaker("svc", **{field: value})


def test_invalid_name_is_refused() -> None:
    """Names become metric labels: empty or unprintable names are refused."""
    with pytest.raises(ConfigError, match="CircuitBreaker.name"):
        CircuitBreaker("")
    with pytest.raises(ConfigError, match="CircuitBreaker.name"):
        CircuitBreaker("a\nb")
