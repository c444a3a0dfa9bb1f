"""The replica's rules end to end on a small in-process network (the simulator goes further)."""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from swarmguard.consensus.batching import BatchConfig, Batcher
from swarmguard.consensus.messages import Proposal
from swarmguard.consensus.replica import (
    VIEWS_AHEAD_MAX,
    Action,
    Broadcast,
    Decide,
    Evidence,
    Message,
    Persist,
    Replica,
    SendTo,
    SetTimer,
    Timer,
)
from swarmguard.consensus.signing import SigningGuard
from swarmguard.consensus.sync import Decision, DecisionRequest
from swarmguard.crypto import SigningKey
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_VOTE, SignedVote

CHAIN = "swarm-test"


@dataclass
class App:
    index: int
    committed: list[int] = field(default_factory=list)

    def propose(self, height: int, transactions: Sequence[bytes]) -> tuple[bytes, bytes]:
        block = b" ".join([b"height %d from %d" % (height, self.index), *transactions])
        return hashlib.sha256(block).digest(), block

    def validate(self, height: int, block_hash: bytes, block: bytes) -> bool:
        return hashlib.sha256(block).digest() == block_hash and block.startswith(
            b"height %d " % height
        )

    def commit(self, height: int, block: bytes, certificate: CommitCertificate) -> None:
        self.committed.append(height)


@dataclass
class Network:
    """Instant FIFO delivery; timers fire only when no message is in flight."""

    powers: list[int]
    silent: set[int] = field(default_factory=set)
    now: float = 0.0
    queue: deque[tuple[int, int, Message]] = field(default_factory=deque)
    timers: list[tuple[float, int, int, int, int, Timer]] = field(default_factory=list)
    decisions: dict[int, dict[int, CommitCertificate]] = field(default_factory=dict)
    records: dict[int, bytes] = field(default_factory=dict)
    signed: dict[tuple[bytes, int, int, int], set[bytes]] = field(default_factory=dict)
    seq: int = 0
    powers_at: Callable[[int], list[int]] | None = None  # per height (default: ``powers``)
    sent: set[bytes] = field(default_factory=set)  # signatures already broadcast

    def __post_init__(self) -> None:
        keys = [SigningKey(bytes([i + 1]) * 32) for i in range(len(self.powers))]
        n = len(keys)

        def validators(height: int) -> list[tuple[bytes, int]]:
            powers = self.powers if self.powers_at is None else self.powers_at(height)
            return [(k.public_key.raw, p) for k, p in zip(keys, powers, strict=True)]

        self.validators = validators
        self.replicas = [
            Replica(CHAIN, i, keys[i], validators, lambda h, v: (h + v) % n, App(i))
            for i in range(n)
        ]

    def apply(self, sender: int, actions: list[Action]) -> None:
        persisted = False
        for action in actions:
            if isinstance(action, Persist):
                self.records[sender] = action.record
                persisted = True
            elif isinstance(action, Broadcast):
                message = action.message
                if isinstance(message, SignedVote) and message.signature not in self.sent:
                    # A re-sent vote was persisted when first signed; a new one must be now.
                    assert persisted, "a signed vote left before its record was persisted"
                    self.sent.add(message.signature)
                    slot = (message.consensus_key, message.height, message.view, message.phase)
                    self.signed.setdefault(slot, set()).add(message.block_hash)
                    values = self.signed[slot] - {NIL} if message.phase == PHASE_VOTE else None
                    assert len(values if values is not None else self.signed[slot]) <= 1, slot
                for receiver in range(len(self.replicas)):
                    if receiver != sender:
                        self.send(sender, receiver, action.message)
            elif isinstance(action, SendTo):
                self.send(sender, action.validator, action.message)
            elif isinstance(action, SetTimer):
                self.seq += 1
                heapq.heappush(
                    self.timers,
                    (action.at, self.seq, sender, action.height, action.view, action.timer),
                )
            elif isinstance(action, Decide):
                mine = self.decisions.setdefault(sender, {})
                assert action.height not in mine
                mine[action.height] = action.certificate

    def send(self, sender: int, receiver: int, message: Message) -> None:
        self.queue.append((sender, receiver, message))

    def deliver(self, sender: int, receiver: int, message: Message) -> None:
        if receiver in self.silent:
            return
        self.apply(receiver, self.replicas[receiver].on_message(sender, message, self.now))

    def run(self, heights: int, steps: int = 200_000, *, start: bool = True) -> None:
        honest = [i for i in range(len(self.replicas)) if i not in self.silent]
        for i in honest if start else []:
            self.apply(i, self.replicas[i].start(self.now))
        for _ in range(steps):
            if all(len(self.decisions.get(i, {})) >= heights for i in honest):
                return
            if self.queue:
                self.deliver(*self.queue.popleft())
            elif self.timers:
                at, _, i, height, view, timer = heapq.heappop(self.timers)
                self.now = max(self.now, at)
                if i not in self.silent:
                    self.apply(i, self.replicas[i].on_timer(height, view, timer, self.now))
            else:
                break
        raise AssertionError(f"no progress: {[len(d) for d in self.decisions.values()]}")

    def agreed(self, heights: int) -> list[CommitCertificate]:
        honest = [i for i in range(len(self.replicas)) if i not in self.silent]
        chosen = []
        for height in range(1, heights + 1):
            hashes = {self.decisions[i][height].block_hash for i in honest}
            assert len(hashes) == 1, f"height {height}: honest replicas decided {hashes}"
            chosen.append(self.decisions[honest[0]][height])
        return chosen


