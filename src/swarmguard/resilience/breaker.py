"""Circuit breaker with a time-bucketed rolling window.

States and rules (the whole state machine is in this module):

1. CLOSED admits every call. Outcomes land in the current time bucket of a rolling window of
   ``window`` seconds split into ``buckets`` buckets (bucket width = window / buckets; a bucket
   older than the window no longer counts).
2. After a recorded failure or slow call, the window is evaluated: once it holds at least
   ``minimum_calls`` calls and ``failures / calls >= failure_rate_threshold`` or
   ``slow / calls >= slow_call_rate_threshold``, the breaker goes OPEN. A fast success never
   opens it (the latest evidence is good), which is also what keeps successes lock-free.
3. OPEN rejects every call with :class:`CircuitOpenError` until ``open_timeout`` has passed since it
   opened; the first call after that moves it to HALF_OPEN.
4. HALF_OPEN admits at most ``half_open_max_probes`` concurrent probe calls. ``half_open_successes``
   successful probes close the breaker (with an empty window); any failed or slow probe reopens it.
   A probe that ends in neither (an ignored exception, a cancellation) just frees its slot.
5. Manual states: ``force_open()`` rejects everything, ``disable()`` admits everything and records
   nothing, ``metrics_only()`` admits everything and records but never transitions; ``reset()``
   returns to an empty CLOSED.

Which exceptions count: one matching ``record`` (default ``Exception``) and not ``ignore`` is a
failure; one matching ``ignore`` is neither success nor failure; any other ``Exception`` is a
success (the service answered; the caller merely did not like it). Never counted: ``BaseException``s
that are not ``Exception`` (cancellation, ``KeyboardInterrupt``), and rejections by other policies
inside this one (``RateLimitedError``, ``BulkheadFullError``, another breaker's
``CircuitOpenError``): they are local decisions, not evidence about the service. A
``DeadlineExceededError`` from an inner timeout does count: a service too slow to answer is
failing.

Concurrency: no lock is held while the protected call runs, so concurrent calls never serialise.
The CLOSED success path takes no lock at all: it bumps the current bucket's C-level counter
(``_counter``). Everything else takes a short lock that never spans a call or a listener.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._counter import Counter, counter_value, new_counter
from ._errors import BulkheadFullError, CircuitOpenError, RateLimitedError
from ._filters import ExceptionFilter, checked_filter, matches
from .events import BreakerState, BreakerStateChanged, CallRejected, Listener, Listeners

__all__ = ["BREAKER_BUCKETS_MAX", "CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")

BREAKER_BUCKETS_MAX = 1000
"""More buckets than this buys no precision worth the evaluation cost (a sum over all buckets)."""

# Outcomes as the window records them.
_SUCCESS = 0
_FAILURE = 1
_IGNORED = 2

# How a call was admitted; decides what its outcome may change. A non-negative admission is a
# half-open probe, and its value is the half-open period (generation) it was admitted in, so a
# probe that outlives its period cannot close or reopen a later one.
_ADMIT_CLOSED = -1
_ADMIT_UNRECORDED = -2
_ADMIT_METRICS = -3
_REJECT = -4

# Rejections by policies nested inside a breaker say nothing about the protected service.
_LOCAL_REJECTIONS = (RateLimitedError, BulkheadFullError, CircuitOpenError)

# Enum member lookups cost ~100 ns each on 3.11; the hot paths compare module constants.
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_DISABLED = BreakerState.DISABLED
_FORCED_OPEN = BreakerState.FORCED_OPEN
_METRICS_ONLY = BreakerState.METRICS_ONLY


class CircuitBreaker:
    """Stops calling a failing dependency, then probes it to find out when it has recovered.

    Use it as a decorator (``@breaker``), a context manager (``with breaker.guard():`` /
    ``async with breaker.guard():``) or an explicit call (``breaker.call(fn, *args)`` /
    ``await breaker.call_async(fn, *args)``); sync and async callers may share one breaker.

    Args:
        name: Identifies the breaker in errors, events, stats and metrics.
        failure_rate_threshold: Fraction of failed calls in the window, in (0, 1], that opens it.
        window: Length of the rolling window in seconds.
        buckets: Number of time buckets the window is split into (1..BREAKER_BUCKETS_MAX).
        minimum_calls: Calls the window must hold before it may open.
        slow_call_duration: A call lasting at least this long is slow; None disables slow calls.
        slow_call_rate_threshold: Fraction of slow calls in the window, in (0, 1], that opens it.
        open_timeout: Seconds the breaker stays open before admitting a probe.
        half_open_max_probes: Probe calls allowed at the same time while half-open.
        half_open_successes: Successful probes needed to close.
        record: Exceptions that count as failures.
        ignore: Exceptions that count as neither success nor failure (takes precedence).
        clock: Time source; inject a ManualClock in tests.
        listeners: Called with a :class:`BreakerStateChanged` on every transition and a
            :class:`CallRejected` on every rejection.
    """

    __slots__ = (
        "_bucket_epoch",
        "_bucket_failures",
        "_bucket_slow",
        "_bucket_successes",
        "_buckets",
        "_current_end",
        "_current_epoch",
        "_current_successes",
        "_fast",
        "_half_open_generation",
        "_half_open_probes",
        "_half_open_successes",
        "_inverse_width",
        "_listeners",
        "_lock",
        "_now",
        "_open_until",
        "_quiet",
        "_reject_until",
        "_rejections",
        "_retired_successes",
        "_state",
        "_total_failures",
        "_total_slow",
        "clock",
        "failure_rate_threshold",
        "half_open_max_probes",
        "half_open_successes",
        "ignore",
        "minimum_calls",
        "name",
        "open_timeout",
        "record",
        "slow_call_duration",
        "slow_call_rate_threshold",
        "window",
    )

    def __init__(
        self,
        name: str,
        *,
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
        self.name = v.name("CircuitBreaker.name", name)
        self.failure_rate_threshold = v.fraction(
            "CircuitBreaker.failure_rate_threshold", failure_rate_threshold
        )
        self.window = v.positive("CircuitBreaker.window", window)
        self._buckets = v.count("CircuitBreaker.buckets", buckets, 1, BREAKER_BUCKETS_MAX)
        self.minimum_calls = v.count("CircuitBreaker.minimum_calls", minimum_calls)
        self.slow_call_duration = v.optional_positive(
            "CircuitBreaker.slow_call_duration", slow_call_duration
        )
        self.slow_call_rate_threshold = v.fraction(
            "CircuitBreaker.slow_call_rate_threshold", slow_call_rate_threshold
        )
        self.open_timeout = v.positive("CircuitBreaker.open_timeout", open_timeout)
        self.half_open_max_probes = v.count(
            "CircuitBreaker.half_open_max_probes", half_open_max_probes
        )
        self.half_open_successes = v.count(
            "CircuitBreaker.half_open_successes", half_open_successes
        )
        self.record = checked_filter("CircuitBreaker.record", record)
        self.ignore = checked_filter("CircuitBreaker.ignore", ignore)
        self.clock = clock
        self._now = clock.now
        self._listeners = Listeners(tuple(listeners))
        self._quiet = not listeners  # no listener: rejections need no event record
        self._reject_until = -math.inf
        self._lock = threading.Lock()
        self._inverse_width = self._buckets / self.window
        self._state = _CLOSED
        self._fast = True  # CLOSED, so the lock-free success path applies
        self._open_until = 0.0
        self._half_open_probes = 0
        self._half_open_successes = 0
        self._half_open_generation = 0
        self._rejections: Counter[int] = new_counter()
        self._retired_successes = 0
        self._total_failures = 0
        self._total_slow = 0
        epoch = self._epoch(self._now())
        self._bucket_epoch = [epoch - self._buckets] * self._buckets
        self._bucket_successes: list[Counter[int]] = [new_counter() for _ in range(self._buckets)]
        self._bucket_failures = [0] * self._buckets
        self._bucket_slow = [0] * self._buckets
        self._current_epoch = epoch
        self._current_end = (epoch + 1) / self._inverse_width
        slot = epoch % self._buckets
        self._bucket_epoch[slot] = epoch
        self._current_successes = self._bucket_successes[slot]

    # ------------------------------------------------------------------ public surface

    @property
    def state(self) -> BreakerState:
        """The current state (an OPEN breaker whose timeout passed reads as HALF_OPEN)."""
        changes: list[BreakerStateChanged] = []
        with self._lock:
            if self._state is _OPEN and self._now() >= self._open_until:
                self._enter(_HALF_OPEN, changes)
            state = self._state
        self._announce(changes)
        return state

    def add_listener(self, listener: Listener) -> None:
        """Subscribe to this breaker's events."""
        self._listeners.add(listener)
        self._quiet = False
        self._refresh_reject_until()

    def remove_listener(self, listener: Listener) -> None:
        """Unsubscribe a listener added before."""
        self._listeners.remove(listener)
        self._quiet = not self._listeners.items
        self._refresh_reject_until()

    def force_open(self) -> None:
        """Reject every call until :meth:`reset` (e.g. while a dependency is under maintenance)."""
        self._set_manual(_FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing until :meth:`reset`."""
        self._set_manual(_DISABLED)

    def metrics_only(self) -> None:
        """Admit every call and record outcomes, but never open (to tune thresholds safely)."""
        self._set_manual(_METRICS_ONLY)

    def reset(self) -> None:
        """Return to CLOSED with an empty window, from any state."""
        self._set_manual(_CLOSED)

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot: state, the current window, and lifetime totals."""
        now = self._now()
        with self._lock:
            state = self._state
            calls, failures, slow = self._window_counts(self._epoch(now))
            successes = self._retired_successes + sum(
                counter_value(c) for c in self._bucket_successes
            )
            remaining = self._remaining(now) if state in (_OPEN, _FORCED_OPEN) else 0.0
            return {
                "name": self.name,
                "state": state.name.lower(),
                "window_calls": calls,
                "window_failures": failures,
                "window_slow_calls": slow,
                "window_failure_rate": failures / calls if calls else 0.0,
                "requests_total": successes + self._total_failures,
                "successes_total": successes,
                "failures_total": self._total_failures,
                "slow_calls_total": self._total_slow,
                "rejections_total": counter_value(self._rejections),
                "open_remaining_seconds": remaining if math.isfinite(remaining) else None,
            }

    def guard(self) -> _BreakerGuard:
        """A context manager protecting one block: ``with breaker.guard():`` or ``async with``."""
        return _BreakerGuard(self)

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker."""
        return self._call_admitted(self._admit(), func, args, kwargs)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)`` through the breaker."""
        return await self._call_admitted_async(self._admit(), func, args, kwargs)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function."""
        timed = self.slow_call_duration is not None
        if inspect.iscoroutinefunction(func):
            wrap_async = self._wrap_async_timed if timed else self._wrap_async
            return cast(Callable[P, R], wrap_async(func))
        return self._wrap_sync_timed(func) if timed else self._wrap_sync(func)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.name}>"

    # ------------------------------------------------------------------ decorated fast paths
    #
    # The wrappers inline the two hot cases. CLOSED and successful: one clock read, compared
    # with the end of the current bucket, and a lock-free counter bump. OPEN: reject without a
    # lock or a call frame (when no listener needs the rejection). Everything else goes through
    # ``_admit`` and ``_record``, which hold the rules.

    def _wrap_sync(self, func: Callable[P, R]) -> Callable[P, R]:
        breaker = self
        now = self._now
        name = self.name
        rejections = self._rejections

        @functools.wraps(func)
        def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not breaker._fast:
                remaining = breaker._reject_until - now()
                if remaining > 0.0:
                    next(rejections)
                    raise CircuitOpenError(name, remaining)
                return breaker._call_admitted(breaker._admit(), func, args, kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                breaker._record(_ADMIT_CLOSED, 0.0, exc)
                raise
            end = now()
            if end < breaker._current_end:
                next(breaker._current_successes)
            else:
                breaker._count_success(end)
            return result

        return breaker_wrapper

    def _wrap_sync_timed(self, func: Callable[P, R]) -> Callable[P, R]:
        breaker = self
        now = self._now
        slow = cast(float, self.slow_call_duration)

        @functools.wraps(func)
        def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not breaker._fast:
                return breaker._call_admitted(breaker._admit(), func, args, kwargs)
            start = now()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                breaker._record(_ADMIT_CLOSED, start, exc)
                raise
            end = now()
            if end - start < slow and end < breaker._current_end:
                next(breaker._current_successes)
            else:
                breaker._record(_ADMIT_CLOSED, start, None)
            return result

        return breaker_wrapper

    def _wrap_async(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        breaker = self
        now = self._now
        name = self.name
        rejections = self._rejections

        @functools.wraps(func)
        async def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not breaker._fast:
                remaining = breaker._reject_until - now()
                if remaining > 0.0:
                    next(rejections)
                    raise CircuitOpenError(name, remaining)
                return await breaker._call_admitted_async(breaker._admit(), func, args, kwargs)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                breaker._record(_ADMIT_CLOSED, 0.0, exc)
                raise
            end = now()
            if end < breaker._current_end:
                next(breaker._current_successes)
            else:
                breaker._count_success(end)
            return result

        return breaker_wrapper

    def _wrap_async_timed(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        breaker = self
        now = self._now
        slow = cast(float, self.slow_call_duration)

        @functools.wraps(func)
        async def breaker_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not breaker._fast:
                return await breaker._call_admitted_async(breaker._admit(), func, args, kwargs)
            start = now()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                breaker._record(_ADMIT_CLOSED, start, exc)
                raise
            end = now()
            if end - start < slow and end < breaker._current_end:
                next(breaker._current_successes)
            else:
                breaker._record(_ADMIT_CLOSED, start, None)
            return result

        return breaker_wrapper

    # ------------------------------------------------------------------ admission and recording

    def _call_admitted(self, admission: int, func: Callable[..., R], args: Any, kwargs: Any) -> R:
        start = self._now()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._record(admission, start, exc)
            raise
        self._record(admission, start, None)
        return result

    async def _call_admitted_async(
        self, admission: int, func: Callable[..., Awaitable[R]], args: Any, kwargs: Any
    ) -> R:
        start = self._now()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self._record(admission, start, exc)
            raise
        self._record(admission, start, None)
        return result

    def _admit(self) -> int:
        """Decide whether a call may run; raise CircuitOpenError if not."""
        if self._fast:
            return _ADMIT_CLOSED
        # Lock-free rejection while open: a stale read can only reject a call that raced a
        # transition, which is indistinguishable from the call arriving just before it.
        state = self._state
        if state is _OPEN:
            remaining = self._open_until - self._now()
            if remaining > 0.0:
                next(self._rejections)
                if self._listeners.items:
                    self._reject(remaining)
                raise CircuitOpenError(self.name, remaining)
        elif state is _FORCED_OPEN:
            next(self._rejections)
            if self._listeners.items:
                self._reject(math.inf)
            raise CircuitOpenError(self.name, math.inf)
        changes: list[BreakerStateChanged] = []
        with self._lock:
            admission = self._admit_locked(changes)
        self._announce(changes)
        if admission == _REJECT:
            next(self._rejections)
            self._reject(0.0 if self._state is _HALF_OPEN else self._remaining(self._now()))
        return admission

    def _admit_locked(self, changes: list[BreakerStateChanged]) -> int:
        state = self._state
        if state is _OPEN and self._now() >= self._open_until:
            self._enter(_HALF_OPEN, changes)
            state = _HALF_OPEN
        if state is _CLOSED:
            return _ADMIT_CLOSED
        if state is _HALF_OPEN:
            if self._half_open_probes >= self.half_open_max_probes:
                return _REJECT
            self._half_open_probes += 1
            return self._half_open_generation
        if state is _DISABLED:
            return _ADMIT_UNRECORDED
        if state is _METRICS_ONLY:
            return _ADMIT_METRICS
        return _REJECT  # OPEN before its timeout, or FORCED_OPEN

    def _reject(self, remaining: float) -> None:
        """Raise the rejection, telling listeners first (the caller counted it)."""
        if not self._listeners.items:
            raise CircuitOpenError(self.name, remaining)
        error = CircuitOpenError(self.name, remaining)
        self._listeners.emit(CallRejected("circuit_breaker", self.name, self._now(), error))
        try:
            raise error
        finally:
            # A local bound to the raised error would form error -> traceback -> frame -> error,
            # a cycle only the garbage collector frees: a million rejections would pile up.
            del error

    def _classify(self, exc: BaseException | None) -> int:
        if exc is None:
            return _SUCCESS
        if (
            not isinstance(exc, Exception)
            or isinstance(exc, _LOCAL_REJECTIONS)
            or matches(exc, self.ignore)
        ):
            return _IGNORED
        return _FAILURE if matches(exc, self.record) else _SUCCESS

    def _record(self, admission: int, start: float, exc: BaseException | None) -> None:
        """Record one finished call admitted as ``admission``; may change state."""
        outcome = self._classify(exc)
        if admission == _ADMIT_UNRECORDED:
            return
        now = self._now()
        slow = self.slow_call_duration is not None and now - start >= self.slow_call_duration
        changes: list[BreakerStateChanged] = []
        with self._lock:
            if admission >= 0:
                self._finish_probe(admission, outcome, slow, changes)
            if outcome != _IGNORED:
                self._count(self._epoch(now), outcome, slow)
                if (
                    admission == _ADMIT_CLOSED
                    and self._state is _CLOSED
                    and (outcome == _FAILURE or slow)
                ):
                    self._evaluate(now, changes)
        self._announce(changes)

    def _finish_probe(
        self, generation: int, outcome: int, slow: bool, changes: list[BreakerStateChanged]
    ) -> None:
        if self._state is not _HALF_OPEN or generation != self._half_open_generation:
            return  # the half-open period this probe belonged to is over
        self._half_open_probes -= 1
        if outcome == _IGNORED:
            return
        if outcome == _FAILURE or slow:
            self._enter(_OPEN, changes)
            return
        self._half_open_successes += 1
        if self._half_open_successes >= self.half_open_successes:
            self._enter(_CLOSED, changes)

    def _count_success(self, now: float) -> None:
        """A CLOSED success that found its bucket over (lock-free path's slow turn)."""
        epoch = self._epoch(now)
        with self._lock:
            self._count(epoch, _SUCCESS, False)

    def _count(self, epoch: int, outcome: int, slow: bool) -> None:
        """Add one outcome to the bucket of ``epoch`` (lock held)."""
        if epoch > self._current_epoch:
            self._advance(epoch)
        slot = min(epoch, self._current_epoch) % self._buckets
        if outcome == _SUCCESS:
            next(self._bucket_successes[slot])
        else:
            self._bucket_failures[slot] += 1
            self._total_failures += 1
        if slow:
            self._bucket_slow[slot] += 1
            self._total_slow += 1

    def _advance(self, epoch: int) -> None:
        """Make ``epoch``'s bucket current, clearing the slot it reuses (lock held)."""
        slot = epoch % self._buckets
        if self._bucket_epoch[slot] != epoch:
            self._retired_successes += counter_value(self._bucket_successes[slot])
            self._bucket_successes[slot] = new_counter()
            self._bucket_failures[slot] = 0
            self._bucket_slow[slot] = 0
            self._bucket_epoch[slot] = epoch
        self._current_successes = self._bucket_successes[slot]
        self._current_epoch = epoch
        self._current_end = (epoch + 1) / self._inverse_width

    def _window_counts(self, epoch: int) -> tuple[int, int, int]:
        """(calls, failures, slow) over the buckets still inside the window (lock held)."""
        oldest = epoch - self._buckets
        calls = failures = slow = 0
        for slot in range(self._buckets):
            if oldest < self._bucket_epoch[slot] <= epoch:
                bucket_failures = self._bucket_failures[slot]
                calls += counter_value(self._bucket_successes[slot]) + bucket_failures
                failures += bucket_failures
                slow += self._bucket_slow[slot]
        return calls, failures, slow

    def _evaluate(self, now: float, changes: list[BreakerStateChanged]) -> None:
        calls, failures, slow = self._window_counts(self._epoch(now))
        if calls < self.minimum_calls:
            return
        if failures >= self.failure_rate_threshold * calls or (
            self.slow_call_duration is not None and slow >= self.slow_call_rate_threshold * calls
        ):
            self._enter(_OPEN, changes)

    # ------------------------------------------------------------------ transitions

    def _enter(self, target: BreakerState, changes: list[BreakerStateChanged]) -> None:
        """Move to ``target`` (lock held); listeners hear of it after the lock is released."""
        source = self._state
        now = self._now()
        if target is _OPEN:
            self._open_until = now + self.open_timeout
        elif target is _HALF_OPEN:
            self._half_open_generation += 1
            self._half_open_probes = 0
            self._half_open_successes = 0
        elif target is _CLOSED:
            self._clear_window(now)
        self._state = target
        self._fast = target is _CLOSED
        self._refresh_reject_until()
        if source is not target:
            changes.append(BreakerStateChanged("circuit_breaker", self.name, now, source, target))

    def _clear_window(self, now: float) -> None:
        epoch = self._epoch(now)
        for slot in range(self._buckets):
            self._retired_successes += counter_value(self._bucket_successes[slot])
            self._bucket_successes[slot] = new_counter()
            self._bucket_failures[slot] = 0
            self._bucket_slow[slot] = 0
            self._bucket_epoch[slot] = epoch - self._buckets
        self._advance(epoch)

    def _refresh_reject_until(self) -> None:
        """Until when the wrappers may reject without ``_admit``: the OPEN or FORCED_OPEN time,
        when no listener needs an event; -inf (never) in every other case."""
        if not self._quiet:
            self._reject_until = -math.inf
        elif self._state is _OPEN:
            self._reject_until = self._open_until
        elif self._state is _FORCED_OPEN:
            self._reject_until = math.inf
        else:
            self._reject_until = -math.inf

    def _set_manual(self, target: BreakerState) -> None:
        changes: list[BreakerStateChanged] = []
        with self._lock:
            if target is _CLOSED or self._state is not target:
                self._enter(target, changes)
        self._announce(changes)

    def _announce(self, changes: list[BreakerStateChanged]) -> None:
        for change in changes:
            self._listeners.emit(change)

    def _remaining(self, now: float) -> float:
        if self._state is _FORCED_OPEN:
            return math.inf
        return max(0.0, self._open_until - now)

    def _epoch(self, now: float) -> int:
        return int(now * self._inverse_width)


class _BreakerGuard:
    """One protected block (strictly private; get it from ``CircuitBreaker.guard()``)."""

    __slots__ = ("_admission", "_breaker", "_start")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._admission = _REJECT
        self._start = 0.0

    def __enter__(self) -> _BreakerGuard:
        self._admission = self._breaker._admit()
        self._start = self._breaker._now()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._breaker._record(self._admission, self._start, exc)

    async def __aenter__(self) -> _BreakerGuard:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)
