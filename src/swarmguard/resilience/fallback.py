"""Fallback: answer with a substitute when the call fails in an expected way.

A fallback turns a failure into a degraded answer (a cached value, a default, a queued-for-later
acknowledgement). It is the outermost layer of a composed policy: it sees the error only after
retries, the breaker and every other layer have given up.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigError
from ._filters import ExceptionFilter, checked_filter, matches
from ._shapes import delegating_decorator
from .events import FallbackUsed, Listener, Listeners

__all__ = ["Fallback"]

P = ParamSpec("P")
R = TypeVar("R")


class Fallback:
    """Returns ``handler(error)`` instead of raising when the call raises an error matching ``on``.

    For async calls the handler may be sync or async. Cancellations and other non-``Exception``
    errors always propagate.

    Args:
        handler: Builds the substitute answer from the error.
        name: Identifies the policy in events and stats.
        on: Errors to replace: a type, a tuple of types or a predicate.
        clock: Time source for event timestamps.
        listeners: Called with a :class:`FallbackUsed` every time the handler answers.
    """

    __slots__ = ("_listeners", "_now", "_used", "handler", "name", "on")

    def __init__(
        self,
        handler: Callable[[BaseException], Any],
        *,
        name: str = "fallback",
        on: ExceptionFilter = Exception,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[Listener, ...] | list[Listener] = (),
    ) -> None:
        if not callable(handler):
            raise ConfigError("Fallback.handler", f"must be callable, got {handler!r}")
        self.handler = handler
        self.name = v.name("Fallback.name", name)
        self.on = checked_filter("Fallback.on", on)
        self._now = clock.now
        self._listeners = Listeners(tuple(listeners))
        self._used = 0

    def _applies(self, exc: Exception) -> bool:
        if not matches(exc, self.on):
            return False
        self._used += 1
        if self._listeners.items:
            self._listeners.emit(FallbackUsed("fallback", self.name, self._now(), exc))
        return True

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func``; on a matching error return the handler's answer."""
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if not self._applies(exc):
                raise
            return cast(R, self.handler(exc))

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func``; on a matching error return (or await) the handler's answer."""
        try:
            return await func(*args, **kwargs)
        except Exception as exc:
            if not self._applies(exc):
                raise
            answer = self.handler(exc)
            if inspect.isawaitable(answer):
                answer = await answer
            return cast(R, answer)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function."""
        return delegating_decorator(func, self.call, self.call_async)

    def stats(self) -> dict[str, Any]:
        """How often the handler answered."""
        return {"name": self.name, "used_total": self._used}
