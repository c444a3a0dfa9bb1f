"""The replica's application: blocks built from the mempool, checked against the chain and by
the ABCI application, and committed with the application's writes, in one place.

A block (``storage.Block``, hashed by its header) as proposed::

    header (v4): height, time, previous_hash, transactions_root, state_root (the app hash after
                 the previous height), validators_hash (this height's set),
                 next_validators_hash (the next height's), proposer (the address of the
                 proposer's consensus key), last_commit_hash, seed (this height's leader-draw
                 seed), seed_proof (the proposer's ECVRF proof of the next height's seed)
    body:        transactions, last_commit (the proposer's certificate for the previous height)

``validate`` accepts a proposal only if every field is what this node computes for the height:
the previous block's hash, the app hash, this height's and the next height's validator sets,
a last commit that verifies against the previous height's set for the previous block, a time
not before the previous block's and not more than ``time_drift`` ahead of this node's clock, an
empty certificate field, a proposer in the set, this height's seed, a seed proof that verifies
under the proposer's VRF key (the application's ``query("vrf_key", consensus key)``), and the
application's ``process_proposal``. The app's view of who signed the previous block comes from
``last_commit``, which consensus agreed on; a node's own certificate for a height is one of
many valid ones and is stored with the block but never shown to the application.

``commit`` runs ``finalize_block``, stores the block (with this node's certificate and the
application's writes; at height 1 the genesis writes too) in one atomic transaction, then calls
the application's ``commit`` and updates the mempool. The block store's state tree is therefore
the application's state, and a restart hands it back (``load_state``).

Leader seeds. The seed of height h + 1 is the output of the VRF proof in header h, proven by
h's proposer over (seed of h, h + 1) with the key it registered: one valid proof per proposer
and height, so a proposer cannot grind the next leader by reordering transactions (as it could
if the seed were the block's hash); it can only withhold its block (docs/validators.md).

Validator updates from height h's ``finalize_block`` take effect at h + 2
(``handover.SET_CHANGE_DELAY``), so that header h + 1 can name the set after it. The set history
lives in the block store as records committed with the block that made them: ``vset:<h>`` (the
set from height h on, written at h - 2) and ``vhand:<h>`` (the hand-over, written at h - 1 when
the set really changes: that header and this node's certificate for it), which other nodes'
state sync follows from genesis (``node.handover``).
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError
from swarmguard.crypto import InvalidProof, ecvrf
from swarmguard.crypto.hashing import address_of
from swarmguard.node.abci import Application, BlockRequest, FinalizedBlock, ValidatorUpdate
from swarmguard.node.handover import SET_CHANGE_DELAY, Handover
from swarmguard.node.mempool import Mempool
from swarmguard.storage.blockstore import Block, BlockStore
from swarmguard.storage.catchup import SEED_PROOF_BYTES, Header, commit_hash
from swarmguard.storage.merkle import merkle_root
from swarmguard.validators.certificate import CertificateError, CommitCertificate
from swarmguard.validators.election import (
    LeaderSchedule,
    ScheduledValidator,
    genesis_seed,
    vrf_input,
)
from swarmguard.validators.sets import (
    decode_validators,
    encode_validators,
    fast_path_slack,
    validators_hash,
)

__all__ = ["Chain", "ChainLimits", "handover_records", "mempool_check"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChainLimits:
    max_block_bytes: int = 4 * 1024 * 1024
    max_block_transactions: int = 10_000
    time_drift: float = 10.0
    """Seconds a proposal's time may be ahead of this node's clock."""


SET_PREFIX = b"vset:"
HANDOVER_PREFIX = b"vhand:"


def handover_records(handovers: Iterable[Handover]) -> dict[bytes, bytes]:
    """The store records that hold verified hand-overs (for a store restored by state sync)."""
    records = {}
    for handover in handovers:
        height = handover.height.to_bytes(8, "big")
        records[SET_PREFIX + height] = encode_validators(handover.validators)
        records[HANDOVER_PREFIX + height] = handover.encode()
    return records


class Chain:
    """Implements ``consensus.replica.Application`` for a node."""

    def __init__(
        self,
        chain_id: str,
        app: Application,
        store: BlockStore,
        mempool: Mempool,
        *,
        genesis: FinalizedBlock,
        genesis_time: int,
        proposer_key: bytes,
        vrf_secret: bytes | None,
        clock: Callable[[], float],
        limits: ChainLimits | None = None,
        slack_ppm: int = 0,
    ) -> None:
        self.chain_id = chain_id
        self.app, self.store, self.mempool = app, store, mempool
        self.limits = limits or ChainLimits()
        self._clock = clock
        self._proposer = address_of(proposer_key)
        self._vrf = None if vrf_secret is None else ecvrf.VrfSecretKey(vrf_secret)
        """This validator's VRF key (None: a full node, which never proposes)."""
        self._vrf_keys: dict[bytes, bytes] = {}
        """Consensus key -> registered VRF key (the application's; registrations never change)."""
        self._seed_outputs: OrderedDict[tuple[bytes, bytes, bytes], bytes] = OrderedDict()
        """(proposer address, VRF input, seed proof) -> its output, once proven or verified
        here: a proof is valid only for its input, so an old one is never accepted again."""
        self._proven: tuple[int, bytes, bytes] | None = None  # (height, seed, our proof)
        self.slack_ppm = slack_ppm
        """The chain's fast-path slack (genesis ``consensus_params``), for every certificate
        check: ``slack(validators)`` is its P for a set."""
        self._genesis_writes: Mapping[bytes, bytes | None] = genesis.writes
        self._sets: dict[int, list[tuple[bytes, int]]] = {}
        self._heights: list[int] = []  # sorted(self._sets), rebuilt when a change is added
        self._handovers: list[Handover] | None = None  # loaded on the first ``handovers``
        self._schedules: dict[int, tuple[LeaderSchedule, bytes]] = {}
        initial = _validator_list(genesis.validator_updates or ())
        if not initial:
            raise ValueError("the genesis validator set is empty")
        self._sets[1] = initial
        if store.height == 0:
            self.app_hash, self.last_hash, self.last_time = (
                genesis.app_hash,
                bytes(32),
                genesis_time,
            )
            self.last_certificate = b""
            self._last_seed, self._last_proposer = b"", b""
            self.seed = genesis_seed(chain_id)
        else:
            self._resume(store.height)
        self.results: OrderedDict[bytes, tuple[int, int, str]] = OrderedDict()
        """Transaction hash -> (height, result code, log) of recent commits (clients waiting)."""
        self.listeners: list[Callable[[int], None]] = []
        """Called with each committed height (API streams and waiters)."""
        self.committed_transactions = 0  # since this process started
        self._last_signatures: CommitCertificate | None = None
        """``last_certificate`` decoded (when asked for, or as committed)."""
        self._decoded: tuple[bytes, Block] | None = None
        """The last block proposed or validated, decoded: usually the one committed next."""
        self.bodies: OrderedDict[bytes, bytes] = OrderedDict()
        """Hash -> encoding of the blocks proposed or found valid here at the height being
        decided (a few: one per view at most), for the node to keep on disk with its votes."""

    def _resume(self, height: int) -> None:
        """A restart: the store holds the application's state and the last block."""
        app, store = self.app, self.store
        app.load_state(store.state_tree, height)
        block = store.block(height)
        if block is None:
            raise ValueError(f"the store lost block {height}")
        try:
            header = Header.decode(block.header)
        except CodecError as error:
            raise ValueError(f"stored block {height}: {error}") from None
        self.app_hash = app.info().app_hash
        self.last_hash = store.block_hash(block)
        self.last_time = header.time
        self.last_certificate = block.certificate
        self._last_seed, self._last_proposer = header.seed, header.proposer
        try:
            self.seed = ecvrf.proof_to_hash(header.seed_proof)
        except InvalidProof as error:
            raise ValueError(f"stored block {height}: its seed proof: {error}") from None
        self._load_sets(height)

    # -- validator sets across restarts ----------------------------------------------------

    def _load_sets(self, height: int) -> None:
        """The set history from the store's records. After a state sync they reach the
        snapshot's height + 1 only (the hand-overs it verified); the set from ``height + 2``
        on, chosen by the application while it executed ``height``, is its current set, which
        is then recorded too."""
        for key, value in self.store.records(SET_PREFIX):
            try:
                self._sets[int.from_bytes(key[len(SET_PREFIX) :], "big")] = decode_validators(value)
            except CodecError as error:
                raise ValueError(f"validator-set record {key!r}: {error}") from None
        answer = self.app.query("validators", b"")
        value = answer.value
        current = [
            (value[i : i + 32], int.from_bytes(value[i + 32 : i + 40], "big"))
            for i in range(0, len(value), 40)
        ]
        later = height + SET_CHANGE_DELAY
        if answer.code == 0 and current and current != self.validators(later):
            self._sets[later] = current
            self.store.put_records({_set_key(later): encode_validators(current)})

    def handovers(self, after: int) -> list[Handover]:
        """The hand-overs this node holds to heights above ``after``, in order (read from the
        store once, then kept up to date by ``commit``: peers ask for them)."""
        held = self._handovers
        if held is None:
            held = self._handovers = [
                Handover.decode(value) for _, value in self.store.records(HANDOVER_PREFIX)
            ]
        start = bisect.bisect_right([handover.height for handover in held], after)
        return held[start:]

    # -- what the replica asks ------------------------------------------------------------

    def leader(self, height: int, view: int) -> int:
        """The leader of (height, view) as an index into the height's set: the validator
        manager's draw, stake-weighted follow-the-satoshi over a seed from the previous block,
        skipping validators whose reputation (committed state) fell below the threshold. Every
        node computes the same, because both inputs are committed."""
        schedule = self._schedules.get(height)
        if schedule is None:
            schedule = self._schedules[height] = self._schedule(height)
            for old in sorted(self._schedules)[:-SCHEDULES_KEPT]:
                del self._schedules[old]
        key = schedule[0].leader(schedule[1], view)
        return [k for k, _ in self.validators(height)].index(key)

    def _schedule(self, height: int) -> tuple[LeaderSchedule, bytes]:
        """Built when first asked, which is while the application holds the state after
        ``height - 1`` (the replica asks for a height's leaders only once it is there)."""
        answer = self.app.query("reputation", b"")
        return self._draws(height, answer.value if answer.code == 0 else b""), self.seed

    def _failed_leaders(self, height: int, view: int) -> tuple[bytes, ...]:
        """The leaders of ``height``'s views before ``view`` (the one that decided it, from
        the next block's ``last_commit``), except the proposer of the decided block: they
        failed to get a block decided in their turn. Called while ``height`` is the last
        committed height; its schedule is rebuilt from committed inputs (the application's
        ``leader_reputation`` and the seed the schedule used), so every node, restarted or
        not, names the same validators."""
        answer = self.app.query("leader_reputation", b"")
        schedule = self._draws(height, answer.value if answer.code == 0 else b"")
        failed: list[bytes] = []
        for turn in range(min(view, FAILED_VIEWS_MAX)):
            key = schedule.leader(self._last_seed, turn)
            if key not in failed and address_of(key) != self._last_proposer:
                failed.append(key)
        return tuple(failed)

    def _draws(self, height: int, answer: bytes) -> LeaderSchedule:
        """The schedule of ``height`` for a ``reputation`` answer (empty: no reputation)."""
        threshold = int.from_bytes(answer[:4], "big") / PPM if answer else 0.0
        scores = {
            answer[i : i + 32]: int.from_bytes(answer[i + 32 : i + 36], "big")
            for i in range(4, len(answer), 36)
        }
        members = [
            ScheduledValidator(key, power, scores.get(key, PPM) / PPM)
            for key, power in self.validators(height)
        ]
        return LeaderSchedule(self.chain_id, members, reputation_threshold=threshold)

    def slack(self, validators: Sequence[tuple[bytes, int]]) -> int:
        """The fast-path slack P of ``validators`` on this chain."""
        return fast_path_slack(validators, self.slack_ppm)

    def validators(self, height: int) -> list[tuple[bytes, int]]:
        """The set of ``height``: the newest change at or below it."""
        heights = self._heights
        if len(heights) != len(self._sets):
            heights[:] = sorted(self._sets)
        index = bisect.bisect_right(heights, height)
        return self._sets[heights[index - 1] if index else 1]

    def propose(self, height: int, transactions: Sequence[bytes]) -> tuple[bytes, bytes]:
        """The block's transactions are the mempool's oldest: the replica's batch only says
        when to propose (its copies may already be in a block another leader proposed)."""
        limits = self.limits
        candidates = self.mempool.reap(limits.max_block_transactions, limits.max_block_bytes)
        chosen = self.app.prepare_proposal(height, candidates, limits.max_block_bytes)
        header = Header(
            height,
            max(int(self._clock()), self.last_time),
            self.last_hash,
            merkle_root(chosen),
            self.app_hash,
            validators_hash(self.validators(height)),
            validators_hash(self.validators(height + 1)),
            self._proposer,
            commit_hash(self.chain_id, self.last_certificate),
            self.seed,
            self._prove_seed(height),
        )
        block = Block(height, header.encode(), tuple(chosen), last_commit=self.last_certificate)
        data = block.encode()
        self._decoded = (data, block)
        block_hash = header.hash(self.chain_id)
        self._keep_body(block_hash, data)
        return block_hash, data

    def _keep_body(self, block_hash: bytes, data: bytes) -> None:
        self.bodies[block_hash] = data
        while len(self.bodies) > BODIES_KEPT:
            self.bodies.popitem(last=False)

    def _prove_seed(self, height: int) -> bytes:
        """Our proof of the seed of ``height + 1`` (the same in every view: proven once)."""
        if self._vrf is None:  # as good as a leader that is down: the others change view
            log.error("no vrf_key.json: this validator's proposals cannot prove their seed")
            return bytes(SEED_PROOF_BYTES)
        proven = self._proven
        if proven is not None and proven[:2] == (height, self.seed):
            return proven[2]
        alpha = vrf_input(self.chain_id, self.seed, height + 1)
        proof = self._vrf.prove(alpha)
        self._remember_seed((self._proposer, alpha, proof), ecvrf.proof_to_hash(proof))
        self._proven = (height, self.seed, proof)
        return proof

    def _seed_key(self, height: int, header: Header) -> tuple[bytes, bytes, bytes]:
        """What a proposal's seed proof is valid for: its proposer and the input of the seed
        of ``height + 1`` (while this node's seed is ``height``'s)."""
        alpha = vrf_input(self.chain_id, self.seed, height + 1)
        return header.proposer, alpha, header.seed_proof

    def _remember_seed(self, key: tuple[bytes, bytes, bytes], output: bytes) -> None:
        self._seed_outputs[key] = output
        while len(self._seed_outputs) > SEED_OUTPUTS_KEPT:
            self._seed_outputs.popitem(last=False)

    def _seed_ok(self, height: int, header: Header, proposer_key: bytes) -> bool:
        """Whether ``header`` carries this height's seed and a proof of the next one that
        verifies under its proposer's registered VRF key."""
        if header.seed != self.seed:
            return False
        key = self._seed_key(height, header)
        if key in self._seed_outputs:
            return True
        vrf_key = self._vrf_key(proposer_key)
        if vrf_key is None:
            return False
        try:
            output = ecvrf.verify(vrf_key, header.seed_proof, key[1])
        except InvalidProof:
            return False
        self._remember_seed(key, output)
        return True

    def certified_seed(self, header: Header) -> bytes:
        """The next seed from a certified header (block sync): its proof's output, not
        verified again, since the certificate's signers checked it before voting; kept for
        ``commit``. Raises InvalidProof if the proof does not even decode."""
        output = ecvrf.proof_to_hash(header.seed_proof)
        self._remember_seed(self._seed_key(header.height, header), output)
        return output

    def _vrf_key(self, consensus_key: bytes) -> bytes | None:
        """The VRF key the validator registered, asked of the application once."""
        known = self._vrf_keys.get(consensus_key)
        if known is None:
            answer = self.app.query("vrf_key", consensus_key)
            if answer.code != 0 or len(answer.value) != 32:
                return None
            known = self._vrf_keys[consensus_key] = answer.value
        return known

    def validate(self, height: int, block_hash: bytes, data: bytes) -> bool:
        try:
            block = Block.decode(data)
            header = Header.decode(block.header)
        except CodecError:
            return False
        self._decoded = (data, block)
        validators = self.validators(height)
        checks = (
            block.height == header.height == height,
            header.hash(self.chain_id) == block_hash,
            not block.certificate and not block.evidence,
            header.previous_hash == self.last_hash,
            header.state_root == self.app_hash,
            header.validators_hash == validators_hash(validators),
            header.next_validators_hash == validators_hash(self.validators(height + 1)),
            header.transactions_root == merkle_root(list(block.transactions)),
            header.last_commit_hash == commit_hash(self.chain_id, block.last_commit),
            self.last_time <= header.time <= self._clock() + self.limits.time_drift,
            header.proposer in {address_of(key) for key, _ in validators},
            len(block.transactions) <= self.limits.max_block_transactions,
        )
        if not all(checks) or not self._last_commit_ok(height, block.last_commit):
            return False
        proposer_key = next(k for k, _ in validators if address_of(k) == header.proposer)
        if not self._seed_ok(height, header, proposer_key):
            return False
        if not self.app.process_proposal(height, block.transactions):
            return False
        self._keep_body(block_hash, data)
        return True

    def _last_commit_ok(self, height: int, last_commit: bytes) -> bool:
        if height == 1:
            return not last_commit
        try:
            certificate = CommitCertificate.decode(last_commit)
            if certificate.height != height - 1 or certificate.block_hash != self.last_hash:
                return False
            previous = self.validators(height - 1)
            known = self._known_signatures(certificate)
            certificate.verify(self.chain_id, previous, self.slack(previous), known=known)
        except (CodecError, CertificateError):
            return False
        return True

    def _known_signatures(self, certificate: CommitCertificate) -> frozenset[tuple[int, bytes]]:
        """The signatures of ``certificate`` that this node's own certificate of the last
        block holds for the same height, view, phase and block: verified already (the node
        counted them, or checked the certificate it committed with), so a proposal's copy of
        them costs no second verification at every validator."""
        mine = self._last_signatures
        if mine is None and self.last_certificate:
            try:
                mine = CommitCertificate.decode(self.last_certificate)
            except CodecError:
                return frozenset()
            self._last_signatures = mine
        same = (certificate.height, certificate.view, certificate.phase, certificate.block_hash)
        if mine is None or (mine.height, mine.view, mine.phase, mine.block_hash) != same:
            return frozenset()
        return frozenset(mine.signatures)

    def commit(self, height: int, data: bytes, certificate: CommitCertificate) -> None:
        decoded = self._decoded
        block = decoded[1] if decoded is not None and decoded[0] == data else Block.decode(data)
        self._decoded = None
        header = Header.decode(block.header)
        validators = self.validators(height)
        by_address = {address_of(key): key for key, _ in validators}
        signers: tuple[bytes, ...] = ()
        failed: tuple[bytes, ...] = ()
        previous: list[tuple[bytes, int]] = []
        if block.last_commit:
            previous = self.validators(height - 1)
            last = CommitCertificate.decode(block.last_commit)
            signers = tuple(previous[index][0] for index, _ in last.signatures)
            if last.view:
                failed = self._failed_leaders(height - 1, last.view)
        result = self.app.finalize_block(
            BlockRequest(
                height,
                header.time,
                block.transactions,
                by_address.get(header.proposer, b""),
                signers,
                failed,
                tuple(key for key, _ in previous),
            )
        )
        writes = dict(self._genesis_writes) if height == 1 else {}
        writes.update(result.writes)
        stored = Block(
            height,
            block.header,
            block.transactions,
            certificate.encode(),
            last_commit=block.last_commit,
        )
        hashes = [self.mempool.hash(transaction) for transaction in block.transactions]
        # Verified when validated (or proven here); a block from block sync is vouched for by
        # its certificate, whose signers verified the proof before voting for it.
        seed = self._seed_outputs.get(self._seed_key(height, header))
        seed = seed if seed is not None else ecvrf.proof_to_hash(header.seed_proof)
        records, chosen, handover = self._set_changes(height, header, result, certificate)
        block_hash = self.store.commit(stored, writes, transaction_hashes=hashes, records=records)
        if handover is not None and self._handovers is not None:
            self._handovers.append(handover)
        self.app.commit()
        self.mempool.update(block.transactions, mempool_check(self.app))
        self.app_hash, self.last_hash, self.last_time = result.app_hash, block_hash, header.time
        self._last_seed, self._last_proposer, self.seed = header.seed, header.proposer, seed
        self.bodies.clear()
        self.last_certificate = certificate.encode()
        self._last_signatures = certificate
        self.committed_transactions += len(hashes)
        for key, outcome in zip(hashes, result.results, strict=False):
            self.results[key] = (height, outcome.code, outcome.log)
        while len(self.results) > RESULTS_KEPT:
            self.results.popitem(last=False)
        if chosen is not None:
            self._sets[height + SET_CHANGE_DELAY] = chosen
        for listener in self.listeners:
            listener(height)

    def _set_changes(
        self, height: int, header: Header, result: FinalizedBlock, certificate: CommitCertificate
    ) -> tuple[dict[bytes, bytes], list[tuple[bytes, int]] | None, Handover | None]:
        """The records a commit of ``height`` writes for the set history: the set the
        application chose (returned if it changes, to take effect at ``height + 2``) and the
        hand-over to ``height + 1`` if the header names a new set."""
        records: dict[bytes, bytes] = {}
        later = height + SET_CHANGE_DELAY
        chosen = None
        if result.validator_updates is not None:
            chosen = _validator_list(result.validator_updates)
            if chosen == self.validators(later):
                chosen = None  # no change
            else:
                records[_set_key(later)] = encode_validators(chosen)
        handover = None
        if header.next_validators_hash != header.validators_hash:
            following = tuple(self.validators(height + 1))
            handover = Handover(height + 1, following, header.encode(), certificate.encode())
            records[HANDOVER_PREFIX + (height + 1).to_bytes(8, "big")] = handover.encode()
        return records, chosen, handover


