"""Redis backends: one rate limit and one circuit breaker shared by many processes.

In-process primitives give each process its own limit and its own breaker, so N replicas of a
service let N times the intended load through and each learns of an outage on its own. These
classes keep the state in Redis instead, updated by Lua scripts (``_redis_scripts``) that run
atomically in one round trip and read Redis's clock, so every process sees one bucket and one
window whatever its own clock says.

When Redis cannot be reached, the behaviour is the ``on_unavailable`` setting, never an unhandled
error:

- ``"local"`` (default): fall back to an in-process limiter or breaker with the same settings;
- ``"allow"``: fail open, admitting every call;
- ``"reject"``: fail closed, rejecting every call (RateLimitedError / CircuitOpenError).

A small internal breaker watches Redis itself, so during an outage calls take the fallback at
once instead of each waiting out a connection timeout. Configure the Redis client's own
``socket_timeout`` and ``socket_connect_timeout``: they bound the wait before the fallback.

Requires the ``redis`` package (``pip install swarmguard[redis]``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import threading
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import _redis_scripts as scripts
from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import CircuitOpenError, ConfigError, RateLimitedError
from ._filters import ExceptionFilter
from ._shapes import delegating_decorator
from .breaker import CircuitBreaker
from .events import BreakerState, BreakerStateChanged, CallRejected, Listener, Listeners
from .ratelimit import KeyedRateLimiter, RateLimiter

__all__ = [
    "OnUnavailable",
    "RedisCircuitBreaker",
    "RedisKeyedRateLimiter",
    "RedisRateLimiter",
    "async_redis_client",
    "redis_client",
]

P = ParamSpec("P")
R = TypeVar("R")

OnUnavailable = Literal["local", "allow", "reject"]
_MODES = ("local", "allow", "reject")

# What "Redis is unreachable" looks like; any other Redis error is a bug and propagates.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica mid-failover
)
# Also skipped: the health breaker's own rejection while Redis is known to be down.
_SKIP: tuple[type[BaseException], ...] = (CircuitOpenError, *_UNAVAILABLE)


def redis_client(url: str, *, timeout: float = 0.25) -> redis.Redis:
    """A client suited to these backends: short timeouts and no client-side retries.

    redis-py's defaults (a 5 s connect timeout and retries with backoff) spend seconds on a
    refused connection before the ``on_unavailable`` fallback can act; a rate-limit decision
    should cost a round trip, not seconds.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def async_redis_client(url: str, *, timeout: float = 0.25) -> redis.asyncio.Redis:
    """The asyncio counterpart of :func:`redis_client`."""
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 0),
    )


def _health_breaker(name: str, clock: Clock) -> CircuitBreaker:
    """A breaker around Redis itself: after repeated connection errors, skip Redis for 1 s."""
    return CircuitBreaker(
        f"{name}.redis",
        failure_rate_threshold=0.5,
        minimum_calls=2,
        window=5.0,
        buckets=5,
        open_timeout=1.0,
        record=_UNAVAILABLE,
        clock=clock,
    )


class _RedisBackend:
    """Clients, scripts and the unavailability policy shared by the backends (strictly private)."""

    def __init__(
        self,
        kind: str,
        name: str,
        client: redis.Redis | None,
        async_client: redis.asyncio.Redis | None,
        on_unavailable: str,
        clock: Clock,
        script_texts: dict[str, str],
    ) -> None:
        if client is None and async_client is None:
            raise ConfigError(f"{kind}.client", "give a redis.Redis, a redis.asyncio.Redis or both")
        if on_unavailable not in _MODES:
            raise ConfigError(
                f"{kind}.on_unavailable", f"must be one of {_MODES}, got {on_unavailable!r}"
            )
        self.client = client
        self.async_client = async_client
        self.on_unavailable = on_unavailable
        self.health = _health_breaker(name, clock)
        self.fallbacks = 0
        self._sync = (
            {k: client.register_script(t) for k, t in script_texts.items()} if client else {}
        )
        self._async = (
            {k: async_client.register_script(t) for k, t in script_texts.items()}
            if async_client
            else {}
        )

    def run(self, script: str, keys: list[str], args: list[Any]) -> list[Any] | None:
        """Run a script; None if Redis is unavailable (counted as a fallback)."""
        if self.client is None:
            raise RuntimeError("this backend was given only an async client: use the async methods")
        try:
            return cast(list[Any], self.health.call(self._sync[script], keys, args))
        except _SKIP:
            self.fallbacks += 1
            return None

    async def run_async(self, script: str, keys: list[str], args: list[Any]) -> list[Any] | None:
        """Run a script from async code; None if Redis is unavailable."""
        if self.async_client is None:
            return await asyncio.to_thread(self.run, script, keys, args)
        try:
            return cast(list[Any], await self.health.call_async(self._async[script], keys, args))
        except _SKIP:
            self.fallbacks += 1
            return None


