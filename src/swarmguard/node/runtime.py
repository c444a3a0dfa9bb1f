"""The node loop: one asyncio task drives the sans-IO replica with the network, the clock and
the disk, and the replica's application is the ``Chain`` (ledger, mempool, block store).

What the loop does with each of the replica's actions, in the order given:

- ``Persist``: the double-sign guard's record is written to ``guard.bin`` (a temporary file,
  fsync, rename, fsync of the directory) before anything after it is sent, so a signature never
  leaves without the record that forbids contradicting it (``consensus.signing``);
- ``Broadcast`` / ``SendTo``: the message's ``consensus.wire`` envelope goes to the transport
  (channel CONSENSUS);
- ``SetTimer``: ``loop.call_at``; the replica ignores timers of heights it has left;
- ``Decide``: counted (the ``Chain`` already committed the block when the replica called it);
- ``Evidence``: logged, and submitted as a transaction signed by the operator's account key
  (``operator_key``), so the ledger slashes and jails the double signer.

The replica's clock is the event loop's (monotonic); block times come from the wall clock
(``Chain``). Transactions enter through ``submit`` (a client) or gossip (channel MEMPOOL, from
a validator that admitted it): the mempool admits, the submitting node gossips what it admitted
to every peer (the validators are a full mesh, so one hop reaches everyone), and every admitted
transaction is offered to the replica's batcher, which decides when a leader proposes; the
block's transactions come from the mempool (``Chain.propose``), which is the record of what is
pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swarmguard.codec import CodecError
from swarmguard.consensus import wire
from swarmguard.consensus.batching import BatchConfig, Batcher
from swarmguard.consensus.replica import (
    DECISIONS_KEPT,
    Action,
    Broadcast,
    Decide,
    Evidence,
    Persist,
    Replica,
    SendTo,
    SetTimer,
)
from swarmguard.consensus.signing import SigningGuard
from swarmguard.consensus.sync import Decision
from swarmguard.crypto import SigningKey
from swarmguard.crypto.hashing import address_of
from swarmguard.node import blocksync
from swarmguard.node.abci import Application
from swarmguard.node.apitls import ApiTls
from swarmguard.node.blocksync import BlocksPruned, Syncer, SyncError
from swarmguard.node.chain import Chain, ChainLimits, handover_records, mempool_check
from swarmguard.node.guardfile import GuardFile
from swarmguard.node.identity import NodeIdentity
from swarmguard.node.ledger import LedgerApp
from swarmguard.node.mempool import (
    Admission,
    Mempool,
    MempoolConfig,
    Relay,
    decode_gossip,
    encode_gossip,
)
from swarmguard.node.metrics import NodeMetrics
from swarmguard.node.statesync import StateSyncer, TrustExpired, TrustPoint
from swarmguard.node.transactions import SubmitEvidence, Transaction
from swarmguard.node.transport import FRAME_BYTES_MAX, Channel, Peer, Transport, TransportConfig
from swarmguard.node.voted import VotedBlocks
from swarmguard.storage.blockstore import Block, BlockStore
from swarmguard.storage.snapshots import SnapshotStore
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import PHASE_VOTE, DoubleVoteEvidence, SignedVote, sign_vote

__all__ = ["ConsensusOptions", "ListenError", "Node", "NodeConfig", "NodeStats", "StateSyncOptions"]

log = logging.getLogger(__name__)

GOSSIP_BYTES_MAX = FRAME_BYTES_MAX - 1024
"""A gossip batch's transactions fit one frame with room for the batch's own header."""


@dataclass(frozen=True, slots=True)
class ConsensusOptions:
    fast_path: bool = True
    """False: decide on Finals only (three message delays); benchmarks measure the gain."""
    double_sign_for_tests: bool = False
    """A fault switch for tests only: every Vote this node sends is followed by a Vote for
    another block, signed with its key past the guard, so the others must catch it."""


def _is_hex(text: str, size: int) -> bool:
    try:
        return len(bytes.fromhex(text)) == size
    except ValueError:
        return False


SYNC_STOP_SECONDS = 5.0
"""How long stop() waits for a cancelled block or state sync to end."""

KEEP_RECENT_MIN = 256
"""The fewest blocks a pruning node keeps: four times the lag at which a validator leaves
consensus for block sync, so peers briefly behind still catch up from it."""


@dataclass(frozen=True, slots=True)
class StorageOptions:
    keep_recent: int = 0
    """Blocks to keep (0: all). Each commit deletes the block that falls out of the window with
    its hash and transaction index entries; the state, the snapshots, the validator-set
    hand-overs and the history accumulator (every block hash: proofs over the whole chain)
    stay. A peer further behind than every peer's window needs state sync."""

    def __post_init__(self) -> None:
        if self.keep_recent != 0 and self.keep_recent < KEEP_RECENT_MIN:
            raise ValueError(f"keep_recent must be 0 (keep all) or >= {KEEP_RECENT_MIN}")


