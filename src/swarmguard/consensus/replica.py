"""The replica: the brief's rules 1-8 as a sans-IO state machine over one height at a time.

Inputs are method calls carrying the caller's ``now`` (seconds): ``start``, ``on_proposal``,
``on_vote`` (VOTE or FINAL), ``on_certificate`` (a forwarded certificate), the catch-up messages
(``on_decision``, ``on_block_request``, ``on_block_reply``) and ``on_timer``. Each returns the
actions to carry out, in order: ``Persist`` (write the double-sign record before anything after it
leaves the process), ``Broadcast``, ``SendTo`` (one validator), ``SetTimer``, ``Decide`` and
``Evidence``.

Messages get lost, so a height that is not decided re-sends, every ``RESEND`` period, what this
replica signed in its current and previous view and the rule 8 certificate pairs of the views it
passed; a replica that hears from a validator still at a height it decided answers with the
``Decision``; and a certificate for a block it does not hold makes it ask for the block. With a
``batcher``, a leader proposing a fresh block waits for a batch (``Timer.BATCH``). Signature
checks on incoming messages happen here, against the height's validator set; the block's own
validity is the application's (``Application.validate``). Nothing here reads a clock, a socket
or a random source.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from swarmguard.consensus.batching import Batcher, Refused
from swarmguard.consensus.buffer import FutureBuffer
from swarmguard.consensus.health import Fault, HealthMonitor
from swarmguard.consensus.justification import required_nil_certificates
from swarmguard.consensus.messages import (
    NIL_CERTIFICATES_MAX,
    Proposal,
    ProposalError,
    UnjustifiedProposal,
)
from swarmguard.consensus.signing import SigningGuard, WouldEquivocate
from swarmguard.consensus.sync import BlockReply, BlockRequest, Decision, DecisionRequest
from swarmguard.consensus.tally import Accepted, CertificateRank, Kind, Thresholds, ViewTally
from swarmguard.crypto import PublicKey, SigningKey
from swarmguard.validators.certificate import CertificateError, CommitCertificate
from swarmguard.validators.evidence import (
    NIL,
    PHASE_FINAL,
    PHASE_PROPOSE,
    PHASE_VOTE,
    DoubleVoteEvidence,
    SignedVote,
)
from swarmguard.validators.sets import fast_path_slack

__all__ = [
    "VIEWS_AHEAD_MAX",
    "Application",
    "Broadcast",
    "Decide",
    "Evidence",
    "Persist",
    "Replica",
    "ReplicaStats",
    "SendTo",
    "SetTimer",
    "Timer",
]


VIEWS_AHEAD_MAX = 64
"""Messages for views further than this past the replica's view are dropped: each view costs a
tally, and one Byzantine key could otherwise sign votes for a million views."""


PROPOSALS_PER_VIEW_MAX = 4
"""Distinct leader-signed blocks one view's proposals are examined for; more is spam."""

DECISIONS_KEPT = 64
"""Recent decisions kept in memory to answer validators a few heights behind; further behind
is block sync's job (the node reads the block store)."""

DECISIONS_PER_ANSWER = 4
"""Decisions sent in one answer (the receiver buffers this many heights ahead)."""


class Timer(Enum):
    VOTE_NIL = "vote_nil"  # rule 5, at 2Δ
    FINAL_NIL = "final_nil"  # rule 6, at 3Δ
    RESEND = "resend"  # every 2Δ while the height is undecided: repeat what may have been lost
    BATCH = "batch"  # a leader waiting: for its batch (timeout, empty-block wait) or to re-propose


@dataclass(frozen=True, slots=True)
class Persist:
    record: bytes


_BUFFERED = (Proposal, SignedVote, CommitCertificate, Decision)
"""What a replica keeps for a later height (requests and replies are about the present)."""

Message = (
    Proposal
    | SignedVote
    | CommitCertificate
    | Decision
    | DecisionRequest
    | BlockRequest
    | BlockReply
)


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: Message


@dataclass(frozen=True, slots=True)
class SendTo:
    """A message for one validator (by index): answers to catch-up requests."""

    validator: int
    message: Message


@dataclass(frozen=True, slots=True)
class SetTimer:
    height: int
    view: int
    timer: Timer
    at: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """Proof that a validator equivocated, for the validator manager (slashing)."""

    evidence: DoubleVoteEvidence


@dataclass(frozen=True, slots=True)
class Decide:
    height: int
    block_hash: bytes
    block: bytes
    certificate: CommitCertificate
    path: str = "slow"  # "fast", "slow", or "sync" (from another validator's Decision)
    latency: float = 0.0  # seconds from entering the height to deciding it (metrics)


Action = Persist | Broadcast | SendTo | SetTimer | Decide | Evidence