class _RedisBucket:
    """Shared logic of the Redis limiters (strictly private)."""

    _kind = "RedisRateLimiter"

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        burst: float | None,
        client: redis.Redis | None,
        async_client: redis.asyncio.Redis | None,
        key_prefix: str,
        on_unavailable: OnUnavailable,
        max_wait: v.Seconds,
        clock: Clock,
        listeners: tuple[Listener, ...] | list[Listener],
    ) -> None:
        # The local limiter validates the shared settings and is the "local" fallback.
        self.local = RateLimiter(
            name, rate=rate, burst=burst, max_wait=max_wait, clock=clock, listeners=listeners
        )
        self.name = self.local.name
        self.rate = self.local.rate
        self.burst = self.local.burst
        self.max_wait = self.local.max_wait
        self.key_prefix = v.name(f"{self._kind}.key_prefix", key_prefix)
        self._backend = _RedisBackend(
            self._kind,
            self.name,
            client,
            async_client,
            on_unavailable,
            clock,
            {"acquire": scripts.RATE_LIMIT_ACQUIRE, "refund": scripts.RATE_LIMIT_REFUND},
        )
        self._sleep = clock.sleep
        self._sleep_async = clock.sleep_async
        self._now = clock.now
        self._listeners = Listeners(tuple(listeners))
        self._lock = threading.Lock()
        self._requests = 0
        self._rejections = 0
        interval = 1.0 / self.rate
        self._interval = interval
        self._limit = self.burst * interval + 1e-9 * interval

    def _key(self, key: Hashable | None) -> str:
        return (
            f"{self.key_prefix}:{self.name}"
            if key is None
            else f"{self.key_prefix}:{self.name}:{key}"
        )

    def _args(self, tokens: float, timeout: float) -> list[str]:
        if not 0 < tokens <= self.burst:
            raise ValueError(
                f"{self._kind} {self.name!r}: cannot take {tokens} tokens "
                f"(must be > 0 and <= burst {self.burst})"
            )
        return [repr(tokens * self._interval), repr(self._limit), repr(timeout)]

    def _count(self, admitted: bool) -> None:
        with self._lock:
            self._requests += 1
            self._rejections += not admitted

    # The in-process fallback; the keyed limiter overrides these with a per-key one.
    def _local_try(self, key: Hashable | None, tokens: float) -> bool:
        return self.local.try_acquire(tokens)

    def _local_acquire(self, key: Hashable | None, tokens: float, timeout: float | None) -> None:
        self.local.acquire(tokens, timeout)

    async def _local_acquire_async(
        self, key: Hashable | None, tokens: float, timeout: float | None
    ) -> None:
        await self.local.acquire_async(tokens, timeout)

    def _unavailable_try(self, key: Hashable | None, tokens: float) -> bool:
        mode = self._backend.on_unavailable
        if mode == "local":
            return self._local_try(key, tokens)
        return mode == "allow"

    def _decide(self, reply: list[Any]) -> float:
        """The wait for an admitted request; raises RateLimitedError for a rejected one."""
        admitted, wait = int(reply[0]), float(reply[1])
        self._count(bool(admitted))
        if not admitted:
            error = RateLimitedError(self.name, wait)
            if self._listeners.items:
                self._listeners.emit(CallRejected("rate_limiter", self.name, self._now(), error))
            raise error
        return wait

    def _try(self, key: Hashable | None, tokens: float) -> bool:
        reply = self._backend.run("acquire", [self._key(key)], self._args(tokens, 0.0))
        if reply is None:
            admitted = self._unavailable_try(key, tokens)
            self._count(admitted)
            return admitted
        admitted = bool(int(reply[0]))
        self._count(admitted)
        return admitted

    def _acquire(self, key: Hashable | None, tokens: float, timeout: v.Seconds | None) -> None:
        limit = -1.0 if timeout is None else v.non_negative("timeout", timeout)
        args = self._args(tokens, limit)
        reply = self._backend.run("acquire", [self._key(key)], args)
        if reply is None:
            self._acquire_unavailable(key, tokens, None if limit < 0 else limit)
            return
        wait = self._decide(reply)
        if wait > 0.0:
            try:
                self._sleep(wait)
            except BaseException:
                self._backend.run("refund", [self._key(key)], [args[0]])
                raise

    async def _acquire_async(
        self, key: Hashable | None, tokens: float, timeout: v.Seconds | None
    ) -> None:
        limit = -1.0 if timeout is None else v.non_negative("timeout", timeout)
        args = self._args(tokens, limit)
        reply = await self._backend.run_async("acquire", [self._key(key)], args)
        if reply is None:
            await self._acquire_unavailable_async(key, tokens, None if limit < 0 else limit)
            return
        wait = self._decide(reply)
        if wait > 0.0:
            try:
                await self._sleep_async(wait)
            except BaseException:
                await self._backend.run_async("refund", [self._key(key)], [args[0]])
                raise

    def _acquire_unavailable(
        self, key: Hashable | None, tokens: float, timeout: float | None
    ) -> None:
        mode = self._backend.on_unavailable
        try:
            if mode == "local":
                self._local_acquire(key, tokens, timeout)
            elif mode == "reject":
                raise RateLimitedError(self.name, self._backend.health.open_timeout)
        except RateLimitedError:
            self._count(False)
            raise
        self._count(True)

    async def _acquire_unavailable_async(
        self, key: Hashable | None, tokens: float, timeout: float | None
    ) -> None:
        mode = self._backend.on_unavailable
        try:
            if mode == "local":
                await self._local_acquire_async(key, tokens, timeout)
            elif mode == "reject":
                raise RateLimitedError(self.name, self._backend.health.open_timeout)
        except RateLimitedError:
            self._count(False)
            raise
        self._count(True)

    def stats(self) -> dict[str, Any]:
        """This process's view: requests, rejections and how often Redis was unavailable."""
        with self._lock:
            return {
                "name": self.name,
                "rate": self.rate,
                "burst": self.burst,
                "requests_total": self._requests,
                "rejections_total": self._rejections,
                "redis_unavailable_total": self._backend.fallbacks,
                "on_unavailable": self._backend.on_unavailable,
            }


