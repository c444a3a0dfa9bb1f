"""State sync: a node with an empty store starts from a snapshot instead of from genesis.

The node asks its peers which snapshots they hold (``SnapshotsRequest``; nodes take them every
``[statesync] snapshot_interval`` heights), picks the newest height H, and fetches blocks H and
H + 1 with their certificates from a holder (or a peer ahead), then that peer's validator-set
hand-overs (``node.handover``). What it may trust:

- The sets of H and H + 1: the genesis set, followed through every hand-over (each certified
  by the set before it). A peer that withholds one is found out: H's header then names a set
  the node does not trust, and the next peer is tried. With ``[statesync] trust_height`` and
  ``trust_hash`` set (as CometBFT's state sync takes), the peer's block at that height must be
  that header, signed by the set the hand-overs give for it: a history forged from an earlier
  height by keys of sets long gone (a long-range attack) does not pass. The trust point (that
  header, or genesis without one) must be younger than ``[statesync] trust_period`` by its
  block time, so every set from it on is still bonded; an older one is refused
  (``TrustExpired``): the operator must name a recent header.
- Block H: its header names H's set and H + 1's, its certificate checks against H's set, its
  transactions match their root.
- Block H + 1: its header names H + 1's set and links to H; its certificate checks against
  H + 1's set, and the commit it carries for H against H's.
- The state after H: H + 1's header ``state_root``. The snapshot's chunks are fetched from the
  peers that offered it, each checked against the manifest's hash before it is decompressed
  (``storage.snapshots.Restorer``), and the rebuilt tree's root must be that state root.

Then the store is restored at block H with that state and the hand-overs up to H + 1
(``BlockStore.restore``), the application loads it as after a restart, and block sync brings
the node the rest. A peer that sends anything that does not check out is skipped; after
``ATTEMPTS`` failed snapshots the node falls back to block sync from genesis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError
from swarmguard.node.blocksync import (
    BlocksRequest,
    Chunk,
    ChunkRequest,
    Handovers,
    HandoversRequest,
    SnapshotOffer,
    SnapshotsRequest,
    Syncer,
    SyncMessage,
)
from swarmguard.node.handover import Handover, HandoverError, follow
from swarmguard.storage.blockstore import Block
from swarmguard.storage.catchup import CatchUpError, Header, verify_range
from swarmguard.storage.snapshots import Manifest, Restorer, SnapshotError
from swarmguard.storage.state_tree import StateTree
from swarmguard.validators.certificate import CertificateError, CommitCertificate
from swarmguard.validators.sets import fast_path_slack, validators_hash

__all__ = ["ATTEMPTS", "Restored", "StateSyncer", "TrustExpired", "TrustPoint"]

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Snapshots tried before falling back to block sync from genesis."""
OFFER_WAIT = 2.0
"""Seconds to wait for a first snapshot offer."""
OFFER_SETTLE = 0.3
"""Seconds to wait for more offers once the first has come."""
OFFER_ROUNDS = 3
"""Times the peers are asked before the node gives up on snapshots."""
CHUNK_TRIES = 5
"""Times each chunk is asked for (from the offering peers in turn) before the snapshot is
abandoned."""
HANDOVER_PAGES_MAX = 1024
"""Replies of hand-overs read from one peer (64 each): set changes a new node can follow."""


class TrustExpired(ValueError):
    """The trust point is older than the trust period: sets from it on may have unbonded, so
    their keys could sign another history unpunished. Not a peer's fault: no peer can help."""


@dataclass(frozen=True, slots=True)
class TrustPoint:
    """Where trust starts: the set from height ``since`` on, and the block time that vouches
    for it (genesis, or the node's own last block when it fell behind every peer's window)."""

    since: int
    validators: list[tuple[bytes, int]]
    time: int


Sets = Sequence[tuple[int, list[tuple[bytes, int]]]]
"""Validator sets by first height, as ``handover.follow`` gives them."""


def _set_of(sets: Sets, height: int) -> list[tuple[bytes, int]]:
    return [members for since, members in sets if since <= height][-1]


@dataclass(frozen=True, slots=True)
class Restored:
    """A verified snapshot: the block at its height (with its certificate), the state, and
    the verified hand-overs to heights up to the block's + 1."""

    block: Block
    state: StateTree
    handovers: tuple[Handover, ...] = ()