class Application(Protocol):
    """The deterministic application behind consensus (the node wires the ABCI++ app here)."""

    def propose(self, height: int, transactions: Sequence[bytes]) -> tuple[bytes, bytes]:
        """A new block for ``height`` holding ``transactions`` (the leader's batch, in order):
        (block hash, encoded block)."""
        ...

    def validate(self, height: int, block_hash: bytes, block: bytes) -> bool:
        """Whether ``block`` is valid at ``height`` and hashes to ``block_hash``."""
        ...

    def commit(self, height: int, block: bytes, certificate: CommitCertificate) -> None:
        """``block`` is decided at ``height``: apply it. Called before the replica enters the
        next height, because that height's validator set and leaders (stake, reputation,
        failed leaders read from ``certificate.view``) come from the state it leaves."""
        ...


@dataclass(slots=True)
class ReplicaStats:
    """Counters for metrics: how heights were decided and what they cost."""

    fast_commits: int = 0
    slow_commits: int = 0
    timeouts: int = 0  # rule 5 or 6 fired and signed ⊥
    failed_views: int = 0  # views left on ⊥ certificates (a value certificate is progress)
    fast_latency_total: float = 0.0  # seconds from entering a height to deciding it
    slow_latency_total: float = 0.0
    caught_up: int = 0  # heights decided from another validator's Decision
    invalid_signatures: int = 0  # Votes, Finals and certificate entries that failed Ed25519
    invalid_proposals: int = 0  # proposals with a bad signature, leader, C, or block
    unjustified_proposals: int = 0  # a missing ⊥ certificate (an honest leader may send one)
    unknown_keys: int = 0  # Votes signed by a key outside the height's validator set

    @property
    def fast_path_ratio(self) -> float:
        decided = self.fast_commits + self.slow_commits
        return self.fast_commits / decided if decided else 0.0


@dataclass(slots=True)
class _Height:
    thresholds: Thresholds
    started: float
    view: int = 0
    tallies: dict[int, ViewTally] = field(default_factory=dict)
    blocks: dict[bytes, bytes] = field(default_factory=dict)  # block hash -> block
    proposed: set[int] = field(default_factory=set)
    handled: dict[int, set[bytes]] = field(default_factory=dict)  # view -> blocks acted on
    decided: bool = False
    own_proposals: dict[int, Proposal] = field(default_factory=dict)  # view -> what we proposed
    sent: dict[int, list[SignedVote]] = field(default_factory=dict)  # view -> what we signed
    pairs: dict[int, tuple[CommitCertificate, ...]] = field(default_factory=dict)
    requested: set[bytes] = field(default_factory=set)  # blocks asked for (once at once)
    pending_proposal: int | None = None  # a view we lead, waiting for C's block or a batch
    waited: set[int] = field(default_factory=set)  # views whose re-proposal was held back
    view_started: float = 0.0
    indexes: dict[bytes, int] = field(default_factory=dict)  # consensus key -> validator index