def test_four_honest_validators_decide_on_the_fast_path() -> None:
    network = Network([1, 1, 1, 1])
    network.run(heights=5)
    certificates = network.agreed(5)
    assert all(c.view == 0 for c in certificates)
    assert any(c.phase == PHASE_VOTE for c in certificates)
    assert network.now == 0.0  # no timer was needed
    for replica in network.replicas:
        assert replica.stats.fast_path_ratio == 1.0
        assert replica.stats.failed_views == replica.stats.timeouts == 0


def test_unequal_stakes_decide() -> None:
    network = Network([5, 1, 2, 3, 8, 1, 4])
    network.run(heights=8)
    network.agreed(8)


def test_a_silent_validator_costs_view_changes_but_not_safety_or_progress() -> None:
    network = Network([1, 1, 1, 1], silent={2})
    network.run(heights=6)
    certificates = network.agreed(6)
    assert any(c.view > 0 for c in certificates)  # its turns as leader failed over
    for i in (0, 1, 3):
        stats = network.replicas[i].stats
        assert stats.slow_commits == 6  # the fast path needs every validator's Vote (P = 0)
        assert stats.failed_views > 0
        assert stats.timeouts > 0


def test_certificates_verify_against_the_set() -> None:
    network = Network([1, 1, 1, 1], silent={1})
    network.run(heights=4)
    validators = network.replicas[0].validators(1)
    for certificate in network.agreed(4):
        certificate.verify(CHAIN, validators)


def test_a_restarted_replica_resumes_without_contradicting_itself() -> None:
    network = Network([1, 1, 1, 1])
    network.run(heights=2)
    old = network.replicas[0]
    restarted = Replica(
        CHAIN,
        0,
        old.key,
        old.validators,
        old.leader,
        App(0),
        guard=SigningGuard.decode(network.records[0]),
    )
    network.replicas[0] = restarted
    network.apply(0, restarted.start(network.now))
    network.run(heights=6, start=False)
    network.agreed(6)


def test_equivocation_becomes_verified_evidence() -> None:
    network = Network([1, 1, 1, 1])
    replica = network.replicas[0]
    replica.start(0.0)
    byzantine = SigningKey(bytes([3]) * 32)  # validator 2's key

    def vote(phase: int, value: bytes) -> SignedVote:
        unsigned = SignedVote(1, 5, phase, value, byzantine.public_key.raw, bytes(64))
        signature = byzantine.sign(unsigned.sign_bytes(CHAIN))
        return SignedVote(1, 5, phase, value, byzantine.public_key.raw, signature)

    def evidence_from(message: SignedVote) -> list[Evidence]:
        return [a for a in replica.on_vote(message, 0.0) if isinstance(a, Evidence)]

    assert not evidence_from(vote(PHASE_VOTE, b"a" * 32))
    assert not evidence_from(vote(PHASE_VOTE, NIL))  # value + ⊥ is allowed
    found = evidence_from(vote(PHASE_VOTE, b"b" * 32))
    assert len(found) == 1
    found[0].evidence.verify(CHAIN)
    assert not evidence_from(vote(PHASE_FINAL, NIL))
    found = evidence_from(vote(PHASE_FINAL, b"a" * 32))
    assert len(found) == 1
    found[0].evidence.verify(CHAIN)


