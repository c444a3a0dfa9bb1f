"""Reputation: an exponential moving average of each validator's on-time participation.

Per block, every active validator scores 1 if it did its duty on time (signed the block; and, if
it was the proposer, proposed it) and 0 otherwise; ``r <- alpha * r + (1 - alpha) * score`` with
alpha = 0.9 (the report's), in integer parts per million so every node computes the same value.
New validators start at 1. Leader selection skips validators below the threshold (Aptos' leader
reputation is the model): one dead validator stops costing a view change every few heights, and
recovers its turn once it participates again. A leader whose view failed (the height was decided
in a later view) is ``penalise``d to 0 at once: a proposer that missed its turn is the cost
consensus actually pays, so it leaves the rotation after one view change, not after seven
missed blocks, and needs seven on-time blocks (0.1, 0.19, ... 0.52) to return.
"""

from __future__ import annotations

from .params import PPM

__all__ = ["Reputation"]


class Reputation:
    """Integer EMA per validator (ppm)."""

    __slots__ = ("alpha_ppm", "scores")

    def __init__(self, alpha_ppm: int) -> None:
        if not 0 <= alpha_ppm <= PPM:
            raise ValueError(f"alpha_ppm must be in 0..{PPM}")
        self.alpha_ppm = alpha_ppm
        self.scores: dict[bytes, int] = {}

    def score(self, operator: bytes) -> int:
        """The validator's reputation in ppm (1,000,000 for a validator never observed)."""
        return self.scores.get(operator, PPM)

    def penalise(self, operator: bytes) -> None:
        """A failed turn as leader: the score drops to 0."""
        self.scores[operator] = 0

    def observe(self, operator: bytes, on_time: bool) -> int:
        """Fold one block's participation in; returns the new score."""
        sample = PPM if on_time else 0
        updated = (self.alpha_ppm * self.score(operator) + (PPM - self.alpha_ppm) * sample) // PPM
        self.scores[operator] = updated
        return updated
