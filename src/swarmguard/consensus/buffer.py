"""Messages that arrive for heights this replica has not reached yet.

A replica a block or two behind keeps what the others already send for the next heights, so it
can take part as soon as it catches up, instead of waiting for re-sends. Anything further ahead is
a job for state sync, not for memory. Both bounds are named, and the per-sender one is what stops
a single Byzantine validator from filling the buffer for everyone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["FutureBuffer"]

M = TypeVar("M")

HEIGHTS_AHEAD_MAX = 4
"""How far past the current height messages are kept."""
PER_SENDER_MAX = 64
"""Messages kept per sender across all buffered heights."""


@dataclass(slots=True)
class FutureBuffer(Generic[M]):
    """Buffered messages by height, bounded per sender and in how far ahead they reach."""

    height: int
    heights_ahead: int = HEIGHTS_AHEAD_MAX
    per_sender: int = PER_SENDER_MAX
    _by_height: dict[int, list[tuple[int, M]]] = field(default_factory=lambda: defaultdict(list))
    _per_sender: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    dropped: int = 0

    def add(self, height: int, sender: int, message: M) -> bool:
        """Keep ``message`` for ``height`` if it is within bounds; False (and counted) if not."""
        if not self.height < height <= self.height + self.heights_ahead:
            self.dropped += 1
            return False
        if self._per_sender[sender] >= self.per_sender:
            self.dropped += 1
            return False
        self._by_height[height].append((sender, message))
        self._per_sender[sender] += 1
        return True

    def advance(self, height: int) -> list[tuple[int, M]]:
        """Enter ``height``: return its buffered (sender, message) pairs in arrival order, and
        forget every height up to it."""
        if height <= self.height:
            raise ValueError(f"height {height} is not after {self.height}")
        released: list[tuple[int, M]] = []
        for buffered in sorted(h for h in self._by_height if h <= height):
            for sender, message in self._by_height.pop(buffered):
                self._per_sender[sender] -= 1
                if buffered == height:
                    released.append((sender, message))
        self.height = height
        return released

    def __len__(self) -> int:
        return sum(len(messages) for messages in self._by_height.values())
