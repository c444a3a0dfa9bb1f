"""A Fenwick (binary indexed) tree of stake: O(log n) updates and O(log n) weighted draws.

Follow-the-satoshi picks the owner of one stake unit among ``total`` units. With validators in
fixed slots and their stake in a Fenwick tree, the owner of unit ``u`` is the first slot whose
prefix sum exceeds ``u``, found by binary lifting down the tree in ``log2(capacity)`` steps; a
stake change updates ``log2(capacity)`` nodes. Nothing is ever scanned in O(n).
"""

from __future__ import annotations

__all__ = ["StakeTree"]


class StakeTree:
    """Non-negative integer weights in slots 0..capacity-1, with prefix sums and draws."""

    __slots__ = ("_capacity", "_top_bit", "_tree", "_weights")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._tree = [0] * (capacity + 1)  # 1-based Fenwick array
        self._weights = [0] * capacity
        self._top_bit = 1 << (capacity.bit_length() - 1)

    @classmethod
    def from_weights(cls, weights: list[int]) -> StakeTree:
        """A tree holding ``weights``, built in O(n) (each node adds itself to its parent)."""
        tree = cls(len(weights))
        if any(weight < 0 for weight in weights):
            raise ValueError("weights are non-negative")
        tree._weights = list(weights)
        nodes = tree._tree
        capacity = tree._capacity
        for index in range(1, capacity + 1):
            nodes[index] += weights[index - 1]
            parent = index + (index & -index)
            if parent <= capacity:
                nodes[parent] += nodes[index]
        return tree

    @property
    def capacity(self) -> int:
        return self._capacity

    def weight(self, slot: int) -> int:
        """The weight in ``slot``."""
        return self._weights[slot]

    def set(self, slot: int, weight: int) -> None:
        """Set the weight of ``slot`` (O(log n))."""
        if weight < 0:
            raise ValueError(f"weights are non-negative, got {weight}")
        delta = weight - self._weights[slot]
        if delta == 0:
            return
        self._weights[slot] = weight
        tree = self._tree
        index = slot + 1
        capacity = self._capacity
        while index <= capacity:
            tree[index] += delta
            index += index & -index

    def total(self) -> int:
        """The sum of all weights (O(log n))."""
        return self.prefix(self._capacity)

    def prefix(self, count: int) -> int:
        """The sum of the weights of slots 0..count-1."""
        tree = self._tree
        total = 0
        index = count
        while index > 0:
            total += tree[index]
            index -= index & -index
        return total

    def find(self, unit: int) -> int:
        """The slot owning stake unit ``unit`` (0 <= unit < total): the first slot whose prefix
        sum exceeds ``unit``. O(log n) by binary lifting."""
        tree = self._tree
        position = 0
        remaining = unit
        step = self._top_bit
        capacity = self._capacity
        while step:
            candidate = position + step
            if candidate <= capacity and tree[candidate] <= remaining:
                position = candidate
                remaining -= tree[candidate]
            step >>= 1
        if position >= capacity:
            raise ValueError(f"unit {unit} is not below the total stake")
        # ``position`` slots have a cumulative weight <= unit; the owner is the next one, whose
        # 0-based index is ``position``.
        return position
