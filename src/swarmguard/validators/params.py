"""Staking parameters, their defaults and the checks that keep them sane.

Fractions are integers in parts per million (ppm) and durations integer seconds of block time:
the state machine must compute bit-identical results on every node, so it never touches floats.
Defaults follow the Cosmos SDK where it has one (docs/validators.md compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum

__all__ = ["PPM", "Infraction", "StakingParams"]

PPM = 1_000_000
"""One whole, in parts per million."""

DAY = 86_400


class Infraction(Enum):
    """The four severities of slashing, each tied to a kind of evidence."""

    DOWNTIME = "downtime"
    """Missed too many blocks in the signed-blocks window."""
    INVALID_PROPOSAL = "invalid_proposal"
    """Proposed a block that fails validation (signed by its key)."""
    DOUBLE_VOTE = "double_vote"
    """Two conflicting signed votes at the same height, view and phase (equivocation)."""
    REPEATED_EQUIVOCATION = "repeated_equivocation"
    """Equivocation again after being slashed for it, or together with a third of the stake."""


@dataclass(frozen=True, slots=True)
class StakingParams:
    """Every tunable of the validator manager (all integers; see the module docstring)."""

    max_validators: int = 100
    """Size of the active set, chosen by stake at each epoch boundary (Cosmos: 100)."""
    epoch_length: int = 100
    """Blocks per epoch; the validator set changes only at epoch boundaries."""
    unbonding_time: int = 21 * DAY
    """Seconds of block time before unbonded tokens are paid out (Cosmos: 21 days)."""
    max_entries: int = 7
    """Pending unbonding or redelegation entries per (delegator, validator) pair (Cosmos: 7)."""
    min_self_bond: int = 1
    """Tokens the operator must keep bonded to be active or to unjail."""
    signed_blocks_window: int = 100
    """Blocks in the downtime window (Cosmos: 100)."""
    min_signed_ppm: int = 500_000
    """Fraction of the window a validator must sign (Cosmos: 50%)."""
    downtime_jail_time: int = 600
    """Seconds a validator stays jailed for downtime (Cosmos: 10 minutes)."""
    misbehaviour_jail_time: int = 7 * DAY
    """Seconds a validator stays jailed for an invalid proposal or a first double vote (the most
    severe infraction tombstones instead: jailed forever)."""
    evidence_max_age_blocks: int = 100_000
    """Evidence older than this many blocks is refused."""
    evidence_max_age_time: int = 21 * DAY
    """...or older than this many seconds (both limits apply, as in CometBFT)."""
    slash_downtime_ppm: int = 10_000
    """1%: the report's lowest severity (Cosmos: 0.01%; we follow the report)."""
    slash_invalid_proposal_ppm: int = 50_000
    """5%."""
    slash_double_vote_ppm: int = 200_000
    """20% (Cosmos: 5%, with tombstoning)."""
    slash_repeated_equivocation_ppm: int = 500_000
    """50%: the report's highest severity; also tombstones the key forever."""
    reputation_alpha_ppm: int = 900_000
    """EMA weight of the past (the report's alpha = 0.9)."""
    reputation_threshold_ppm: int = 500_000
    """Below this reputation a validator is skipped by leader selection."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"StakingParams.{spec.name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"StakingParams.{spec.name} must be >= 0, got {value}")
        for name in ("max_validators", "epoch_length", "max_entries", "signed_blocks_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"StakingParams.{name} must be >= 1")
        for spec in fields(self):
            if spec.name.endswith("_ppm") and getattr(self, spec.name) > PPM:
                raise ValueError(f"StakingParams.{spec.name} must be <= {PPM}")

    def slash_ppm(self, infraction: Infraction) -> int:
        """The slash fraction of an infraction, in ppm."""
        return {
            Infraction.DOWNTIME: self.slash_downtime_ppm,
            Infraction.INVALID_PROPOSAL: self.slash_invalid_proposal_ppm,
            Infraction.DOUBLE_VOTE: self.slash_double_vote_ppm,
            Infraction.REPEATED_EQUIVOCATION: self.slash_repeated_equivocation_ppm,
        }[infraction]
