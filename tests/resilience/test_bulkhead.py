"""The bulkhead's invariants: the cap, the bounded queue, FIFO hand-off and no leaked permits."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.resilience import Bulkhead, BulkheadFullError, CallRejected, ConfigError, Event
from swarmguard.resilience import bulkhead as bulkhead_module


def assert_idle(bulkhead: Bulkhead) -> None:
    stats = bulkhead.stats()
    assert stats["active"] == 0, stats
    assert stats["queued"] == 0, stats


def test_rejects_when_full_and_no_queue() -> None:
    """max_queue=0: the call beyond max_concurrent is rejected at once, naming the bulkhead."""
    events: list[Event] = []
    bulkhead = Bulkhead("db", max_concurrent=2, listeners=[events.append])
    bulkhead.acquire()
    bulkhead.acquire()
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire()
    assert caught.value.name == "db"
    assert caught.value.max_concurrent == 2
    assert not caught.value.queue_timed_out
    assert isinstance(events[0], CallRejected)
    bulkhead.release()
    bulkhead.release()
    assert_idle(bulkhead)
    with pytest.raises(RuntimeError, match="without a permit"):
        bulkhead.release()


def test_queue_timeout() -> None:
    """A queued caller gives up after queue_timeout with queue_timed_out=True."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_queue=1, queue_timeout=0.05)
    bulkhead.acquire()
    start = time.monotonic()
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire()
    assert caught.value.queue_timed_out
    assert time.monotonic() - start >= 0.04
    bulkhead.release()
    assert_idle(bulkhead)
    assert bulkhead.stats()["rejections_total"] == 1


def test_queue_is_bounded() -> None:
    """With the queue full, the next caller is rejected without waiting."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_queue=1, queue_timeout=5.0)
    bulkhead.acquire()
    waiter = threading.Thread(target=lambda: (bulkhead.acquire(), bulkhead.release()))
    waiter.start()
    while bulkhead.queued < 1:
        time.sleep(0.001)
    start = time.monotonic()
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire()
    assert not caught.value.queue_timed_out
    assert time.monotonic() - start < 1.0
    bulkhead.release()
    waiter.join()
    assert_idle(bulkhead)


def test_released_permit_goes_to_the_oldest_waiter() -> None:
    """Waiters are served in arrival order, and a newcomer cannot overtake them."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_queue=10, queue_timeout=5.0)
    order: list[int] = []
    bulkhead.acquire()

    def waiter(index: int) -> None:
        bulkhead.acquire()
        order.append(index)
        bulkhead.release()

    threads = []
    for index in range(5):
        thread = threading.Thread(target=waiter, args=(index,))
        thread.start()
        threads.append(thread)
        while bulkhead.queued < index + 1:
            time.sleep(0.001)
    bulkhead.release()
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]
    assert_idle(bulkhead)


def test_permit_released_on_exception() -> None:
    """Decorator, call and context manager release their permit when the call raises."""
    bulkhead = Bulkhead("db", max_concurrent=1)

    @bulkhead
    def fail() -> None:
        raise ValueError

    for _ in range(3):
        with pytest.raises(ValueError):
            fail()
        with pytest.raises(ValueError):
            bulkhead.call(fail.__wrapped__)  # type: ignore[attr-defined]
        with pytest.raises(ValueError), bulkhead:
            raise ValueError
    assert_idle(bulkhead)