class StateSyncer:
    """Fetches and checks one snapshot from the peers (the node applies it)."""

    def __init__(
        self,
        chain_id: str,
        trusted: Sequence[tuple[bytes, int]],
        syncer: Syncer,
        send: Callable[[int, SyncMessage], None],
        broadcast: Callable[[SyncMessage], None],
        *,
        timeout: float = 5.0,
        trust: tuple[int, bytes] | None = None,
        trust_period: int = 0,
        genesis_time: int = 0,
        clock: Callable[[], float] = time.time,
        slack_ppm: int = 0,
    ) -> None:
        self.chain_id = chain_id
        self.trusted = list(trusted)  # the genesis set: (consensus key, power) by index
        self.trust = trust
        """(height, header hash) the operator trusts (``[statesync] trust_height``,
        ``trust_hash``), or None: trust follows from the genesis set alone."""
        self.trust_period = trust_period  # seconds of block time (0: no limit)
        self.genesis_time = genesis_time
        self._clock = clock
        self.slack_ppm = slack_ppm  # the chain's fast-path slack (genesis consensus_params)
        self.syncer, self._send, self._broadcast = syncer, send, broadcast
        self.timeout = timeout
        self.offers: dict[int, list[Manifest]] = {}
        self._chunks: dict[tuple[int, int, int], asyncio.Future[bytes]] = {}
        self._handovers: dict[int, asyncio.Future[Handovers]] = {}
        self._start = TrustPoint(1, self.trusted, genesis_time)  # run() sets it

    def check_genesis(self) -> None:
        """Without a trusted header, genesis is the trust point: ``TrustExpired`` once it is
        older than the trust period (checked before anything is fetched)."""
        if self.trust is None:
            self._check_age(self.genesis_time, "genesis")

    def _check_age(self, point_time: int, what: str) -> None:
        if not self.trust_period:
            return
        age = self._clock() - point_time
        if age >= self.trust_period:
            raise TrustExpired(
                f"state sync: {what} is {age / 86400:.1f} days old, beyond [statesync] "
                f"trust_period ({self.trust_period / 86400:.1f} days): set trust_height and "
                "trust_hash to a recent block from a node you trust (swarmguard status)"
            )

    def on_message(self, peer: int, message: SyncMessage) -> None:
        if isinstance(message, SnapshotOffer):
            manifests = []
            for encoded in message.manifests:
                try:
                    manifest = Manifest.decode(encoded)
                except (CodecError, SnapshotError):
                    continue
                if manifest.chain_id == self.chain_id:
                    manifests.append(manifest)
            self.offers[peer] = manifests
        elif isinstance(message, Chunk):
            future = self._chunks.pop((peer, message.height, message.index), None)
            if future is not None and not future.done():
                future.set_result(message.data)
        elif isinstance(message, Handovers):
            waiting = self._handovers.pop(peer, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)

    async def run(self, start: TrustPoint | None = None) -> Restored | None:
        """A verified snapshot, or None when none could be had; ``TrustExpired`` when the
        trust point is too old to follow from. ``start``: trust the node's own chain instead
        of genesis (it fell behind every peer's pruning window): only snapshots above it, and
        hand-overs followed from its set."""
        if start is None:
            self.check_genesis()
            start = TrustPoint(1, self.trusted, self.genesis_time)
        elif self.trust is None or self.trust[0] < start.since:  # else the anchor is newer
            self._check_age(start.time, f"this node's block {start.since - 1}")
        self._start = start
        above = start.since - 1
        self.offers.clear()
        for _ in range(OFFER_ROUNDS):  # the first requests may go out before peers connect
            self._broadcast(SnapshotsRequest())
            if await self._offers_within(OFFER_WAIT):
                await asyncio.sleep(OFFER_SETTLE)  # the others answer about as fast
                break
        offered = {m.height for ms in self.offers.values() for m in ms if m.height > above}
        heights = sorted(offered, reverse=True)
        for height in heights[:ATTEMPTS]:
            try:
                return await self._restore(height)
            except (SnapshotError, CatchUpError, CertificateError, CodecError) as error:
                log.warning("state sync: snapshot at height %d refused: %s", height, error)
        return None

    async def _offers_within(self, seconds: float) -> bool:
        """Whether an offer came within ``seconds`` (checked every tenth of a second: offers
        go stale as peers take newer snapshots and delete old ones)."""
        for _ in range(max(1, round(seconds / 0.1))):
            await asyncio.sleep(0.1)
            if any(self.offers.values()):
                return True
        return False

    async def _restore(self, height: int) -> Restored:
        holders = [p for p, ms in self.offers.items() if any(m.height == height for m in ms)]
        manifest = next(m for m in self.offers[holders[0]] if m.height == height)
        block, state_root, handovers = await self._trusted_block(height, holders)
        restorer = Restorer(manifest, state_root)  # SnapshotAbandoned unless the roots agree
        for index in restorer.missing():
            for attempt in range(CHUNK_TRIES):
                peer = holders[(index + attempt) % len(holders)]
                data = await self._chunk(peer, height, index)
                if not data:
                    continue
                try:
                    restorer.add_chunk(index, data)
                    break
                except SnapshotError as error:
                    log.warning("state sync: peer %d, chunk %d: %s", peer, index, error)
            else:
                raise SnapshotError(f"chunk {index} of height {height}: no good copy")
        return Restored(block, restorer.finish(), handovers)

    async def _trusted_block(
        self, height: int, holders: list[int]
    ) -> tuple[Block, bytes, tuple[Handover, ...]]:
        """Block ``height``, the state root after it, and the hand-overs that make its set
        trusted, from the first peer whose answers check out."""
        peers = holders + [p for p, h in self.syncer.peer_heights.items() if h > height]
        for peer in dict.fromkeys(peers):
            reply = await self.syncer.fetch(peer, BlocksRequest(height, 2))
            if reply is None or len(reply.blocks) != 2:
                continue
            try:
                block, after = (Block.decode(encoded) for encoded in reply.blocks)
                if (block.height, after.height) != (height, height + 1):
                    continue
                start = self._start
                handovers = await self._fetch_handovers(peer, start.since)
                if handovers is None:
                    continue
                sets = follow(
                    self.chain_id, start.validators, handovers, self.slack_ppm, since=start.since
                )
                await self._check_anchor(peer, sets)
                kept = tuple(h for h in handovers if h.height <= height + 1)
                return block, self._check(block, after, sets), kept
            except (
                CatchUpError,
                CertificateError,
                CodecError,
                HandoverError,
                SnapshotError,
            ) as error:
                log.warning("state sync: peer %d: %s", peer, error)
        raise SnapshotError(f"no peer sent blocks {height} and {height + 1} that verify")

    async def _fetch_handovers(self, peer: int, since: int = 1) -> list[Handover] | None:
        """``peer``'s hand-overs above height ``since``, page by page (None: it stopped
        answering)."""
        collected: list[Handover] = []
        for _ in range(HANDOVER_PAGES_MAX):
            after = collected[-1].height if collected else since
            future: asyncio.Future[Handovers] = asyncio.get_running_loop().create_future()
            self._handovers[peer] = future
            self._send(peer, HandoversRequest(after))
            try:
                async with asyncio.timeout(self.timeout):  # not wait_for: see Syncer.fetch
                    reply = await future
            except TimeoutError:
                return None
            finally:
                self._handovers.pop(peer, None)
            if not reply.items:
                break
            page = [Handover.decode(item) for item in reply.items]
            if page[0].height <= after:
                raise HandoverError("hand-overs out of order")
            collected.extend(page)
        return collected

    def _slack(self, validators: Sequence[tuple[bytes, int]]) -> int:
        return fast_path_slack(validators, self.slack_ppm)

    async def _check_anchor(self, peer: int, sets: Sets) -> None:
        """With a trusted header configured: ``peer``'s block at its height must be that
        header, signed by the set the hand-overs give for it. A history forged from some
        earlier height by keys of sets long gone (a long-range attack) cannot pass this."""
        if self.trust is None or self.trust[0] < self._start.since:
            return  # none, or older than the node's own chain, which it has verified
        height, expected = self.trust
        reply = await self.syncer.fetch(peer, BlocksRequest(height, 1))
        if reply is None or len(reply.blocks) != 1:
            raise SnapshotError(f"no block at the trusted height {height}")
        block = Block.decode(reply.blocks[0])
        header = Header.decode(block.header)
        if block.height != height or header.hash(self.chain_id) != expected:
            raise SnapshotError(f"its block {height} is not the trusted one")
        self._check_age(header.time, f"the trusted header {height}")  # its time is certain now
        members = _set_of(sets, height)
        verify_range(
            self.chain_id, [block], header.previous_hash, members, slack=self._slack(members)
        )

    def _check(self, block: Block, after: Block, sets: Sets) -> bytes:
        """The state root after ``block``, once both blocks check against ``sets`` (what the
        hand-overs lead to from genesis: ``follow``)."""
        header, next_header = Header.decode(block.header), Header.decode(after.header)
        current, following = _set_of(sets, block.height), _set_of(sets, after.height)
        if header.next_validators_hash != validators_hash(following):
            raise SnapshotError(f"header {block.height} names a set the hand-overs do not")
        slack, next_slack = self._slack(current), self._slack(following)
        verify_range(self.chain_id, [block], header.previous_hash, current, slack=slack)
        verify_range(
            self.chain_id, [after], header.hash(self.chain_id), following, slack=next_slack
        )
        certificate = CommitCertificate.decode(after.last_commit)  # block's, carried by after
        certificate.verify(self.chain_id, current, slack)
        if (certificate.height, certificate.block_hash) != (
            block.height,
            header.hash(self.chain_id),
        ):
            raise SnapshotError("the next block's last commit is for another block")
        return next_header.state_root

    async def _chunk(self, peer: int, height: int, index: int) -> bytes:
        key = (peer, height, index)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._chunks[key] = future
        self._send(peer, ChunkRequest(height, index))
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            return b""
        finally:
            self._chunks.pop(key, None)
