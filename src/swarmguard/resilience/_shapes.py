"""The decorator shape shared by policies whose hot path is their ``call`` (strictly private).

Breaker, limiter, bulkhead and retry inline their fast paths in hand-written wrappers; the
others (timeout, fallback, hedge, the Redis breaker) decorate by delegating to ``call`` or
``call_async``, chosen once at decoration time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")


def delegating_decorator(
    func: Callable[P, R],
    call: Callable[..., Any],
    call_async: Callable[..., Awaitable[Any]],
) -> Callable[P, R]:
    """Wrap ``func`` so each call goes through ``call`` (sync) or ``call_async`` (coroutine)."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await call_async(func, *args, **kwargs)

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, call(func, *args, **kwargs))

    return wrapper