def test_never_more_than_max_concurrent_threads() -> None:
    """16 threads through a bulkhead of 3: at most 3 are ever inside at once."""
    bulkhead = Bulkhead("db", max_concurrent=3, max_queue=16, queue_timeout=10.0)
    inside = 0
    peak = 0
    lock = threading.Lock()

    @bulkhead
    def work() -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        time.sleep(0.002)
        with lock:
            inside -= 1

    threads = [threading.Thread(target=lambda: [work() for _ in range(10)]) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3
    assert bulkhead.stats()["admitted_total"] == 160
    assert_idle(bulkhead)


def test_async_cancellation_while_running_releases() -> None:
    """A task cancelled inside the bulkhead gives its permit back."""
    bulkhead = Bulkhead("db", max_concurrent=1)

    @bulkhead
    async def hang() -> None:
        await asyncio.sleep(3600)

    async def scenario() -> None:
        task = asyncio.ensure_future(hang())
        await asyncio.sleep(0)
        assert bulkhead.active == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert_idle(bulkhead)


def test_async_cancellation_while_queued_and_after_hand_off() -> None:
    """A waiter cancelled in the queue leaves it; one cancelled after the hand-off passes it on."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_queue=5, queue_timeout=None)

    async def scenario() -> None:
        await bulkhead.acquire_async()
        queued = asyncio.ensure_future(bulkhead.acquire_async())
        handed = asyncio.ensure_future(bulkhead.acquire_async())
        last = asyncio.ensure_future(bulkhead.acquire_async())
        await asyncio.sleep(0)
        assert bulkhead.queued == 3
        queued.cancel()
        await asyncio.sleep(0)
        assert bulkhead.queued == 2
        bulkhead.release()  # hands the permit to `handed`, whose future is now resolved
        handed.cancel()  # ...but it is cancelled before it runs: it must pass the permit on
        with pytest.raises(asyncio.CancelledError):
            await handed
        await asyncio.wait_for(last, 1.0)  # got the permit handed's cancellation passed on
        assert bulkhead.active == 1
        bulkhead.release()

    asyncio.run(scenario())
    assert_idle(bulkhead)


def test_async_queue_timeout() -> None:
    """An async waiter times out with queue_timed_out=True and leaves the queue."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_queue=1, queue_timeout=0.02)

    async def scenario() -> None:
        async with bulkhead:
            with pytest.raises(BulkheadFullError) as caught:
                await bulkhead.acquire_async()
            assert caught.value.queue_timed_out

    asyncio.run(scenario())
    assert_idle(bulkhead)


def test_threads_and_tasks_share_one_pool() -> None:
    """A permit released by a thread wakes a task waiting on an event loop, and back."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_queue=5, queue_timeout=5.0)
    bulkhead.acquire()

    async def scenario() -> None:
        releaser = threading.Timer(0.02, bulkhead.release)
        releaser.start()
        await bulkhead.acquire_async()  # woken from the timer's thread
        blocked = threading.Thread(target=lambda: (bulkhead.acquire(), bulkhead.release()))
        blocked.start()
        while bulkhead.queued < 1:
            await asyncio.sleep(0.001)
        bulkhead.release()  # from the loop's thread to the blocked thread
        await asyncio.get_running_loop().run_in_executor(None, blocked.join)
        releaser.join()

    asyncio.run(scenario())
    assert_idle(bulkhead)


@settings(max_examples=60, deadline=None)
@given(
    max_concurrent=st.integers(1, 4),
    max_queue=st.integers(0, 6),
    plan=st.lists(
        st.tuples(
            st.sampled_from(["ok", "error", "cancel_running", "cancel_queued", "timeout"]),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_no_permit_leaks_under_random_async_interleavings(
    max_concurrent: int, max_queue: int, plan: list[tuple[str, int]]
) -> None:
    """Any mix of successes, errors, cancellations (running or queued) and queue timeouts ends
    with no permit held and nobody queued, and the cap holds at every step."""
    bulkhead = Bulkhead(
        "db", max_concurrent=max_concurrent, max_queue=max_queue, queue_timeout=0.004
    )
    peak = 0

    async def job(kind: str, ticks: int) -> None:
        nonlocal peak
        async with bulkhead:
            peak = max(peak, bulkhead.active)
            assert bulkhead.active <= max_concurrent
            for _ in range(ticks):
                await asyncio.sleep(0)
            if kind == "error":
                raise ValueError
            if kind == "cancel_running":
                await asyncio.sleep(3600)

    async def scenario() -> None:
        tasks = []
        for kind, ticks in plan:
            task = asyncio.ensure_future(job(kind, ticks))
            tasks.append((kind, task))
            for _ in range(ticks):
                await asyncio.sleep(0)
            if kind == "cancel_queued":
                task.cancel()
        await asyncio.sleep(0.001)
        for kind, task in tasks:
            if kind == "cancel_running":
                task.cancel()
        results = await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)
        for result in results:
            assert result is None or isinstance(
                result, ValueError | BulkheadFullError | asyncio.CancelledError
            ), result
        assert bulkhead.queued <= max_queue

    asyncio.run(scenario())
    assert peak <= max_concurrent
    assert_idle(bulkhead)


def test_no_permit_leaks_under_thread_churn() -> None:
    """Threads that succeed, fail and time out in the queue, interleaved at random, leak nothing."""
    bulkhead = Bulkhead("db", max_concurrent=2, max_queue=3, queue_timeout=0.002)
    rng = random.Random(7)
    seeds = [rng.random() for _ in range(12)]

    def worker(seed: float) -> None:
        local = random.Random(seed)
        for _ in range(200):
            try:
                with bulkhead:
                    if local.random() < 0.3:
                        raise ValueError
                    time.sleep(local.random() * 0.0005)
            except (ValueError, BulkheadFullError):
                pass

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_idle(bulkhead)
    stats = bulkhead.stats()
    assert stats["admitted_total"] + stats["rejections_total"] == 12 * 200


@pytest.mark.parametrize(
    ("field", "config"),
    [
        ("max_concurrent", {"max_concurrent": 0}),
        ("max_concurrent", {"max_concurrent": -3}),
        ("max_queue", {"max_concurrent": 1, "max_queue": -1}),
        ("queue_timeout", {"max_concurrent": 1, "queue_timeout": -0.1}),
    ],
)
def test_invalid_configuration_names_the_field(field: str, config: dict[str, float]) -> None:
    """Bad limits are refused with the field named."""
    with pytest.raises(ConfigError, match=f"Bulkhead.{field}"):
        Bulkhead("db", **config)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_release_racing_an_enqueue_is_not_lost(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """A permit returned between a caller's failed pool check and its enqueue is seen by the
    caller's second check (invariant 3): the caller proceeds at once instead of waiting."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_queue=5, queue_timeout=5.0)
    bulkhead.acquire()
    original = bulkhead_module._Waiter

    class RacingWaiter(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object) -> None:
            bulkhead._permits.append(True)  # a release's publish, before its hand-off check
            super().__init__(*args)

    monkeypatch.setattr(bulkhead_module, "_Waiter", RacingWaiter)
    start = time.monotonic()
    if mode == "sync":
        bulkhead.acquire()
    else:
        asyncio.run(bulkhead.acquire_async())
    assert time.monotonic() - start < 1.0
    assert bulkhead.active == 1
    assert bulkhead.queued == 0
    bulkhead.release()
    assert_idle(bulkhead)
