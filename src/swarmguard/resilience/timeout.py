"""Timeout policy with deadlines that nested calls inherit.

A timeout sets a *deadline* (an absolute time on its clock) in a context variable for the duration
of the call. A nested timeout never extends it: its effective deadline is the earlier of its own
and the inherited one, so a 2 s request that makes a 5 s sub-call still ends at 2 s. Code that takes
its own timeouts (sockets, database drivers) reads the time left with :func:`remaining`.

Async calls are cancelled when the deadline passes (``asyncio.timeout``). Python cannot interrupt a
running thread, so a sync call runs in a worker thread and the caller stops waiting at the deadline;
the worker finishes in the background (the deadline is visible to it through :func:`remaining`,
so cooperative code can stop early). Workers are daemon threads: a call that never returns does
not keep the process from exiting. Use ``cooperative=True`` to run a sync call in the caller's
thread instead and only check the deadline when it returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import DeadlineExceededError
from ._shapes import delegating_decorator
from ._workers import DaemonPool
from .events import Listener, Listeners, TimedOut

__all__ = ["TIMEOUT_WORKERS_MAX", "Timeout", "remaining"]

P = ParamSpec("P")
R = TypeVar("R")

TIMEOUT_WORKERS_MAX = 1024
"""Worker threads one sync timeout policy may run; each abandoned call occupies one until done."""

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "swarmguard_deadline", default=None
)


def remaining(clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds left before the innermost active deadline (negative once passed), or None."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - clock.now()


class Timeout:
    """Gives up on a call that takes longer than ``timeout`` seconds (or an inherited deadline).

    Raises :class:`DeadlineExceededError` (a ``TimeoutError``). Use it as a decorator or through
    ``call`` / ``call_async``.

    Args:
        timeout: Seconds allowed for the call.
        name: Identifies the policy in errors, events and stats.
        cooperative: Run sync calls in the caller's thread and check the deadline afterwards.
        max_workers: Worker threads for sync calls (1..TIMEOUT_WORKERS_MAX).
        clock: Time source for deadlines.
        listeners: Called with a :class:`TimedOut` on every timeout.
    """

    __slots__ = (
        "_executor",
        "_executor_lock",
        "_listeners",
        "_now",
        "_timeouts",
        "clock",
        "cooperative",
        "max_workers",
        "name",
        "timeout",
    )

    def __init__(
        self,
        timeout: v.Seconds,
        *,
        name: str = "timeout",
        cooperative: bool = False,
        max_workers: int = 32,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        self.timeout = v.positive("Timeout.timeout", timeout)
        self.name = v.name("Timeout.name", name)
        self.cooperative = bool(cooperative)
        self.max_workers = v.count("Timeout.max_workers", max_workers, 1, TIMEOUT_WORKERS_MAX)
        self.clock = clock
        self._now = clock.now
        self._listeners = Listeners(tuple(listeners))
        self._executor: DaemonPool | None = None
        self._executor_lock = threading.Lock()
        self._timeouts = 0

    def _enter(self) -> tuple[float, float, contextvars.Token[float | None]]:
        """Set the effective deadline; returns (now, seconds left, token to restore)."""
        now = self._now()
        deadline = now + self.timeout
        inherited = _deadline.get()
        if inherited is not None and inherited < deadline:
            deadline = inherited
        return now, deadline - now, _deadline.set(deadline)

    def _expired(self, allowed: float) -> DeadlineExceededError:
        self._timeouts += 1
        if self._listeners.items:
            self._listeners.emit(TimedOut("timeout", self.name, self._now(), allowed))
        return DeadlineExceededError(self.name, allowed)

    def _pool(self) -> DaemonPool:
        with self._executor_lock:
            if self._executor is None:
                self._executor = DaemonPool(f"timeout-{self.name}", self.max_workers)
            return self._executor

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func`` with the deadline in force."""
        _, allowed, token = self._enter()
        try:
            if allowed <= 0.0:
                raise self._expired(allowed)
            if self.cooperative:
                result = func(*args, **kwargs)
                left = remaining(self.clock)
                if left is not None and left < 0.0:
                    raise self._expired(allowed)
                return result
            context = contextvars.copy_context()  # the worker inherits the deadline
            call = functools.partial(context.run, func, *args, **kwargs)
            future = self._pool().submit(call)
            try:
                return cast(R, future.result(timeout=allowed))
            except concurrent.futures.TimeoutError:
                future.cancel()  # not started yet: never start it
                raise self._expired(allowed) from None
        finally:
            _deadline.reset(token)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func``, cancelling it at the deadline."""
        _, allowed, token = self._enter()
        try:
            if allowed <= 0.0:
                raise self._expired(allowed)
            scope = asyncio.timeout(allowed)
            try:
                async with scope:
                    return await func(*args, **kwargs)
            except TimeoutError:
                if scope.expired():
                    raise self._expired(allowed) from None
                raise
        finally:
            _deadline.reset(token)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function."""
        return delegating_decorator(func, self.call, self.call_async)

    def scope(self) -> _TimeoutScope:
        """A context manager putting a block under the deadline.

        ``async with timeout.scope():`` cancels the block at the deadline and raises
        DeadlineExceededError. ``with timeout.scope():`` cannot interrupt a thread: it sets the
        deadline (visible through :func:`remaining`) and raises when the block ends late.
        """
        return _TimeoutScope(self)

    def shutdown(self) -> None:
        """Let the worker threads end once idle (they never delay the process's exit anyway)."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown()
                self._executor = None

    def stats(self) -> dict[str, Any]:
        """Configuration and the number of calls that timed out."""
        return {"name": self.name, "timeout": self.timeout, "timeouts_total": self._timeouts}

    def __repr__(self) -> str:
        return f"<Timeout {self.name!r} {self.timeout}s>"


class _TimeoutScope:
    """One block under a deadline (strictly private; get it from ``Timeout.scope()``)."""

    __slots__ = ("_allowed", "_async_scope", "_policy", "_token")

    def __init__(self, policy: Timeout) -> None:
        self._policy = policy
        self._allowed = 0.0
        self._token: contextvars.Token[float | None] | None = None
        self._async_scope: asyncio.Timeout | None = None

    def __enter__(self) -> _TimeoutScope:
        _, self._allowed, self._token = self._policy._enter()
        if self._allowed <= 0.0:
            self._restore()
            raise self._policy._expired(self._allowed)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        left = remaining(self._policy.clock)
        self._restore()
        if exc is None and left is not None and left < 0.0:
            raise self._policy._expired(self._allowed)

    async def __aenter__(self) -> _TimeoutScope:
        self.__enter__()
        self._async_scope = asyncio.timeout(self._allowed)
        await self._async_scope.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        scope = cast(asyncio.Timeout, self._async_scope)
        try:
            await scope.__aexit__(exc_type, exc, cast(Any, traceback))
        except TimeoutError:
            if scope.expired():
                raise self._policy._expired(self._allowed) from None
            raise
        finally:
            self._restore()

    def _restore(self) -> None:
        if self._token is not None:
            _deadline.reset(self._token)
            self._token = None
