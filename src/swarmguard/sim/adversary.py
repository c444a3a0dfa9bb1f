"""Byzantine behaviours as rewrites of what a real replica sends.

A Byzantine validator runs the honest replica (so it follows the protocol far enough to matter)
and holds its own key, so it can sign anything. ``Adversary.rewrite`` turns each message it is
about to send to one receiver into what it sends instead: nothing, the message, a conflicting
one, or one with a broken signature. SILENT and WITHHOLD are handled by the simulation (they are
about when, not what); TWIN needs no rewrite (two honest replicas with one key equivocate by
themselves).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from swarmguard.consensus.messages import Proposal
from swarmguard.consensus.replica import Message
from swarmguard.crypto import SigningKey
from swarmguard.sim.scenario import Behaviour
from swarmguard.validators.evidence import (
    NIL,
    PHASE_FINAL,
    PHASE_PROPOSE,
    PHASE_VOTE,
    SignedVote,
    sign_vote,
)

__all__ = ["Adversary", "block_for"]


def block_for(height: int, label: str) -> tuple[bytes, bytes]:
    """A valid block for the simulation's application: (hash, block)."""
    block = f"height {height} {label}".encode()
    return hashlib.sha256(block).digest(), block


@dataclass(slots=True)
class Adversary:
    behaviour: Behaviour
    validator: int
    key: SigningKey
    chain_id: str
    rng: random.Random
    _halves: dict[tuple[int, int], frozenset[int]] = field(default_factory=dict)
    _alternatives: dict[tuple[int, int], tuple[bytes, bytes]] = field(default_factory=dict)

    def rewrite(self, message: Message, receiver: int) -> list[Message]:
        if self.behaviour is Behaviour.SELECTIVE:
            return [message] if self.rng.random() < 0.5 else []
        if self.behaviour is Behaviour.INVALID:
            return [_corrupt(message)] if self.rng.random() < 0.5 else [message]
        if self.behaviour is Behaviour.EQUIVOCATE:
            return [self._equivocate(message, receiver)]
        return [message]

    def _half(self, height: int, view: int, receiver: int) -> bool:
        """Whether ``receiver`` is in the second half for (height, view): fixed per view, so the
        split is consistent across the view's proposal, votes and finals."""
        half = self._halves.get((height, view))
        if half is None:
            half = frozenset(v for v in range(64) if self.rng.random() < 0.5)
            self._halves[height, view] = half
        return receiver in half

    def _alternative(self, height: int, view: int) -> tuple[bytes, bytes]:
        found = self._alternatives.get((height, view))
        if found is None:
            found = block_for(height, f"alternative by v{self.validator} in view {view}")
            self._alternatives[height, view] = found
        return found

    def _equivocate(self, message: Message, receiver: int) -> Message:
        if isinstance(message, Proposal):
            if not self._half(message.height, message.view, receiver):
                return message
            block_hash, block = self._alternative(message.height, message.view)
            vote = sign_vote(
                self.key, self.chain_id, message.height, message.view, PHASE_PROPOSE, block_hash
            )
            return Proposal(
                message.height,
                message.view,
                message.proposer,
                block_hash,
                vote.signature,
                block,
                None,
                message.nil_certificates,
            )
        if not isinstance(message, SignedVote) or message.phase == PHASE_PROPOSE:
            return message
        if not self._half(message.height, message.view, receiver):
            return message
        alternative = self._alternatives.get((message.height, message.view))
        if message.phase == PHASE_VOTE:
            if message.block_hash == NIL:
                return message
            other = alternative[0] if alternative is not None else NIL
        else:
            assert message.phase == PHASE_FINAL
            if message.block_hash != NIL:
                other = NIL
            elif alternative is not None:
                other = alternative[0]
            else:
                return message
        return sign_vote(
            self.key, self.chain_id, message.height, message.view, message.phase, other
        )


def _corrupt(message: Message) -> Message:
    if isinstance(message, SignedVote):
        broken = bytes([message.signature[0] ^ 1]) + message.signature[1:]
        return SignedVote(
            message.height,
            message.view,
            message.phase,
            message.block_hash,
            message.consensus_key,
            broken,
        )
    if isinstance(message, Proposal):
        broken = bytes([message.signature[0] ^ 1]) + message.signature[1:]
        return Proposal(
            message.height,
            message.view,
            message.proposer,
            message.block_hash,
            broken,
            message.block,
            message.certificate,
            message.nil_certificates,
        )
    return message
