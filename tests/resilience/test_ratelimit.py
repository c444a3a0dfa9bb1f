"""Token-bucket limiters: refill, burst, exact waits, fairness, threads, keyed memory bounds."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.resilience import (
    CallRejected,
    ConfigError,
    Event,
    KeyedRateLimiter,
    RateLimitedError,
    RateLimiter,
)
from swarmguard.resilience.testing import ManualClock


def test_burst_then_reject(clock: ManualClock) -> None:
    """A full bucket admits exactly ``burst`` back-to-back requests, then rejects."""
    limiter = RateLimiter("api", rate=10.0, burst=5, clock=clock)
    assert [limiter.try_acquire() for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.stats()["requests_total"] == 7
    assert limiter.stats()["rejections_total"] == 2


def test_smooth_refill(clock: ManualClock) -> None:
    """Tokens come back continuously at ``rate``: one every 1/rate seconds, not in steps."""
    limiter = RateLimiter("api", rate=4.0, burst=4, clock=clock)
    for _ in range(4):
        assert limiter.try_acquire()
    clock.advance(0.24)
    assert not limiter.try_acquire()
    clock.advance(0.01)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(0.5)
    assert limiter.available() == pytest.approx(2.0)


def test_refill_never_exceeds_burst(clock: ManualClock) -> None:
    """An hour idle still leaves at most ``burst`` tokens."""
    limiter = RateLimiter("api", rate=100.0, burst=3, clock=clock)
    clock.advance(3600.0)
    assert limiter.available() == pytest.approx(3.0)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_try_acquire_n_tokens(clock: ManualClock) -> None:
    """try_acquire(n) takes n tokens at once, or none."""
    limiter = RateLimiter("api", rate=1.0, burst=10, clock=clock)
    assert limiter.try_acquire(7)
    assert not limiter.try_acquire(4)
    assert limiter.try_acquire(3)
    with pytest.raises(ValueError, match="burst"):
        limiter.try_acquire(11)
    with pytest.raises(ValueError, match="> 0"):
        limiter.try_acquire(0)


def test_blocking_acquire_sleeps_exactly_as_long_as_needed(clock: ManualClock) -> None:
    """acquire() sleeps once, for exactly the time the missing tokens take to refill."""
    limiter = RateLimiter("api", rate=10.0, burst=2, clock=clock)
    limiter.acquire(2)
    assert clock.sleeps == []
    limiter.acquire(1)
    limiter.acquire(2)
    assert clock.sleeps == [pytest.approx(0.1, abs=1e-6), pytest.approx(0.2, abs=1e-6)]


def test_waiters_reserve_in_arrival_order(clock: ManualClock) -> None:
    """Queued acquirers are scheduled one token apart, first come first served."""
    limiter = RateLimiter("api", rate=10.0, burst=1, clock=clock)
    assert limiter.try_acquire()
    waits = [limiter._reserve(0.1, None) for _ in range(3)]
    assert waits == [pytest.approx(w, abs=1e-6) for w in (0.1, 0.2, 0.3)]


def test_timeout_shorter_than_the_wait_rejects_at_once(clock: ManualClock) -> None:
    """A wait longer than the timeout raises immediately, reserves nothing and never sleeps."""
    events: list[Event] = []
    limiter = RateLimiter("api", rate=1.0, burst=1, clock=clock, listeners=[events.append])
    limiter.acquire()
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire(1, timeout=0.5)
    assert caught.value.retry_after == pytest.approx(1.0, abs=1e-6)
    assert caught.value.name == "api"
    assert clock.sleeps == []
    assert isinstance(events[0], CallRejected)
    clock.advance(1.0)
    assert limiter.try_acquire()  # the rejected request took nothing


def test_async_acquire_sleeps_exactly(clock: ManualClock) -> None:
    """acquire_async suspends for exactly the refill time."""
    limiter = RateLimiter("api", rate=2.0, burst=1, clock=clock)

    async def scenario() -> None:
        await limiter.acquire_async()
        await limiter.acquire_async()

    asyncio.run(scenario())
    assert clock.sleeps == [pytest.approx(0.5, abs=1e-6)]


def test_cancelled_async_waiter_gives_its_tokens_back() -> None:
    """A waiter cancelled while queued returns its reservation, so later callers do not pay."""
    limiter = RateLimiter("api", rate=5.0, burst=1)

    async def scenario() -> None:
        assert limiter.try_acquire()
        before = limiter.available()
        task = asyncio.ensure_future(limiter.acquire_async(1))
        await asyncio.sleep(0.01)
        assert limiter.available() < before - 0.9  # reserved while waiting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert limiter.available() == pytest.approx(before, abs=0.1)

    asyncio.run(scenario())


def test_decorator_and_context_manager(clock: ManualClock) -> None:
    """As decorator and context manager each call takes one token, waiting at most max_wait."""
    limiter = RateLimiter("api", rate=1.0, burst=2, max_wait=0.0, clock=clock)

    @limiter
    def call() -> str:
        return "ok"

    assert call() == "ok"
    with limiter:
        pass
    with pytest.raises(RateLimitedError):
        call()
    assert limiter.stats()["requests_total"] == 3  # each request counted once, however served
    assert limiter.stats()["rejections_total"] == 1
    patient = RateLimiter("slow", rate=1.0, burst=1, max_wait=5.0, clock=clock)
    with patient, patient:
        pass
    assert clock.sleeps == [pytest.approx(1.0, abs=1e-6)]
    assert patient.call(lambda: 3) == 3


def test_async_decorator_and_context_manager(clock: ManualClock) -> None:
    """The async forms take tokens the same way."""
    limiter = RateLimiter("api", rate=1.0, burst=1, max_wait=2.0, clock=clock)

    @limiter
    async def call() -> str:
        return "ok"

    async def scenario() -> None:
        assert await call() == "ok"
        async with limiter:
            pass
        assert await limiter.call_async(call.__wrapped__) == "ok"  # type: ignore[attr-defined]

    asyncio.run(scenario())
    assert clock.sleeps == [pytest.approx(1.0, abs=1e-6)] * 2


def test_threads_share_one_bucket_exactly(clock: ManualClock) -> None:
    """8 threads racing on a frozen clock admit exactly ``burst`` requests in total."""
    limiter = RateLimiter("api", rate=1.0, burst=1000, clock=clock)
    admitted = [0] * 8

    def worker(index: int) -> None:
        for _ in range(500):
            if limiter.try_acquire():
                admitted[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 1000
    assert limiter.stats()["requests_total"] == 4000


def test_no_background_thread() -> None:
    """Using a limiter starts no thread: refill is computed, not scheduled."""
    before = threading.active_count()
    limiter = RateLimiter("api", rate=1e6)
    for _ in range(10_000):
        limiter.try_acquire()
    assert threading.active_count() == before


class ReferenceBucket:
    """The textbook bucket (float tokens + timestamp), to check the GCRA form against."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.updated = rate, burst, burst, now

    def try_acquire(self, tokens: float, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens + 1e-6 >= tokens:
            self.tokens -= tokens
            return True
        return False


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 1000.0),
    burst=st.integers(1, 50),
    steps=st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(1, 5)), min_size=1, max_size=60),
)
def test_matches_the_textbook_token_bucket(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    """For any schedule, the limiter decides exactly as a float token bucket does."""
    clock = ManualClock()
    limiter = RateLimiter("api", rate=rate, burst=burst, clock=clock)
    reference = ReferenceBucket(rate, burst, clock.now())
    for advance, tokens in steps:
        clock.advance(advance)
        if tokens > burst:
            continue
        expected = reference.try_acquire(tokens, clock.now())
        # Decisions may differ only when the reference is within float noise of the edge.
        near_edge = abs(reference.tokens - (0 if expected else tokens)) < 1e-5
        got = limiter.try_acquire(tokens)
        if got != expected:
            assert near_edge
            reference.tokens += -tokens if got else tokens


# ---------------------------------------------------------------------------- keyed


def test_keys_have_independent_buckets(clock: ManualClock) -> None:
    """Draining one client's bucket does not touch another's."""
    limiter = KeyedRateLimiter("per-client", rate=1.0, burst=2, clock=clock)
    assert limiter.try_acquire("a")
    assert limiter.try_acquire("a")
    assert not limiter.try_acquire("a")
    assert limiter.try_acquire("b")
    clock.advance(1.0)
    assert limiter.try_acquire("a")


def test_keyed_blocking_and_async_acquire(clock: ManualClock) -> None:
    """Keyed acquire waits exactly, and rejects past its timeout."""
    limiter = KeyedRateLimiter("per-client", rate=2.0, burst=1, clock=clock)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(RateLimitedError):
        limiter.acquire("a", timeout=0.1)

    async def scenario() -> None:
        await limiter.acquire_async("b")
        await limiter.acquire_async("b")

    asyncio.run(scenario())
    assert clock.sleeps == [pytest.approx(0.5, abs=1e-6)] * 2


def test_keyed_decorator_and_context_manager(clock: ManualClock) -> None:
    """``@limiter.by(key_of)`` and ``with limiter.limit(key)`` take from the right bucket, sync
    and async, and reject when it is empty."""
    limiter = KeyedRateLimiter("per-client", rate=1.0, burst=1, clock=clock)

    @limiter.by(lambda client, payload: client)
    def handle(client: str, payload: str) -> str:
        return f"{client}:{payload}"

    @limiter.by(lambda client: client)
    async def handle_async(client: str) -> str:
        return client

    assert handle("alice", "x") == "alice:x"
    with pytest.raises(RateLimitedError):
        handle("alice", "y")
    assert handle("bob", "z") == "bob:z"
    with pytest.raises(RateLimitedError), limiter.limit("bob"):
        pass
    with limiter.limit("carol"):
        pass

    async def scenario() -> None:
        assert await handle_async("dave") == "dave"
        with pytest.raises(RateLimitedError):
            await handle_async("dave")
        async with limiter.limit("erin"):
            pass
        async with limiter.limit("erin", timeout=5.0):  # waits 1 s on the manual clock
            pass

    asyncio.run(scenario())
    assert clock.sleeps == [pytest.approx(1.0, abs=1e-6)]


def test_pruning_full_buckets_loses_nothing(clock: ManualClock) -> None:
    """When the table fills, refilled keys are dropped first; a drained key stays drained."""
    limiter = KeyedRateLimiter("per-client", rate=1.0, burst=1, max_keys=100, clock=clock)
    assert limiter.try_acquire("hot")  # drained, refills in 1 s
    for index in range(98):
        assert limiter.try_acquire(index)
    clock.advance(0.5)  # none of them has refilled yet
    assert limiter.try_acquire("one-more")
    clock.advance(0.6)
    assert limiter.try_acquire("hot")  # hot refilled exactly on time and drained again
    # Now the table is full (100): a new key triggers pruning of all refilled buckets.
    assert limiter.try_acquire("newcomer")
    assert len(limiter) <= 3
    assert not limiter.try_acquire("hot")  # still drained: pruning kept it
    assert limiter.stats()["evicted_total"] == 0


def test_overflowing_drained_keys_are_forgotten_oldest_first(clock: ManualClock) -> None:
    """With more drained keys than max_keys, the oldest-added are forgotten (become lenient)."""
    limiter = KeyedRateLimiter("per-client", rate=0.001, burst=1, max_keys=10, clock=clock)
    for index in range(10):
        assert limiter.try_acquire(index)
    assert limiter.try_acquire(10)
    assert len(limiter) <= 10
    assert limiter.stats()["evicted_total"] >= 1
    assert limiter.try_acquire(0)  # forgotten: starts with a full bucket
    assert not limiter.try_acquire(10)  # recent: still drained


def test_memory_is_bounded_under_a_million_keys() -> None:
    """A million distinct keys never hold more than max_keys entries (and memory to match)."""
    clock = ManualClock()
    limiter = KeyedRateLimiter("per-client", rate=0.01, burst=5, max_keys=50_000, clock=clock)
    for index in range(1_000_000):
        limiter.try_acquire(index)
        if index % 1000 == 0:
            clock.advance(0.001)
    assert len(limiter) <= 50_000
    assert limiter.stats()["requests_total"] == 1_000_000


def test_memory_per_key_is_under_200_bytes() -> None:
    """Each held key costs less than 200 bytes (dict entry, float, the key object itself)."""
    clock = ManualClock()
    limiter = KeyedRateLimiter("per-client", rate=1.0, burst=5, max_keys=1_000_000, clock=clock)
    keys = [f"client-{index}" for index in range(100_000)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in keys:
        limiter.try_acquire(key)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_key = (after - before) / len(keys)
    assert per_key < 200, f"{per_key:.0f} bytes per key"


@pytest.mark.parametrize(
    ("field", "config"),
    [
        ("rate", {"rate": 0}),
        ("rate", {"rate": -5.0}),
        ("rate", {"rate": float("inf")}),
        ("burst", {"rate": 1.0, "burst": 0.5}),
        ("burst", {"rate": 1.0, "burst": -1}),
        ("max_wait", {"rate": 1.0, "max_wait": -1}),
    ],
)
def test_invalid_configuration_names_the_field(field: str, config: dict[str, float]) -> None:
    """Bad rates, bursts and waits are refused with the field named."""
    with pytest.raises(ConfigError, match=f"RateLimiter.{field}"):
        RateLimiter("api", **config)  # type: ignore[arg-type]


def test_keyed_invalid_max_keys() -> None:
    """max_keys must be a positive int within the named limit."""
    with pytest.raises(ConfigError, match="KeyedRateLimiter.max_keys"):
        KeyedRateLimiter("k", rate=1.0, max_keys=0)


def test_real_clock_rate_is_respected() -> None:
    """With the system clock, 20 blocking acquires at 200/s (burst 1) take about 95 ms."""
    limiter = RateLimiter("api", rate=200.0, burst=1)
    start = time.monotonic()
    for _ in range(20):
        limiter.acquire()
    elapsed = time.monotonic() - start
    assert elapsed >= 0.094