TRUST_PERIOD_DEFAULT = 14 * 24 * 3600
"""Two thirds of the default unbonding time (21 days), as CometBFT advises for its light
client's trusting period."""


@dataclass(frozen=True, slots=True)
class StateSyncOptions:
    enabled: bool = False
    """A node that starts with an empty store restores the newest snapshot its peers offer
    (then block-syncs the rest) instead of replaying the chain from genesis."""
    snapshot_interval: int = 0
    """Take a snapshot of the application state every this many heights, to offer (0: none)."""
    snapshots_kept: int = 2
    trust_height: int = 0
    """A height whose header the operator trusts (0: none), with ``trust_hash``: state sync
    then refuses any history that does not hold that header (a weak-subjectivity anchor
    against long-range attacks; docs/node.md)."""
    trust_hash: str = ""
    """The trusted header's hash, 64 hex digits (block hashes as the API shows them)."""
    trust_period: int = TRUST_PERIOD_DEFAULT
    """Seconds a trust point (the trusted header, or genesis without one) stays good for state
    sync, by its block time: keep it below the chain's unbonding time, so every set from the
    trust point on is still bonded and slashable (0: no limit, for chains without stake)."""

    def __post_init__(self) -> None:
        if self.snapshot_interval < 0 or self.snapshots_kept < 1:
            raise ValueError("snapshot_interval must be >= 0 and snapshots_kept >= 1")
        if self.trust_height < 0 or (self.trust_height > 0) != bool(self.trust_hash):
            raise ValueError("trust_height (>= 1) and trust_hash go together")
        if self.trust_hash and not _is_hex(self.trust_hash, 32):
            raise ValueError("trust_hash: expected 64 hex digits")
        if self.trust_period < 0:
            raise ValueError("trust_period must be >= 0 (0: no limit)")

    @property
    def trust(self) -> tuple[int, bytes] | None:
        if not self.trust_height:
            return None
        return self.trust_height, bytes.fromhex(self.trust_hash)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    chain_id: str
    home: Path
    consensus_key: SigningKey
    node_identity: NodeIdentity
    app_state: bytes  # the genesis file's application part
    genesis_time: int
    host: str
    port: int
    peers: Sequence[Peer]
    peer_keys: dict[int, bytes]  # peer id -> the consensus key of the validator it runs
    batch: BatchConfig = field(default_factory=lambda: BatchConfig(timeout=0.01))
    transport: TransportConfig = field(default_factory=TransportConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    limits: ChainLimits = field(default_factory=ChainLimits)
    consensus: ConsensusOptions = field(default_factory=ConsensusOptions)
    statesync: StateSyncOptions = field(default_factory=StateSyncOptions)
    storage: StorageOptions = field(default_factory=StorageOptions)
    operator_key: SigningKey | None = None
    """The validator's account key: signs the evidence transactions this node submits."""
    vrf_secret: bytes | None = None
    """The validator's ECVRF secret key (the seed proof in its proposals); None: a full node."""
    metrics: tuple[str, int] | None = None
    """Where to serve /metrics, /healthz and /readyz (None: not served)."""
    api: tuple[str, int] | None = None
    """Where ``swarmguard node`` serves the gRPC API (None: not served)."""
    http: tuple[str, int] | None = None
    """Where it serves the same calls over HTTP/JSON (None: not served)."""
    api_tls: ApiTls | None = None
    """TLS for both APIs (None: plaintext, for loopback or a proxy in front)."""
    slack_ppm: int = 0
    """The chain's fast-path slack (genesis ``consensus_params.fast_path_slack_ppm``)."""


@dataclass(slots=True)
class NodeStats:
    decided: int = 0
    fast: int = 0
    slow: int = 0
    synced: int = 0
    malformed_messages: int = 0
    evidence: int = 0


class ListenError(OSError):
    """A configured address could not be bound (in use, not local, not permitted): the
    message names the configuration field, so the operator knows which line to change."""

    @classmethod
    @contextlib.contextmanager
    def naming(cls, field: str, host: str, port: int) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            if isinstance(error, ListenError):
                raise
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise cls(f"{field}: cannot listen on {host}:{port}: {reason}") from error


class Node:
    def __init__(self, config: NodeConfig, app: Application | None = None) -> None:
        """``app``: any in-process ``abci.Application`` (default: the built-in ledger)."""
        self.config = config
        config.home.mkdir(parents=True, exist_ok=True)
        self.stats = NodeStats()
        self.app: Application = app if app is not None else LedgerApp(config.chain_id)
        self._genesis = self.app.init_chain(config.app_state)
        options = config.statesync
        snapshots = (
            SnapshotStore(config.home / "snapshots", keep=options.snapshots_kept)
            if options.snapshot_interval
            else None
        )
        self.store = BlockStore(
            config.home / "blocks",
            config.chain_id,
            snapshots=snapshots,
            snapshot_interval=options.snapshot_interval or None,
            keep_recent=config.storage.keep_recent or None,
        )
        self.mempool = Mempool(config.chain_id, mempool_check(self.app), config.mempool)
        self.chain = self._make_chain()
        self._guard = GuardFile(config.home)
        self._voted = GuardFile(config.home, "voted")
        """The blocks voted for at the height being decided (``node.voted``)."""
        self._voted_saved: tuple[int, frozenset[bytes]] = (0, frozenset())
        self._peer_keys = dict(config.peer_keys)
        self._peer_of_key = {key: peer for peer, key in config.peer_keys.items()}
        self.replica = self._make_replica()
        self.transport = Transport(
            identity=config.node_identity,
            host=config.host,
            port=config.port,
            peers=config.peers,
            on_frame=self._on_frame,
            tls_dir=config.home / "tls",
            config=config.transport,
        )
        self.syncer = Syncer(self.chain, self.store, self._send_sync)
        self.statesyncer = StateSyncer(
            config.chain_id,
            self.chain.validators(1),
            self.syncer,
            self._send_sync,
            lambda message: self.transport.broadcast(Channel.SYNC, blocksync.encode(message)),
            trust=config.statesync.trust,
            trust_period=config.statesync.trust_period,
            genesis_time=config.genesis_time,
            slack_ppm=config.slack_ppm,
        )
        if config.statesync.enabled and self.store.height == 0:
            self.statesyncer.check_genesis()  # TrustExpired: refused at start, naming the fix
        self._sync_task: asyncio.Task[None] | None = None
        self._told_pruned = False  # said once that only state sync would catch up
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outgoing: list[bytes] = []  # admitted, not yet gossiped
        self._stopped = False
        self.latencies: deque[float] = deque(maxlen=4096)  # recent commit latencies (seconds)
        self.metrics = NodeMetrics(self)
        self.metrics_port: int | None = None
        self._ticker: asyncio.Task[None] | None = None

    def _make_chain(self) -> Chain:
        """The chain over the store as it is (fresh, restarted, or restored by state sync)."""
        config = self.config
        return Chain(
            config.chain_id,
            self.app,
            self.store,
            self.mempool,
            genesis=self._genesis,
            genesis_time=config.genesis_time,
            proposer_key=config.consensus_key.public_key.raw,
            vrf_secret=config.vrf_secret,
            clock=time.time,
            limits=config.limits,
            slack_ppm=config.slack_ppm,
        )

    def _make_replica(self) -> Replica:
        """A replica at the height after the store's (at start-up, and after a block sync),
        with the signing guard as persisted (moved on past the store: those heights are done)."""
        config = self.config
        guard = SigningGuard()
        record = self._guard.load()
        if record is not None:
            guard = SigningGuard.decode(record)
        elif self.store.height:
            guard.advance(self.store.height + 1)
        if guard.height <= self.store.height:  # the store is ahead of the record: move on
            guard.advance(self.store.height + 1)
        replica = Replica(
            config.chain_id,
            self._index(config.consensus_key.public_key.raw, self.store.height + 1),
            config.consensus_key,
            self.chain.validators,
            self.chain.leader,
            self.chain,
            guard=guard,
            batcher=Batcher(config.batch, live=self.mempool.holds),
            fast_path=config.consensus.fast_path,
            slack_ppm=config.slack_ppm,
        )
        replica.load_decisions(self._stored_decisions())
        return replica

    def _stored_decisions(self) -> list[Decision]:
        """The last heights' commit proofs from the block store, so that after a restart this
        node still answers validators behind it (the replica's memory of them was lost)."""
        decisions = []
        height = self.store.height
        for stored in range(max(1, height - DECISIONS_KEPT + 1), height + 1):
            block = self.store.block(stored)
            if block is None or not block.certificate:
                continue
            proposed = Block(
                stored, block.header, block.transactions, last_commit=block.last_commit
            )
            certificate = CommitCertificate.decode(block.certificate)
            decisions.append(Decision(certificate, proposed.encode()))
        return decisions

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, start the ticker, and enter consensus (or state sync). A configured address
        that cannot be bound raises ``ListenError``; ``stop`` then releases what started."""
        self._loop = asyncio.get_running_loop()
        with ListenError.naming("node.listen", self.transport.host, self.transport.port):
            await self.transport.start()
        if self.config.metrics is not None:
            with ListenError.naming("node.metrics", *self.config.metrics):
                self.metrics_port = self.metrics.serve(*self.config.metrics)
        self._ticker = self._loop.create_task(self._tick())
        if self.config.statesync.enabled and self.store.height == 0:
            self.syncer.running = True  # out of consensus until the state is there
            self._sync_task = self._loop.create_task(self._state_sync())
        else:
            self._start_replica()

    async def _tick(self) -> None:
        """Once a second: liveness (/healthz turns 503 if this stops running: a stuck event
        loop), our status to the peers, and a block sync if they are far ahead."""
        while True:
            self.metrics.tick()
            height = self.store.height
            status = blocksync.Status(height, self.store.base if height else 0)
            self.transport.broadcast(Channel.SYNC, blocksync.encode(status))
            # A validator catches up the last few heights through consensus; a node outside
            # the set (a full node, a jailed validator) gets no answers there: it follows the
            # chain by block sync alone.
            member = self.replica.index >= 0
            if self.syncer.behind(blocksync.SYNC_LAG if member else 0) and not self.syncer.running:
                assert self._loop is not None
                self._sync_task = self._loop.create_task(self._block_sync(member))
            await asyncio.sleep(1.0)

    async def _block_sync(self, member: bool) -> None:
        """Leave consensus, catch up by block sync, and come back with a replica at the
        height reached (``node.blocksync``)."""
        start = self.store.height
        if member:
            log.info("block sync: from height %d, best peer at %d", start, self._best_peer())
        try:
            executed = await self.syncer.run(blocksync.CAUGHT_UP if member else 0)
        except SyncError as error:  # our state diverged: never sign on top of it
            log.error("block sync stopped: %s", error)
            self.syncer.running = True  # stay out of consensus; an operator must look
            return
        except BlocksPruned as error:  # behind every peer's window: only state sync helps
            if self.config.statesync.enabled:
                log.warning("block sync: %s; state sync instead", error)
                self.syncer.running = True  # still out of consensus
                height = self.store.height
                own = TrustPoint(
                    height + 1, self.chain.validators(height + 1), self.chain.last_time
                )
                await self._state_sync(own)
            elif not self._told_pruned:
                self._told_pruned = True
                log.warning(
                    "block sync: %s; with [statesync] enabled this node would jump ahead by "
                    "state sync",
                    error,
                )
            return
        if not executed:
            return
        report = log.info if member else log.debug  # a follower syncs every second
        report("block sync: executed %d blocks, now at %d", executed, self.store.height)
        self.replica = self._make_replica()
        self._start_replica()

    async def _state_sync(self, own: TrustPoint | None = None) -> None:
        """Restore the newest snapshot the peers offer (``node.statesync``), then rejoin as
        after a restart; block sync brings the rest. Without one: from genesis. ``own``: the
        node's own chain, when it fell behind every peer's window (trusted from its last
        block; the snapshot replaces its store)."""
        above = 0 if own is None else own.since - 1
        expired: TrustExpired | None = None
        try:
            restored = await self.statesyncer.run(own)
        except TrustExpired as error:
            expired, restored = error, None
        finally:
            self.syncer.running = False
        if expired is not None:  # nothing a peer sends is safe to follow: an operator must act
            log.error("%s", expired)
            self.syncer.running = True  # out of consensus and of block sync, not ready
            return
        if restored is None:
            log.info("state sync: no usable snapshot; block sync from height %d", above)
        else:
            records = handover_records(restored.handovers)
            if above:  # a store that fell behind: replaced, in one transaction
                self.store.jump_to(restored.block, restored.state, records)
            else:
                self.store.restore(restored.block, restored.state, records)
            listeners = self.chain.listeners  # the API's, registered on the chain it replaces
            self.chain = self._make_chain()  # the restart path: the app loads the store's state
            self.chain.listeners.extend(listeners)
            self.syncer.chain = self.chain
            log.info(
                "state sync: restored height %d from a snapshot of %d entries (was at %d)",
                restored.block.height,
                len(restored.state),
                above,
            )
        self.replica = self._make_replica()
        self._start_replica()

    def _best_peer(self) -> int:
        return max(self.syncer.peer_heights.values(), default=0)

    def _send_sync(self, peer: int, message: blocksync.SyncMessage) -> None:
        self.transport.send(peer, Channel.SYNC, blocksync.encode(message))

    async def stop(self) -> None:
        # Timers and frames that still arrive change nothing now: the replica must not go on
        # (a lone validator decides on a timer alone) into a store about to close.
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
        if self._sync_task is not None:
            self._sync_task.cancel()
            # Bounded, and without swallowing a cancellation of stop() itself.
            done, pending = await asyncio.wait({self._sync_task}, timeout=SYNC_STOP_SECONDS)
            if pending:
                log.warning("stop: the sync task did not end within %.0f s", SYNC_STOP_SECONDS)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("stop: the sync task had failed: %r", task.exception())
        self.syncer.close()
        self._guard.close()
        self._voted.close()
        self.metrics.close()
        await self.transport.close()
        self.store.close()

    async def update_peers(
        self, peers: Sequence[Peer], peer_keys: Mapping[int, bytes]
    ) -> tuple[list[int], list[int]]:
        """Make ``peers`` the configured set while running (``swarmguard node`` on SIGHUP):
        a validator joining by stake is connected without restarting the others. Returns the
        peer ids (removed, added); what else a removed peer reported is forgotten."""
        removed, added = await self.transport.update_peers(peers)
        self._peer_keys = dict(peer_keys)
        self._peer_of_key = {key: peer for peer, key in peer_keys.items()}
        for peer in removed:
            self.syncer.peer_heights.pop(peer, None)
            self.syncer.peer_bases.pop(peer, None)
        return removed, added

    @property
    def height(self) -> int:
        return self.store.height

    # -- inputs ----------------------------------------------------------------------------

    def submit(self, transaction: bytes, client: Hashable = "local") -> Admission:
        """A client's transaction: admitted, gossiped to every peer, offered to the batcher."""
        return self.submit_many([transaction], client)[0][0]

    def submit_many(
        self, transactions: Sequence[bytes], client: Hashable
    ) -> list[tuple[Admission, str]]:
        """A client's batch, admitted in order: each one's admission and, if the application
        rejected it, why. What is accepted is gossiped and offered to the batcher together
        (one arrival, one block)."""
        results = self.mempool.add_many(transactions, client)
        accepted = [
            transaction
            for transaction, (admission, _) in zip(transactions, results, strict=True)
            if admission is Admission.ACCEPTED
        ]
        for transaction in accepted:
            self._gossip(transaction)
        self._offer(accepted)
        return results

    def _gossip(self, transaction: bytes) -> None:
        """Queue for the next gossip batch: one frame per turn of the event loop."""
        if not self._outgoing:
            if self._loop is None:
                self._outgoing.append(transaction)
                self._flush_gossip()
                return
            self._loop.call_soon(self._flush_gossip)
        self._outgoing.append(transaction)

    def _flush_gossip(self) -> None:
        batch: list[bytes] = []
        size = 0
        for transaction in self._outgoing:
            if batch and size + len(transaction) + 4 > GOSSIP_BYTES_MAX:
                self.transport.broadcast(Channel.MEMPOOL, encode_gossip(batch))
                batch, size = [], 0
            batch.append(transaction)
            size += len(transaction) + 4
        if batch:
            self.transport.broadcast(Channel.MEMPOOL, encode_gossip(batch))
        self._outgoing = []

    def _offer(self, transactions: Sequence[bytes]) -> None:
        if (
            transactions and not self.syncer.running and not self._stopped
        ):  # a full batcher refuses some: the mempool still holds them
            self._apply(self.replica.on_transactions(transactions, self._now()))

    def _on_frame(self, peer: int, channel: Channel, payload: bytes) -> None:
        if self._stopped:
            return
        if channel is Channel.SYNC:
            self._on_sync(peer, payload)
            return
        if channel is Channel.MEMPOOL:
            try:
                transactions = decode_gossip(payload)
            except CodecError:
                self.stats.malformed_messages += 1
                return
            results = self.mempool.add_many(transactions, Relay(peer))
            self._offer(
                [
                    t
                    for t, (a, _) in zip(transactions, results, strict=True)
                    if a is Admission.ACCEPTED
                ]
            )
            return
        if wire.is_stale(payload, self.replica.height):
            return  # a late commit proof or view certificate: the replica would drop it
        try:
            message = wire.decode(payload)
        except CodecError:
            self.stats.malformed_messages += 1
            return
        if self.syncer.running:
            return  # out of consensus while block sync runs
        key = self._peer_keys.get(peer)
        sender = -1 if key is None else self._index(key, self.replica.height)
        self._apply(self.replica.on_message(sender, message, self._now()))

    def _on_sync(self, peer: int, payload: bytes) -> None:
        try:
            message = blocksync.decode(payload)
        except CodecError:
            self.stats.malformed_messages += 1
            return
        if isinstance(message, blocksync.BlocksRequest):
            self._send_sync(peer, self.syncer.answer(message))
        elif isinstance(message, blocksync.SnapshotsRequest | blocksync.ChunkRequest):
            self._send_sync(peer, self._snapshot_answer(message))
        elif isinstance(message, blocksync.HandoversRequest):
            self._send_sync(peer, self.syncer.answer_handovers(message))
        elif isinstance(message, blocksync.SnapshotOffer | blocksync.Chunk | blocksync.Handovers):
            self.statesyncer.on_message(peer, message)
        else:
            self.syncer.on_message(peer, message)

    def _snapshot_answer(
        self, request: blocksync.SnapshotsRequest | blocksync.ChunkRequest
    ) -> blocksync.SyncMessage:
        """Our snapshots' manifests (newest first), or one chunk (empty: not held)."""
        snapshots = self.store.snapshots
        if isinstance(request, blocksync.SnapshotsRequest):
            if snapshots is None:
                return blocksync.SnapshotOffer(())
            newest = snapshots.heights()[::-1][: blocksync.OFFERED_MAX]
            return blocksync.SnapshotOffer(tuple(snapshots.manifest(h).encode() for h in newest))
        data = b""
        if snapshots is not None:
            with contextlib.suppress(OSError):
                data = snapshots.chunk(request.height, request.index)
                snapshots.hold(request.height)  # a peer is restoring it: not pruned meanwhile
        if len(data) > blocksync.REPLY_BYTES_MAX:
            data = b""
        return blocksync.Chunk(request.height, request.index, data)

    def _timer(self, height: int, view: int, timer: object) -> None:
        if self.syncer.running or self._stopped:
            return
        self._apply(self.replica.on_timer(height, view, timer, self._now()))  # type: ignore[arg-type]

    # -- outputs ---------------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        if self._stopped:
            return
        loop = self._loop
        assert loop is not None
        for action in actions:
            if isinstance(action, Persist):
                self._persist(action.record)
            elif isinstance(action, Broadcast):
                self.transport.broadcast(Channel.CONSENSUS, wire.encode(action.message))
                if self.config.consensus.double_sign_for_tests:
                    self._double_sign(action.message)
            elif isinstance(action, SendTo):
                peer = self._peer_of_index(action.validator)
                if peer is not None:
                    self.transport.send(peer, Channel.CONSENSUS, wire.encode(action.message))
            elif isinstance(action, SetTimer):
                loop.call_at(action.at, self._timer, action.height, action.view, action.timer)
            elif isinstance(action, Decide):
                self.stats.decided += 1
                self.latencies.append(action.latency)
                self.metrics.observe(action)
                if action.path == "fast":
                    self.stats.fast += 1
                elif action.path == "slow":
                    self.stats.slow += 1
                else:
                    self.stats.synced += 1
            elif isinstance(action, Evidence):
                self.stats.evidence += 1
                log.warning("double-sign evidence at height %d", action.evidence.height)
                self._report(action.evidence)

    def _report(self, evidence: DoubleVoteEvidence) -> None:
        """Submit evidence as a transaction signed by the operator's account (any account may;
        the ledger accepts each piece of evidence once, so duplicates from other nodes are
        refused harmlessly)."""
        key = self.config.operator_key
        if key is None or not isinstance(self.app, LedgerApp):
            return  # another application decides for itself what evidence means to it
        nonce = self.app.next_nonce(address_of(key.public_key.raw))
        transaction = Transaction.sign(key, self.config.chain_id, nonce, SubmitEvidence(evidence))
        self.submit(transaction.encode(), client="evidence")

    def _double_sign(self, message: object) -> None:
        """The test-only fault (``double_sign_for_tests``): a conflicting Vote beside ours."""
        if isinstance(message, SignedVote) and message.phase == PHASE_VOTE:
            other = sign_vote(
                self.config.consensus_key,
                self.config.chain_id,
                message.height,
                message.view,
                PHASE_VOTE,
                hashlib.sha256(b"double-sign" + message.block_hash).digest(),
            )
            self.transport.broadcast(Channel.CONSENSUS, wire.encode(other))

    def _persist(self, record: bytes) -> None:
        """The guard record on disk before anything it covers is sent; before it, the body
        of every block it votes for that is not on disk yet (``node.voted``)."""
        guard = self.replica.guard
        voted = frozenset(value for _, _, value in guard.signed() if any(value))
        height, saved = self._voted_saved
        if voted and (height != guard.height or not voted <= saved):
            bodies = self.chain.bodies
            kept = {h: bodies[h] for h in voted if h in bodies}
            self._voted.save(VotedBlocks(guard.height, kept).encode())
            self._voted_saved = (guard.height, frozenset(kept))
        self._guard.save(record)

    def _start_replica(self) -> None:
        """Start the replica, with the blocks it voted for before a restart."""
        now = self._now()
        self._apply(self.replica.start(now))
        blocks = self._voted_blocks(self.replica.height)
        if blocks:
            self._apply(self.replica.restore_blocks(blocks, now))

    def _voted_blocks(self, height: int) -> dict[bytes, bytes]:
        """The block bodies voted for at ``height`` before a restart (empty if another)."""
        record = self._voted.load()
        if record is None:
            return {}
        try:
            voted = VotedBlocks.decode(record)
        except CodecError as error:
            log.warning("voted blocks record unreadable, ignored: %s", error)
            return {}
        return voted.blocks if voted.height == height else {}

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _index(self, key: bytes, height: int) -> int:
        for index, (validator_key, _) in enumerate(self.chain.validators(height)):
            if validator_key == key:
                return index
        return -1

    def _peer_of_index(self, index: int) -> int | None:
        validators = self.chain.validators(self.replica.height)
        if not 0 <= index < len(validators):
            return None
        return self._peer_of_key.get(validators[index][0])
