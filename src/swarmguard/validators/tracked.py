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
    """A dict recording every key set or removed between calls of ``take_changed``; every way
    a dict can be changed records its keys (one missed would leave a stored entry stale). It
    records nothing before the first call, so a user that never asks pays nothing and keeps
    nothing. Reads cost what a dict's do."""

    __slots__ = ("_changed",)

    def __init__(self, items: Mapping[K, V] | None = None) -> None:
        super().__init__(items or {})
        self._changed: set[K] | None = None  # None: nobody has asked yet

    def take_changed(self) -> set[K]:
        """The keys set or removed since the last call; the first call: every key held."""
        changed = set(self) if self._changed is None else self._changed
        self._changed = set()
        return changed

    def _touch(self, key: K) -> None:
        if self._changed is not None:
            self._changed.add(key)

    def __setitem__(self, key: K, value: V) -> None:
        self._touch(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        self._touch(key)
        super().__delitem__(key)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V | T, /) -> V | T: ...
    def pop(self, key: K, *default: Any) -> Any:
        self._touch(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[K, V]:
        item = super().popitem()
        self._touch(item[0])
        return item

    def setdefault(self, key: K, default: V) -> V:
        self._touch(key)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        for key in changes:
            self._touch(key)
        super().update(changes)

    def __ior__(self, other: Any) -> Self:  # type: ignore[misc,override]
        self.update(other)
        return self

    def clear(self) -> None:
        for key in self:
            self._touch(key)
        super().clear()

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles keep what changed
        changed = None if self._changed is None else set(self._changed)
        return (_rebuild, (type(self), dict(self), changed))


def _rebuild(cls: type[Tracked[Any, Any]], items: dict[Any, Any], changed: set[Any] | None) -> Any:
    tracked = cls(items)
    tracked._changed = changed
    return tracked
