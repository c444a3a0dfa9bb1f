"""Timeout (with inherited deadlines), fallback and hedged requests."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from swarmguard.resilience import (
    ConfigError,
    DeadlineExceededError,
    Event,
    Fallback,
    FallbackUsed,
    Hedge,
    HedgeLaunched,
    TimedOut,
    Timeout,
    remaining,
)


def test_async_timeout_cancels_the_call() -> None:
    """A slow coroutine is cancelled at the timeout and the caller gets DeadlineExceededError."""
    events: list[Event] = []
    policy = Timeout(0.02, name="rpc", listeners=[events.append])
    cancelled = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def scenario() -> None:
        with pytest.raises(DeadlineExceededError) as caught:
            await policy.call_async(slow)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.name == "rpc"

    asyncio.run(scenario())
    assert cancelled == [True]
    assert isinstance(events[0], TimedOut)
    assert policy.stats()["timeouts_total"] == 1


def test_fast_calls_pass_through() -> None:
    """Calls that finish in time return their result, sync and async."""
    policy = Timeout(1.0)

    @policy
    def sync_ok(x: int) -> int:
        return x * 2

    @policy
    async def async_ok(x: int) -> int:
        return x * 3

    assert sync_ok(2) == 4
    assert asyncio.run(async_ok(2)) == 6
    policy.shutdown()


def test_sync_timeout_stops_waiting() -> None:
    """A sync call runs in a worker; the caller stops waiting at the deadline."""
    policy = Timeout(0.02)
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        policy.call(release.wait, 10)
    assert time.monotonic() - start < 1.0
    release.set()
    policy.shutdown()


def test_a_hung_sync_call_does_not_block_process_exit() -> None:
    """A call abandoned by a sync timeout that never returns does not keep the process alive."""
    program = (
        "import threading\n"
        "from swarmguard.resilience import Timeout, DeadlineExceededError\n"
        "try:\n"
        "    Timeout(0.05).call(threading.Event().wait)\n"
        "except DeadlineExceededError:\n"
        "    print('timed out')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], check=False, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "timed out"


def test_nested_deadline_is_inherited_not_extended() -> None:
    """An inner 5 s timeout inside an outer 0.05 s one ends at the outer deadline."""
    outer = Timeout(0.05, name="outer")
    inner = Timeout(5.0, name="inner")
    seen: list[float | None] = []

    async def leaf() -> None:
        seen.append(remaining())
        await asyncio.sleep(10)

    async def middle() -> None:
        await inner.call_async(leaf)

    async def scenario() -> None:
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await outer.call_async(middle)
        assert time.monotonic() - start < 1.0

    asyncio.run(scenario())
    assert seen[0] is not None
    assert seen[0] <= 0.05
    assert remaining() is None  # restored after the call


def test_sync_worker_sees_the_deadline() -> None:
    """The worker thread inherits the deadline, so cooperative code can read remaining()."""
    policy = Timeout(2.0)
    left = policy.call(remaining)
    assert left is not None
    assert 0.0 < left <= 2.0
    policy.shutdown()


def test_cooperative_mode_checks_after_the_call() -> None:
    """cooperative=True runs in the caller's thread and raises if the deadline passed meanwhile."""
    policy = Timeout(0.01, cooperative=True)
    assert policy.call(threading.get_ident) == threading.get_ident()
    with pytest.raises(DeadlineExceededError):
        policy.call(time.sleep, 0.03)


def test_expired_inherited_deadline_fails_fast() -> None:
    """A call made after the inherited deadline passed is not started at all."""
    outer = Timeout(0.01, cooperative=True)
    inner = Timeout(1.0, cooperative=True)
    ran = []

    def late() -> None:
        time.sleep(0.02)
        with pytest.raises(DeadlineExceededError):
            inner.call(ran.append, True)

    with pytest.raises(DeadlineExceededError):
        outer.call(late)
    assert ran == []