def test_votes_for_far_views_are_dropped() -> None:
    network = Network([1, 1, 1, 1])
    replica = network.replicas[0]
    replica.start(0.0)
    byzantine = SigningKey(bytes([2]) * 32)
    for view in (VIEWS_AHEAD_MAX + 1, 10**6, 2**64 - 1):
        unsigned = SignedVote(1, view, PHASE_VOTE, NIL, byzantine.public_key.raw, bytes(64))
        signature = byzantine.sign(unsigned.sign_bytes(CHAIN))
        vote = SignedVote(1, view, PHASE_VOTE, NIL, byzantine.public_key.raw, signature)
        assert replica.on_vote(vote, 0.0) == []
    assert max(replica._height().tallies, default=0) <= VIEWS_AHEAD_MAX


def test_a_redelivered_proposal_is_acted_on_once() -> None:
    network = Network([1, 1, 1, 1])
    leader = network.replicas[1]  # (height 1 + view 0) % 4
    proposal = next(
        a.message
        for a in leader.start(0.0)
        if isinstance(a, Broadcast) and isinstance(a.message, Proposal)
    )
    replica = network.replicas[0]
    replica.start(0.0)
    first = replica.on_proposal(proposal, 0.0)
    assert any(isinstance(a, Broadcast) for a in first)  # it voted
    assert replica.on_proposal(proposal, 0.0) == []


def batching_leader(config: BatchConfig) -> tuple[Replica, list[Action]]:
    network = Network([1, 1, 1, 1])
    leader = network.replicas[1]  # (height 1 + view 0) % 4
    leader.batcher = Batcher(config)
    return leader, leader.start(0.0)


def proposals_in(actions: list[Action]) -> list[Proposal]:
    return [
        a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, Proposal)
    ]


def test_a_leader_waits_for_its_batch_then_proposes_on_the_timeout() -> None:
    leader, actions = batching_leader(BatchConfig(timeout=0.05, empty_block_after=0.4))
    assert not proposals_in(actions)  # nothing to propose yet
    actions = leader.on_transaction(b"tx-1", 0.1)
    assert not proposals_in(actions)
    wake = [a for a in actions if isinstance(a, SetTimer) and a.timer is Timer.BATCH]
    assert [a.at for a in wake] == [0.1 + 0.05]
    (proposal,) = proposals_in(leader.on_timer(1, 0, Timer.BATCH, wake[0].at))
    assert b"tx-1" in proposal.block


def test_a_full_batch_goes_at_once_and_an_idle_leader_proposes_empty() -> None:
    leader, _ = batching_leader(BatchConfig(max_transactions=2, timeout=10.0))
    assert not proposals_in(leader.on_transaction(b"tx-1", 0.1))
    (proposal,) = proposals_in(leader.on_transaction(b"tx-2", 0.1))
    assert proposal.block.endswith(b" tx-1 tx-2")

    idle, actions = batching_leader(BatchConfig(empty_block_after=0.4))
    assert any(isinstance(a, SetTimer) and a.at == 0.4 for a in actions)
    assert not proposals_in(idle.on_timer(1, 0, Timer.BATCH, 0.3))  # not yet
    (empty,) = proposals_in(idle.on_timer(1, 0, Timer.BATCH, 0.4))
    assert empty.block == b"height 1 from 1"


def test_view_timers_start_after_the_leaders_batch_allowance() -> None:
    """Δ measures the network; a leader waiting empty_block_after for transactions is not a slow
    network, so the ⊥ timers count 2Δ and 3Δ from the end of that wait."""
    leader, actions = batching_leader(BatchConfig(empty_block_after=0.4))
    delta = leader.health.delta
    timers = {a.timer: a.at for a in actions if isinstance(a, SetTimer)}
    assert timers[Timer.VOTE_NIL] == 0.4 + 2 * delta
    assert timers[Timer.FINAL_NIL] == 0.4 + 3 * delta
    plain = Network([1, 1, 1, 1]).replicas[0]
    timers = {a.timer: a.at for a in plain.start(0.0) if isinstance(a, SetTimer)}
    assert timers[Timer.VOTE_NIL] == 2 * plain.health.delta


