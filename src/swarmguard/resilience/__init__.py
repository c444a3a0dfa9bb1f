"""Resilience primitives for sync and asyncio Python services.

Circuit breaker, retry (with backoff, jitter, deadline, Retry-After and budget), token-bucket rate
limiters, bulkhead, timeout, fallback and hedging; a :class:`Policy` that composes them in a
documented order; a :class:`ResilienceManager` with TOML/dict configuration, JSON stats and
Prometheus metrics; and Redis backends so several processes share one limit and one breaker
(``swarmguard.resilience.redis``). This package imports nothing else from ``swarmguard``.

See docs/resilience.md for the guide.
"""

from ._clock import SYSTEM_CLOCK as SYSTEM_CLOCK
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._errors import BulkheadFullError as BulkheadFullError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import DeadlineExceededError as DeadlineExceededError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import ResilienceError as ResilienceError
from .breaker import CircuitBreaker as CircuitBreaker
from .budget import RetryBudget as RetryBudget
from .bulkhead import Bulkhead as Bulkhead
from .events import BreakerState as BreakerState
from .events import BreakerStateChanged as BreakerStateChanged
from .events import CallRejected as CallRejected
from .events import Event as Event
from .events import FallbackUsed as FallbackUsed
from .events import HedgeLaunched as HedgeLaunched
from .events import RetryScheduled as RetryScheduled
from .events import TimedOut as TimedOut
from .fallback import Fallback as Fallback
from .hedge import Hedge as Hedge
from .manager import ResilienceManager as ResilienceManager
from .policy import Policy as Policy
from .ratelimit import KeyedRateLimiter as KeyedRateLimiter
from .ratelimit import RateLimiter as RateLimiter
from .retry import Attempt as Attempt
from .retry import Retry as Retry
from .timeout import Timeout as Timeout
from .timeout import remaining as remaining

__all__ = [
    "SYSTEM_CLOCK",
    "Attempt",
    "BreakerState",
    "BreakerStateChanged",
    "Bulkhead",
    "BulkheadFullError",
    "CallRejected",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "DeadlineExceededError",
    "Event",
    "Fallback",
    "FallbackUsed",
    "Hedge",
    "HedgeLaunched",
    "KeyedRateLimiter",
    "Policy",
    "RateLimitedError",
    "RateLimiter",
    "ResilienceError",
    "ResilienceManager",
    "Retry",
    "RetryBudget",
    "RetryScheduled",
    "SystemClock",
    "TimedOut",
    "Timeout",
    "remaining",
]
