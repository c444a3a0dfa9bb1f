"""Retry with exponential backoff, jitter, a deadline, Retry-After and a retry budget.

The delay before retry ``n`` (n = 1 for the first retry) is::

    base(n) = min(max_delay, initial_delay * multiplier ** (n - 1))

then jittered (keep in sync with docs/resilience.md, "Retry"):

- ``"proportional"`` (default, the report's +-25%): ``base(n) * (1 + jitter_ratio * U(-1, 1))``
- ``"full"``: ``U(0, base(n))`` (AWS "full jitter": the least synchronised clients)
- ``"decorrelated"``: ``min(max_delay, U(initial_delay, 3 * previous_delay))``
- ``"none"``: ``base(n)``

and finally raised to the error's Retry-After hint (capped at ``retry_after_max``) when present.

A call is given up, and its last error re-raised (or its last result returned), when any of these
holds: ``attempts`` attempts were made; the error is not retryable (not matched by ``on``, a
:class:`CircuitOpenError`, or not an ``Exception`` at all, such as a cancellation); the next
attempt would start after the ``deadline``; the retry budget is spent. A zero delay never calls
``sleep``: ``sleep(0)`` is a system call worth tens of microseconds.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._counter import Counter, counter_value, new_counter
from ._errors import CircuitOpenError, ConfigError
from ._filters import ExceptionFilter, checked_filter, matches
from .budget import RetryBudget
from .events import Listener, Listeners, RetryScheduled

__all__ = ["RETRY_ATTEMPTS_MAX", "Attempt", "Jitter", "Retry"]

P = ParamSpec("P")
R = TypeVar("R")

Jitter = Literal["proportional", "full", "decorrelated", "none"]

RETRY_ATTEMPTS_MAX = 1000
"""Past this, retrying is polling: use a loop with its own bound."""

_JITTERS = ("proportional", "full", "decorrelated", "none")


def _retry_after_hint(exc: BaseException) -> float | None:
    """A positive finite ``retry_after`` attribute (seconds), as RateLimitedError carries."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, int | float) and not isinstance(hint, bool) and 0.0 < hint < float("inf"):
        return float(hint)
    return None