def test_the_loss_estimate_sees_a_silent_validator() -> None:
    network = Network([1, 1, 1, 1], silent={3})
    network.run(heights=30)
    for replica in network.replicas[:3]:
        # One of three others never votes: the estimate converges on 1/3.
        assert 0.3 < replica.health.loss <= 1 / 3 + 1e-9
    healthy = Network([1, 1, 1, 1])
    healthy.run(heights=10)
    assert all(replica.health.loss == 0 for replica in healthy.replicas)


def test_a_replica_that_sees_a_later_height_asks_for_decisions() -> None:
    """The catch-up request: after a Δ at its height, at most once per 2Δ per peer."""
    network = Network([1, 1, 1, 1])
    behind = network.replicas[0]
    behind.start(0.0)
    delta = behind.health.delta
    ahead = DecisionRequest(5)  # validator 2 says it is at height 5

    def requests(now: float) -> list[Message]:
        actions = behind.on_message(2, ahead, now)
        return [a.message for a in actions if isinstance(a, SendTo) and a.validator == 2]

    assert requests(delta / 2) == []  # a peer a moment ahead is the normal race
    assert requests(delta) == [DecisionRequest(1)]
    assert requests(delta * 2) == []  # rate limited
    assert requests(delta * 3.01) == [DecisionRequest(1)]
    # The peer answers with the decisions it has from our height on.
    network.run(heights=3)
    peer = network.replicas[2]
    answer = peer.on_message(0, DecisionRequest(1), network.now)
    decided = [a.message for a in answer if isinstance(a, SendTo)]
    assert [d.height for d in decided if isinstance(d, Decision)] == [1, 2, 3][: len(decided)]
    assert decided, "a peer past our height answers with its decisions"


def test_bad_signatures_and_unknown_keys_are_dropped_counted_and_blamed_on_the_deliverer() -> None:
    network = Network([1, 1, 1, 1])
    replica = network.replicas[0]
    replica.start(0.0)
    named = SigningKey(bytes([2]) * 32)  # validator 1's key: the message claims to be its
    unsigned = SignedVote(1, 0, PHASE_VOTE, NIL, named.public_key.raw, bytes(64))
    signature = named.sign(unsigned.sign_bytes(CHAIN))
    forged = SignedVote(
        1, 0, PHASE_VOTE, NIL, named.public_key.raw, bytes([signature[0] ^ 1]) + signature[1:]
    )
    assert replica.on_message(3, forged, 0.1) == []  # validator 3 delivered it
    assert replica.stats.invalid_signatures == 1
    assert replica.health.fault_count(3) == 1  # the deliverer, whom the transport authenticated
    assert replica.health.fault_count(1) == 0  # not the validator a forgery names
    assert 0 not in replica._height().tallies  # nothing was counted

    stranger = SigningKey(bytes([99]) * 32)
    unsigned = SignedVote(1, 0, PHASE_VOTE, NIL, stranger.public_key.raw, bytes(64))
    vote = SignedVote(
        1, 0, PHASE_VOTE, NIL, stranger.public_key.raw, stranger.sign(unsigned.sign_bytes(CHAIN))
    )
    assert replica.on_message(2, vote, 0.1) == []
    assert replica.stats.unknown_keys == 1
    assert replica.health.fault_count(2) == 0  # relaying a stranger's vote is no fault


def test_thresholds_follow_the_validator_set_of_each_height() -> None:
    """From height 3 validator 3 holds 4 of 7 power (the set comes from committed state, e.g.
    an epoch's staking): its signature is needed in every later commit, and without it the
    chain stops, safely, where the old set would have gone on."""

    def powers_at(height: int) -> list[int]:
        return [1, 1, 1, 1] if height < 3 else [1, 1, 1, 4]

    network = Network([1, 1, 1, 1], powers_at=powers_at)
    network.run(heights=5)
    for certificate in network.agreed(5):
        height = certificate.height
        certificate.verify(CHAIN, network.validators(height), 0)
        if height >= 3:
            assert 3 in {index for index, _ in certificate.signatures}

    stalled = Network([1, 1, 1, 1], silent={3}, powers_at=powers_at)
    stalled.run(heights=2)  # 3 of 4 equal validators suffice for heights 1 and 2
    with pytest.raises(AssertionError, match="no progress"):
        stalled.run(heights=3, steps=20_000, start=False)
    assert all(3 not in stalled.decisions[i] for i in range(3))


