"""Token-bucket rate limiters: one bucket, or one bucket per key.

The bucket is kept in its GCRA form (the "theoretical arrival time", TAT): a single float per
bucket instead of a token count and a timestamp. With ``interval = 1 / rate`` and
``tolerance = burst * interval``, the tokens available at time ``now`` are::

    tokens(now) = burst - (max(TAT, now) - now) / rate

and taking ``n`` tokens moves ``TAT`` to ``max(TAT, now) + n * interval``, allowed while that lies
no more than ``tolerance`` ahead of ``now``. This is exactly a bucket of capacity ``burst`` refilled
smoothly at ``rate`` tokens per second (keep in sync with docs/resilience.md, "Rate limiter").

A blocking acquire that must wait *reserves* its tokens (TAT moves past ``now + tolerance``) and
then sleeps exactly until they exist, so waiters are served in arrival order and nobody polls; a
waiter that is cancelled gives its tokens back. There is no background thread.

Critical sections are ``with lock:`` blocks that make no call: the clock is read before the lock
is taken. On CPython a call is a point where the interpreter may switch threads, and a thread
switched out while holding the lock makes every other thread queue behind it (measured: two
threads then get a third of one thread's throughput; without such points they get all of it). A
clock read a moment early can only make the bucket stricter, never looser.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigError, RateLimitedError
from .events import CallRejected, Listener, Listeners

__all__ = ["KEYED_LIMITER_KEYS_MAX", "KeyedRateLimiter", "RateLimiter"]

P = ParamSpec("P")
R = TypeVar("R")

KEYED_LIMITER_KEYS_MAX = 10_000_000
"""Upper bound on ``max_keys``: at ~100 bytes an entry, 1 GB of buckets."""

# Float rounding must not refuse the last token of a full burst (10 x 0.1 > 1.0 in binary).
_TOLERANCE_SLACK = 1e-9


class _Bucket:
    """Shared configuration and counters of both limiters (strictly private)."""

    __slots__ = (
        "_interval",
        "_limit",
        "_listeners",
        "_lock",
        "_now",
        "_rejections",
        "_requests",
        "_sleep",
        "_sleep_async",
        "burst",
        "clock",
        "max_wait",
        "name",
        "rate",
    )

    def __init__(
        self,
        kind: str,
        name: str,
        rate: float,
        burst: float | None,
        max_wait: v.Seconds,
        clock: Clock,
        listeners: tuple[Listener, ...] | list[Listener],
    ) -> None:
        self.name = v.name(f"{kind}.name", name)
        self.rate = v.positive(f"{kind}.rate", rate)
        self.burst = v.positive(f"{kind}.burst", rate if burst is None else burst)
        if self.burst < 1.0:
            raise ConfigError(f"{kind}.burst", f"must be >= 1 token, got {burst!r}")
        self.max_wait = v.non_negative(f"{kind}.max_wait", max_wait)
        self.clock = clock
        self._now = clock.now
        self._sleep = clock.sleep
        self._sleep_async = clock.sleep_async
        self._interval = 1.0 / self.rate
        # The farthest TAT may lie ahead of now when a request is admitted without waiting.
        self._limit = self.burst * self._interval + _TOLERANCE_SLACK * self._interval
        self._lock = threading.Lock()
        self._listeners = Listeners(tuple(listeners))
        self._requests = 0
        self._rejections = 0

    def _check_tokens(self, tokens: float) -> float:
        if not 0 < tokens <= self.burst:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: cannot take {tokens} tokens "
                f"(must be > 0 and <= burst {self.burst})"
            )
        return tokens * self._interval

    def _rejected(self, retry_after: float) -> RateLimitedError:
        error = RateLimitedError(self.name, retry_after)
        if self._listeners.items:
            self._listeners.emit(CallRejected("rate_limiter", self.name, self._now(), error))
        return error

    def add_listener(self, listener: Listener) -> None:
        """Subscribe to this limiter's rejections."""
        self._listeners.add(listener)

    def stats(self) -> dict[str, Any]:
        """Counts since creation (requests include rejections)."""
        with self._lock:
            return {
                "name": self.name,
                "rate": self.rate,
                "burst": self.burst,
                "requests_total": self._requests,
                "rejections_total": self._rejections,
            }


