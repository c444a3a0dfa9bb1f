"""Retry: the backoff schedule, jitter, stop conditions, Retry-After, the budget and the shapes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from swarmguard.resilience import (
    CircuitOpenError,
    ConfigError,
    Event,
    RateLimitedError,
    Retry,
    RetryBudget,
    RetryScheduled,
)
from swarmguard.resilience.testing import ManualClock


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``result``."""

    def __init__(self, failures: int, error: BaseException | None = None, result: object = "ok"):
        self.failures = failures
        self.error = error or ConnectionError("down")
        self.result = result
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.result


def constant(value: float) -> Callable[[], float]:
    return lambda: value


def test_exponential_schedule_with_cap(clock: ManualClock) -> None:
    """Without jitter the waits are initial * multiplier**n, capped at max_delay."""
    retry = Retry(
        attempts=6, initial_delay=0.1, multiplier=3.0, max_delay=2.0, jitter="none", clock=clock
    )
    flaky = Flaky(5)
    assert retry.call(flaky) == "ok"
    assert clock.sleeps == [pytest.approx(x) for x in (0.1, 0.3, 0.9, 2.0, 2.0)]
    assert flaky.calls == 6


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.75), (0.5, 1.0), (1.0, 1.25)])
def test_proportional_jitter_is_plus_minus_25_percent(
    clock: ManualClock, draw: float, factor: float
) -> None:
    """The default jitter spreads each wait over [0.75, 1.25] x the base delay."""
    retry = Retry(attempts=3, initial_delay=1.0, random_source=constant(draw), clock=clock)
    retry.call(Flaky(2))
    assert clock.sleeps == [pytest.approx(1.0 * factor), pytest.approx(2.0 * factor)]


def test_full_jitter(clock: ManualClock) -> None:
    """Full jitter draws uniformly from [0, base]."""
    retry = Retry(
        attempts=3, initial_delay=1.0, jitter="full", random_source=constant(0.5), clock=clock
    )
    retry.call(Flaky(2))
    assert clock.sleeps == [pytest.approx(0.5), pytest.approx(1.0)]


def test_decorrelated_jitter(clock: ManualClock) -> None:
    """Decorrelated jitter draws from [initial, 3 x previous], capped at max_delay."""
    retry = Retry(
        attempts=5,
        initial_delay=1.0,
        max_delay=10.0,
        jitter="decorrelated",
        random_source=constant(1.0),
        clock=clock,
    )
    retry.call(Flaky(4))
    assert clock.sleeps == [pytest.approx(x) for x in (3.0, 9.0, 10.0, 10.0)]


def test_gives_up_after_max_attempts_with_the_last_error(clock: ManualClock) -> None:
    """After ``attempts`` attempts the last error propagates unchanged."""
    error = ConnectionError("still down")
    flaky = Flaky(10, error)
    with pytest.raises(ConnectionError) as caught:
        Retry(attempts=4, clock=clock).call(flaky)
    assert caught.value is error
    assert flaky.calls == 4
    assert len(clock.sleeps) == 3


def test_deadline_stops_before_sleeping_past_it(clock: ManualClock) -> None:
    """No attempt starts after the total deadline: the retry gives up rather than oversleep."""
    retry = Retry(
        attempts=100, deadline=1.0, initial_delay=0.3, multiplier=1.0, jitter="none", clock=clock
    )
    flaky = Flaky(100)
    with pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.calls == 4  # at 0, 0.3, 0.6, 0.9; a fifth would start at 1.2
    assert sum(clock.sleeps) <= 1.0


def test_retry_on_predicate_and_types(clock: ManualClock) -> None:
    """Only errors matched by ``on`` are retried; others propagate at once."""
    retry = Retry(attempts=5, on=lambda e: "transient" in str(e), clock=clock)
    transient = Flaky(2, RuntimeError("transient glitch"))
    assert retry.call(transient) == "ok"
    permanent = Flaky(2, RuntimeError("bad request"))
    with pytest.raises(RuntimeError, match="bad request"):
        retry.call(permanent)
    assert permanent.calls == 1
    typed = Retry(attempts=5, on=(ConnectionError, TimeoutError), clock=clock)
    with pytest.raises(KeyError):
        typed.call(Flaky(1, KeyError("x")))


def test_retry_on_result(clock: ManualClock) -> None:
    """A result the predicate rejects is retried; the last one is returned when attempts run out."""
    responses = iter([503, 503, 200])
    retry = Retry(attempts=5, on_result=lambda status: status == 503, clock=clock)
    assert retry.call(lambda: next(responses)) == 200
    always = Retry(attempts=3, on_result=lambda status: status == 503, clock=clock)
    assert always.call(lambda: 503) == 503


def test_never_retries_an_open_breaker(clock: ManualClock) -> None:
    """CircuitOpenError is never retried, even when ``on`` would match it."""
    flaky = Flaky(5, CircuitOpenError("svc", 3.0))
    with pytest.raises(CircuitOpenError):
        Retry(attempts=5, on=Exception, clock=clock).call(flaky)
    assert flaky.calls == 1


def test_never_retries_cancellation() -> None:
    """A cancelled attempt is not retried: cancellation propagates at once."""
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    async def scenario() -> None:
        with pytest.raises(asyncio.CancelledError):
            await Retry(attempts=5, on=BaseException).call_async(cancelled)

    asyncio.run(scenario())
    assert calls == 1