def test_a_restarted_replica_resends_what_its_record_says_it_signed() -> None:
    """Messages sent just before a crash may never arrive, and the guard forbids signing
    anything else in their place: the restarted replica signs them again (the same bytes)."""
    network = Network([1, 1, 1, 1])
    replica = network.replicas[0]
    replica.start(0.0)
    signed = replica.on_timer(1, 0, Timer.VOTE_NIL, 2.0)  # rule 5: Vote(⊥) in view 0
    (sent,) = [a.message for a in signed if isinstance(a, Broadcast)]
    record = next(a.record for a in reversed(signed) if isinstance(a, Persist))
    restarted = Replica(
        CHAIN,
        0,
        replica.key,
        replica.validators,
        replica.leader,
        App(0),
        guard=SigningGuard.decode(record),
    )
    resent = [a.message for a in restarted.start(10.0) if isinstance(a, Broadcast)]
    assert sent in resent  # identical, signature included
    assert restarted._tally(0).has_voted(0)  # and counted: rule 5 will not fire again


def test_with_the_fast_path_off_every_height_is_decided_on_finals() -> None:
    network = Network([1, 1, 1, 1])
    for replica in network.replicas:
        replica.fast_path = False
    network.run(heights=3)
    assert all(c.phase == PHASE_FINAL for c in network.agreed(3))
    assert all(r.stats.fast_commits == 0 for r in network.replicas)
    network = Network([1, 1, 1, 1])
    network.run(heights=3)
    assert all(c.phase == PHASE_VOTE for c in network.agreed(3))  # all vote: fast by default


def test_a_block_prepared_before_every_replica_restarts_is_decided_after() -> None:
    """All four stop right after the first FINAL for block B at height 1 (B is prepared: a
    later view must propose B again, which only its body allows), and all restart from their
    guard records with no memory of B. Given back the bodies they voted for
    (``restore_blocks``: the node keeps them on disk with its votes), they decide B; without
    them a height could never end when its leader cannot rebuild B (found by restarting a
    whole local network in CI; this test's application rebuilds B, so only the real node
    shows that, in tests/cluster's ``up`` resume test)."""

    def prepared() -> tuple[Network, bytes, dict[int, dict[bytes, bytes]]]:
        network = Network([1, 1, 1, 1])
        for replica in network.replicas:
            replica.fast_path = False
            network.apply(replica.index, replica.start(network.now))
        while not any(
            phase == PHASE_FINAL for r in network.replicas for _, phase, _ in r.guard.signed()
        ):
            network.deliver(*network.queue.popleft())
        assert not network.decisions
        (block_hash,) = {v for r in network.replicas for _, p, v in r.guard.signed() if p == 2}
        bodies = {
            r.index: {h: b for h, b in r._height().blocks.items() if h == block_hash}
            for r in network.replicas
        }
        return network, block_hash, bodies

    def restart(network: Network, bodies: dict[int, dict[bytes, bytes]] | None) -> None:
        network.queue.clear()
        network.timers.clear()
        old = network.replicas
        network.replicas = [
            Replica(
                CHAIN,
                r.index,
                r.key,
                r.validators,
                r.leader,
                App(r.index),
                guard=SigningGuard.decode(network.records[r.index]),
                fast_path=False,
            )
            for r in old
        ]
        for replica in network.replicas:
            network.apply(replica.index, replica.start(network.now))
            if bodies is not None:
                restored = replica.restore_blocks(bodies[replica.index], network.now)
                network.apply(replica.index, restored)

    network, block_hash, bodies = prepared()
    restart(network, bodies)
    network.run(heights=1, start=False)
    (decided,) = network.agreed(1)
    assert decided.block_hash == block_hash


def _broadcasts(actions: list[Action]) -> list[Message]:
    return [a.message for a in actions if isinstance(a, Broadcast)]


def certificates_in(actions: list[Action]) -> list[CommitCertificate]:
    return [m for m in _broadcasts(actions) if isinstance(m, CommitCertificate)]