class Retry:
    """Runs a call again after transient failures, waiting longer each time.

    Use it as a decorator (sync or async), ``retry.call(fn, ...)`` / ``await
    retry.call_async(fn, ...)``, or as a loop of attempts around a block::

        for attempt in retry.attempts():
            with attempt:
                do_something()

    Args:
        name: Identifies the policy in events, stats and metrics.
        attempts: Most attempts in all, the first included (1..RETRY_ATTEMPTS_MAX).
        deadline: Seconds from the first attempt after which no new attempt starts; None: no limit.
        initial_delay: Base delay before the first retry, seconds (0 retries at once).
        multiplier: Growth of the base delay per retry (>= 1).
        max_delay: Cap on any delay, seconds.
        jitter: "proportional", "full", "decorrelated" or "none".
        jitter_ratio: Spread of proportional jitter, in [0, 1] (0.25 = +-25%).
        on: Exceptions to retry: a type, a tuple of types or a predicate.
        on_result: Predicate over a returned value that asks for a retry (e.g. a 503 response).
        budget: A RetryBudget shared across calls; None: no budget.
        retry_after: A function reading a Retry-After hint (seconds) from an error; by default
            an error's ``retry_after`` attribute. None disables the hint.
        retry_after_max: Cap on a Retry-After hint, seconds.
        random_source: Returns floats in [0, 1); inject one for reproducible jitter.
        clock: Time source; inject a ManualClock in tests.
        listeners: Called with a :class:`RetryScheduled` before every wait.
    """

    __slots__ = (
        "_exhausted",
        "_listeners",
        "_now",
        "_random",
        "_retries",
        "_sleep",
        "_sleep_async",
        "attempts_max",
        "budget",
        "clock",
        "deadline",
        "initial_delay",
        "jitter",
        "jitter_ratio",
        "max_delay",
        "multiplier",
        "name",
        "on",
        "on_result",
        "retry_after",
        "retry_after_max",
    )

    def __init__(
        self,
        name: str = "retry",
        *,
        attempts: int = 3,
        deadline: v.Seconds | None = None,
        initial_delay: v.Seconds = 0.1,
        multiplier: float = 2.0,
        max_delay: v.Seconds = 10.0,
        jitter: Jitter = "proportional",
        jitter_ratio: float = 0.25,
        on: ExceptionFilter = Exception,
        on_result: Callable[[Any], bool] | None = None,
        budget: RetryBudget | None = None,
        retry_after: Callable[[BaseException], float | None] | None = _retry_after_hint,
        retry_after_max: v.Seconds = 60.0,
        random_source: Callable[[], float] = random.random,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        self.name = v.name("Retry.name", name)
        self.attempts_max = v.count("Retry.attempts", attempts, 1, RETRY_ATTEMPTS_MAX)
        self.deadline = v.optional_positive("Retry.deadline", deadline)
        self.initial_delay = v.non_negative("Retry.initial_delay", initial_delay)
        self.multiplier = v.positive("Retry.multiplier", multiplier)
        if self.multiplier < 1.0:
            raise ConfigError("Retry.multiplier", f"must be >= 1, got {multiplier!r}")
        self.max_delay = v.non_negative("Retry.max_delay", max_delay)
        if self.max_delay < self.initial_delay:
            raise ConfigError(
                "Retry.max_delay", f"must be >= initial_delay {self.initial_delay}, got {max_delay}"
            )
        if jitter not in _JITTERS:
            raise ConfigError("Retry.jitter", f"must be one of {_JITTERS}, got {jitter!r}")
        self.jitter: Jitter = jitter
        self.jitter_ratio = v.unit_interval("Retry.jitter_ratio", jitter_ratio)
        self.on = checked_filter("Retry.on", on)
        if on_result is not None and not callable(on_result):
            raise ConfigError("Retry.on_result", "must be a predicate over the result or None")
        self.on_result = on_result
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ConfigError("Retry.budget", f"must be a RetryBudget or None, got {budget!r}")
        self.budget = budget
        self.retry_after = retry_after
        self.retry_after_max = v.non_negative("Retry.retry_after_max", retry_after_max)
        self._random = random_source
        self.clock = clock
        self._now = clock.now
        self._sleep = clock.sleep
        self._sleep_async = clock.sleep_async
        self._listeners = Listeners(tuple(listeners))
        self._retries: Counter[int] = new_counter()
        self._exhausted: Counter[int] = new_counter()

    # ------------------------------------------------------------------ the schedule

    def base_delay(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (1-based)."""
        if self.initial_delay == 0.0:
            return 0.0
        # Cap the exponent so a large retry number cannot overflow the float.
        exponent = min(retry - 1, 1024)
        try:
            grown = self.initial_delay * self.multiplier**exponent
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, grown)

    def _delay(self, retry: int, previous: float, exc: BaseException | None) -> float:
        base = self.base_delay(retry)
        jitter = self.jitter
        if jitter == "proportional":
            delay = base * (1.0 + self.jitter_ratio * (2.0 * self._random() - 1.0))
        elif jitter == "full":
            delay = base * self._random()
        elif jitter == "decorrelated":
            low = self.initial_delay
            high = max(low, 3.0 * previous)
            delay = low + (high - low) * self._random()
        else:
            delay = base
        delay = min(self.max_delay, max(0.0, delay))
        if exc is not None and self.retry_after is not None:
            hint = self.retry_after(exc)
            if hint is not None:
                delay = max(delay, min(hint, self.retry_after_max))
        return delay

    def _retryable(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, Exception)
            and not isinstance(exc, CircuitOpenError)
            and matches(exc, self.on)
        )

    def _next_delay(
        self, attempt: int, previous: float, start: float, exc: BaseException | None, result: Any
    ) -> float | None:
        """The wait before attempt ``attempt + 1``, or None to give up."""
        delay = self._allowed_delay(attempt, previous, start, exc)
        if delay is None:
            next(self._exhausted)
            return None
        next(self._retries)
        if self._listeners.items:
            self._listeners.emit(
                RetryScheduled("retry", self.name, self._now(), attempt, delay, exc, result)
            )
        return delay

    def _allowed_delay(
        self, attempt: int, previous: float, start: float, exc: BaseException | None
    ) -> float | None:
        if attempt >= self.attempts_max:
            return None
        if exc is not None and not self._retryable(exc):
            return None
        delay = self._delay(attempt, previous, exc)
        if self.deadline is not None and self._now() + delay - start > self.deadline:
            return None
        if self.budget is not None and not self.budget.try_withdraw():
            return None
        return delay

    # ------------------------------------------------------------------ shapes

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function."""
        policy = self
        budget = self.budget
        on_result = self.on_result
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def retry_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if budget is not None or policy.deadline is not None:
                    return await policy.call_async(async_func, *args, **kwargs)
                try:
                    result = await async_func(*args, **kwargs)
                except Exception as exc:
                    return await policy._again_async(async_func, args, kwargs, 0.0, exc, None)
                if on_result is not None and on_result(result):
                    return await policy._again_async(async_func, args, kwargs, 0.0, None, result)
                return result

            return cast(Callable[P, R], retry_async_wrapper)

        @functools.wraps(func)
        def retry_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            # The first attempt pays for nothing it does not use: no clock, no iterator.
            if budget is not None or policy.deadline is not None:
                return policy.call(func, *args, **kwargs)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                return policy._again(func, args, kwargs, 0.0, exc, None)
            if on_result is not None and on_result(result):
                return policy._again(func, args, kwargs, 0.0, None, result)
            return result

        return retry_wrapper

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)``, retrying as configured."""
        if self.budget is not None:
            self.budget.deposit()
        start = self._now() if self.deadline is not None else 0.0
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            return self._again(func, args, kwargs, start, exc, None)
        if self.on_result is not None and self.on_result(result):
            return self._again(func, args, kwargs, start, None, result)
        return result

    def _again(
        self,
        func: Callable[..., R],
        args: Any,
        kwargs: Any,
        start: float,
        error: BaseException | None,
        result: Any,
    ) -> R:
        """Retry after a first failed attempt (``error``, or an unwanted ``result``)."""
        attempt = 1
        delay = self.initial_delay
        while True:
            delay_or_none = self._next_delay(attempt, delay, start, error, result)
            if delay_or_none is None:
                return cast(R, self._give_up(error, result))
            delay = delay_or_none
            if delay > 0.0:
                self._sleep(delay)
            attempt += 1
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                error = exc
                continue
            error = None
            if self.on_result is None or not self.on_result(result):
                return cast(R, result)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)``, retrying as configured."""
        if self.budget is not None:
            self.budget.deposit()
        start = self._now() if self.deadline is not None else 0.0
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            return await self._again_async(func, args, kwargs, start, exc, None)
        if self.on_result is not None and self.on_result(result):
            return await self._again_async(func, args, kwargs, start, None, result)
        return result

    async def _again_async(
        self,
        func: Callable[..., Awaitable[R]],
        args: Any,
        kwargs: Any,
        start: float,
        error: BaseException | None,
        result: Any,
    ) -> R:
        """The async twin of :meth:`_again`."""
        attempt = 1
        delay = self.initial_delay
        while True:
            delay_or_none = self._next_delay(attempt, delay, start, error, result)
            if delay_or_none is None:
                return cast(R, self._give_up(error, result))
            delay = delay_or_none
            if delay > 0.0:
                await self._sleep_async(delay)
            attempt += 1
            try:
                result = await func(*args, **kwargs)
            except Exception as exc:
                error = exc
                continue
            error = None
            if self.on_result is None or not self.on_result(result):
                return cast(R, result)

    @staticmethod
    def _give_up(error: BaseException | None, result: Any) -> Any:
        if error is None:
            return result
        try:
            raise error
        finally:
            del error  # break the error -> traceback -> frame -> error cycle

    def attempts(self) -> Iterator[Attempt]:
        """Attempts for a ``for attempt in retry.attempts(): with attempt: ...`` loop."""
        if self.budget is not None:
            self.budget.deposit()
        start = self._now() if self.deadline is not None else 0.0
        delay = self.initial_delay
        number = 1
        while True:
            attempt = Attempt(number)
            yield attempt
            if attempt.error is None:
                return
            delay_or_none = self._next_delay(number, delay, start, attempt.error, None)
            if delay_or_none is None:
                self._give_up(attempt.error, None)
            delay = cast(float, delay_or_none)
            if delay > 0.0:
                self._sleep(delay)
            number += 1

    async def attempts_async(self) -> AsyncIterator[Attempt]:
        """Attempts for an ``async for attempt in retry.attempts_async(): with attempt:`` loop."""
        if self.budget is not None:
            self.budget.deposit()
        start = self._now() if self.deadline is not None else 0.0
        delay = self.initial_delay
        number = 1
        while True:
            attempt = Attempt(number)
            yield attempt
            if attempt.error is None:
                return
            delay_or_none = self._next_delay(number, delay, start, attempt.error, None)
            if delay_or_none is None:
                self._give_up(attempt.error, None)
            delay = cast(float, delay_or_none)
            if delay > 0.0:
                await self._sleep_async(delay)
            number += 1

    def stats(self) -> dict[str, Any]:
        """The policy's configuration and, if it has one, its budget's state."""
        result: dict[str, Any] = {
            "name": self.name,
            "attempts": self.attempts_max,
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
            "retries_total": counter_value(self._retries),
            "exhausted_total": counter_value(self._exhausted),
        }
        if self.budget is not None:
            result["budget"] = self.budget.stats()
        return result

    def __repr__(self) -> str:
        return f"<Retry {self.name!r} attempts={self.attempts_max}>"


class Attempt:
    """One attempt of a retry loop: a context manager that captures a retryable error.

    Every exception is captured when the block raises it; the loop decides whether to retry it,
    and re-raises it (with its traceback) when it does not.
    """

    __slots__ = ("error", "number")

    def __init__(self, number: int) -> None:
        self.number = number
        """1 for the first attempt."""
        self.error: BaseException | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False  # cancellations and interrupts propagate at once
        self.error = exc
        return True
