"""Event records handed to the listeners every policy accepts.

Events are emitted only on rare edges (a state change, a rejection, a retry, a timeout, a
fallback, a hedge), never on every successful call, so listening costs nothing on the hot path.
A listener receives one frozen record; an exception raised by a listener is logged and swallowed,
because observability must never change the outcome of the call it observes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "BreakerState",
    "BreakerStateChanged",
    "CallRejected",
    "Event",
    "FallbackUsed",
    "HedgeLaunched",
    "Listener",
    "RetryScheduled",
    "TimedOut",
]

_log = logging.getLogger("swarmguard.resilience")


class BreakerState(Enum):
    """The states of a circuit breaker; the value is the Prometheus gauge value."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2
    DISABLED = 3
    FORCED_OPEN = 4
    METRICS_ONLY = 5


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: which policy (kind and name) and when (its clock's seconds)."""

    policy: str
    name: str
    time: float


@dataclass(frozen=True, slots=True)
class BreakerStateChanged(Event):
    """A circuit breaker moved from ``source`` to ``target``."""

    source: BreakerState
    target: BreakerState


@dataclass(frozen=True, slots=True)
class CallRejected(Event):
    """A policy refused a call; ``error`` is what the caller received."""

    error: Exception


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """Attempt ``attempt`` failed; the next one starts after ``delay`` seconds."""

    attempt: int
    delay: float
    error: BaseException | None
    result: object


@dataclass(frozen=True, slots=True)
class TimedOut(Event):
    """A call exceeded ``timeout`` seconds and was abandoned."""

    timeout: float


@dataclass(frozen=True, slots=True)
class FallbackUsed(Event):
    """The fallback answered instead of the call; ``error`` is what the call raised."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class HedgeLaunched(Event):
    """A hedged request started attempt number ``attempt`` (2 for the first hedge)."""

    attempt: int


Listener = Callable[[Event], None]


class Listeners:
    """A copy-on-write list of listeners (strictly private): emitting takes no lock."""

    __slots__ = ("_lock", "items")

    def __init__(self, initial: tuple[Listener, ...] = ()) -> None:
        self.items: tuple[Listener, ...] = tuple(initial)
        """Read this (an empty tuple is falsy) to skip building events nobody hears."""
        self._lock = threading.Lock()

    def add(self, listener: Listener) -> None:
        with self._lock:
            self.items = (*self.items, listener)

    def remove(self, listener: Listener) -> None:
        with self._lock:
            items = list(self.items)
            items.remove(listener)
            self.items = tuple(items)

    def emit(self, event: Event) -> None:
        for listener in self.items:
            try:
                listener(event)
            except Exception:
                _log.exception("listener %r failed on %r", listener, event)