class RedisRateLimiter(_RedisBucket):
    """A token bucket in Redis that every process using the same name and prefix shares.

    Same semantics and shapes as :class:`~swarmguard.resilience.RateLimiter` (``try_acquire``,
    ``acquire``, ``acquire_async``, decorator, ``with`` / ``async with``); each decision is one
    round trip. Waiting callers reserve tokens in Redis and sleep locally.

    Args:
        name: The bucket's name; processes sharing it share the limit.
        rate: Tokens added per second (to the shared bucket).
        burst: Bucket capacity, >= 1 (default: ``rate``).
        client: A ``redis.Redis`` for the sync methods.
        async_client: A ``redis.asyncio.Redis`` for the async methods (else they use ``client``
            in a worker thread).
        key_prefix: Prefix of the Redis key (``<prefix>:<name>``).
        on_unavailable: "local", "allow" or "reject" (module docstring).
        max_wait: Longest wait for the decorator and context-manager forms.
        clock: Local time source for sleeping; decisions use Redis's clock.
        listeners: Called with a :class:`CallRejected` on every rejection.
    """

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        burst: float | None = None,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        key_prefix: str = "swarmguard:rl",
        on_unavailable: OnUnavailable = "local",
        max_wait: v.Seconds = 0.0,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        super().__init__(
            name,
            rate=rate,
            burst=burst,
            client=client,
            async_client=async_client,
            key_prefix=key_prefix,
            on_unavailable=on_unavailable,
            max_wait=max_wait,
            clock=clock,
            listeners=listeners,
        )

    def try_acquire(self, tokens: float = 1) -> bool:
        """Take ``tokens`` from the shared bucket if available now."""
        return self._try(None, tokens)

    def acquire(self, tokens: float = 1, timeout: v.Seconds | None = None) -> None:
        """Take ``tokens``, sleeping as needed; RateLimitedError if that exceeds ``timeout``."""
        self._acquire(None, tokens, timeout)

    async def acquire_async(self, tokens: float = 1, timeout: v.Seconds | None = None) -> None:
        """Like :meth:`acquire`, for async code."""
        await self._acquire_async(None, tokens, timeout)

    def __enter__(self) -> RedisRateLimiter:
        self.acquire(1, self.max_wait)
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> RedisRateLimiter:
        await self.acquire_async(1, self.max_wait)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function: one shared token per call."""
        limiter = self
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def redis_limiter_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                await limiter.acquire_async(1, limiter.max_wait)
                return await async_func(*args, **kwargs)

            return cast(Callable[P, R], redis_limiter_async_wrapper)

        @functools.wraps(func)
        def redis_limiter_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            limiter.acquire(1, limiter.max_wait)
            return func(*args, **kwargs)

        return redis_limiter_wrapper


class RedisKeyedRateLimiter(_RedisBucket):
    """One shared token bucket per key, in Redis (each key expires once its bucket is full).

    Memory is bounded on both sides: this process holds nothing per key while Redis is up, and
    Redis drops a key's bucket as soon as it has refilled (its TTL is the refill time). The
    "local" fallback is an in-process :class:`KeyedRateLimiter` of at most ``local_max_keys``.
    """

    _kind = "RedisKeyedRateLimiter"

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        burst: float | None = None,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        key_prefix: str = "swarmguard:rl",
        on_unavailable: OnUnavailable = "local",
        local_max_keys: int = 100_000,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        super().__init__(
            name,
            rate=rate,
            burst=burst,
            client=client,
            async_client=async_client,
            key_prefix=key_prefix,
            on_unavailable=on_unavailable,
            max_wait=0.0,
            clock=clock,
            listeners=listeners,
        )
        self.local_keyed = KeyedRateLimiter(
            self.name, rate=rate, burst=burst, max_keys=local_max_keys, clock=clock
        )

    def _local_try(self, key: Hashable | None, tokens: float) -> bool:
        return self.local_keyed.try_acquire(key, tokens)

    def _local_acquire(self, key: Hashable | None, tokens: float, timeout: float | None) -> None:
        self.local_keyed.acquire(key, tokens, timeout)

    async def _local_acquire_async(
        self, key: Hashable | None, tokens: float, timeout: float | None
    ) -> None:
        await self.local_keyed.acquire_async(key, tokens, timeout)

    def try_acquire(self, key: Hashable, tokens: float = 1) -> bool:
        """Take ``tokens`` from ``key``'s shared bucket if available now."""
        return self._try(key, tokens)

    def acquire(self, key: Hashable, tokens: float = 1, timeout: v.Seconds | None = None) -> None:
        """Take ``tokens`` from ``key``'s bucket, sleeping as needed, at most ``timeout``."""
        self._acquire(key, tokens, timeout)

    async def acquire_async(
        self, key: Hashable, tokens: float = 1, timeout: v.Seconds | None = None
    ) -> None:
        """Like :meth:`acquire`, for async code."""
        await self._acquire_async(key, tokens, timeout)


