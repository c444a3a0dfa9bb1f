"""The public surface of swarmguard.resilience is exactly the list kept here."""

from __future__ import annotations

import ast
from pathlib import Path

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


def test_resilience_imports_nothing_else_from_swarmguard() -> None:
    """The library stands alone: no module of it imports another swarmguard package."""
    folder = Path(resilience.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith("swarmguard"), f"{path.name}: {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("swarmguard"), f"{path.name}: {alias.name}"
