"""What the manager, policies and metrics need of a breaker or limiter (strictly private).

Structural types let the in-process and the Redis-backed variants be registered, composed and
exported alike, without this package importing ``redis`` unless the Redis backend is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar, runtime_checkable

from .events import BreakerState

P = ParamSpec("P")
R = TypeVar("R")


@runtime_checkable
class BreakerLike(Protocol):
    """A circuit breaker: CircuitBreaker or RedisCircuitBreaker."""

    name: str

    @property
    def state(self) -> BreakerState: ...

    def stats(self) -> dict[str, Any]: ...

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...


@runtime_checkable
class LimiterLike(Protocol):
    """A single-bucket rate limiter: RateLimiter or RedisRateLimiter."""

    name: str

    def try_acquire(self, tokens: float = 1) -> bool: ...

    def stats(self) -> dict[str, Any]: ...

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...


@runtime_checkable
class KeyedLimiterLike(Protocol):
    """A per-key rate limiter: KeyedRateLimiter or RedisKeyedRateLimiter."""

    name: str

    def stats(self) -> dict[str, Any]: ...