_STATE_BY_CODE = {state.value: state for state in BreakerState}
_REJECTED = -4
_CLOSED = -1
_UNRECORDED = -2
_METRICS = -3


class RedisCircuitBreaker:
    """A circuit breaker whose window and state live in Redis, shared by every process.

    Same rules, settings and shapes as :class:`~swarmguard.resilience.CircuitBreaker`. To keep
    the shared breaker cheap, a process that last saw it CLOSED admits calls without asking Redis
    for ``sync_interval`` seconds and batches its successes into the next round trip; failures,
    slow calls, probes and every other state go to Redis at once (one round trip to admit, one to
    record). So another process's decision to open reaches this one within ``sync_interval``;
    0 makes every call consult Redis.

    Args:
        name: The breaker's name; processes sharing it (and the prefix) share the breaker.
        client: A ``redis.Redis`` for sync calls.
        async_client: A ``redis.asyncio.Redis`` for async calls (else ``client`` in a thread).
        key_prefix: Prefix of the Redis keys.
        sync_interval: Longest time a CLOSED verdict is reused without asking Redis, seconds.
        on_unavailable: "local", "allow" or "reject" (module docstring).
        **config: The CircuitBreaker settings (failure_rate_threshold, window, buckets, ...).
    """

    def __init__(
        self,
        name: str,
        *,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        key_prefix: str = "swarmguard:cb",
        sync_interval: v.Seconds = 0.1,
        on_unavailable: OnUnavailable = "local",
        failure_rate_threshold: float = 0.5,
        window: v.Seconds = 60.0,
        buckets: int = 10,
        minimum_calls: int = 10,
        slow_call_duration: v.Seconds | None = None,
        slow_call_rate_threshold: float = 1.0,
        open_timeout: v.Seconds = 30.0,
        half_open_max_probes: int = 1,
        half_open_successes: int = 1,
        record: ExceptionFilter = Exception,
        ignore: ExceptionFilter = (),
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        # The local breaker validates every shared setting and is the "local" fallback.
        self.local = CircuitBreaker(
            name,
            failure_rate_threshold=failure_rate_threshold,
            window=window,
            buckets=buckets,
            minimum_calls=minimum_calls,
            slow_call_duration=slow_call_duration,
            slow_call_rate_threshold=slow_call_rate_threshold,
            open_timeout=open_timeout,
            half_open_max_probes=half_open_max_probes,
            half_open_successes=half_open_successes,
            record=record,
            ignore=ignore,
            clock=clock,
            listeners=listeners,
        )
        local = self.local
        self.name = local.name
        self.key_prefix = v.name("RedisCircuitBreaker.key_prefix", key_prefix)
        self.sync_interval = v.non_negative("RedisCircuitBreaker.sync_interval", sync_interval)
        self._keys = [
            f"{self.key_prefix}:{self.name}:state",
            f"{self.key_prefix}:{self.name}:window",
        ]
        slow_threshold = 2.0 if local.slow_call_duration is None else local.slow_call_rate_threshold
        self._config = [
            repr(local.window / buckets),
            str(buckets),
            repr(local.failure_rate_threshold),
            repr(slow_threshold),
            str(local.minimum_calls),
            repr(local.open_timeout),
            str(local.half_open_max_probes),
            str(local.half_open_successes),
            str(math.ceil((local.window + local.open_timeout) * 1000) + 60_000),
        ]
        self._backend = _RedisBackend(
            "RedisCircuitBreaker",
            self.name,
            client,
            async_client,
            on_unavailable,
            clock,
            {
                "admit": scripts.BREAKER_ADMIT,
                "record": scripts.BREAKER_RECORD,
                "set": scripts.BREAKER_SET_STATE,
                "stats": scripts.BREAKER_STATS,
            },
        )
        self._now = clock.now
        self._listeners = Listeners(tuple(listeners))
        self._lock = threading.Lock()
        self._observed = BreakerState.CLOSED
        self._closed_until = -math.inf  # local time until which CLOSED may be assumed
        self._batched = 0
        self._flushed_at = clock.now()

    # ------------------------------------------------------------------ Redis round trips

    def _observe(self, code: int) -> None:
        """Remember the state Redis reported; tell listeners if it changed."""
        state = _STATE_BY_CODE[int(code)]
        with self._lock:
            source = self._observed
            self._observed = state
            self._closed_until = (
                self._now() + self.sync_interval if state is BreakerState.CLOSED else -math.inf
            )
        if source is not state and self._listeners.items:
            self._listeners.emit(
                BreakerStateChanged("circuit_breaker", self.name, self._now(), source, state)
            )

    def _take_batch(self) -> int:
        with self._lock:
            batched, self._batched = self._batched, 0
            self._flushed_at = self._now()
            return batched

    def _reject(self, state_code: int, remaining: str) -> None:
        left = math.inf if remaining == "inf" else float(remaining)
        error = CircuitOpenError(self.name, left)
        if self._listeners.items:
            self._listeners.emit(CallRejected("circuit_breaker", self.name, self._now(), error))
        raise error

    def _admitted(self, reply: list[Any] | None) -> tuple[str, int]:
        """Turn an admit reply (None: Redis unavailable) into (where, admission)."""
        if reply is None:
            mode = self._backend.on_unavailable
            if mode == "local":
                return "local", self.local._admit()
            if mode == "reject":
                raise CircuitOpenError(self.name, self._backend.health.open_timeout)
            return "none", _UNRECORDED
        admission, state_code, remaining = int(reply[0]), int(reply[1]), reply[2]
        self._observe(state_code)
        if admission == _REJECTED:
            self._reject(
                state_code, remaining.decode() if isinstance(remaining, bytes) else remaining
            )
        return "redis", admission

    def _admit(self) -> tuple[str, int]:
        if self._now() < self._closed_until:
            return "redis", _CLOSED
        return self._admitted(self._backend.run("admit", self._keys, self._config))

    async def _admit_async(self) -> tuple[str, int]:
        if self._now() < self._closed_until:
            return "redis", _CLOSED
        return self._admitted(await self._backend.run_async("admit", self._keys, self._config))

    def _record_args(
        self, admission: int, start: float, exc: BaseException | None
    ) -> list[str] | None:
        """Script arguments for this outcome, or None when it only joins the batch."""
        outcome = self.local._classify(exc)
        duration = self.local.slow_call_duration
        slow = duration is not None and self._now() - start >= duration
        if admission == _CLOSED and outcome == 0 and not slow:
            with self._lock:
                self._batched += 1
                due = self._now() - self._flushed_at >= self.sync_interval
            if not due:
                return None
            return [*self._config, str(_CLOSED), str(self._take_batch()), "-1", "0"]
        return [
            *self._config,
            str(admission),
            str(self._take_batch()),
            str(outcome),
            str(int(slow)),
        ]

    def _record(self, where: str, admission: int, start: float, exc: BaseException | None) -> None:
        if where == "local":
            self.local._record(admission, start, exc)
            return
        if where == "none" or admission == _UNRECORDED:
            return
        args = self._record_args(admission, start, exc)
        if args is not None:
            reply = self._backend.run("record", self._keys, args)
            if reply is not None:
                self._observe(int(reply[0]))

    async def _record_async(
        self, where: str, admission: int, start: float, exc: BaseException | None
    ) -> None:
        if where == "local":
            self.local._record(admission, start, exc)
            return
        if where == "none" or admission == _UNRECORDED:
            return
        args = self._record_args(admission, start, exc)
        if args is not None:
            reply = await self._backend.run_async("record", self._keys, args)
            if reply is not None:
                self._observe(int(reply[0]))

    # ------------------------------------------------------------------ public surface

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func`` through the shared breaker."""
        where, admission = self._admit()
        start = self._now()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._record(where, admission, start, exc)
            raise
        self._record(where, admission, start, None)
        return result

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func`` through the shared breaker."""
        where, admission = await self._admit_async()
        start = self._now()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            await self._record_async(where, admission, start, exc)
            raise
        await self._record_async(where, admission, start, None)
        return result

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function."""
        return delegating_decorator(func, self.call, self.call_async)

    def guard(self) -> _RedisBreakerGuard:
        """A context manager protecting one block (``with`` or ``async with``)."""
        return _RedisBreakerGuard(self)

    def flush(self) -> None:
        """Send batched successes now (e.g. before shutdown)."""
        batched = self._take_batch()
        if batched:
            reply = self._backend.run(
                "record", self._keys, [*self._config, str(_CLOSED), str(batched), "-1", "0"]
            )
            if reply is not None:
                self._observe(int(reply[0]))

    def _set(self, state: BreakerState) -> None:
        reply = self._backend.run("set", self._keys, [*self._config, str(state.value)])
        if reply is None:
            raise ConnectionError(f"redis is unavailable: cannot set breaker {self.name!r}")
        self._observe(int(reply[0]))

    def force_open(self) -> None:
        """Reject every call, in every process, until :meth:`reset`."""
        self._set(BreakerState.FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing, in every process, until :meth:`reset`."""
        self._set(BreakerState.DISABLED)

    def metrics_only(self) -> None:
        """Record but never open, in every process, until :meth:`reset`."""
        self._set(BreakerState.METRICS_ONLY)

    def reset(self) -> None:
        """CLOSED with an empty shared window."""
        self._set(BreakerState.CLOSED)

    @property
    def state(self) -> BreakerState:
        """The shared state as Redis has it now (the last observed one if Redis is down)."""
        reply = self._backend.run("stats", self._keys, self._config)
        if reply is not None:
            self._observe(int(reply[0]))
        return self._observed

    def stats(self) -> dict[str, Any]:
        """The shared window and lifetime totals, read from Redis."""
        self.flush()
        reply = self._backend.run("stats", self._keys, self._config)
        if reply is None:
            local = self.local.stats()
            local["redis_unavailable_total"] = self._backend.fallbacks
            return local
        state = _STATE_BY_CODE[int(reply[0])]
        remaining = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        calls, failures, slow = int(reply[2]), int(reply[3]), int(reply[4])
        requests, failures_total = int(reply[5]), int(reply[6])
        return {
            "name": self.name,
            "state": state.name.lower(),
            "window_calls": calls,
            "window_failures": failures,
            "window_slow_calls": slow,
            "window_failure_rate": failures / calls if calls else 0.0,
            "requests_total": requests,
            "successes_total": requests - failures_total,
            "failures_total": failures_total,
            "slow_calls_total": int(reply[7]),
            "rejections_total": int(reply[8]),
            "open_remaining_seconds": None if remaining == "inf" else float(remaining),
            "redis_unavailable_total": self._backend.fallbacks,
        }

    def __repr__(self) -> str:
        return f"<RedisCircuitBreaker {self.name!r} {self._observed.name}>"


class _RedisBreakerGuard:
    """One protected block (strictly private; get it from ``RedisCircuitBreaker.guard()``)."""

    __slots__ = ("_admission", "_breaker", "_start", "_where")

    def __init__(self, breaker: RedisCircuitBreaker) -> None:
        self._breaker = breaker
        self._where = "none"
        self._admission = _UNRECORDED
        self._start = 0.0

    def __enter__(self) -> _RedisBreakerGuard:
        self._where, self._admission = self._breaker._admit()
        self._start = self._breaker._now()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._breaker._record(self._where, self._admission, self._start, exc)

    async def __aenter__(self) -> _RedisBreakerGuard:
        self._where, self._admission = await self._breaker._admit_async()
        self._start = self._breaker._now()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._breaker._record_async(self._where, self._admission, self._start, exc)