def test_scope_context_manager_async_and_sync() -> None:
    """``async with timeout.scope()`` cancels a slow block; the sync form raises when the block
    overran, and both expose the deadline to the code inside."""
    policy = Timeout(0.02)

    async def scenario() -> None:
        with pytest.raises(DeadlineExceededError):
            async with policy.scope():
                await asyncio.sleep(10)
        async with policy.scope():
            left = remaining()
            assert left is not None
            assert 0 < left <= 0.02
        assert remaining() is None

    asyncio.run(scenario())
    with policy.scope():
        pass
    with pytest.raises(DeadlineExceededError), policy.scope():
        time.sleep(0.03)
    assert remaining() is None
    assert policy.stats()["timeouts_total"] == 2


def test_fallback_answers_matching_errors_only() -> None:
    """The handler answers errors matched by ``on``; others propagate."""
    events: list[Event] = []
    fallback = Fallback(
        lambda exc: f"cached ({type(exc).__name__})", on=ConnectionError, listeners=[events.append]
    )

    @fallback
    def fetch(error: Exception) -> str:
        raise error

    assert fetch(ConnectionError()) == "cached (ConnectionError)"
    with pytest.raises(KeyError):
        fetch(KeyError())
    assert isinstance(events[0], FallbackUsed)
    assert fallback.stats()["used_total"] == 1


def test_async_fallback_with_async_handler() -> None:
    """An async call may fall back to an async handler."""

    async def handler(exc: BaseException) -> str:
        return "default"

    fallback = Fallback(handler)

    @fallback
    async def fetch() -> str:
        raise ConnectionError

    assert asyncio.run(fetch()) == "default"


def test_async_hedge_wins_with_the_faster_attempt() -> None:
    """When the first attempt stalls, the hedge answers and the straggler is cancelled."""
    events: list[Event] = []
    hedge = Hedge(0.02, max_hedges=1, listeners=[events.append])
    calls = 0
    cancelled = []

    async def replica() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
        return f"answer from attempt {calls}"

    async def scenario() -> str:
        start = time.monotonic()
        result = await hedge.call_async(replica)
        assert time.monotonic() - start < 1.0
        await asyncio.sleep(0)
        return result

    assert asyncio.run(scenario()) == "answer from attempt 2"
    assert cancelled == [True]
    assert isinstance(events[0], HedgeLaunched)
    assert events[0].attempt == 2  # type: ignore[attr-defined]


def test_async_hedge_not_needed_when_fast() -> None:
    """A call that answers within the delay launches no hedge."""
    hedge = Hedge(1.0)

    async def fast() -> int:
        return 1

    assert asyncio.run(hedge.call_async(fast)) == 1
    assert hedge.stats()["hedges_total"] == 0


def test_hedge_failure_launches_next_at_once_and_last_error_propagates() -> None:
    """A failed attempt launches the next hedge at once; if all fail, the last error is raised."""
    hedge = Hedge(10.0, max_hedges=2)
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"attempt {calls}")

    async def scenario() -> None:
        start = time.monotonic()
        with pytest.raises(ConnectionError, match="attempt 3"):
            await hedge.call_async(failing)
        assert time.monotonic() - start < 1.0  # never waited out the 10 s delay

    asyncio.run(scenario())
    assert calls == 3


def test_sync_hedge() -> None:
    """Sync hedging runs attempts in worker threads and returns the first answer."""
    hedge = Hedge(0.02, max_hedges=1)
    release = threading.Event()
    calls = []

    def replica() -> str:
        calls.append(1)
        if len(calls) == 1:
            release.wait(5)
            return "slow"
        return "fast"

    assert hedge.call(replica) == "fast"
    release.set()


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: Timeout(0), "Timeout.timeout"),
        (lambda: Timeout(-1), "Timeout.timeout"),
        (lambda: Timeout(1, max_workers=0), "Timeout.max_workers"),
        (lambda: Hedge(-1), "Hedge.delay"),
        (lambda: Hedge(0.1, max_hedges=0), "Hedge.max_hedges"),
        (lambda: Fallback("not callable"), "Fallback.handler"),  # type: ignore[arg-type]
    ],
)
def test_invalid_configuration_names_the_field(factory: object, field: str) -> None:
    """Bad timeout, hedge and fallback settings are refused with the field named."""
    with pytest.raises(ConfigError, match=field):
        factory()  # type: ignore[operator]
