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
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from swarmguard.consensus.messages import Proposal
from swarmguard.consensus.replica import Message
from swarmguard.consensus.sync import Decision
from swarmguard.crypto import SigningKey
from swarmguard.sim.scenario import Behaviour
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import (
    NIL,
    PHASE_FINAL,
    PHASE_PROPOSE,
    PHASE_VOTE,
    SignedVote,
    sign_vote,
)

__all__ = ["Adversary", "block_for"]

_MODES = {
    PHASE_PROPOSE: ("honest", "split", "split", "mute"),
    PHASE_VOTE: ("honest", "split", "split", "mute", "both", "double"),
    PHASE_FINAL: ("honest", "split", "split", "split", "mute"),
}
_ATTACKS = {
    PHASE_PROPOSE: ("split", "split", "mute"),
    PHASE_VOTE: ("split", "split", "mute", "both", "double"),
    PHASE_FINAL: ("split",),
}
_IDS = 64  # node ids a plan's half is drawn over (more than any simulated network has)


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
    victim: Callable[[int], int | None]  # the simulation's isolated node per height
    nil_certificates: Callable[[int, int], tuple[CommitCertificate, ...]]  # what it holds
    leader: Callable[[int, int], int]  # the public leader schedule: validator per (height, view)
    _plans: dict[tuple[int, int, int], tuple[str, frozenset[int]]] = field(default_factory=dict)
    _halves: dict[tuple[int, int], frozenset[int]] = field(default_factory=dict)
    _alternatives: dict[tuple[int, int], tuple[bytes, bytes]] = field(default_factory=dict)

    def rewrite(self, message: Message, receiver: int) -> list[Message]:
        if self.behaviour is Behaviour.SELECTIVE:
            return [message] if self.rng.random() < 0.5 else []
        if self.behaviour is Behaviour.INVALID:
            return [_corrupt(message)] if self.rng.random() < 0.5 else [message]
        if self.behaviour is Behaviour.EQUIVOCATE:
            return self._equivocate(message, receiver)
        return [message]

    def _plan(self, height: int, view: int, phase: int) -> tuple[str, frozenset[int]]:
        """The attack on one phase of one view and the half of the validators it targets,
        drawn once, so every copy of the view's proposal (or votes, or finals) follows it;
        the half is the view's, so one side sees one consistent story."""
        plan = self._plans.get((height, view, phase))
        if plan is None:
            half = self._halves.get((height, view))
            if half is None:  # one half per view: its proposal, votes and finals agree
                victim = self.victim(height)
                if victim is not None and self._rank_attack(height, view):
                    return self._plans[height, view, phase]
                if victim is not None and self.rng.random() < 0.6:
                    half = frozenset(range(_IDS)) - {victim}  # the victim alone sees plan A
                else:
                    half = frozenset(v for v in range(_IDS) if self.rng.random() < 0.5)
                self._halves[height, view] = half
            # With a victim the network is already splitting the world: attack, do not idle.
            modes = _ATTACKS if self.victim(height) is not None else _MODES
            plan = self._plans[height, view, phase] = (self.rng.choice(modes[phase]), half)
        return plan

    def _rank_attack(self, height: int, view: int) -> bool:
        """Leading a view with a victim, sometimes aim at the certificate ranking: the next
        view's leader alone gets the other block, everyone gets Votes for both (a Fast-Cert for
        each), and only the victim gets this validator's Final, so the victim may commit one
        block while the next leader holds a Fast-Cert for the other and, from the rest, a
        Slow-Cert for the first. Ranked right, the Slow-Cert wins; ranked by view only, the
        next leader may propose the other block. Plans all three phases at once."""
        if self.leader(height, view) != self.validator or self.rng.random() >= 1 / 3:
            return False
        half = frozenset({self.leader(height, view + 1)})  # primary nodes: id == validator
        self._halves[height, view] = half
        self._plans[height, view, PHASE_PROPOSE] = ("split", half)
        self._plans[height, view, PHASE_VOTE] = ("double", half)
        self._plans[height, view, PHASE_FINAL] = ("split", half)
        return True

    def _alternative(self, height: int, view: int) -> tuple[bytes, bytes]:
        found = self._alternatives.get((height, view))
        if found is None:
            found = block_for(height, f"alternative by v{self.validator} in view {view}")
            self._alternatives[height, view] = found
        return found

    def _sign(self, vote: SignedVote, value: bytes) -> SignedVote:
        return sign_vote(self.key, self.chain_id, vote.height, vote.view, vote.phase, value)

    def _equivocate(self, message: Message, receiver: int) -> list[Message]:
        """Each phase of each view gets its own plan: ``honest``; ``split`` (the targeted half
        gets a conflicting proposal, a Vote for the other block or ⊥, or the other Final);
        ``mute`` (the targeted half gets nothing); ``both`` (Votes: everyone gets the Vote
        and a ⊥ Vote too); ``double`` (Votes: everyone gets the Vote and one for the other
        block). A conflicting proposal carries every ⊥ certificate the Byzantine replica
        holds, so it is as justified as a fresh block can be. Certificates and decisions its
        replica forwards reach the targeted half only under an honest plan."""
        if isinstance(message, Proposal):
            mode, half = self._plan(message.height, message.view, PHASE_PROPOSE)
            if mode == "honest" or receiver not in half:
                return [message]
            if mode == "mute":
                return []
            block_hash, block = self._alternative(message.height, message.view)
            vote = sign_vote(
                self.key, self.chain_id, message.height, message.view, PHASE_PROPOSE, block_hash
            )
            other = Proposal(
                message.height,
                message.view,
                message.proposer,
                block_hash,
                vote.signature,
                block,
                None,
                self.nil_certificates(message.height, message.view),
            )
            return [other]
        if isinstance(message, CommitCertificate):
            # Its replica forwards what it counted, its own honest signature included; a
            # Byzantine validator does not hand the other side what its plan hides from it.
            mode, half = self._plan(message.height, message.view, message.phase)
            return [message] if mode == "honest" or receiver not in half else []
        if isinstance(message, Decision):
            mode, half = self._plan(message.height, 0, PHASE_VOTE)
            return [message] if mode == "honest" or receiver not in half else []
        if not isinstance(message, SignedVote) or message.phase == PHASE_PROPOSE:
            return [message]
        mode, half = self._plan(message.height, message.view, message.phase)
        if mode == "both" and message.phase == PHASE_VOTE and message.block_hash != NIL:
            return [message, self._sign(message, NIL)]
        if mode == "double" and message.phase == PHASE_VOTE and message.block_hash != NIL:
            other_block = self._alternative(message.height, message.view)[0]
            if other_block == message.block_hash:
                return [message]
            return [message, self._sign(message, other_block)]
        if mode == "honest" or receiver not in half:
            return [message]
        if mode == "mute":
            return []
        alternative = self._alternatives.get((message.height, message.view))
        if message.phase == PHASE_VOTE:
            if message.block_hash == NIL:
                return [message]
            return [self._sign(message, alternative[0] if alternative is not None else NIL)]
        if message.block_hash != NIL:
            return [self._sign(message, NIL)]
        if alternative is not None:
            return [self._sign(message, alternative[0])]
        return [message]


def _corrupt(message: Message) -> Message:
    """The same message with one bit of its signature flipped."""
    if isinstance(message, SignedVote | Proposal):
        broken = bytes([message.signature[0] ^ 1]) + message.signature[1:]
        return replace(message, signature=broken)
    return message