PPM = 1_000_000
RESULTS_KEPT = 100_000
BODIES_KEPT = 8
"""Blocks of the height being decided kept for the node's voted-blocks file."""
SEED_OUTPUTS_KEPT = 64
"""Seed proofs proven or verified lately (a height's proposals in its views, a few heights)."""
SCHEDULES_KEPT = 4
FAILED_VIEWS_MAX = 64
"""Views of one height whose leaders are named as failed (a long outage names a few, not all
its views' worth of draws)."""


def _set_key(height: int) -> bytes:
    return SET_PREFIX + height.to_bytes(8, "big")


def mempool_check(app: Application) -> Callable[[bytes], str | None]:
    """The mempool's admission check through the application's ``check_tx``."""

    def check(transaction: bytes) -> str | None:
        result = app.check_tx(transaction)
        return None if result.ok else result.log or f"code {result.code}"

    return check


def _validator_list(updates: Sequence[ValidatorUpdate]) -> list[tuple[bytes, int]]:
    """The consensus set: (key, power) by key, powers above zero. An application that names a
    key twice is refused here, as CometBFT refuses it, rather than stored as a set no header
    could name canonically."""
    members = sorted((u.consensus_key, u.power) for u in updates if u.power > 0)
    keys = [key for key, _ in members]
    if len(set(keys)) != len(keys) or any(len(key) != 32 for key in keys):
        raise ValueError("validator updates: each consensus key (32 bytes) at most once")
    return members
