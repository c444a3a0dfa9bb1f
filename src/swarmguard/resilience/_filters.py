"""Exception filters: which exceptions a policy reacts to (strictly private)."""

from __future__ import annotations

from collections.abc import Callable

from ._errors import ConfigError

ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""An exception type, a tuple of types, or a predicate over the raised exception."""


def checked_filter(field: str, value: object) -> ExceptionFilter:
    """Reject a filter that is neither a type, a tuple of types, nor a callable."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return value
    if isinstance(value, tuple):
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise ConfigError(field, f"tuple items must be exception types, got {item!r}")
        return value
    if callable(value):
        return value
    raise ConfigError(
        field, f"must be an exception type, a tuple of them or a predicate: {value!r}"
    )


def matches(exc: BaseException, on: ExceptionFilter) -> bool:
    """True when ``exc`` is selected by ``on``."""
    if isinstance(on, type | tuple):
        return isinstance(exc, on)
    return bool(on(exc))