def _votes(actions: list[Action]) -> list[SignedVote]:
    return [m for m in _broadcasts(actions) if isinstance(m, SignedVote)]


def prepared_at_next_leader(
    config: BatchConfig | None,
) -> tuple[Replica, list[Action], SignedVote, SignedVote]:
    """Height 1, four equal validators: replica 1 leads view 0 (no batcher: it proposes at
    once) and replica 2 leads view 1 with a batcher. Replica 2 hears the proposal and the
    Votes of 0 and 1: with its own, a Slow-Cert (3 of 4) and no fast commit yet. Returns
    replica 2, the actions of that last Vote, replica 0's Vote (counted) and replica 3's
    (the fast commit's last)."""
    network = Network([1, 1, 1, 1])
    first, leader, nxt, last = network.replicas
    nxt.batcher = Batcher(config) if config is not None else None
    started = leader.start(0.0)
    (proposal,) = proposals_in(started)
    (leader_vote,) = _votes(started)
    first.start(0.0)
    (first_vote,) = _votes(first.on_message(1, proposal, 0.0))
    last.start(0.0)
    (last_vote,) = _votes(last.on_message(1, proposal, 0.0))
    nxt.start(0.0)
    nxt.on_message(1, proposal, 0.0)
    nxt.on_message(1, leader_vote, 0.0)
    return nxt, nxt.on_message(0, first_vote, 0.0), first_vote, last_vote


def test_a_value_views_rule_8_pair_is_forwarded_as_one_certificate() -> None:
    """Fast-Cert(k, x) and Slow-Cert(k, x) are the same Votes: one certificate carries both."""
    replica, actions, _, _ = prepared_at_next_leader(BatchConfig())
    assert replica.view == 1  # rule 8 moved on
    (forwarded,) = certificates_in(actions)
    assert forwarded.phase == PHASE_VOTE
    assert len(forwarded.signatures) == 3
    assert [c.block_hash for c in certificates_in(replica._resend(1.0))] == [forwarded.block_hash]


def test_the_next_leader_holds_its_re_proposal_until_the_view_can_decide() -> None:
    """Rule 8 enters view 1 on a Slow-Cert a few Votes before view 0 decides; the leader of
    view 1 waits min(A, Δ) before re-proposing the block, so on the normal path it sends
    nothing (the decision lands first), and it proposes when the height is still open."""
    config = BatchConfig(empty_block_after=0.4)
    replica, actions, _, last_vote = prepared_at_next_leader(config)
    assert not proposals_in(actions)
    wait = min(0.4, replica.health.delta)
    (timer,) = [a for a in actions if isinstance(a, SetTimer) and a.timer is Timer.BATCH]
    assert (timer.height, timer.view, timer.at) == (1, 1, wait)
    assert not proposals_in(replica.on_transaction(b"tx", 0.01))  # a batch does not hurry it
    (proposal,) = proposals_in(replica.on_timer(1, 1, Timer.BATCH, wait))
    assert proposal.view == 1
    assert proposal.rank is not None
    assert proposal.rank.view == 0

    replica, actions, _, last_vote = prepared_at_next_leader(config)
    decided = replica.on_message(3, last_vote, 0.01)
    assert any(isinstance(a, Decide) for a in decided)
    assert not proposals_in(decided)
    assert not replica.on_timer(1, 1, Timer.BATCH, wait)  # height 1 is over: nothing sent

    _, actions, _, _ = prepared_at_next_leader(None)  # A = 0: no wait to hold it within
    (proposal,) = proposals_in(actions)
    assert proposal.view == 1


def test_a_re_sent_vote_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-sends repeat the same bytes every 2Δ: a Vote counted already costs a lookup."""
    replica, _, first_vote, _last_vote = prepared_at_next_leader(BatchConfig())
    checked: list[SignedVote] = []
    original = SignedVote.is_signed

    def counting(vote: SignedVote, chain_id: str) -> bool:
        checked.append(vote)
        return original(vote, chain_id)

    monkeypatch.setattr(SignedVote, "is_signed", counting)
    assert not replica.on_message(0, first_vote, 0.01)
    forged = dataclasses.replace(first_vote, signature=bytes(64))  # not the counted bytes
    replica.on_message(0, forged, 0.02)
    assert checked == [forged]
    assert replica.stats.invalid_signatures == 1
