"""State sync: a node with an empty store starts from a snapshot instead of from genesis.

The node asks its peers which snapshots they hold (``SnapshotsRequest``; nodes take them every
``[statesync] snapshot_interval`` heights), picks the newest height H, and fetches blocks H and
H + 1 with their certificates. What it may trust:

- Block H + 1's commit certificate, checked against the genesis validator set, whose hash its
  header must carry: the set of H + 1 is the genesis set, and at least two thirds of it signed.
  (Without a trusted header this is the only set a new node knows. After the set has changed,
  state sync needs a trust anchor the node does not have yet: it gives up and block-syncs from
  genesis instead, which verifies every change on the way.)
- Block H: its header hash is H + 1's ``previous_hash``, its transactions its root, and its own
  certificate checks against the same set.
- The state after H: H + 1's header ``state_root``. The snapshot's chunks are fetched from the
  peers that offered it, each checked against the manifest's hash before it is decompressed
  (``storage.snapshots.Restorer``), and the rebuilt tree's root must be that state root.

Then the store is restored at block H with that state (``BlockStore.restore``), the application
loads it as after a restart, and block sync brings the node the rest. A peer that sends anything
that does not check out is skipped; after ``ATTEMPTS`` failed snapshots the node falls back to
block sync from genesis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError
from swarmguard.node.blocksync import (
    BlocksRequest,
    Chunk,
    ChunkRequest,
    SnapshotOffer,
    SnapshotsRequest,
    Syncer,
    SyncMessage,
)
from swarmguard.node.chain import validators_hash
from swarmguard.storage.blockstore import Block
from swarmguard.storage.catchup import CatchUpError, Header, verify_range
from swarmguard.storage.snapshots import Manifest, Restorer, SnapshotError
from swarmguard.storage.state_tree import StateTree
from swarmguard.validators.certificate import CertificateError, CommitCertificate

__all__ = ["ATTEMPTS", "Restored", "StateSyncer"]

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Snapshots tried before falling back to block sync from genesis."""
OFFER_WAIT = 2.0
"""Seconds to collect snapshot offers."""
OFFER_ROUNDS = 3
"""Times the peers are asked before the node gives up on snapshots."""
CHUNK_TRIES = 5
"""Times each chunk is asked for (from the offering peers in turn) before the snapshot is
abandoned."""


@dataclass(frozen=True, slots=True)
class Restored:
    """A verified snapshot: the block at its height (with its certificate) and the state."""

    block: Block
    state: StateTree


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
    ) -> None:
        self.chain_id = chain_id
        self.trusted = list(trusted)  # the genesis set: (consensus key, power) by index
        self.syncer, self._send, self._broadcast = syncer, send, broadcast
        self.timeout = timeout
        self.offers: dict[int, list[Manifest]] = {}
        self._chunks: dict[tuple[int, int, int], asyncio.Future[bytes]] = {}

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

    async def run(self) -> Restored | None:
        """A verified snapshot, or None when none could be had (block sync instead)."""
        self.offers.clear()
        for _ in range(OFFER_ROUNDS):  # the first requests may go out before peers connect
            self._broadcast(SnapshotsRequest())
            await asyncio.sleep(OFFER_WAIT)
            if any(self.offers.values()):
                break
        heights = sorted({m.height for ms in self.offers.values() for m in ms}, reverse=True)
        for height in heights[:ATTEMPTS]:
            try:
                return await self._restore(height)
            except (SnapshotError, CatchUpError, CertificateError, CodecError) as error:
                log.warning("state sync: snapshot at height %d refused: %s", height, error)
        return None

    async def _restore(self, height: int) -> Restored:
        holders = [p for p, ms in self.offers.items() if any(m.height == height for m in ms)]
        manifest = next(m for m in self.offers[holders[0]] if m.height == height)
        block, state_root = await self._trusted_block(height, holders)
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
        return Restored(block, restorer.finish())

    async def _trusted_block(self, height: int, holders: list[int]) -> tuple[Block, bytes]:
        """Block ``height`` and the state root after it, checked against the trusted set."""
        peers = holders + [p for p, h in self.syncer.peer_heights.items() if h > height]
        for peer in dict.fromkeys(peers):
            reply = await self.syncer.fetch(peer, BlocksRequest(height, 2))
            if reply is None or len(reply.blocks) != 2:
                continue
            block, after = (Block.decode(encoded) for encoded in reply.blocks)
            if (block.height, after.height) != (height, height + 1):
                continue
            return block, self._check(block, after)
        raise SnapshotError(f"no peer sent blocks {height} and {height + 1}")

    def _check(self, block: Block, after: Block) -> bytes:
        header, next_header = Header.decode(block.header), Header.decode(after.header)
        trusted_hash = validators_hash(self.trusted)
        if header.validators_hash != trusted_hash or next_header.validators_hash != trusted_hash:
            raise SnapshotError(
                "the validator set changed since genesis: state sync needs a trusted header"
            )
        verify_range(self.chain_id, [block, after], header.previous_hash, self.trusted)
        certificate = CommitCertificate.decode(after.last_commit)  # block's, carried by after
        certificate.verify(self.chain_id, self.trusted, 0)
        if certificate.height != block.height:
            raise SnapshotError("the next block's last commit is for another height")
        return next_header.state_root

    async def _chunk(self, peer: int, height: int, index: int) -> bytes:
        key = (peer, height, index)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._chunks[key] = future
        self._send(peer, ChunkRequest(height, index))
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            return b""
        finally:
            self._chunks.pop(key, None)
