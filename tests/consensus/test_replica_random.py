"""Seeded random delivery against the replica: latency spread, reordering and an equivocating
leader. Safety (one block per height) on every seed; progress when nothing is lost. A first
step toward the simulator, which adds loss, partitions, crash-restart and more adversaries."""

from __future__ import annotations

import hashlib
import heapq
import random

import pytest

from swarmguard.consensus.messages import Proposal
from swarmguard.consensus.replica import Action, Broadcast, Message
from swarmguard.validators.evidence import PHASE_PROPOSE, SignedVote

from .test_replica import CHAIN, Network

SEEDS = 300


class RandomNetwork(Network):
    """Each message takes a random 1-200 ms; ``equivocator`` (if any) sends a second, conflicting
    block to every odd-numbered replica whenever it proposes a fresh block."""

    def __init__(self, powers: list[int], seed: int, equivocator: int | None = None) -> None:
        super().__init__(powers)
        self.rng = random.Random(seed)
        self.equivocator = equivocator
        self.inflight: list[tuple[float, int, int, int, Message]] = []

    def apply(self, sender: int, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                for receiver in range(len(self.replicas)):
                    if receiver != sender:
                        self.send(sender, receiver, self.tamper(sender, receiver, action.message))
        super().apply(sender, [a for a in actions if not isinstance(a, Broadcast)])

    def tamper(self, sender: int, receiver: int, message: Message) -> Message:
        if sender != self.equivocator or receiver % 2 == 0 or not isinstance(message, Proposal):
            return message
        if message.certificate is not None or message.nil_certificates:
            return message
        block = b"height %d from %d, the other one" % (message.height, sender)
        block_hash = hashlib.sha256(block).digest()
        key = self.replicas[sender].key
        unsigned = SignedVote(
            message.height, message.view, PHASE_PROPOSE, block_hash, key.public_key.raw, bytes(64)
        )
        signature = key.sign(unsigned.sign_bytes(CHAIN))
        return Proposal(
            message.height, message.view, sender, block_hash, signature, block, None, ()
        )

    def send(self, sender: int, receiver: int, message: Message) -> None:
        self.seq += 1
        delay = self.rng.uniform(0.001, 0.2)
        heapq.heappush(self.inflight, (self.now + delay, self.seq, sender, receiver, message))

    def run_random(self, heights: int, steps: int = 100_000) -> bool:
        for i in range(len(self.replicas)):
            self.apply(i, self.replicas[i].start(self.now))
        for _ in range(steps):
            if all(len(self.decisions.get(i, {})) >= heights for i in range(len(self.replicas))):
                return True
            next_timer = self.timers[0][0] if self.timers else float("inf")
            next_message = self.inflight[0][0] if self.inflight else float("inf")
            if next_message == next_timer == float("inf"):
                return False
            if next_message <= next_timer:
                at, _, sender, receiver, message = heapq.heappop(self.inflight)
                self.now = max(self.now, at)
                self.deliver(sender, receiver, message)
            else:
                at, _, i, height, view, timer = heapq.heappop(self.timers)
                self.now = max(self.now, at)
                self.apply(i, self.replicas[i].on_timer(height, view, timer, self.now))
        return False


@pytest.mark.parametrize("chunk", range(3))
def test_random_delivery_is_safe_and_live(chunk: int) -> None:
    for seed in range(chunk, SEEDS, 3):
        powers = [1, 1, 1, 1] if seed % 2 else [5, 1, 2, 3, 8, 1, 4]
        equivocator = 3 if seed % 4 == 1 else None
        network = RandomNetwork(powers, seed, equivocator)
        live = network.run_random(heights=4)
        honest = [i for i in range(len(powers)) if i != equivocator]
        decided = [network.decisions.get(i, {}) for i in honest]
        for height in {h for mine in decided for h in mine}:
            hashes = {mine[height].block_hash for mine in decided if height in mine}
            assert len(hashes) == 1, f"seed {seed}, height {height}: {hashes}"
        assert live, f"seed {seed}: no progress"
