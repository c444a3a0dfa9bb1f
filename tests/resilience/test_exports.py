"""The public surface of swarmguard.resilience is exactly the list kept here."""

from __future__ import annotations

from swarmguard import resilience

PUBLIC = {
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
}


def test_all_matches_the_list() -> None:
    """__all__ is the documented surface: nothing missing, nothing extra."""
    assert set(resilience.__all__) == PUBLIC


def test_every_name_resolves() -> None:
    """Every exported name exists at runtime."""
    for name in resilience.__all__:
        assert getattr(resilience, name) is not None, name
