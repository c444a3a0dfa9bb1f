"""Downtime: a sliding window of the last ``window`` blocks per validator.

Each active validator's window records whether it signed each block. Once a validator has been
observed for a whole window, missing more than ``window - min_signed`` of its last ``window``
blocks means downtime: the caller jails and slashes it, and its window starts over (as Cosmos'
x/slashing does, with 100 blocks and 50% by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import PPM

__all__ = ["DowntimeTracker", "SigningWindow"]


@dataclass(slots=True)
class SigningWindow:
    """One validator's ring of recent blocks as a bitmask: bit i set = missed at position i
    (an int of ``window`` bits costs a fraction of a byte array)."""

    missed: int = 0
    index: int = 0
    observed: int = 0
    missed_count: int = 0


class DowntimeTracker:
    """Signing windows of every validator observed (bounded: one window per validator)."""

    __slots__ = ("max_missed", "window", "windows")

    def __init__(self, window: int, min_signed_ppm: int) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        min_signed = -(-window * min_signed_ppm // PPM)  # rounded up: the stricter reading
        self.max_missed = window - min_signed
        self.windows: dict[bytes, SigningWindow] = {}

    def observe(self, operator: bytes, signed: bool) -> bool:
        """Record one block; True when the validator just crossed into downtime."""
        state = self.windows.get(operator)
        if state is None:
            state = self.windows[operator] = SigningWindow()
        bit = 1 << state.index
        old = 1 if state.missed & bit else 0
        new = 0 if signed else 1
        state.missed = (state.missed & ~bit) | (bit if new else 0)
        state.missed_count += new - old
        state.index = (state.index + 1) % self.window
        state.observed = min(state.observed + 1, self.window)
        return state.observed == self.window and state.missed_count > self.max_missed

    def reset(self, operator: bytes) -> None:
        """Start the validator's window over (after it was punished)."""
        self.windows.pop(operator, None)
