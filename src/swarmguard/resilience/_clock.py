"""The injectable time source every primitive reads.

Primitives read ``clock.now()`` (monotonic seconds) and wait with ``clock.sleep`` /
``clock.sleep_async``; nothing reads ``time`` directly. Tests pass a
:class:`~swarmguard.resilience.testing.ManualClock` and become exact and instant.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock with matching sync and async sleeps."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """``time.monotonic`` with ``time.sleep`` and ``asyncio.sleep``."""

    __slots__ = ()

    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
