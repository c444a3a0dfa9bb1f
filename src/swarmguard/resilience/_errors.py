"""The exceptions every resilience primitive raises.

Rejections are typed so callers can tell "the protected service failed" from "a policy refused to
call it" without string matching. Each rejection carries what a caller needs to act on it (which
policy, and how long to wait) in ``args``, exposed as properties, and builds its message lazily: an
open breaker can reject a million calls a second, and formatting a message nobody reads, or running
a Python ``__init__``, would dominate that cost.
"""

from __future__ import annotations

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "ConfigError",
    "DeadlineExceededError",
    "RateLimitedError",
    "ResilienceError",
]


class ResilienceError(Exception):
    """Base class of every rejection raised by a resilience policy (never of a call's own error)."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker refused the call: it is open, forced open, or out of half-open probes.

    ``remaining`` is how many seconds until the breaker will admit a probe (0.0 when it is
    half-open and merely out of probe slots). Retry policies never retry this error.
    """

    # Fields live in ``args`` (set in C by BaseException): a Python ``__init__`` would double
    # the cost of a rejection. Pickling round-trips through ``args`` unchanged.
    args: tuple[str, float]

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self.args[0]

    @property
    def remaining(self) -> float:
        """Seconds until a probe will be admitted (inf while forced open)."""
        return self.args[1]

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is open; next probe in {self.remaining:.3f}s"


class RateLimitedError(ResilienceError):
    """The rate limiter had no token for the call within the allowed wait.

    ``retry_after`` is the number of seconds after which the request would be admitted if nothing
    else took tokens meanwhile; retry policies that honour Retry-After read it.
    """

    args: tuple[str, float]

    @property
    def name(self) -> str:
        """The limiter's name."""
        return self.args[0]

    @property
    def retry_after(self) -> float:
        """Seconds until the request would be admitted."""
        return self.args[1]

    def __str__(self) -> str:
        return f"rate limiter {self.name!r} rejected the call; retry after {self.retry_after:.3f}s"


class BulkheadFullError(ResilienceError):
    """The bulkhead had no free slot, and its wait queue was full or the queue timeout passed."""

    args: tuple[str, int, bool]

    @property
    def name(self) -> str:
        """The bulkhead's name."""
        return self.args[0]

    @property
    def max_concurrent(self) -> int:
        """The bulkhead's concurrency limit."""
        return self.args[1]

    @property
    def queue_timed_out(self) -> bool:
        """True when the call waited its whole queue timeout; False when the queue was full."""
        return self.args[2]

    def __str__(self) -> str:
        why = "queue timeout elapsed" if self.queue_timed_out else "wait queue full"
        return f"bulkhead {self.name!r} is full ({self.max_concurrent} concurrent, {why})"


class DeadlineExceededError(ResilienceError, TimeoutError):
    """A timeout policy gave up on the call (its own timeout, or a deadline it inherited)."""

    args: tuple[str, float]

    @property
    def name(self) -> str:
        """The timeout policy's name."""
        return self.args[0]

    @property
    def timeout(self) -> float:
        """The timeout that expired, in seconds."""
        return self.args[1]

    def __str__(self) -> str:
        return f"timeout {self.name!r}: the call did not finish within {self.timeout:.3f}s"


class ConfigError(ValueError):
    """A configuration value is invalid; ``field`` names it as ``Primitive.field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
