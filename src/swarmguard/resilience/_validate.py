"""Construction-time checks that reject bad configuration with a message naming the field.

A NaN threshold silently disables every comparison it takes part in, and ``True`` quietly meaning
1 is a bug: both are refused here, at construction, rather than discovered during an outage.
"""

from __future__ import annotations

import math
from datetime import timedelta

from ._errors import ConfigError

Seconds = float | int | timedelta
"""Durations are float seconds or a ``timedelta``."""


def _number(field: str, value: object) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(field, f"must be a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ConfigError(field, f"must be finite, got {value!r}")
    return result


def positive(field: str, value: object) -> float:
    """A finite number > 0 (float seconds or timedelta for durations)."""
    result = _number(field, value)
    if result <= 0.0:
        raise ConfigError(field, f"must be > 0, got {value!r}")
    return result


def non_negative(field: str, value: object) -> float:
    """A finite number >= 0."""
    result = _number(field, value)
    if result < 0.0:
        raise ConfigError(field, f"must be >= 0, got {value!r}")
    return result


def optional_positive(field: str, value: object) -> float | None:
    """None, or a finite number > 0."""
    return None if value is None else positive(field, value)


def fraction(field: str, value: object) -> float:
    """A rate threshold in (0, 1]."""
    result = _number(field, value)
    if not 0.0 < result <= 1.0:
        raise ConfigError(field, f"must be in (0, 1], got {value!r}")
    return result


def unit_interval(field: str, value: object) -> float:
    """A fraction in [0, 1]."""
    result = _number(field, value)
    if not 0.0 <= result <= 1.0:
        raise ConfigError(field, f"must be in [0, 1], got {value!r}")
    return result


def count(field: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """An int in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ConfigError(field, f"must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(field, f"must be <= {maximum}, got {value!r}")
    return value


def name(field: str, value: object) -> str:
    """A non-empty printable name of at most 200 characters (it becomes a metric label)."""
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a str, got {type(value).__name__}")
    if not value or len(value) > 200 or not value.isprintable():
        raise ConfigError(field, f"must be 1-200 printable characters, got {value!r}")
    return value
