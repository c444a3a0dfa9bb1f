"""A dict that remembers which keys changed: how an application stores a large state
incrementally.

The staking state's balances and delegations and the manager's recent block times grow with
users and with history. An application that keeps each entry as a leaf of its own (the built-in
ledger) writes, per block, the entries that block changed, which it learns here
(``take_changed``), instead of re-encoding the whole collection every block, which made a
block's cost grow with the number of accounts and with the age of the chain.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Self, TypeVar, overload

__all__ = ["Tracked"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class Tracked(dict[K, V]):
    """A dict recording every key set or removed until ``take_changed``; every way a dict can
    be changed records its keys (one missed would leave a stored entry stale). Reads cost what
    a dict's do."""

    __slots__ = ("_changed",)

    def __init__(self, items: Mapping[K, V] | None = None) -> None:
        super().__init__(items or {})
        self._changed: set[K] = set(self)

    def take_changed(self) -> set[K]:
        """The keys set or removed since the last call (the first call: every key)."""
        changed, self._changed = self._changed, set()
        return changed

    def __setitem__(self, key: K, value: V) -> None:
        self._changed.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        self._changed.add(key)
        super().__delitem__(key)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V | T, /) -> V | T: ...
    def pop(self, key: K, *default: Any) -> Any:
        self._changed.add(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[K, V]:
        item = super().popitem()
        self._changed.add(item[0])
        return item

    def setdefault(self, key: K, default: V) -> V:
        self._changed.add(key)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        self._changed.update(changes)
        super().update(changes)

    def __ior__(self, other: Any) -> Self:  # type: ignore[misc,override]
        self.update(other)
        return self

    def clear(self) -> None:
        self._changed.update(self)
        super().clear()

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles keep what changed
        return (_rebuild, (type(self), dict(self), set(self._changed)))


def _rebuild(cls: type[Tracked[Any, Any]], items: dict[Any, Any], changed: set[Any]) -> Any:
    tracked = cls(items)
    tracked._changed = changed
    return tracked