@dataclass(slots=True)
class Replica:
    """One validator's consensus state. ``validators`` gives (consensus key, power) by index for
    a height; ``leader`` gives the leader's index for (height, view)."""

    chain_id: str
    index: int  # this replica's place in the current height's set (looked up per height)
    key: SigningKey
    validators: Callable[[int], Sequence[tuple[bytes, int]]]
    leader: Callable[[int, int], int]
    application: Application
    health: HealthMonitor = field(default_factory=HealthMonitor)
    guard: SigningGuard = field(default_factory=SigningGuard)
    stats: ReplicaStats = field(default_factory=ReplicaStats)
    _state: _Height | None = None
    _future: FutureBuffer[Message] | None = None
    batcher: Batcher | None = None  # a leader's batch of transactions (None: blocks as proposed)
    fast_path: bool = True  # False: decide on Finals only (benchmarks measure the fast path's gain)
    slack_ppm: int = 0
    """The chain's fast-path slack P as millionths of each height's total power
    (``validators.sets.fast_path_slack``): every validator must use the same."""
    _decisions: dict[int, Decision] = field(default_factory=dict)
    _answered: dict[int, tuple[int, float]] = field(default_factory=dict)  # who -> (height, when)
    _asked: dict[int, tuple[int, float]] = field(default_factory=dict)  # who -> (height, when)
    _sender: int | None = None  # who delivered the message being handled (None: unknown)

    @property
    def height(self) -> int:
        return self.guard.height

    @property
    def view(self) -> int:
        return self._height().view

    # -- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Begin (or resume after a restart, from ``guard``) the current height at view 0.
        On a restart, what the record says was signed here is signed again (Ed25519 is
        deterministic: the same bytes), counted and re-sent: the messages sent before the
        crash may never have arrived, and the guard forbids signing anything else in their
        place, so without them a height that needs this replica's power could never finish."""
        self._future = FutureBuffer(self.height)
        self._state = self._new_height(self.height, now)
        restored: list[Action] = []
        for view, phase, value in self.guard.signed() if self.index >= 0 else ():
            signature = self._signature(view, phase, value)
            vote = SignedVote(self.height, view, phase, value, self.key.public_key.raw, signature)
            self._count(self.index, view, phase, value, signature)
            self._state.sent.setdefault(view, []).append(vote)
            restored.append(Broadcast(vote))
        return restored + self._enter_height(now)

    def restore_blocks(self, blocks: Mapping[bytes, bytes], now: float) -> list[Action]:
        """Block bodies this replica voted for at its height before a restart, which the node
        kept on disk with its votes (call after ``start``). A block someone may have decided
        must be proposed again in a later view, and after every node restarts nobody else has
        it: without these, such a height could never finish. Each is validated as a
        proposal's block is; a leader waiting for one proposes it now."""
        actions: list[Action] = []
        state = self._height()
        for block_hash, block in blocks.items():
            if block_hash in state.blocks:
                continue
            if self.application.validate(self.height, block_hash, block):
                actions += self._store_block(block_hash, block, now)
        return actions + self._progress(now)

    def load_decisions(self, decisions: Iterable[Decision]) -> None:
        """Decisions the node's block store holds, given after a restart: they answer replicas
        still at those heights (the core's own memory of them did not survive the crash)."""
        for decision in decisions:
            self._decisions[decision.height] = decision
        for height in sorted(self._decisions)[:-DECISIONS_KEPT]:
            del self._decisions[height]

    def on_message(self, sender: int, message: Message, now: float) -> list[Action]:
        """Dispatch any consensus message; ``sender`` is the validator index the transport
        authenticated (only requests need it: everything else is signed or checked).

        A message from a later height means ``sender`` is past ours: after a Δ at this height
        we ask it for the decisions we miss rather than wait for our own timers to make us
        heard (they may be long: Δ follows the network)."""
        actions = self._catch_up(sender, message.height, now)
        if message.height > self.height and isinstance(message, _BUFFERED):
            return actions + self._buffer(message.height, sender, message)
        return actions + self._handle(sender, message, now)

    def _handle(self, sender: int, message: Message, now: float) -> list[Action]:
        """Dispatch with ``sender`` as the one to blame for what fails its checks: the
        validator that delivered it (the transport authenticated it), never the one a message
        names, since only a valid signature proves who wrote something."""
        outer, self._sender = self._sender, sender
        try:
            return self._dispatch(sender, message, now)
        finally:
            self._sender = outer

    def _blame(self, fault: Fault) -> None:
        if fault is Fault.INVALID_SIGNATURE:
            self.stats.invalid_signatures += 1
        elif fault is Fault.INVALID_PROPOSAL:
            self.stats.invalid_proposals += 1
        sender = self._sender
        if sender is not None and sender >= 0 and sender != self.index:
            self.health.record_fault(sender, fault)

    def _dispatch(self, sender: int, message: Message, now: float) -> list[Action]:
        if isinstance(message, DecisionRequest):
            if message.height >= self.height:
                return []
            return self._answer(sender, message.height, now, asked=True)
        if isinstance(message, Proposal):
            return self.on_proposal(message, now)
        if isinstance(message, SignedVote):
            return self.on_vote(message, now)
        if isinstance(message, CommitCertificate):
            return self.on_certificate(message, now)
        if isinstance(message, Decision):
            return self.on_decision(message, now)
        if isinstance(message, BlockRequest):
            return self.on_block_request(sender, message, now)
        return self.on_block_reply(message, now)

    def on_proposal(self, proposal: Proposal, now: float) -> list[Action]:
        if proposal.height < self.height:
            return self._answer(proposal.proposer, proposal.height, now)
        if proposal.height != self.height:
            return self._buffer(proposal.height, -1, proposal)
        state = self._height()
        if not self._view_in_window(proposal.view):
            return []
        handled = state.handled.setdefault(proposal.view, set())
        if proposal.block_hash in handled:
            return []  # a re-delivered proposal costs nothing the second time
        if len(handled) >= PROPOSALS_PER_VIEW_MAX:
            return []  # an equivocating leader spamming blocks: the first ones are evidence enough
        try:
            self._check_proposal(proposal, state)
        except UnjustifiedProposal:
            self.stats.unjustified_proposals += 1  # not a fault: see UnjustifiedProposal
            return []
        except ProposalError:
            self._blame(Fault.INVALID_PROPOSAL)
            return []
        handled.add(proposal.block_hash)  # only the leader's signed proposals take a place
        actions: list[Action] = []
        # What the proposal carries is knowledge like any forwarded certificate.
        carried = list(proposal.nil_certificates)
        if proposal.certificate is not None:
            carried.append(proposal.certificate[1])
        for certificate in carried:
            actions += self._absorb(certificate, checked=True)  # verify() checked them all
        if not self.application.validate(self.height, proposal.block_hash, proposal.block):
            self._blame(Fault.INVALID_PROPOSAL)
            return actions
        actions += self._store_block(proposal.block_hash, proposal.block, now)
        if self._may_vote(self._tally(proposal.view)):
            actions += self._sign(proposal.view, PHASE_VOTE, proposal.block_hash, now)
        return actions + self._progress(now)

    def _check_proposal(self, proposal: Proposal, state: _Height) -> None:
        """Rule 2 on a proposal (signatures, powers, ⊥ certificates); raises ProposalError."""
        proposal.verify(
            self.chain_id,
            self.validators(self.height),
            state.thresholds,
            self.leader(self.height, proposal.view),
            self._held_nil_slots(state),
        )

    def _may_vote(self, tally: ViewTally) -> bool:
        """Rule 2: a value Vote only while no Vote at all (value or ⊥) was sent in the view."""
        return not tally.has_voted(self.index)

    def on_vote(self, vote: SignedVote, now: float) -> list[Action]:
        """A VOTE or FINAL from another validator (or forwarded)."""
        if vote.height < self.height:
            sender = _index_of(self.validators(vote.height), vote.consensus_key)
            return [] if sender is None else self._answer(sender, vote.height, now)
        if vote.height != self.height:
            return self._buffer(vote.height, -1, vote)
        if vote.phase not in (PHASE_VOTE, PHASE_FINAL) or not self._view_in_window(vote.view):
            return []
        index = self._height().indexes.get(vote.consensus_key)
        if index is None:
            self.stats.unknown_keys += 1
            return []
        tally = self._height().tallies.get(vote.view)
        if tally is not None and tally.holds(index, vote.phase, vote.block_hash, vote.signature):
            return []  # a re-send or a duplicate: counted, and its signature checked, already
        if not vote.is_signed(self.chain_id):
            self._blame(Fault.INVALID_SIGNATURE)
            return []
        found = self._count(index, vote.view, vote.phase, vote.block_hash, vote.signature)
        return found + self._progress(now)

    def on_certificate(self, certificate: CommitCertificate, now: float) -> list[Action]:
        """A forwarded certificate (rule 8) or commit proof (rule 4)."""
        if certificate.height != self.height:
            return self._buffer(certificate.height, -1, certificate)
        return self._absorb(certificate) + self._progress(now)

    def on_decision(self, decision: Decision, now: float) -> list[Action]:
        """Another validator's commit proof: decide the height without having taken part."""
        if decision.height < self.height:
            return []  # already decided here
        if decision.height > self.height:
            return self._buffer(decision.height, -1, decision)
        state = self._height()
        certificate = decision.certificate
        if state.decided:
            return []
        try:
            certificate.verify(self.chain_id, self.validators(self.height), state.thresholds.slack)
        except CertificateError:
            return []
        if not self.application.validate(self.height, certificate.block_hash, decision.block):
            return []  # a validly signed certificate for an invalid block: not ours to apply
        state.blocks[certificate.block_hash] = decision.block
        self.stats.caught_up += 1
        return self._decide(certificate, now, "sync")

    def on_block_request(self, sender: int, request: BlockRequest, now: float) -> list[Action]:
        """``sender`` lacks a block it holds a certificate for; the transport names the sender."""
        if request.height < self.height:
            return self._answer(sender, request.height, now, asked=True)
        if request.height > self.height:
            return []
        block = self._height().blocks.get(request.block_hash)
        if block is None:
            return []
        return [SendTo(sender, BlockReply(request.height, request.block_hash, block))]

    def on_block_reply(self, reply: BlockReply, now: float) -> list[Action]:
        if reply.height != self.height:
            return []
        state = self._height()
        if reply.block_hash not in state.requested or reply.block_hash in state.blocks:
            return []  # unasked-for blocks are not kept: memory is ours to bound
        if not self.application.validate(self.height, reply.block_hash, reply.block):
            return []
        return self._store_block(reply.block_hash, reply.block, now) + self._progress(now)

    def on_transaction(self, transaction: bytes, now: float) -> list[Action]:
        """A transaction for this replica's batches (from the node's mempool); raises
        ``batching.Refused``. A leader waiting for its batch proposes once it is ready."""
        self._batcher().add(transaction, now)
        return self._arrived(now)

    def on_transactions(self, transactions: Sequence[bytes], now: float) -> list[Action]:
        """Transactions that arrived together (a client's batch, a gossip frame): all are
        queued before a waiting leader decides, so one arrival makes one block, not a block of
        its first transaction and another of the rest. Those a full batcher refuses are not
        queued (the node's mempool still holds them for later blocks)."""
        batcher = self._batcher()
        for transaction in transactions:
            with contextlib.suppress(Refused):  # too large, or the batcher is full
                batcher.add(transaction, now)
        return self._arrived(now) if transactions else []

    def _batcher(self) -> Batcher:
        if self.batcher is None:
            raise RuntimeError("this replica has no batcher")
        return self.batcher

    def _arrived(self, now: float) -> list[Action]:
        state = self._height()
        if state.pending_proposal != state.view or state.decided or state.view in state.waited:
            return []  # (a held re-proposal sends C's block, not a batch: its timer decides)
        if self._batcher().ready(now):
            return self._propose(state.view, now)
        deadline = self._batcher().deadline()
        if deadline is None:
            return []
        return [SetTimer(self.height, state.view, Timer.BATCH, deadline)]

    def on_timer(self, height: int, view: int, timer: Timer, now: float) -> list[Action]:
        if height != self.height or self._height().decided:
            return []
        if timer is Timer.RESEND:
            return self._resend(now)
        if timer is Timer.BATCH:
            state = self._height()
            if state.pending_proposal != view or state.view != view:
                return []
            return self._propose(view, now)
        tally = self._tally(view)
        if timer is Timer.VOTE_NIL and not tally.has_voted(self.index):  # rule 5
            signed = self._sign(view, PHASE_VOTE, NIL, now)
        elif timer is Timer.FINAL_NIL and not tally.has_final(self.index):  # rule 6
            signed = self._sign(view, PHASE_FINAL, NIL, now)
        else:
            return []
        if signed:
            self.stats.timeouts += 1
        return signed + self._progress(now)

    # -- the rules --------------------------------------------------------------------------

    def _progress(self, now: float) -> list[Action]:
        """Apply rules 3, 4, 7 and 8 until nothing changes (each may enable another)."""
        actions: list[Action] = []
        changed = True
        while changed and self._state is not None and not self._height().decided:
            changed = False
            state = self._height()
            for view in sorted(state.tallies):
                tally = state.tallies[view]
                decided = self._rule_4(view, tally, now)
                if decided:
                    return actions + decided
                step = self._rule_3(view, tally, now) + self._rule_7(view, tally, now)
                step += self._rule_8(view, tally, now)
                if step:
                    actions += step
                    changed = True
                    break
        if self._state is not None and not self._height().decided:
            actions += self._request_blocks(only_new=True)
        return actions

    def _rule_3(self, view: int, tally: ViewTally, now: float) -> list[Action]:
        value = tally.slow_certificate()
        if value is None or tally.has_final(self.index):
            return []
        return self._sign(view, PHASE_FINAL, value, now)

    def _rule_4(self, view: int, tally: ViewTally, now: float) -> list[Action]:
        state = self._height()
        fast = tally.fast_commit() if self.fast_path else None
        commits = ((fast, PHASE_VOTE), (tally.slow_commit(), PHASE_FINAL))
        for value, phase in commits:
            if value is not None and value in state.blocks:
                latency = now - state.started
                if phase == PHASE_VOTE:
                    self.stats.fast_commits += 1
                    self.stats.fast_latency_total += latency
                else:
                    self.stats.slow_commits += 1
                    self.stats.slow_latency_total += latency
                certificate = tally.certificate(phase, value)
                path = "fast" if phase == PHASE_VOTE else "slow"
                return [Broadcast(certificate), *self._decide(certificate, now, path)]
        return []

    def _decide(self, certificate: CommitCertificate, now: float, path: str) -> list[Action]:
        """Rule 4's outcome, however the proof arrived: decide, remember, move on."""
        state = self._height()
        state.decided = True
        self.health.decided()
        if path != "sync":  # a replica that caught up saw nothing of the view
            self._observe_view(self._tally(certificate.view))
        block = state.blocks[certificate.block_hash]
        self._decisions[self.height] = Decision(certificate, block)
        if len(self._decisions) > DECISIONS_KEPT:
            del self._decisions[min(self._decisions)]
        self.application.commit(self.height, block, certificate)
        latency = now - state.started
        decide = Decide(self.height, certificate.block_hash, block, certificate, path, latency)
        return [decide, *self._next_height(now)]

    def _rule_7(self, view: int, tally: ViewTally, now: float) -> list[Action]:
        if tally.has_nil_vote(self.index) or not tally.no_fast_certificate_possible():
            return []
        return self._sign(view, PHASE_VOTE, NIL, now)

    def _rule_8(self, view: int, tally: ViewTally, now: float) -> list[Action]:
        state = self._height()
        if view in state.pairs:
            return []  # checked first: building a certificate sorts its signatures
        fast = _fast_certificate(tally)
        slow = _slow_certificate(tally) if fast is not None else None
        if fast is None or slow is None:
            return []
        # Fast-Cert(k, x) and Slow-Cert(k, x) for one value are the same Votes (the Slow-Cert is
        # the larger set and holds the Fast-Cert): forwarding it once forwards both, and saves a
        # certificate per validator and height on the normal path.
        state.pairs[view] = (fast,) if fast == slow else (fast, slow)
        actions: list[Action] = [Broadcast(certificate) for certificate in state.pairs[view]]
        if state.view <= view:  # still in view k (or behind it): move on
            if NIL in (slow.block_hash, fast.block_hash):
                self.health.view_failed()
                self.stats.failed_views += 1
            actions += self._enter_view(view + 1, now)
        return actions

    def _enter_view(self, view: int, now: float) -> list[Action]:
        """Rule 1: start the view's timers, and propose if this replica leads it."""
        state = self._height()
        state.view = view
        state.view_started = now
        delta = self.health.delta
        start = now + self.proposal_allowance
        actions: list[Action] = [
            SetTimer(self.height, view, Timer.VOTE_NIL, start + 2 * delta),
            SetTimer(self.height, view, Timer.FINAL_NIL, start + 3 * delta),
        ]
        if self.leader(self.height, view) == self.index and view not in state.proposed:
            state.proposed.add(view)
            actions += self._propose(view, now)
        return actions

    @property
    def proposal_allowance(self) -> float:
        """How long an honest leader may sit on its proposal after entering a view (an idle
        batch waits up to ``empty_block_after``). The view timers start after it: Δ measures
        the network, and a leader waiting for transactions is not a slow network."""
        return 0.0 if self.batcher is None else self.batcher.config.empty_block_after

    def _observe_view(self, tally: ViewTally) -> None:
        """Feed the loss estimate when a height is decided: the share of the other validators
        whose Vote in the deciding view never arrived (lost, late or crashed: the monitor cannot
        tell them apart). Not at rule 8's view change: that fires on 2f+1 Votes by design, so
        the rest would look lost when they are merely a moment behind."""
        others = len(self.validators(self.height)) - 1
        if others > 0:
            heard = sum(1 for i in range(others + 1) if i != self.index and tally.has_voted(i))
            self.health.observe_view(others, heard)

    def _enter_height(self, now: float) -> list[Action]:
        delta = self.health.delta
        return [SetTimer(self.height, 0, Timer.RESEND, now + 2 * delta), *self._enter_view(0, now)]

    def _propose(self, view: int, now: float) -> list[Action]:
        state = self._height()
        best = self._best_value_certificate(view)
        if best is not None and best[1].block_hash not in state.blocks:
            state.pending_proposal = view  # C's block is on its way (_progress asks for it)
            return []
        if best is None:
            batch = self._batch(view, now)
            if batch is None:
                state.pending_proposal = view
                return [SetTimer(self.height, view, Timer.BATCH, self._batch_wake(now))]
            state.pending_proposal = None
            block_hash, block = self.application.propose(self.height, batch)
            justification: tuple[Kind, CommitCertificate] | None = None
            rank: CertificateRank | None = None
        else:
            kind, certificate = best
            wake = self._re_proposal_wake(view, kind, certificate)
            if now < wake and view not in state.waited:  # once: a timer may fire a hair early
                state.waited.add(view)
                state.pending_proposal = view
                return [SetTimer(self.height, view, Timer.BATCH, wake)]
            state.pending_proposal = None
            block_hash, block = certificate.block_hash, state.blocks[certificate.block_hash]
            justification = best
            rank = CertificateRank(certificate.view, kind.value)
        nils = [
            self._nil_certificate(slot)
            for slot in required_nil_certificates(view, rank)
            if self._holds_nil(slot)
        ][-NIL_CERTIFICATES_MAX:]
        try:
            self.guard.sign(self.height, view, PHASE_PROPOSE, block_hash)
        except WouldEquivocate:
            return []
        state.blocks[block_hash] = block
        signature = self._signature(view, PHASE_PROPOSE, block_hash)
        proposal = Proposal(
            self.height, view, self.index, block_hash, signature, block, justification, tuple(nils)
        )
        state.own_proposals[view] = proposal
        actions: list[Action] = [Persist(self.guard.encode()), Broadcast(proposal)]
        return actions + self._handle(self.index, proposal, now)

    def _re_proposal_wake(self, view: int, kind: Kind, certificate: CommitCertificate) -> float:
        """When a leader re-proposes C's value. Rule 8 enters view k + 1 on a Slow-Cert(k, x),
        a few Votes before the same Votes (or the Finals that follow) decide x in view k: on the
        normal path every height entered k + 1, and its leader re-sent the whole block and
        validated it again, only for the decision to land a moment later. So with C that
        Slow-Cert, the leader waits min(A, Δ) from entering the view (within the allowance A
        the view timers already grant it, so no replica's timer is shortened) and proposes
        only if the height is still undecided then."""
        if kind is not Kind.SLOW or certificate.view != view - 1:
            return 0.0
        return self._height().view_started + min(self.proposal_allowance, self.health.delta)

    def _batch(self, view: int, now: float) -> list[bytes] | None:
        """The transactions of a fresh block, or None to wait: a full batch or one whose oldest
        transaction waited the batch timeout goes at once; with too little, the leader waits
        until ``empty_block_after`` from entering the view and proposes what it has (an idle
        chain keeps producing blocks below 2Δ instead of changing views)."""
        if self.batcher is None:
            return []
        if self.batcher.ready(now):
            return self.batcher.take(now)
        if now >= self._height().view_started + self.batcher.config.empty_block_after:
            return self.batcher.take(now, force=True)
        return None

    def _batch_wake(self, now: float) -> float:
        assert self.batcher is not None
        empty = self._height().view_started + self.batcher.config.empty_block_after
        deadline = self.batcher.deadline()
        return empty if deadline is None else min(empty, deadline)

    # -- helpers ----------------------------------------------------------------------------

    def _sign(self, view: int, phase: int, value: bytes, now: float) -> list[Action]:
        """Sign, persist-then-send, and count our own message."""
        if self.index < 0:
            return []  # not a validator at this height
        try:
            self.guard.sign(self.height, view, phase, value)
        except WouldEquivocate:
            return []
        signature = self._signature(view, phase, value)
        vote = SignedVote(self.height, view, phase, value, self.key.public_key.raw, signature)
        self._count(self.index, view, phase, value, signature)  # the guard rules out a pair
        self._height().sent.setdefault(view, []).append(vote)
        return [Persist(self.guard.encode()), Broadcast(vote)]

    def _resend(self, now: float) -> list[Action]:
        """Repeat what a lossy network may have eaten: our proposal and votes in the current
        and previous view, and the rule 8 pairs of the views we passed (they take a replica
        that is behind straight to our view, and give a leader that skipped views the ⊥
        certificates rule 2 asks it to carry). Then ask again for missing blocks and re-arm."""
        state = self._height()
        actions: list[Action] = []
        for view in (state.view - 1, state.view):
            if view in state.own_proposals:
                actions.append(Broadcast(state.own_proposals[view]))
            actions += [Broadcast(vote) for vote in state.sent.get(view, ())]
        for view in sorted(state.pairs)[-NIL_CERTIFICATES_MAX // 2 :]:
            actions += [Broadcast(certificate) for certificate in state.pairs[view]]
        actions += self._request_blocks(only_new=False)
        at = now + 2 * self.health.delta
        return [*actions, SetTimer(self.height, state.view, Timer.RESEND, at)]

    def _request_blocks(self, *, only_new: bool) -> list[Action]:
        """Ask for the blocks of held value certificates (and commits) we do not have."""
        state = self._height()
        wanted: set[bytes] = set()
        for tally in state.tallies.values():
            for value in (tally.fast_certificate(), tally.slow_certificate(), tally.slow_commit()):
                if value is not None and value not in state.blocks:
                    wanted.add(value)
        if only_new:
            wanted -= state.requested
        state.requested |= wanted
        return [Broadcast(BlockRequest(self.height, value)) for value in sorted(wanted)]

    def _store_block(self, block_hash: bytes, block: bytes, now: float) -> list[Action]:
        """Keep a valid block; a leader waiting for it (rule 1) proposes now."""
        state = self._height()
        state.blocks[block_hash] = block
        view = state.pending_proposal
        if view is None or view != state.view:
            return []
        return self._propose(view, now)

    def _catch_up(self, sender: int, height: int, now: float) -> list[Action]:
        """Ask ``sender``, seen at ``height``, for our missing decisions: once we have spent a
        Δ at this height (a peer a moment ahead is the normal race, not a replica behind), and
        at most once per 2Δ per sender."""
        if self._state is None or height <= self.height:
            return []
        state, delta = self._height(), self.health.delta
        if state.decided or now - state.started < delta or sender == self.index:
            return []
        last = self._asked.get(sender)
        if last is not None and last[0] == self.height and now - last[1] < 2 * delta:
            return []
        self._asked[sender] = (self.height, now)
        return [SendTo(sender, DecisionRequest(self.height))]

    def _answer(self, sender: int, height: int, now: float, *, asked: bool = False) -> list[Action]:
        """``sender`` is still at ``height``, which we decided: send it the decisions it needs,
        at most once per 2Δ per sender (a stream of stale messages is not an amplifier).

        A Vote or proposal (not a request: ``asked``) from the height decided last, within a Δ
        of deciding it, is the normal race at every height boundary, not a replica behind: its
        sender's Finals crossed our decision, and it holds the votes that made it. Answering it
        sent every block to every validator again at every height (4 validators under load:
        1,099-1,122 bytes sent per transaction per node, 651-682 without). A replica really
        stuck there re-sends every 2Δ and asks once it sees a later height: both are answered."""
        if (
            not asked
            and height == self.height - 1
            and now - self._height().started < self.health.delta
        ):
            return []
        last = self._answered.get(sender)
        if last is not None and last[0] == height and now - last[1] < 2 * self.health.delta:
            return []
        heights = range(height, min(height + DECISIONS_PER_ANSWER, self.height))
        found = [self._decisions[h] for h in heights if h in self._decisions]
        if not found:
            return []
        self._answered[sender] = (height, now)
        return [SendTo(sender, decision) for decision in found]

    def _signature(self, view: int, phase: int, value: bytes) -> bytes:
        unsigned = SignedVote(self.height, view, phase, value, self.key.public_key.raw, bytes(64))
        return self.key.sign(unsigned.sign_bytes(self.chain_id))

    def _count(
        self, index: int, view: int, phase: int, value: bytes, signature: bytes
    ) -> list[Action]:
        """Count a checked message; an equivocation comes back as Evidence (the pair)."""
        tally = self._tally(view)
        add = tally.add_vote if phase == PHASE_VOTE else tally.add_final
        if add(index, value, signature) is not Accepted.EQUIVOCATION:
            return []
        self.health.record_fault(index, Fault.EQUIVOCATION)
        first = tally.first_message(index, phase)
        assert first is not None  # an equivocation needs a first message
        key = self.validators(self.height)[index][0]
        one = SignedVote(self.height, view, phase, first[0], key, first[1])
        other = SignedVote(self.height, view, phase, value, key, signature)
        return [Evidence(DoubleVoteEvidence.of(one, other))]

    def _absorb(self, certificate: CommitCertificate, *, checked: bool = False) -> list[Action]:
        """Count every valid signature a certificate carries (invalid ones are dropped).
        ``checked``: every signature was verified already (a verified proposal's certificates),
        so Ed25519 is not paid twice."""
        if certificate.phase not in (PHASE_VOTE, PHASE_FINAL):
            return []
        if not self._view_in_window(certificate.view):
            return []
        validators = self.validators(self.height)
        tally = self._tally(certificate.view)
        found: list[Action] = []
        for index, signature in certificate.signatures:
            if not 0 <= index < len(validators):
                continue
            if tally.holds(index, certificate.phase, certificate.block_hash, signature):
                continue
            key = validators[index][0]
            vote = SignedVote(
                certificate.height,
                certificate.view,
                certificate.phase,
                certificate.block_hash,
                key,
                signature,
            )
            if checked or PublicKey(key).is_valid(vote.sign_bytes(self.chain_id), signature):
                found += self._count(
                    index, certificate.view, certificate.phase, vote.block_hash, signature
                )
            else:
                self._blame(Fault.INVALID_SIGNATURE)
        return found

    def _buffer(self, height: int, sender: int, message: Message) -> list[Action]:
        """Keep a later height's message under the validator that delivered it (its share of
        the buffer); -1 when a handler was called directly, not through ``on_message``."""
        if self._future is not None:
            self._future.add(height, sender, message)
        return []

    def _next_height(self, now: float) -> list[Action]:
        height = self.height + 1
        self.guard.advance(height)
        assert self._future is not None
        released = self._future.advance(height)
        self._state = self._new_height(height, now)
        actions = [Persist(self.guard.encode()), *self._enter_height(now)]
        for sender, message in released:
            if self.height != height:
                break  # a released Decision finished this height; the rest is stale
            actions += self._handle(sender, message, now)
        return actions

    def _view_in_window(self, view: int) -> bool:
        return view <= self._height().view + VIEWS_AHEAD_MAX

    def _new_height(self, height: int, now: float) -> _Height:
        validators = self.validators(height)
        powers = [power for _, power in validators]
        indexes = {key: index for index, (key, _) in enumerate(validators)}
        # Sets change at epoch boundaries, and with them this replica's place (or membership:
        # -1 signs nothing at this height).
        self.index = indexes.get(self.key.public_key.raw, -1)
        slack = fast_path_slack(validators, self.slack_ppm)
        return _Height(Thresholds.for_powers(powers, slack), now, indexes=indexes)

    def _height(self) -> _Height:
        if self._state is None:
            raise RuntimeError("the replica has not been started")
        return self._state

    def _tally(self, view: int) -> ViewTally:
        state = self._height()
        tally = state.tallies.get(view)
        if tally is None:
            powers = [power for _, power in self.validators(self.height)]
            tally = ViewTally(powers, state.thresholds, self.height, view)
            state.tallies[view] = tally
        return tally

    def _held_nil_slots(self, state: _Height) -> set[CertificateRank]:
        held = set()
        for view, tally in state.tallies.items():
            if tally.nil_fast_certificate():
                held.add(CertificateRank(view, Kind.FAST.value))
            if tally.nil_slow_certificate():
                held.add(CertificateRank(view, Kind.SLOW.value))
        return held

    def _holds_nil(self, slot: CertificateRank) -> bool:
        tally = self._height().tallies.get(slot.view)
        if tally is None:
            return False
        if slot.kind == Kind.FAST.value:
            return tally.nil_fast_certificate()
        return tally.nil_slow_certificate()

    def _nil_certificate(self, slot: CertificateRank) -> CommitCertificate:
        phase = PHASE_VOTE if slot.kind == Kind.FAST.value else PHASE_FINAL
        return self._tally(slot.view).certificate(phase, NIL)

    def _best_value_certificate(self, view: int) -> tuple[Kind, CommitCertificate] | None:
        """Rule 1: the highest-ranked value certificate held from views before ``view``."""
        state = self._height()
        for earlier in sorted((v for v in state.tallies if v < view), reverse=True):
            tally = state.tallies[earlier]
            slow, fast = tally.slow_certificate(), tally.fast_certificate()
            candidates = ((Kind.SLOW, slow), (Kind.FAST, fast))
            for kind, value in candidates:
                if value is not None:
                    return kind, tally.certificate(PHASE_VOTE, value)
        return None


def _index_of(validators: Sequence[tuple[bytes, int]], key: bytes) -> int | None:
    for index, (validator_key, _) in enumerate(validators):
        if validator_key == key:
            return index
    return None


def _fast_certificate(tally: ViewTally) -> CommitCertificate | None:
    value = tally.fast_certificate()
    if value is not None:
        return tally.certificate(PHASE_VOTE, value)
    if tally.nil_fast_certificate():
        return tally.certificate(PHASE_VOTE, NIL)
    return None


def _slow_certificate(tally: ViewTally) -> CommitCertificate | None:
    value = tally.slow_certificate()
    if value is not None:
        return tally.certificate(PHASE_VOTE, value)
    if tally.nil_slow_certificate():
        return tally.certificate(PHASE_FINAL, NIL)
    return None
