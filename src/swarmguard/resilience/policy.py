"""Composing primitives into one policy, in a fixed, justified order.

From the outside in (keep in sync with docs/resilience.md, "Composition")::

    fallback -> retry -> hedge -> circuit breaker -> rate limiter -> bulkhead -> timeout -> call

The report lists breaker -> limiter -> bulkhead -> retry, i.e. retry innermost. We put retry
*outside* the breaker, limiter and bulkhead instead, as Resilience4j and Polly recommend, because:

- every attempt passes the breaker, so the breaker counts attempts, and an open breaker stops a
  retry loop at once (a CircuitOpenError is never retried) instead of being bypassed by it;
- every attempt takes a token, so retries are rate-limited like any other load;
- no bulkhead permit is held while a retry sleeps, so backing off never starves other callers.

Among the rest: an open breaker rejects before a token is spent; a rate-limited call never takes a
bulkhead permit; the per-attempt timeout is innermost so a timed-out attempt frees its permit and
is counted by the breaker as a failure (or slow call); fallback is outermost because it answers
only after everything else has given up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from . import _validate as v
from ._errors import ConfigError
from ._protocols import BreakerLike, LimiterLike
from .bulkhead import Bulkhead
from .fallback import Fallback
from .hedge import Hedge
from .retry import Retry
from .timeout import Timeout

__all__ = ["Policy"]

P = ParamSpec("P")
R = TypeVar("R")

Layer = Fallback | Retry | Hedge | BreakerLike | LimiterLike | Bulkhead | Timeout


class Policy:
    """Several primitives applied together, in the order documented in this module.

    Any layer may be omitted; the breaker and the limiter may be the Redis-backed variants.
    Use it as a decorator (sync or async) or through ``call`` / ``call_async``; the decorator
    builds the wrapper chain once and is the fast form.
    """

    __slots__ = (
        "bulkhead",
        "circuit_breaker",
        "fallback",
        "hedge",
        "name",
        "rate_limiter",
        "retry",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        fallback: Fallback | None = None,
        retry: Retry | None = None,
        hedge: Hedge | None = None,
        circuit_breaker: BreakerLike | None = None,
        rate_limiter: LimiterLike | None = None,
        bulkhead: Bulkhead | None = None,
        timeout: Timeout | None = None,
    ) -> None:
        self.name = v.name("Policy.name", name)
        self.fallback: Fallback | None = _checked("Policy.fallback", fallback, Fallback)
        self.retry: Retry | None = _checked("Policy.retry", retry, Retry)
        self.hedge: Hedge | None = _checked("Policy.hedge", hedge, Hedge)
        self.circuit_breaker: BreakerLike | None = _checked(
            "Policy.circuit_breaker", circuit_breaker, BreakerLike
        )
        self.rate_limiter: LimiterLike | None = _checked(
            "Policy.rate_limiter", rate_limiter, LimiterLike
        )
        self.bulkhead: Bulkhead | None = _checked("Policy.bulkhead", bulkhead, Bulkhead)
        self.timeout: Timeout | None = _checked("Policy.timeout", timeout, Timeout)

    def layers(self) -> list[Layer]:
        """The configured layers, outermost first."""
        candidates: list[Layer | None] = [
            self.fallback,
            self.retry,
            self.hedge,
            self.circuit_breaker,
            self.rate_limiter,
            self.bulkhead,
            self.timeout,
        ]
        return [layer for layer in candidates if layer is not None]

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap ``func`` in every layer, innermost first."""
        wrapped: Callable[..., Any] = func
        for layer in reversed(self.layers()):
            wrapped = layer(wrapped)
        return cast(Callable[P, R], wrapped)

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func`` through every layer (builds the chain per call; prefer the decorator)."""
        return self(func)(*args, **kwargs)

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func`` through every layer (builds the chain per call)."""
        return await self(func)(*args, **kwargs)

    def __repr__(self) -> str:
        names = " -> ".join(f"{type(layer).__name__}({layer.name})" for layer in self.layers())
        return f"<Policy {self.name!r}: {names}>"


def _checked(field: str, value: Any, kind: type) -> Any:
    if value is not None and not isinstance(value, kind):
        raise ConfigError(field, f"must be a {kind.__name__} or None, got {value!r}")
    return value
