"""Hand-scheduled runs: the named regressions of the brief, message by message.

The random simulator searches; a script replays one known attack exactly. A ``Script`` holds
real replicas (honest, or a mutant) for the honest validators and lets the caller play the
network and the Byzantine validators: every message a replica sends waits in its outbox until
``deliver`` hands it to a chosen receiver, timers fire only when ``fire`` says so, and Byzantine
messages are signed with the Byzantine key and injected where the script wants them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmguard.consensus.messages import Proposal
from swarmguard.consensus.replica import (
    Action,
    Broadcast,
    Decide,
    Message,
    Replica,
    SendTo,
    Timer,
)
from swarmguard.crypto import SigningKey
from swarmguard.sim.adversary import block_for
from swarmguard.sim.simulation import CHAIN_ID, SimulationApp
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import PHASE_PROPOSE, SignedVote, sign_vote

__all__ = ["Script"]


@dataclass
class Script:
    powers: list[int]
    byzantine: set[int]
    replica_class: Callable[..., Replica] = Replica
    now: float = 0.0
    outbox: dict[int, list[tuple[int | None, Message]]] = field(default_factory=dict)
    delivered: set[tuple[int, int, int]] = field(default_factory=set)  # (sender, index, to)
    decided: dict[int, dict[int, bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = [
            SigningKey(hashlib.sha256(b"script key %d" % i).digest())
            for i in range(len(self.powers))
        ]
        self.validators = [
            (key.public_key.raw, power) for key, power in zip(self.keys, self.powers, strict=True)
        ]
        n = len(self.powers)
        self.replicas = {
            i: self.replica_class(
                CHAIN_ID,
                i,
                self.keys[i],
                lambda height: self.validators,
                lambda height, view: (height + view) % n,
                SimulationApp(f"v{i}"),
            )
            for i in range(n)
            if i not in self.byzantine
        }
        for i, replica in self.replicas.items():
            self.outbox[i] = []
            self._apply(i, replica.start(self.now))

    def _apply(self, i: int, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                self.outbox[i].append((None, action.message))
            elif isinstance(action, SendTo):
                self.outbox[i].append((action.validator, action.message))
            elif isinstance(action, Decide):
                self.decided.setdefault(i, {})[action.height] = action.block_hash

    def deliver(
        self, sender: int, receiver: int, which: Callable[[Message], bool] = lambda m: True
    ) -> int:
        """Hand ``receiver`` every message of ``sender``'s outbox it has not had yet that
        ``which`` selects, in the order sent (new sends land in the outbox, not delivered)."""
        count = 0
        for index, (to, message) in enumerate(list(self.outbox[sender])):
            key = (sender, index, receiver)
            if key in self.delivered or to not in (None, receiver) or not which(message):
                continue
            self.delivered.add(key)
            self.inject(receiver, message, sender)
            count += 1
        return count

    def inject(self, receiver: int, message: Message, sender: int = -1) -> None:
        """Deliver one message (a Byzantine one, typically) to ``receiver``."""
        self._apply(receiver, self.replicas[receiver].on_message(sender, message, self.now))

    def fire(self, i: int, height: int, view: int, timer: Timer) -> None:
        self._apply(i, self.replicas[i].on_timer(height, view, timer, self.now))

    # -- what a Byzantine validator can sign ---------------------------------------------

    def vote(self, signer: int, height: int, view: int, phase: int, value: bytes) -> SignedVote:
        return sign_vote(self.keys[signer], CHAIN_ID, height, view, phase, value)

    def proposal(
        self,
        signer: int,
        height: int,
        view: int,
        label: str,
        nil_certificates: tuple[CommitCertificate, ...] = (),
    ) -> Proposal:
        block_hash, block = block_for(height, label)
        signature = self.vote(signer, height, view, PHASE_PROPOSE, block_hash).signature
        return Proposal(height, view, signer, block_hash, signature, block, None, nil_certificates)

    def forks(self, height: int) -> set[bytes]:
        """The distinct blocks honest replicas decided at ``height``."""
        return {chain[height] for chain in self.decided.values() if height in chain}
