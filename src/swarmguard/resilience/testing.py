"""Helpers for testing code that uses the resilience primitives: a manual clock.

Pass a :class:`ManualClock` as ``clock=`` and time moves only when the test says so, or when a
primitive sleeps on it: ``sleep`` and ``sleep_async`` advance the clock by exactly the requested
amount and return at once. Backoff, refill and open timeouts become exact and instant to test.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["ManualClock"]


class ManualClock:
    """A thread-safe clock that advances only when told to (or when something sleeps on it)."""

    __slots__ = ("_lock", "_now", "sleeps")

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        """Every sleep requested, in order: tests assert on the exact waits."""

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"cannot move a monotonic clock backwards by {seconds}")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep would be
