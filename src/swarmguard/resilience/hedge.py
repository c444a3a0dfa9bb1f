"""Hedged requests: when a call is slow, start a second one and take whichever answers first.

Tail latency often comes from one slow replica or one lost packet; a duplicate request sent
after ``delay`` usually finishes long before the straggler. Hedging spends extra load to cut the
tail, so it suits idempotent reads, and ``max_hedges`` bounds the extra load per call.

An attempt that fails with an error matching ``on`` launches the next hedge at once instead of
waiting out the delay. The first successful answer wins; the others are cancelled (async) or left
to finish in their worker threads (sync, which Python cannot interrupt). If every attempt fails,
the last error is raised.
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
from ._filters import ExceptionFilter, checked_filter, matches
from ._shapes import delegating_decorator
from ._workers import DaemonPool
from .events import HedgeLaunched, Listener, Listeners

__all__ = ["HEDGES_MAX", "Hedge"]

P = ParamSpec("P")
R = TypeVar("R")

HEDGES_MAX = 16
"""Each hedge multiplies the load of a slow call; more than a handful means the delay is wrong."""


class Hedge:
    """Starts up to ``max_hedges`` extra attempts, one every ``delay`` seconds while none answers.

    Args:
        delay: Seconds to wait for an answer before starting the next attempt.
        name: Identifies the policy in events and stats.
        max_hedges: Extra attempts allowed per call (1..HEDGES_MAX).
        on: Errors that launch the next attempt at once (others are raised at once).
        max_workers: Worker threads for sync calls.
        clock: Time source for event timestamps.
        listeners: Called with a :class:`HedgeLaunched` for every extra attempt.
    """

    __slots__ = (
        "_executor",
        "_executor_lock",
        "_hedges",
        "_listeners",
        "_now",
        "delay",
        "max_hedges",
        "max_workers",
        "name",
        "on",
    )

    def __init__(
        self,
        delay: v.Seconds,
        *,
        name: str = "hedge",
        max_hedges: int = 1,
        on: ExceptionFilter = Exception,
        max_workers: int = 32,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        self.delay = v.non_negative("Hedge.delay", delay)
        self.name = v.name("Hedge.name", name)
        self.max_hedges = v.count("Hedge.max_hedges", max_hedges, 1, HEDGES_MAX)
        self.on = checked_filter("Hedge.on", on)
        self.max_workers = v.count("Hedge.max_workers", max_workers, 1, 1024)
        self._now = clock.now
        self._listeners = Listeners(tuple(listeners))
        self._executor: DaemonPool | None = None
        self._executor_lock = threading.Lock()
        self._hedges = 0

    def _launched(self, attempt: int) -> None:
        self._hedges += 1
        if self._listeners.items:
            self._listeners.emit(HedgeLaunched("hedge", self.name, self._now(), attempt))

    def _hedgeable(self, exc: BaseException) -> bool:
        return isinstance(exc, Exception) and matches(exc, self.on)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func``, hedging as configured; cancels the losers."""
        attempts_max = 1 + self.max_hedges
        pending: set[asyncio.Future[R]] = set()
        launched = 0
        last_error: BaseException | None = None
        try:
            while True:
                # Every pass follows a wait that ended with the delay elapsed or an attempt
                # failed: both call for the next attempt, while any are left.
                if launched < attempts_max:
                    if launched:
                        self._launched(launched + 1)
                    pending.add(asyncio.ensure_future(func(*args, **kwargs)))
                    launched += 1
                if not pending:
                    raise cast(BaseException, last_error)
                timeout = self.delay if launched < attempts_max else None
                done, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    error = task.exception()
                    if error is None:
                        return task.result()
                    if not self._hedgeable(error):
                        raise error
                    last_error = error
        finally:
            for task in pending:
                task.cancel()

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func`` in worker threads, hedging as configured."""
        pool = self._pool()
        attempts_max = 1 + self.max_hedges
        pending: set[concurrent.futures.Future[R]] = set()
        launched = 0
        last_error: BaseException | None = None
        try:
            while True:
                if launched < attempts_max:
                    if launched:
                        self._launched(launched + 1)
                    context = contextvars.copy_context()  # attempts inherit deadlines
                    pending.add(pool.submit(functools.partial(context.run, func, *args, **kwargs)))
                    launched += 1
                if not pending:
                    raise cast(BaseException, last_error)
                timeout = self.delay if launched < attempts_max else None
                done, pending = concurrent.futures.wait(
                    pending, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    error = future.exception()
                    if error is None:
                        return future.result()
                    if not self._hedgeable(error):
                        raise error
                    last_error = error
        finally:
            for future in pending:
                future.cancel()  # a loser that has not started never will

    def _pool(self) -> DaemonPool:
        with self._executor_lock:
            if self._executor is None:
                self._executor = DaemonPool(f"hedge-{self.name}", self.max_workers)
            return self._executor

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function."""
        return delegating_decorator(func, self.call, self.call_async)

    def stats(self) -> dict[str, Any]:
        """Configuration and the number of extra attempts launched."""
        return {"name": self.name, "delay": self.delay, "hedges_total": self._hedges}
