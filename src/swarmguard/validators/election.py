"""Leader selection: follow-the-satoshi over stake, with VRF randomness every validator checks.

Randomness. The seed of height ``h`` is the VRF output (``beta``) that the proposer of block
``h - 1`` put in its header, proven over ``alpha_h = digest(VRF_INPUT, previous seed || h)``
(domain-separated and bound to the chain id); everyone verifies it with that proposer's VRF key.
The seed of height 1 has no proposer before it: ``genesis_seed`` fixes it from the chain id.

Draw. The leader of (height, view) owns stake unit ``u = int(digest(LEADER_DRAW, seed || view)) mod
total`` of the eligible stake, found in a Fenwick tree (``StakeTree``) in O(log n). The 256-bit
digest makes the modulo bias at most ``total / 2^256`` (with ``total < 2^64``: below 2^-192).

Reputation. Validators whose reputation is below ``threshold`` carry no weight in the draw (their
stake is kept but masked), so a dead validator stops being picked instead of costing a view
change every few heights. If every validator fell below it, the draw uses the whole set.

What an adversary can still do (docs/validators.md has the argument): the proposer of ``h - 1``
knows ``seed_h`` before anyone else and may withhold its block to discard it. Withholding costs
the proposal (and reputation, and a downtime slash if repeated); it yields a fresh draw only for
height ``h`` (the next proposer's VRF output is fixed by its key and the public seed, not chosen),
so it can at most re-roll one draw per height it proposes. Its chance of winning height ``h`` rises
from its stake share ``s`` to at most ``1 - (1 - s)^2`` per withheld block, and it pays a proposal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarmguard.crypto import Domain, digest, ecvrf

from .stake_tree import StakeTree

__all__ = ["LeaderSchedule", "ScheduledValidator", "genesis_seed", "next_seed", "vrf_input"]

SEED_BYTES = 64


def genesis_seed(chain_id: str) -> bytes:
    """The seed of height 1 (``SEED_BYTES``, as a VRF output is): public and fixed, as every
    seed is public once its block is out; what matters is that no proposer chose it."""
    return hashlib.sha512(digest(Domain.VRF_INPUT, b"genesis", chain_id=chain_id)).digest()


def vrf_input(chain_id: str, previous_seed: bytes, height: int) -> bytes:
    """alpha for the VRF proof that produces the seed of ``height``."""
    if height < 1:
        raise ValueError(f"height must be >= 1, got {height}")
    return digest(Domain.VRF_INPUT, previous_seed + height.to_bytes(8, "big"), chain_id=chain_id)


def next_seed(
    chain_id: str, previous_seed: bytes, height: int, vrf_public_key: bytes, proof: bytes
) -> bytes:
    """The seed of ``height`` from the VRF proof in block ``height - 1``; raises InvalidProof."""
    return ecvrf.verify(vrf_public_key, proof, vrf_input(chain_id, previous_seed, height))


@dataclass(frozen=True, slots=True)
class ScheduledValidator:
    """What the draw needs of a validator."""

    address: bytes
    stake: int
    reputation: float = 1.0


class LeaderSchedule:
    """The weighted draw over one validator set (one epoch); stake updates are O(log n).

    Validators keep the slot of their position in ``validators`` (order them deterministically,
    e.g. by address), so every node builds the same tree.
    """

    __slots__ = (
        "_addresses",
        "_eligible",
        "_reputation",
        "_slots",
        "_stake",
        "chain_id",
        "threshold",
    )

    def __init__(
        self,
        chain_id: str,
        validators: Sequence[ScheduledValidator],
        *,
        reputation_threshold: float = 0.5,
    ) -> None:
        if not validators:
            raise ValueError("a schedule needs at least one validator")
        self.chain_id = chain_id
        self.threshold = reputation_threshold
        self._addresses = [v.address for v in validators]
        if len(set(self._addresses)) != len(self._addresses):
            raise ValueError("validator addresses must be unique")
        self._slots = {address: slot for slot, address in enumerate(self._addresses)}
        stakes = [v.stake for v in validators]
        if min(stakes) < 0:
            raise ValueError("stakes must be >= 0")
        self._reputation = [v.reputation for v in validators]
        self._stake = StakeTree.from_weights(stakes)
        self._eligible = StakeTree.from_weights(
            [
                stake if reputation >= reputation_threshold else 0
                for stake, reputation in zip(stakes, self._reputation, strict=True)
            ]
        )
        if self._stake.total() == 0:
            raise ValueError("a schedule needs some stake")

    def _refresh(self, slot: int) -> None:
        eligible = self._reputation[slot] >= self.threshold
        self._eligible.set(slot, self._stake.weight(slot) if eligible else 0)

    def set_stake(self, address: bytes, stake: int) -> None:
        """Change a validator's stake (O(log n))."""
        if stake < 0:
            raise ValueError(f"stake must be >= 0, got {stake}")
        slot = self._slots[address]
        self._stake.set(slot, stake)
        self._refresh(slot)

    def set_reputation(self, address: bytes, reputation: float) -> None:
        """Change a validator's reputation; below the threshold it leaves the draw (O(log n))."""
        slot = self._slots[address]
        self._reputation[slot] = reputation
        self._refresh(slot)

    def leader(self, seed: bytes, view: int) -> bytes:
        """The address of the leader of the height whose seed is ``seed``, at ``view``."""
        if view < 0:
            raise ValueError(f"view must be >= 0, got {view}")
        tree = self._eligible
        total = tree.total()
        if total == 0:  # nobody is reputable enough: fall back to plain stake
            tree = self._stake
            total = tree.total()
        draw = digest(Domain.LEADER_DRAW, seed + view.to_bytes(8, "big"), chain_id=self.chain_id)
        return self._addresses[tree.find(int.from_bytes(draw, "big") % total)]

    def total_stake(self) -> int:
        """The stake of the whole set (reputation ignored)."""
        return self._stake.total()

    def addresses(self) -> Iterable[bytes]:
        """The validators, in slot order."""
        return iter(self._addresses)