def test_zero_backoff_never_sleeps(clock: ManualClock) -> None:
    """initial_delay=0 retries at once without calling sleep (not even sleep(0))."""
    retry = Retry(attempts=5, initial_delay=0.0, max_delay=0.0, clock=clock)
    assert retry.call(Flaky(4)) == "ok"
    assert clock.sleeps == []


def test_honours_retry_after_capped(clock: ManualClock) -> None:
    """A Retry-After hint on the error lengthens the wait, capped at retry_after_max."""
    retry = Retry(attempts=3, initial_delay=0.1, jitter="none", retry_after_max=5.0, clock=clock)
    retry.call(Flaky(1, RateLimitedError("api", 2.0)))
    retry.call(Flaky(1, RateLimitedError("api", 60.0)))
    assert clock.sleeps == [pytest.approx(2.0), pytest.approx(5.0)]
    custom = Retry(attempts=2, jitter="none", retry_after=lambda e: 1.5, clock=clock)
    custom.call(Flaky(1))
    assert clock.sleeps[-1] == pytest.approx(1.5)


def test_budget_caps_retries_to_a_fraction_of_calls(clock: ManualClock) -> None:
    """During an outage a 10% budget lets through about one retry per ten calls, not 3 per call."""
    budget = RetryBudget(ratio=0.1, min_retries_per_second=0.0, window=10.0, clock=clock)
    retry = Retry(attempts=3, initial_delay=0.0, max_delay=0.0, budget=budget, clock=clock)
    attempts = 0

    def down() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError

    for _ in range(1000):
        with pytest.raises(ConnectionError):
            retry.call(down)
    retries = attempts - 1000
    assert 90 <= retries <= 101
    assert budget.stats()["denied_total"] > 800


def test_budget_floor_allows_retries_when_quiet(clock: ManualClock) -> None:
    """A quiet client may still retry min_retries_per_second x window times per window."""
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.5, window=10.0, clock=clock)
    assert [budget.try_withdraw() for _ in range(6)] == [True] * 5 + [False]
    clock.advance(10.0)
    assert budget.try_withdraw()


def test_listeners_hear_each_retry(clock: ManualClock) -> None:
    """RetryScheduled carries the attempt number, the wait and the error."""
    events: list[Event] = []
    retry = Retry(attempts=3, jitter="none", clock=clock, listeners=[events.append])
    retry.call(Flaky(2))
    scheduled = [e for e in events if isinstance(e, RetryScheduled)]
    assert [(e.attempt, e.delay) for e in scheduled] == [(1, 0.1), (2, pytest.approx(0.2))]
    assert all(isinstance(e.error, ConnectionError) for e in scheduled)
    assert retry.stats()["retries_total"] == 2


def test_decorator_sync_and_async(clock: ManualClock) -> None:
    """The decorator retries sync and async functions alike."""
    retry = Retry(attempts=3, clock=clock)
    sync_flaky = Flaky(2)

    @retry
    def sync_call() -> object:
        return sync_flaky()

    async_calls = itertools.count()

    @retry
    async def async_call() -> str:
        if next(async_calls) < 2:
            raise ConnectionError
        return "async ok"

    assert sync_call() == "ok"
    assert asyncio.run(async_call()) == "async ok"
    assert len(clock.sleeps) == 4


def test_attempt_loop_shapes(clock: ManualClock) -> None:
    """``for attempt in retry.attempts(): with attempt:`` retries a block, sync and async."""
    retry = Retry(attempts=4, clock=clock)
    flaky = Flaky(2)
    for attempt in retry.attempts():
        with attempt:
            flaky()
    assert flaky.calls == 3
    assert attempt.number == 3

    always = Flaky(99)
    with pytest.raises(ConnectionError):
        for attempt in retry.attempts():
            with attempt:
                always()
    assert always.calls == 4

    async def scenario() -> int:
        async_flaky = Flaky(1)
        async for attempt in retry.attempts_async():
            with attempt:
                async_flaky()
        return async_flaky.calls

    assert asyncio.run(scenario()) == 2


@pytest.mark.parametrize(
    ("field", "config"),
    [
        ("attempts", {"attempts": 0}),
        ("attempts", {"attempts": 10**6}),
        ("deadline", {"deadline": -1}),
        ("initial_delay", {"initial_delay": -0.1}),
        ("multiplier", {"multiplier": 0.5}),
        ("max_delay", {"initial_delay": 5.0, "max_delay": 1.0}),
        ("jitter", {"jitter": "random"}),
        ("jitter_ratio", {"jitter_ratio": 1.5}),
        ("on", {"on": 42}),
        ("budget", {"budget": 0.2}),
        ("retry_after_max", {"retry_after_max": float("nan")}),
    ],
)
def test_invalid_configuration_names_the_field(field: str, config: dict[str, object]) -> None:
    """Bad retry settings are refused with the field named."""
    with pytest.raises(ConfigError, match=f"Retry.{field}"):
        Retry(**config)  # type: ignore[arg-type]


def test_invalid_budget_configuration() -> None:
    """Budget fields are checked too."""
    with pytest.raises(ConfigError, match="RetryBudget.ratio"):
        RetryBudget(ratio=2.0)
    with pytest.raises(ConfigError, match="RetryBudget.window"):
        RetryBudget(window=0)
