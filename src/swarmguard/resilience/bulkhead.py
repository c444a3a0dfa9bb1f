"""Bulkhead: a cap on concurrent calls, with a bounded, timed wait queue.

One pool of permits serves threads and asyncio tasks alike (even tasks on several event loops).
The permits are tokens in a list: taking one is ``list.pop()`` and returning one is
``list.append()``, each a single atomic operation, so the uncontended path takes no lock and
cannot be switched out while holding one. A lock guards only the wait queue.

Invariants, which the tests attack under every interleaving they can produce:

1. ``active <= max_concurrent`` (there are only that many tokens) and
   ``len(waiters) <= max_queue`` at all times.
2. A permit is released exactly once per successful acquire, on success, exception and
   cancellation alike.
3. No permit sits in the pool while a caller waits. Both sides publish, then check: a releaser
   returns its token, then hands tokens to waiters if any are queued; a caller that found no
   token enqueues itself, then tries the pool once more (both under the queue lock). Whatever
   the interleaving, one of the two sees the other.
4. Waiters are served in FIFO order, and a newcomer does not take a token while anyone waits
   (the fast path checks the queue first), except for a token it catches in the instant between
   a release and that release's hand-off; the newcomer's own release then serves the queue.
5. A waiter that gives up (timeout, cancellation) after being handed a permit passes it on; one
   whose timeout raced a hand-off keeps it and proceeds. Either way no permit is lost.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._counter import Counter, counter_value, new_counter
from ._errors import BulkheadFullError
from .events import CallRejected, Listener, Listeners

__all__ = ["BULKHEAD_CONCURRENT_MAX", "BULKHEAD_QUEUE_MAX", "Bulkhead"]

P = ParamSpec("P")
R = TypeVar("R")

BULKHEAD_CONCURRENT_MAX = 1_000_000
"""A larger cap is no cap: use no bulkhead."""

BULKHEAD_QUEUE_MAX = 1_000_000
"""Each waiter holds a lock or a future (~200 bytes): a million is 200 MB of waiting callers."""


class _Waiter:
    """One queued caller: a thread blocked on a lock, or a task awaiting a future."""

    __slots__ = ("future", "granted", "lock", "loop")

    def __init__(
        self,
        lock: threading.Lock | None,
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[None] | None,
    ) -> None:
        self.lock = lock
        self.loop = loop
        self.future = future
        self.granted = False

    def wake(self) -> bool:
        """Tell the waiter it holds a permit; False if it can no longer be told (loop closed)."""
        if self.lock is not None:
            self.lock.release()
            return True
        loop = cast(asyncio.AbstractEventLoop, self.loop)
        if asyncio._get_running_loop() is loop:
            _resolve(cast("asyncio.Future[None]", self.future))
            return True
        try:
            loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # the waiter's loop is closed; nobody is left to take the permit
            return False
        return True


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class Bulkhead:
    """Admits at most ``max_concurrent`` calls at once; up to ``max_queue`` more wait their turn.

    A caller that finds every permit taken joins the queue if it has room and waits at most
    ``queue_timeout`` seconds (None: as long as it takes); otherwise it gets
    :class:`BulkheadFullError`. Use it as a decorator, ``with bulkhead:`` / ``async with
    bulkhead:``, or ``bulkhead.call(fn, ...)`` / ``await bulkhead.call_async(fn, ...)``.

    Args:
        name: Identifies the bulkhead in errors, events, stats and metrics.
        max_concurrent: Calls allowed to run at the same time.
        max_queue: Callers allowed to wait for a permit (0: reject at once when full).
        queue_timeout: Longest wait in the queue, in seconds; None waits without limit.
        clock: Time source (only timestamps events; waits are real waits on locks and futures).
        listeners: Called with a :class:`CallRejected` on every rejection.
    """

    __slots__ = (
        "_admitted",
        "_listeners",
        "_lock",
        "_now",
        "_permits",
        "_rejections",
        "_waiters",
        "clock",
        "max_concurrent",
        "max_queue",
        "name",
        "queue_timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int,
        max_queue: int = 0,
        queue_timeout: v.Seconds | None = 1.0,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        self.name = v.name("Bulkhead.name", name)
        self.max_concurrent = v.count(
            "Bulkhead.max_concurrent", max_concurrent, 1, BULKHEAD_CONCURRENT_MAX
        )
        self.max_queue = v.count("Bulkhead.max_queue", max_queue, 0, BULKHEAD_QUEUE_MAX)
        self.queue_timeout = (
            None
            if queue_timeout is None
            else v.non_negative("Bulkhead.queue_timeout", queue_timeout)
        )
        self.clock = clock
        self._now = clock.now
        self._listeners = Listeners(tuple(listeners))
        self._lock = threading.Lock()
        self._permits: list[bool] = [True] * self.max_concurrent
        self._waiters: deque[_Waiter] = deque()
        self._admitted: Counter[int] = new_counter()
        self._rejections = 0

    # ------------------------------------------------------------------ permits

    @property
    def active(self) -> int:
        """Permits held right now."""
        return self.max_concurrent - len(self._permits)

    @property
    def queued(self) -> int:
        """Callers waiting right now."""
        return len(self._waiters)

    def acquire(self) -> None:
        """Take a permit, waiting in the queue if allowed; raise BulkheadFullError if not."""
        if not self._waiters:
            try:
                self._permits.pop()
            except IndexError:
                pass
            else:
                next(self._admitted)
                return
        self._acquire_slow()

    def _acquire_slow(self) -> None:
        # The waiter's lock is taken before the waiter is visible: whoever grants it a permit
        # releases it, and a release must never find it unlocked.
        waiter_lock = threading.Lock()
        waiter_lock.acquire()
        waiter = self._enqueue(waiter_lock, None, None)
        if waiter is None:
            return  # the pool had a token after all
        timeout = -1.0 if self.queue_timeout is None else self.queue_timeout
        try:
            woken = waiter_lock.acquire(timeout=timeout)
        except BaseException:
            self._abandon(waiter, passing_on=True)
            raise
        if not woken and not self._abandon(waiter, passing_on=False):
            raise self._rejected(queue_timed_out=True)

    async def acquire_async(self) -> None:
        """Like :meth:`acquire`, suspending the task instead of the thread."""
        if not self._waiters:
            try:
                self._permits.pop()
            except IndexError:
                pass
            else:
                next(self._admitted)
                return
        await self._acquire_slow_async()

    async def _acquire_slow_async(self) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._enqueue(None, loop, loop.create_future())
        if waiter is None:
            return
        future = cast("asyncio.Future[None]", waiter.future)
        try:
            if self.queue_timeout is None:
                await future
            else:
                async with asyncio.timeout(self.queue_timeout):
                    await future
        except TimeoutError:
            if not self._abandon(waiter, passing_on=False):
                raise self._rejected(queue_timed_out=True) from None
        except BaseException:
            self._abandon(waiter, passing_on=True)
            raise

    def _enqueue(
        self,
        lock: threading.Lock | None,
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[None] | None,
    ) -> _Waiter | None:
        """Queue a waiter (None if it got a token instead); raise if the queue is full."""
        with self._lock:
            if not self._waiters and self._permits:
                self._permits.pop()
                next(self._admitted)
                return None
            if len(self._waiters) >= self.max_queue or self.queue_timeout == 0.0:
                self._rejections += 1
                full = True
            else:
                full = False
                waiter = _Waiter(lock, loop, future)
                self._waiters.append(waiter)
                # Invariant 3: we are visible, now look at the pool once more.
                if self._permits:
                    self._serve_waiters()
        if full:
            raise self._rejected(queue_timed_out=False)
        if waiter.granted:
            return None  # served during enqueue: its wake-up found nobody waiting yet
        return waiter

    def _abandon(self, waiter: _Waiter, *, passing_on: bool) -> bool:
        """A waiter stops waiting. Returns True if it was handed a permit before it left.

        With ``passing_on`` (the waiter is leaving by exception) a permit it was handed goes
        to the next waiter; otherwise (a timeout that raced the hand-off) the waiter keeps it.
        """
        with self._lock:
            if not waiter.granted:
                self._waiters.remove(waiter)
                if not passing_on:
                    self._rejections += 1
                return False
        if passing_on:
            self.release()
        return True

    def release(self) -> None:
        """Return a permit: to the oldest waiter if any, else to the pool."""
        permits = self._permits
        if len(permits) >= self.max_concurrent:
            raise RuntimeError(f"bulkhead {self.name!r}: release without a permit")
        permits.append(True)
        if self._waiters:  # invariant 3: published, now check
            self._hand_off()

    def _hand_off(self) -> None:
        with self._lock:
            self._serve_waiters()

    def _serve_waiters(self) -> None:
        """Move pool tokens to the oldest waiters (lock held)."""
        while self._waiters and self._permits:
            self._permits.pop()
            waiter = self._waiters.popleft()
            waiter.granted = True
            if waiter.wake():
                next(self._admitted)
            else:
                self._permits.append(True)  # its loop is gone; nobody will use the permit

    def _rejected(self, *, queue_timed_out: bool) -> BulkheadFullError:
        error = BulkheadFullError(self.name, self.max_concurrent, queue_timed_out)
        if self._listeners.items:
            self._listeners.emit(CallRejected("bulkhead", self.name, self._now(), error))
        return error

    # ------------------------------------------------------------------ shapes

    def __enter__(self) -> Bulkhead:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> Bulkhead:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``func`` holding a permit."""
        self.acquire()
        try:
            return func(*args, **kwargs)
        finally:
            self.release()

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func`` holding a permit."""
        await self.acquire_async()
        try:
            return await func(*args, **kwargs)
        finally:
            self.release()

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function.

        The wrappers inline the uncontended acquire and release (a token in the pool, nobody
        waiting); anything else goes through the same slow paths as :meth:`acquire`.
        """
        bulkhead = self
        permits = self._permits
        waiters = self._waiters
        admitted = self._admitted
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def bulkhead_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if waiters or not permits:
                    await bulkhead._acquire_slow_async()
                else:
                    try:
                        permits.pop()
                        next(admitted)
                    except IndexError:  # taken between the check and the pop
                        await bulkhead._acquire_slow_async()
                try:
                    return await async_func(*args, **kwargs)
                finally:
                    bulkhead.release()

            return cast(Callable[P, R], bulkhead_async_wrapper)

        @functools.wraps(func)
        def bulkhead_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if waiters or not permits:
                bulkhead._acquire_slow()
            else:
                try:
                    permits.pop()
                    next(admitted)
                except IndexError:
                    bulkhead._acquire_slow()
            try:
                return func(*args, **kwargs)
            finally:
                bulkhead.release()

        return bulkhead_wrapper

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot of occupancy and totals."""
        with self._lock:
            return {
                "name": self.name,
                "active": self.active,
                "max_concurrent": self.max_concurrent,
                "queued": len(self._waiters),
                "max_queue": self.max_queue,
                "admitted_total": counter_value(self._admitted),
                "rejections_total": self._rejections,
            }

    def __repr__(self) -> str:
        return f"<Bulkhead {self.name!r} {self.active}/{self.max_concurrent}>"