class RateLimiter(_Bucket):
    """A token bucket of ``burst`` tokens refilled at ``rate`` tokens per second.

    ``try_acquire(n)`` never waits; ``acquire(n, timeout)`` and ``await acquire_async(n, timeout)``
    sleep exactly until the tokens exist, or raise :class:`RateLimitedError` at once if that would
    take longer than ``timeout``. As a decorator or context manager (``with limiter:`` /
    ``async with limiter:``) each call takes one token, waiting at most ``max_wait`` seconds
    (default 0: reject rather than queue).

    Args:
        name: Identifies the limiter in errors, events, stats and metrics.
        rate: Tokens added per second.
        burst: Bucket capacity, >= 1 (default: ``rate``): the calls that may go through back to
            back after an idle period.
        max_wait: Longest wait for the decorator and context-manager forms.
        clock: Time source; inject a ManualClock in tests.
        listeners: Called with a :class:`CallRejected` on every rejection.
    """

    __slots__ = ("_tat",)

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        burst: float | None = None,
        max_wait: v.Seconds = 0.0,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        super().__init__("RateLimiter", name, rate, burst, max_wait, clock, listeners)
        self._tat = self._now()

    def try_acquire(self, tokens: float = 1) -> bool:
        """Take ``tokens`` if they are available now; never waits."""
        cost = self._interval if tokens == 1 else self._check_tokens(tokens)
        now = self._now()
        with self._lock:  # no call inside: see the module docstring
            tat = self._tat
            if tat < now:
                tat = now
            tat += cost
            self._requests += 1
            if tat - now > self._limit:
                self._rejections += 1
                return False
            self._tat = tat
            return True

    def available(self) -> float:
        """Tokens in the bucket now (negative while waiters hold reservations)."""
        with self._lock:
            return (self._limit - max(self._tat - self._now(), 0.0)) * self.rate - (
                _TOLERANCE_SLACK
            )

    def _reserve(self, cost: float, timeout: float | None) -> float:
        """Reserve the tokens and return the wait, or raise if the wait exceeds ``timeout``."""
        now = self._now()
        with self._lock:
            tat = self._tat
            if tat < now:
                tat = now
            tat += cost
            wait = tat - now - self._limit
            self._requests += 1
            if wait <= 0.0:
                self._tat = tat
                return 0.0
            if timeout is not None and wait > timeout:
                self._rejections += 1
                rejected = True
            else:
                self._tat = tat
                rejected = False
        if rejected:
            raise self._rejected(wait)
        return wait

    def _refund(self, cost: float) -> None:
        with self._lock:
            self._tat -= cost

    def _take_now(self, cost: float) -> bool:
        """Take ``cost`` if it is there now, counting only a success (slow paths count the rest)."""
        now = self._now()
        with self._lock:
            tat = self._tat
            if tat < now:
                tat = now
            tat += cost
            if tat - now > self._limit:
                return False
            self._tat = tat
            self._requests += 1
            return True

    def acquire(self, tokens: float = 1, timeout: v.Seconds | None = None) -> None:
        """Take ``tokens``, sleeping as long as needed; raise RateLimitedError past ``timeout``."""
        cost = self._interval if tokens == 1 else self._check_tokens(tokens)
        if self._take_now(cost):
            return
        limit = None if timeout is None else v.non_negative("timeout", timeout)
        wait = self._reserve(cost, limit)
        if wait > 0.0:
            try:
                self._sleep(wait)
            except BaseException:
                self._refund(cost)
                raise

    async def acquire_async(self, tokens: float = 1, timeout: v.Seconds | None = None) -> None:
        """Like :meth:`acquire`, suspending the task instead of the thread."""
        cost = self._interval if tokens == 1 else self._check_tokens(tokens)
        if self._take_now(cost):
            return  # the common case: no reservation and no suspension
        limit = None if timeout is None else v.non_negative("timeout", timeout)
        wait = self._reserve(cost, limit)
        if wait > 0.0:
            try:
                await self._sleep_async(wait)
            except BaseException:
                self._refund(cost)  # cancelled while queued: the tokens were never used
                raise

    def __enter__(self) -> RateLimiter:
        self.acquire(1, self.max_wait)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> RateLimiter:
        await self.acquire_async(1, self.max_wait)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Take one token (waiting at most ``max_wait``), then call ``func``."""
        self.acquire(1, self.max_wait)
        return func(*args, **kwargs)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Take one token (waiting at most ``max_wait``), then await ``func``."""
        await self.acquire_async(1, self.max_wait)
        return await func(*args, **kwargs)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function: one token per call."""
        limiter = self
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def limiter_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if not limiter._take_now(limiter._interval):
                    await limiter.acquire_async(1, limiter.max_wait)
                return await async_func(*args, **kwargs)

            return cast(Callable[P, R], limiter_async_wrapper)

        @functools.wraps(func)
        def limiter_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            limiter.acquire(1, limiter.max_wait)
            return func(*args, **kwargs)

        return limiter_wrapper

    def __repr__(self) -> str:
        return f"<RateLimiter {self.name!r} rate={self.rate} burst={self.burst}>"


class KeyedRateLimiter(_Bucket):
    """One token bucket per key (per client, per tenant, ...), in bounded memory.

    Each key costs one dict entry holding one float. A key whose bucket has refilled completely
    is indistinguishable from a key never seen, so it is dropped when the table fills: that
    pruning loses nothing. Only if more than ``max_keys`` keys are all partially drained at once
    are the oldest-added of them forgotten, which can only make the limiter more lenient for
    those keys (they start again with a full bucket), never stricter.

    Args:
        name: Identifies the limiter in errors, events, stats and metrics.
        rate: Tokens added per second to each key's bucket.
        burst: Capacity of each bucket, >= 1 (default: ``rate``).
        max_keys: Most keys held at once (1..KEYED_LIMITER_KEYS_MAX).
        clock: Time source; inject a ManualClock in tests.
        listeners: Called with a :class:`CallRejected` on every rejection.
    """

    __slots__ = ("_evicted", "_tats", "max_keys")

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        burst: float | None = None,
        max_keys: int = 100_000,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        super().__init__("KeyedRateLimiter", name, rate, burst, 0.0, clock, listeners)
        self.max_keys = v.count("KeyedRateLimiter.max_keys", max_keys, 1, KEYED_LIMITER_KEYS_MAX)
        self._tats: dict[Hashable, float] = {}
        self._evicted = 0

    def __len__(self) -> int:
        """Keys currently held."""
        return len(self._tats)

    def try_acquire(self, key: Hashable, tokens: float = 1) -> bool:
        """Take ``tokens`` from ``key``'s bucket if they are available now; never waits."""
        cost = self._interval if tokens == 1 else self._check_tokens(tokens)
        now = self._now()
        with self._lock:
            tats = self._tats
            tat = tats[key] if key in tats else now  # noqa: SIM401 - .get() is a call
            if tat < now:
                tat = now
            tat += cost
            self._requests += 1
            if tat - now > self._limit:
                self._rejections += 1
                return False
            if key not in tats and len(tats) >= self.max_keys:
                tats = self._make_room(now)
            tats[key] = tat
            return True

    def _reserve(self, key: Hashable, cost: float, timeout: float | None) -> float:
        now = self._now()
        with self._lock:
            tats = self._tats
            tat = tats[key] if key in tats else now  # noqa: SIM401 - .get() is a call
            if tat < now:
                tat = now
            tat += cost
            wait = tat - now - self._limit
            self._requests += 1
            if wait > 0.0 and timeout is not None and wait > timeout:
                self._rejections += 1
            else:
                if key not in tats and len(tats) >= self.max_keys:
                    tats = self._make_room(now)
                tats[key] = tat
                return max(wait, 0.0)
        raise self._rejected(wait)

    def _refund(self, key: Hashable, cost: float) -> None:
        with self._lock:
            if key in self._tats:
                self._tats[key] -= cost

    def acquire(self, key: Hashable, tokens: float = 1, timeout: v.Seconds | None = None) -> None:
        """Take ``tokens`` from ``key``'s bucket, sleeping as needed, at most ``timeout``."""
        cost = self._check_tokens(tokens)
        limit = None if timeout is None else v.non_negative("timeout", timeout)
        wait = self._reserve(key, cost, limit)
        if wait > 0.0:
            try:
                self._sleep(wait)
            except BaseException:
                self._refund(key, cost)
                raise

    async def acquire_async(
        self, key: Hashable, tokens: float = 1, timeout: v.Seconds | None = None
    ) -> None:
        """Like :meth:`acquire`, suspending the task instead of the thread."""
        cost = self._check_tokens(tokens)
        limit = None if timeout is None else v.non_negative("timeout", timeout)
        wait = self._reserve(key, cost, limit)
        if wait > 0.0:
            try:
                await self._sleep_async(wait)
            except BaseException:
                self._refund(key, cost)
                raise

    def limit(
        self, key: Hashable, tokens: float = 1, timeout: v.Seconds | None = 0.0
    ) -> _KeyedLimit:
        """A context manager taking ``tokens`` from ``key``'s bucket on entry (``with`` or
        ``async with``), waiting at most ``timeout`` (default 0: reject at once)."""
        return _KeyedLimit(self, key, tokens, timeout)

    def by(
        self, key: Callable[..., Hashable], *, max_wait: v.Seconds = 0.0
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """A decorator taking one token per call from the bucket of ``key(*args, **kwargs)``,
        e.g. ``@limiter.by(lambda request: request.client_id)``; sync or async functions."""
        wait = v.non_negative("max_wait", max_wait)
        limiter = self

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            if inspect.iscoroutinefunction(func):
                async_func = cast(Callable[..., Awaitable[Any]], func)

                @functools.wraps(func)
                async def keyed_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    await limiter.acquire_async(key(*args, **kwargs), 1, wait)
                    return await async_func(*args, **kwargs)

                return cast(Callable[P, R], keyed_async_wrapper)

            @functools.wraps(func)
            def keyed_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                limiter.acquire(key(*args, **kwargs), 1, wait)
                return func(*args, **kwargs)

            return keyed_wrapper

        return decorate

    def _make_room(self, now: float) -> dict[Hashable, float]:
        """Drop full buckets; if that frees too little, forget the oldest-added keys.

        Runs when an insert finds the table full and leaves at least a tenth of it free, so its
        O(max_keys) cost is amortised over at least max_keys / 10 inserts. Returns the new table.
        """
        tats = self._tats
        full = [key for key, tat in tats.items() if tat <= now]
        for key in full:
            del tats[key]
        target = self.max_keys - max(1, self.max_keys // 10)
        excess = len(tats) - target
        if excess > 0:
            for key in list(itertools.islice(tats, excess)):
                del tats[key]
            self._evicted += excess
        # Rebuild: a dict never shrinks on deletion, and insertion-order scans would keep
        # walking the dead slots at its front.
        self._tats = dict(tats)
        return self._tats

    def stats(self) -> dict[str, Any]:
        """Counts since creation, plus keys held and keys forgotten while partly drained."""
        result = super().stats()
        with self._lock:
            result["keys"] = len(self._tats)
            result["max_keys"] = self.max_keys
            result["evicted_total"] = self._evicted
        return result

    def __repr__(self) -> str:
        return f"<KeyedRateLimiter {self.name!r} rate={self.rate} burst={self.burst}>"


class _KeyedLimit:
    """One guarded block of a keyed limiter (strictly private; from ``KeyedRateLimiter.limit``)."""

    __slots__ = ("_key", "_limiter", "_timeout", "_tokens")

    def __init__(
        self,
        limiter: KeyedRateLimiter,
        key: Hashable,
        tokens: float,
        timeout: v.Seconds | None,
    ) -> None:
        self._limiter = limiter
        self._key = key
        self._tokens = tokens
        self._timeout = timeout

    def __enter__(self) -> _KeyedLimit:
        self._limiter.acquire(self._key, self._tokens, self._timeout)
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> _KeyedLimit:
        await self._limiter.acquire_async(self._key, self._tokens, self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None
