"""The deterministic simulation: a whole validator network in one process, driving real replicas.

One event queue orders everything on a virtual clock: deliveries (each message's latency drawn
per link, plus jitter, loss, duplication, partitions, targeted delays and isolated victims),
replica timers, crashes and restarts, the release of withheld messages and, for benchmarks,
transactions. Ties break by insertion order, and every random draw comes from generators seeded
by the scenario's seed, so a seed replays exactly. A run stops at its first safety violation.

What every run checks (``Result.violations``):

- agreement: no two honest replicas decide different blocks at one height, and each honest
  chain is contiguous;
- every commit certificate verifies against the height's validator set;
- no honest key signs two conflicting messages, across crashes and restarts (the guard);
- every signature leaves only after the record that covers it was persisted;
- evidence only ever accuses Byzantine validators, and it verifies.

And liveness (``Result.live``): after the faults end, every honest replica decides
``heights_after`` more heights within ``LIVENESS_SECONDS`` of virtual time, and heights nobody
had begun when the faults ended take at most ``views_bound`` views.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from swarmguard.consensus.batching import Batcher
from swarmguard.consensus.health import HealthMonitor
from swarmguard.consensus.messages import NIL_CERTIFICATES_MAX, Proposal
from swarmguard.consensus.replica import (
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
from swarmguard.consensus.sync import BlockReply, BlockRequest, Decision, DecisionRequest
from swarmguard.crypto import SigningKey
from swarmguard.sim.adversary import Adversary, block_for
from swarmguard.sim.scenario import Behaviour, Epoch, Scenario
from swarmguard.validators.certificate import CertificateError, CommitCertificate
from swarmguard.validators.election import LeaderSchedule, ScheduledValidator
from swarmguard.validators.evidence import (
    NIL,
    PHASE_FINAL,
    PHASE_VOTE,
    InvalidEvidence,
    SignedVote,
    sign_vote,
)
from swarmguard.validators.params import PPM, StakingParams
from swarmguard.validators.reputation import Reputation

__all__ = ["CHAIN_ID", "EVENTS_MAX", "LIVENESS_SECONDS", "Result", "Simulation"]

CHAIN_ID = "swarmguard-sim"
LIVENESS_SECONDS = 600.0
"""Virtual seconds after the faults end within which every honest replica must finish."""
EVENTS_MAX = 2_000_000
"""A run that has not finished after this many events is reported as not live."""

_DELIVER, _TIMER, _CRASH, _RESTART, _RELEASE, _TRANSACTION = range(6)
_HOLDS = (1.2, 2.2, 3.2, 8.0)  # targeted delays, in units of the receiver's Δ


class SimulationApp:
    """The application every simulated replica runs: blocks are labelled byte strings; a
    commit feeds the committed state every node derives leaders from (``on_commit``)."""

    def __init__(
        self, label: str, on_commit: Callable[[int, CommitCertificate], None] | None = None
    ) -> None:
        self.label = label
        self.on_commit = on_commit
        self.bodies: dict[bytes, bytes] = {}  # this height's blocks, as the node's chain keeps

    def commit(self, height: int, block: bytes, certificate: CommitCertificate) -> None:
        self.bodies.clear()
        if self.on_commit is not None:
            self.on_commit(height, certificate)

    def propose(self, height: int, transactions: Sequence[bytes]) -> tuple[bytes, bytes]:
        label = " ".join([f"by {self.label}", *(t.hex() for t in transactions)])
        block_hash, block = block_for(height, label)
        self.bodies[block_hash] = block
        return block_hash, block

    def validate(self, height: int, block_hash: bytes, block: bytes) -> bool:
        valid = hashlib.sha256(block).digest() == block_hash and block.startswith(
            f"height {height} ".encode()
        )
        if valid:
            self.bodies[block_hash] = block
        return valid


@dataclass(slots=True)
class _Node:
    id: int
    validator: int
    replica: Replica
    behaviour: Behaviour | None = None
    adversary: Adversary | None = None
    incarnation: int = 0
    alive: bool = True
    record: bytes | None = None
    voted: tuple[int, dict[bytes, bytes]] = (0, {})  # the node's ``node.voted``: height, bodies
    chain: dict[int, bytes] = field(default_factory=dict)
    store: dict[int, Decision] = field(default_factory=dict)  # the durable block store
    signed: set[bytes] = field(default_factory=set)  # signatures this node has sent
    held: list[tuple[int, Message]] = field(default_factory=list)  # WITHHOLD: not yet sent

    @property
    def honest(self) -> bool:
        return self.behaviour is None


@dataclass(slots=True)
class Result:
    scenario: Scenario
    violations: list[str]
    live: bool
    liveness: str  # why not live, or ""
    heights: dict[int, int]  # honest node -> heights decided
    fast_commits: int
    slow_commits: int
    caught_up: int
    views_max: int  # the highest view a height begun after the faults was decided in
    messages: int
    events: int
    virtual_seconds: float
    trace: list[str]
    decisions: list[tuple[int, int, str, float, int]]  # honest (node, height, path, latency, view)
    transaction_latencies: list[float]

    @property
    def ok(self) -> bool:
        return not self.violations and self.live

    def summary(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        lines = [
            f"{verdict}: {self.scenario.describe()}",
            f"  heights by honest node {self.heights}; fast {self.fast_commits}, "
            f"slow {self.slow_commits}, caught up {self.caught_up}; highest view after the "
            f"faults {self.views_max}; {self.messages} messages, {self.events} events, "
            f"{self.virtual_seconds:.2f} virtual s",
        ]
        lines += [f"  SAFETY: {v}" for v in self.violations]
        if not self.live:
            lines.append(f"  LIVENESS: {self.liveness}")
        return "\n".join(lines)


ReplicaFactory = Callable[..., Replica]


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        *,
        trace: bool = False,
        replica_class: ReplicaFactory = Replica,
    ) -> None:
        self.scenario = scenario
        self.rng = random.Random(f"swarmguard-sim/network/{scenario.seed}")
        self.replica_class = replica_class
        self.tracing = trace
        self.trace: list[str] = []
        self.now = 0.0
        self.queue: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.messages = 0
        self.violations: list[str] = []
        self.keys = [
            SigningKey(hashlib.sha256(b"sim key %d" % i).digest())
            for i in range(len(scenario.powers))
        ]
        self.validator_set = [
            (key.public_key.raw, power)
            for key, power in zip(self.keys, scenario.powers, strict=True)
        ]
        self.index_of = {key: index for index, (key, _) in enumerate(self.validator_set)}
        self.schedules: dict[int, LeaderSchedule] = {}
        self.reputation_after: dict[int, dict[bytes, int]] = {}  # height -> ppm by key
        self.seeds: dict[int, bytes] = {}  # height -> committed block hash (the next draw's seed)
        behaviours = scenario.behaviours
        self.byzantine = set(behaviours)
        self.nodes: list[_Node] = []
        for validator in range(len(scenario.powers)):
            self._add_node(validator, behaviours.get(validator), label=f"v{validator}")
        for validator, behaviour in scenario.byzantine:
            if behaviour is Behaviour.TWIN:
                self._add_node(validator, behaviour, label=f"v{validator} twin")
        self.by_validator: dict[int, list[_Node]] = {}
        for node in self.nodes:
            self.by_validator.setdefault(node.validator, []).append(node)
        ids = range(len(self.nodes))
        low, high = scenario.latency
        self.base = [[self.rng.uniform(low, high) for _ in ids] for _ in ids]
        self.decided: dict[int, bytes] = {}  # height -> the first honest decision
        self.decisions: list[tuple[int, int, str, float, int]] = []
        self.sent_by_key: dict[tuple[int, int, int, int], set[bytes]] = {}
        self.target: int | None = None
        self.height_at_end: dict[int, int] = {}  # honest node -> the height it was working on
        self.views_max = 0
        self.faults_over = False
        self.epoch_index = 0
        self.transactions_sent = 0
        self.arrivals: dict[str, float] = {}  # transaction hex -> when it reached validator 0
        self.transaction_latencies: list[float] = []  # arrival at validator 0 -> its decision
        self.held_back: dict[tuple[int, ...], float] = {}
        self.victims: dict[int, int | None] = {}
        self.victim_until: dict[int, float] = {}
        self.victim_late: dict[int, bool] = {}  # only the victim's Finals and proofs are held

    # -- set-up ---------------------------------------------------------------------------

    def _leader(self, height: int, view: int) -> int:
        """Round-robin (what the random search's view bound assumes), or the validator
        manager's draw: stake-weighted follow-the-satoshi over a seed from the previous block,
        skipping validators whose reputation fell below the threshold."""
        if self.scenario.leaders == "round-robin":
            return (height + view) % len(self.scenario.powers)
        if self.scenario.leaders == "fixed":
            return view % len(self.scenario.powers)
        schedule = self.schedules.get(height)
        if schedule is None:
            reputation = self.reputation_after.get(height - 1, {})
            schedule = LeaderSchedule(
                CHAIN_ID,
                [
                    ScheduledValidator(key, power, reputation.get(key, PPM) / PPM)
                    for key, power in self.validator_set
                ],
                reputation_threshold=StakingParams().reputation_threshold_ppm / PPM,
            )
            self.schedules[height] = schedule
        seed = self.seeds.get(height - 1, b"genesis")
        return self.index_of[schedule.leader(seed, view)]

    def _committed(self, height: int, certificate: CommitCertificate) -> None:
        """A replica applied ``height``: the first application makes the committed state
        (every honest replica commits the same block, which the agreement check enforces)."""
        if self.scenario.leaders != "round-robin" and height not in self.reputation_after:
            self._account(height, certificate)

    def _account(self, height: int, certificate: CommitCertificate) -> None:
        """What every node computes from a committed height (reputation lives in committed
        state): the leaders of the views before the deciding one failed and are penalised,
        and every validator scores whether it signed the commit certificate."""
        reputation = Reputation(StakingParams().reputation_alpha_ppm)
        reputation.scores = dict(self.reputation_after.get(height - 1, {}))
        for view in range(certificate.view):
            reputation.penalise(self.validator_set[self._leader(height, view)][0])
        signed = {index for index, _ in certificate.signatures}
        for index, (key, _) in enumerate(self.validator_set):
            reputation.observe(key, index in signed)
        self.reputation_after[height] = reputation.scores
        self.seeds[height] = certificate.block_hash

    def _validators(self, height: int) -> list[tuple[bytes, int]]:
        return self.validator_set

    def _replica(self, node_id: int, validator: int, label: str, guard: SigningGuard) -> Replica:
        replica: Replica = self.replica_class(
            CHAIN_ID,
            validator,
            self.keys[validator],
            self._validators,
            self._leader,
            SimulationApp(label, self._committed),
            health=HealthMonitor(),
            guard=guard,
            batcher=Batcher(self.scenario.batch) if self.scenario.batch is not None else None,
        )
        return replica

    def _add_node(self, validator: int, behaviour: Behaviour | None, label: str) -> None:
        node_id = len(self.nodes)
        replica = self._replica(node_id, validator, label, SigningGuard())
        node = _Node(node_id, validator, replica, behaviour)
        if behaviour in (Behaviour.EQUIVOCATE, Behaviour.SELECTIVE, Behaviour.INVALID):
            rng = random.Random(f"swarmguard-sim/adversary/{self.scenario.seed}/{node_id}")
            node.adversary = Adversary(
                behaviour,
                validator,
                self.keys[validator],
                CHAIN_ID,
                rng,
                self.victim,
                lambda height, view: self._nil_certificates(node, height, view),
                self._leader,
            )
        self.nodes.append(node)

    def _nil_certificates(
        self, node: _Node, height: int, view: int
    ) -> tuple[CommitCertificate, ...]:
        """The ⊥ certificates a Byzantine node can assemble below ``view``: the ⊥ Votes and
        Finals its replica counted, plus its own ⊥ signatures (it may sign anything), wherever
        they reach the threshold (the most a conflicting fresh proposal can carry)."""
        replica = node.replica
        if replica.height != height or replica._state is None:
            return ()
        state = replica._height()
        powers = [power for _, power in self.validator_set]
        found = []
        for earlier in sorted(v for v in state.tallies if v < view):
            tally = state.tallies[earlier]
            for phase, needed in (
                (PHASE_VOTE, state.thresholds.fast_certificate),
                (PHASE_FINAL, state.thresholds.slow_certificate),
            ):
                signatures = dict(tally.certificate(phase, NIL).signatures)
                own = sign_vote(self.keys[node.validator], CHAIN_ID, height, earlier, phase, NIL)
                signatures[node.validator] = own.signature
                if sum(powers[i] for i in signatures) >= needed:
                    ordered = tuple(sorted(signatures.items()))
                    found.append(CommitCertificate(height, earlier, NIL, ordered, phase))
        return tuple(found[-NIL_CERTIFICATES_MAX:])

    # -- the event loop -------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, payload))

    def run(self) -> Result:
        scenario = self.scenario
        for crash in scenario.crashes:
            self._push(crash.at, _CRASH, crash.validator)
            self._push(crash.restart, _RESTART, crash.validator)
        self._push(scenario.release_at, _RELEASE, None)
        if scenario.load:
            self._push(self.rng.expovariate(scenario.load), _TRANSACTION, None)
        for node in self.nodes:
            if node.behaviour is not Behaviour.SILENT:
                self._apply(node, node.replica.start(self.now))
        events = 0
        liveness = ""
        while True:
            if not self.faults_over and (not self.queue or self.queue[0][0] >= scenario.faults_end):
                self._end_faults()
            if self.target is not None and self._finished():
                break
            if self.violations:
                break  # safety is lost; what follows would only obscure the trace
            if not self.queue:
                liveness = "nothing left to happen (stuck)"
                break
            if events >= EVENTS_MAX:
                liveness = f"not finished after {EVENTS_MAX} events"
                break
            at, _, kind, payload = heapq.heappop(self.queue)
            if self.faults_over and at > scenario.faults_end + LIVENESS_SECONDS:
                liveness = f"not finished {LIVENESS_SECONDS:.0f} virtual s after the faults"
                break
            self.now = max(self.now, at)
            events += 1
            self._event(kind, payload)
        honest = [n for n in self.nodes if n.honest]
        self._check_blame(honest)
        live = not liveness
        if live and self.views_max > self.views_bound:
            live = False
            liveness = f"a height took {self.views_max + 1} views (bound {self.views_bound + 1})"
        return Result(
            scenario=scenario,
            violations=self.violations,
            live=live,
            liveness=liveness,
            heights={n.id: len(n.chain) for n in honest},
            fast_commits=sum(n.replica.stats.fast_commits for n in honest),
            slow_commits=sum(n.replica.stats.slow_commits for n in honest),
            caught_up=sum(n.replica.stats.caught_up for n in honest),
            views_max=self.views_max,
            messages=self.messages,
            events=events,
            virtual_seconds=self.now,
            trace=self.trace,
            decisions=self.decisions,
            transaction_latencies=self.transaction_latencies,
        )

    @property
    def views_bound(self) -> int:
        """A height begun after the faults ends at the latest in the first view with an honest
        leader, and round-robin puts one within (Byzantine validators + 1) views."""
        return len(self.byzantine) + 1

    def _end_faults(self) -> None:
        self.faults_over = True
        self.now = max(self.now, self.scenario.faults_end)
        honest = [n for n in self.nodes if n.honest]
        self.target = max(len(n.chain) for n in honest) + self.scenario.heights_after
        self.height_at_end = {n.id: n.replica.height for n in honest if n.alive}
        self._note(f"faults end; every honest replica must reach height {self.target}")

    def _finished(self) -> bool:
        assert self.target is not None
        return all(len(n.chain) >= self.target for n in self.nodes if n.honest)

    def _event(self, kind: int, payload: Any) -> None:
        if kind == _DELIVER:
            sender, receiver, message, sent_at = payload
            node = self.nodes[receiver]
            if not node.alive or node.behaviour is Behaviour.SILENT:
                return
            # What a transport measures (a node stamps frames); Δ follows the network.
            node.replica.health.observe_delay(self.now - sent_at)
            if self.tracing:
                self._note(f"v{self.nodes[sender].validator}->n{receiver} {_describe(message)}")
            actions = node.replica.on_message(self.nodes[sender].validator, message, self.now)
            self._apply(node, actions)
        elif kind == _TIMER:
            node_id, incarnation, height, view, timer = payload
            node = self.nodes[node_id]
            if not node.alive or node.incarnation != incarnation:
                return
            if self.tracing and timer is not Timer.RESEND:
                self._note(f"n{node_id} timer {timer.value} h{height} v{view}")
            self._apply(node, node.replica.on_timer(height, view, timer, self.now))
        elif kind == _CRASH:
            for node in self.by_validator[payload]:
                node.alive = False
                node.incarnation += 1
                self._note(f"n{node.id} crashes at height {node.replica.height}")
        elif kind == _RESTART:
            for node in self.by_validator[payload]:
                self._restart(node)
        elif kind == _TRANSACTION:
            self._transaction()
        elif kind == _RELEASE:
            for node in self.nodes:
                if node.behaviour is Behaviour.WITHHOLD:
                    held, node.held = node.held, []
                    self._note(f"n{node.id} releases {len(held)} withheld messages")
                    for receiver, message in held:
                        self._route(node, receiver, message)

    def _transaction(self) -> None:
        """One more transaction reaches validator 0 (the load generator of the benchmarks)."""
        self.transactions_sent += 1
        transaction = self.transactions_sent.to_bytes(8, "big")
        self.arrivals[transaction.hex()] = self.now
        node = self.nodes[0]
        if node.alive and node.behaviour is None:
            self._apply(node, node.replica.on_transaction(transaction, self.now))
        self._push(self.now + self.rng.expovariate(self.scenario.load), _TRANSACTION, None)

    def _restart(self, node: _Node) -> None:
        guard = SigningGuard.decode(node.record) if node.record is not None else SigningGuard()
        label = f"v{node.validator}" + (" twin" if node.id >= len(self.scenario.powers) else "")
        node.replica = self._replica(node.id, node.validator, label, guard)
        node.replica.load_decisions(node.store[h] for h in sorted(node.store)[-64:])
        node.alive = True
        self._note(f"n{node.id} restarts at height {guard.height} from its persisted record")
        self._apply(node, node.replica.start(self.now))
        height, blocks = node.voted
        if height == guard.height and blocks:
            self._apply(node, node.replica.restore_blocks(blocks, self.now))

    def _persist(self, node: _Node, record: bytes) -> None:
        """What the node writes for a Persist: the bodies of the blocks its record votes for
        (or proposes), then the record. A restarted validator that lost a block it alone held,
        behind its own Vote, would leave a certificate for a block no leader can re-propose."""
        guard = node.replica.guard
        app = node.replica.application
        assert isinstance(app, SimulationApp)
        voted = {value for _, _, value in guard.signed() if any(value)}
        node.voted = (guard.height, {h: app.bodies[h] for h in voted if h in app.bodies})
        node.record = record

    # -- what a replica asks for ----------------------------------------------------------

    def _apply(self, node: _Node, actions: list[Action]) -> None:
        persisted = False
        for action in actions:
            if isinstance(action, Persist):
                self._persist(node, action.record)
                persisted = True
            elif isinstance(action, Broadcast | SendTo):
                if node.honest:
                    self._check_signed(node, action.message, persisted)
                if isinstance(action, Broadcast):
                    receivers = [n.id for n in self.nodes if n.id != node.id]
                else:
                    receivers = [n.id for n in self.by_validator[action.validator]]
                for receiver in receivers:
                    if receiver != node.id:
                        self._send(node, receiver, action.message)
            elif isinstance(action, SetTimer):
                payload = (node.id, node.incarnation, action.height, action.view, action.timer)
                self._push(action.at, _TIMER, payload)
            elif isinstance(action, Decide):
                self._decide(node, action)
            elif isinstance(action, Evidence):
                self._check_evidence(node, action)

    def _send(self, node: _Node, receiver: int, message: Message) -> None:
        if node.behaviour is Behaviour.SILENT:
            return
        if node.behaviour is Behaviour.WITHHOLD and self.now < self.scenario.release_at:
            node.held.append((receiver, message))
            return
        if node.adversary is not None:
            for rewritten in node.adversary.rewrite(message, receiver):
                self._route(node, receiver, rewritten)
        else:
            self._route(node, receiver, message)

    def _route(self, node: _Node, receiver: int, message: Message) -> None:
        scenario = self.scenario
        faulty = self.now < scenario.faults_end
        victim = self.victim(message.height) if faulty else None
        # A height with a victim is the adversary's set piece: only the isolation applies,
        # so noise from the other faults does not spoil the split it is building.
        epoch = self._epoch() if faulty and victim is None else None
        if epoch is not None:
            if epoch.separates(node.id, receiver):
                return
            if scenario.loss and self.rng.random() < scenario.loss:
                return
        copies = 2 if scenario.duplication and self.rng.random() < scenario.duplication else 1
        for _ in range(copies):
            delay = self.base[node.id][receiver] + self.rng.uniform(0.0, scenario.jitter)
            if epoch is not None:
                if (node.id, receiver) in epoch.slow_links:
                    delay *= epoch.slow_factor
                if scenario.targeted:
                    delay += self._targeted(node.id, receiver, message)
            if victim == node.id and self._hidden(message):
                delay += max(0.0, self.victim_until[message.height] - self.now)
            self.messages += 1
            self._push(self.now + delay, _DELIVER, (node.id, receiver, message, self.now))

    def _hidden(self, message: Message) -> bool:
        """Whether the victim's ``message`` is held: everything, or on a "late" height only
        what would tell the others it decided (its Finals, Final certificates, Decisions)
        while its Votes still count toward their certificates."""
        if not self.victim_late[message.height]:
            return True
        if isinstance(message, SignedVote | CommitCertificate):
            return message.phase == PHASE_FINAL
        return isinstance(message, Decision)

    def victim(self, height: int) -> int | None:
        """The honest node the adversary isolates at ``height`` (for a few Δ from the first
        time it is asked about, nobody hears what the node sends for that height, or only its
        Finals and commit proofs, while it hears everything), if any: the shape of every fork,
        one replica deciding alone while the rest never learn of it."""
        if not self.scenario.isolation:
            return None
        if height not in self.victims:
            chosen = None
            if self.rng.random() < self.scenario.isolation:
                # Not the first leader: a victim that cannot propose hides nothing of its own.
                leader = self._leader(height, 0)
                honest = [n.id for n in self.nodes if n.honest]
                chosen = self.rng.choice([i for i in honest if i != leader] or honest)
                hold = self._hold(chosen, self.rng.choice(_HOLDS[2:]))
                self.victim_until[height] = self.now + hold
                self.victim_late[height] = self.rng.random() < 0.5
            self.victims[height] = chosen
        return self.victims[height]

    def _hold(self, node_id: int, units: float) -> float:
        """``units`` of ``node_id``'s current Δ, after its proposal allowance: a hold aimed
        at its view timers, which follow the network as Δ does."""
        replica = self.nodes[node_id].replica
        return replica.proposal_allowance + units * replica.health.delta

    def _targeted(self, sender: int, receiver: int, message: Message) -> float:
        """The adversary's scheduling: one link may hold one kind of message of one view until
        just past a replica's 2Δ or 3Δ timer, or far longer; the same for all its copies, so a
        view sees a consistent (worst-case) ordering rather than noise."""
        if isinstance(message, Proposal):
            kind = (message.height, message.view, 0)
        elif isinstance(message, SignedVote | CommitCertificate):
            kind = (message.height, message.view, message.phase)
        else:  # catch-up messages: the adversary may sit on them as well
            kind = (message.height, -1, 3 if isinstance(message, Decision) else 4)
        key = (*kind, sender, receiver)
        extra = self.held_back.get(key)
        if extra is None:
            extra = 0.0
            if self.rng.random() < self.scenario.targeted:
                extra = self._hold(receiver, self.rng.choice(_HOLDS))
            self.held_back[key] = extra
        return extra

    def _epoch(self) -> Epoch | None:
        epochs = self.scenario.epochs
        while self.epoch_index < len(epochs) and epochs[self.epoch_index].end <= self.now:
            self.epoch_index += 1
        return epochs[self.epoch_index] if self.epoch_index < len(epochs) else None

    # -- checks ---------------------------------------------------------------------------

    def _violation(self, text: str) -> None:
        self.violations.append(f"t={self.now:.4f}: {text}")
        self._note(f"VIOLATION {text}")

    def _decide(self, node: _Node, action: Decide) -> None:
        certificate = action.certificate
        self._note(
            f"n{node.id} decides h{action.height} {action.block_hash.hex()[:8]} "
            f"({'fast' if certificate.phase == PHASE_VOTE else 'slow'}, view {certificate.view})"
        )
        if not node.honest:
            return
        try:
            certificate.verify(CHAIN_ID, self._validators(action.height))
        except CertificateError as error:
            self._violation(f"n{node.id}'s commit certificate at h{action.height}: {error}")
        if certificate.block_hash != action.block_hash:
            self._violation(f"n{node.id} decided a block its certificate does not name")
        if action.height in node.chain or (node.chain and action.height != max(node.chain) + 1):
            self._violation(f"n{node.id} decided h{action.height} out of order")
        if not node.chain and action.height != 1:
            self._violation(f"n{node.id} decided h{action.height} first")
        node.chain[action.height] = action.block_hash
        node.store[action.height] = Decision(certificate, action.block)
        if node.id == 0 and self.arrivals:
            for word in action.block.split()[4:]:
                arrived = self.arrivals.pop(word.decode(), None)
                if arrived is not None:
                    self.transaction_latencies.append(self.now - arrived)
        self.decisions.append(
            (node.id, action.height, action.path, action.latency, certificate.view)
        )
        agreed = self.decided.setdefault(action.height, action.block_hash)
        if agreed != action.block_hash:
            self._violation(
                f"n{node.id} decided {action.block_hash.hex()[:8]} at h{action.height}, "
                f"another honest replica {agreed.hex()[:8]}"
            )
        if self.height_at_end and action.height > max(self.height_at_end.values()):
            # A height nobody had begun when the faults ended (a replica catching up after
            # them still sees the views the others went through during them).
            self.views_max = max(self.views_max, certificate.view)

    def _check_signed(self, node: _Node, message: Message, persisted: bool) -> None:
        """The guard's promises, from outside: persist before send, never contradict."""
        if isinstance(message, Proposal):
            signature, slot, value = (
                message.signature,
                (message.proposer, message.height, message.view, 0),
                message.block_hash,
            )
        elif isinstance(message, SignedVote):
            signature, value = message.signature, message.block_hash
            slot = (node.validator, message.height, message.view, message.phase)
        else:
            return
        if signature in node.signed:
            return  # a re-send
        node.signed.add(signature)
        if not persisted:
            self._violation(f"n{node.id} sent a new signature before persisting its record")
        values = self.sent_by_key.setdefault(slot, set())
        values.add(value)
        distinct = values - {NIL} if slot[3] == PHASE_VOTE else values
        if len(distinct) > 1:
            self._violation(f"honest v{node.validator} signed conflicting messages at {slot}")

    def _check_evidence(self, node: _Node, action: Evidence) -> None:
        evidence = action.evidence
        try:
            evidence.verify(CHAIN_ID)
        except InvalidEvidence as error:
            self._violation(f"n{node.id} produced evidence that does not verify: {error}")
            return
        key = evidence.first.consensus_key
        accused = next(i for i, (k, _) in enumerate(self.validator_set) if k == key)
        if accused not in self.byzantine:
            self._violation(f"n{node.id} produced evidence against honest v{accused}")

    def _check_blame(self, honest: list[_Node]) -> None:
        """The health monitor's fault counts feed metrics and operators' decisions: an honest
        replica must never blame an honest validator for a bad signature or proposal."""
        for node in honest:
            for validator, fault in sorted(node.replica.health.faults, key=str):
                if validator not in self.byzantine:
                    self._violation(f"n{node.id} blamed honest v{validator}: {fault.value}")

    def _note(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.now:9.4f}  {text}")


def _describe(message: Message) -> str:
    def short(value: bytes) -> str:
        return "⊥" if value == NIL else value.hex()[:8]

    if isinstance(message, Proposal):
        carried = ""
        if message.certificate is not None:
            kind, certificate = message.certificate
            carried = f" C=({kind.name} v{certificate.view})"
        return (
            f"PROPOSE h{message.height} v{message.view} {short(message.block_hash)}{carried}"
            f" +{len(message.nil_certificates)}⊥"
        )
    if isinstance(message, SignedVote):
        phase = {PHASE_VOTE: "VOTE", PHASE_FINAL: "FINAL"}.get(message.phase, "PROPOSE")
        return f"{phase} h{message.height} v{message.view} {short(message.block_hash)}"
    if isinstance(message, CommitCertificate):
        phase = "VOTEs" if message.phase == PHASE_VOTE else "FINALs"
        return (
            f"CERT {phase} h{message.height} v{message.view} {short(message.block_hash)} "
            f"x{len(message.signatures)}"
        )
    if isinstance(message, Decision):
        return f"DECISION h{message.height} {short(message.certificate.block_hash)}"
    if isinstance(message, DecisionRequest):
        return f"DECISION? h{message.height}"
    if isinstance(message, BlockRequest):
        return f"BLOCK? h{message.height} {short(message.block_hash)}"
    assert isinstance(message, BlockReply)
    return f"BLOCK h{message.height} {short(message.block_hash)}"
