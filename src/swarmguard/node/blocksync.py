"""Block sync: how a node that is far behind (new, restarted, partitioned) gets the chain back.

Consensus catches up a replica a few heights behind by itself (``DecisionRequest``: the last
``DECISIONS_KEPT`` decisions). Further behind, the node stops taking part in consensus, fetches
committed blocks from its peers in ranges, checks them as a light client would (the commit
certificate of each block against the validator set the node's own state gives for that
height, the transactions root, the links, in a process pool: ``storage.catchup.verify_range``),
executes them, and only then starts a replica at the height it reached. A node does this
whenever it finds itself more than ``SYNC_LAG`` heights behind the best peer it hears of, not
only at start-up, so a validator cut off by a partition comes back by itself.

Every node says where it is once a second (``Status``), so each knows who is ahead.

Messages on the transport's SYNC channel, each ``version u8 | kind u8 | body``::

    STATUS     height u64 | base u64           this node's stored range
    REQUEST    start u64 | count u16           blocks start .. start + count - 1 (count <= 64)
    REPLY      count u16 | (block blob)*       stored blocks (with certificates), consecutive
                                               from the request's start, as many as fit a frame
    SNAPSHOTS  (empty)                         which state snapshots do you hold?
    OFFER      count u8 | (manifest blob)*     their manifests (at most 4, newest first)
    CHUNK?     height u64 | index u32          one chunk of a snapshot, please
    CHUNK      height u64 | index u32 | blob   that chunk (empty: not held)
    HANDOVERS? after u64                        your validator-set hand-overs above this height
    HANDOVERS  count u16 | (hand-over blob)*    the next ones in order (at most 64, as fit a
                                                frame; none: there are no more)

State sync (``node.statesync``) uses the last six.

Decoding is strict (``CodecError`` only). A peer's blocks are trusted for nothing: a block that
does not verify ends that reply, the peer is skipped for a while, and another is asked.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import IntEnum

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.consensus.wire import MESSAGE_BYTES_MAX
from swarmguard.crypto import InvalidProof
from swarmguard.node.chain import Chain
from swarmguard.storage.blockstore import Block, BlockStore
from swarmguard.storage.catchup import CatchUpError, Header, verify_range
from swarmguard.validators.certificate import CommitCertificate

__all__ = [
    "BLOCKSYNC_VERSION",
    "BLOCKS_PER_REQUEST",
    "CAUGHT_UP",
    "HANDOVERS_PER_REPLY",
    "OFFERED_MAX",
    "PRUNED_WAIT",
    "REPLY_BYTES_MAX",
    "SYNC_LAG",
    "BlocksPruned",
    "BlocksReply",
    "BlocksRequest",
    "Chunk",
    "ChunkRequest",
    "Handovers",
    "HandoversRequest",
    "SnapshotOffer",
    "SnapshotsRequest",
    "Status",
    "SyncError",
    "SyncMessage",
    "Syncer",
    "decode",
    "encode",
]

log = logging.getLogger(__name__)

BLOCKSYNC_VERSION = 1
BLOCKS_PER_REQUEST = 64
SYNC_LAG = 64
"""Heights behind the best peer from which a node block-syncs (consensus covers fewer)."""
WINDOW = 4
"""Requests in flight at once during a run (to different peers)."""
CAUGHT_UP = 2
"""Heights behind the best peer at which a run stops and consensus takes over."""
PARALLEL_MIN = 128
"""Blocks in a window from which verification goes to the worker processes (fewer verify
faster in one thread than the round trips to the workers cost)."""
AVOID_SECONDS = 10.0
"""How long a peer that sent nothing useful is not asked again."""
OFFERED_MAX = 4
"""Snapshots one peer offers at most (its newest)."""
HANDOVERS_PER_REPLY = 64
PRUNED_WAIT = 3.0
"""Seconds a run goes on hearing of peers ahead while none holds the next height (statuses
come every second) before it stops with ``BlocksPruned``."""
REPLY_BYTES_MAX = MESSAGE_BYTES_MAX - 16
"""A reply's blocks fit one transport frame."""
_U64 = 2**64


class _Kind(IntEnum):
    STATUS = 1
    REQUEST = 2
    REPLY = 3
    SNAPSHOTS = 4
    OFFER = 5
    CHUNK_REQUEST = 6
    CHUNK = 7
    HANDOVERS_REQUEST = 8
    HANDOVERS = 9


def _check_blobs(what: str, items: tuple[bytes, ...], count_max: int) -> None:
    """A reply's list of blobs: at most ``count_max`` of them, all in one frame."""
    if len(items) > count_max:
        raise CodecError(f"{what}: more than {count_max}")
    if sum(4 + len(item) for item in items) > REPLY_BYTES_MAX:
        raise CodecError(f"{what}: more than {REPLY_BYTES_MAX} bytes")


@dataclass(frozen=True, slots=True)
class Status:
    height: int
    base: int

    def __post_init__(self) -> None:
        if not 0 <= self.base <= self.height < _U64:
            raise CodecError("status: need 0 <= base <= height < 2^64")


@dataclass(frozen=True, slots=True)
class BlocksRequest:
    start: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.start < _U64 or not 1 <= self.count <= BLOCKS_PER_REQUEST:
            raise CodecError(f"request: start >= 1 and 1 <= count <= {BLOCKS_PER_REQUEST}")


@dataclass(frozen=True, slots=True)
class BlocksReply:
    blocks: tuple[bytes, ...]  # stored block encodings

    def __post_init__(self) -> None:
        _check_blobs("reply (blocks)", self.blocks, BLOCKS_PER_REQUEST)


@dataclass(frozen=True, slots=True)
class SnapshotsRequest:
    pass


@dataclass(frozen=True, slots=True)
class SnapshotOffer:
    manifests: tuple[bytes, ...]  # encoded storage.snapshots.Manifest, newest first

    def __post_init__(self) -> None:
        _check_blobs("offer (snapshots)", self.manifests, OFFERED_MAX)


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    height: int
    index: int

    def __post_init__(self) -> None:
        if not 1 <= self.height < _U64 or not 0 <= self.index < 2**32:
            raise CodecError("chunk request: height >= 1, index < 2^32")


@dataclass(frozen=True, slots=True)
class Chunk:
    height: int
    index: int
    data: bytes  # empty: the peer does not hold it

    def __post_init__(self) -> None:
        ChunkRequest(self.height, self.index)
        if len(self.data) > REPLY_BYTES_MAX:
            raise CodecError(f"chunk: more than {REPLY_BYTES_MAX} bytes")


@dataclass(frozen=True, slots=True)
class HandoversRequest:
    after: int

    def __post_init__(self) -> None:
        if not 0 <= self.after < _U64:
            raise CodecError("hand-overs request: after < 2^64")


@dataclass(frozen=True, slots=True)
class Handovers:
    items: tuple[bytes, ...]  # encoded node.handover.Handover, by height

    def __post_init__(self) -> None:
        _check_blobs("hand-overs", self.items, HANDOVERS_PER_REPLY)


SyncMessage = (
    Status
    | BlocksRequest
    | BlocksReply
    | SnapshotsRequest
    | SnapshotOffer
    | ChunkRequest
    | Chunk
    | HandoversRequest
    | Handovers
)


def _write_blobs(out: Writer, items: tuple[bytes, ...], width: int) -> None:
    out.uint(len(items), width)
    for item in items:
        out.blob(item, REPLY_BYTES_MAX)


def _read_blobs(reader: Reader, width: int, count_max: int, field: str) -> tuple[bytes, ...]:
    """A count (``width`` bytes, at most ``count_max``) and that many blobs."""
    count = reader.uint(width, f"{field} count")
    if count > count_max:
        raise CodecError(f"{reader.what}: {count} of {field} exceed {count_max}")
    return tuple(reader.blob(REPLY_BYTES_MAX, field) for _ in range(count))


def encode(message: SyncMessage) -> bytes:
    out = Writer()
    out.uint(BLOCKSYNC_VERSION, 1)
    if isinstance(message, Status):
        out.uint(_Kind.STATUS, 1)
        out.uint(message.height, 8)
        out.uint(message.base, 8)
    elif isinstance(message, BlocksRequest):
        out.uint(_Kind.REQUEST, 1)
        out.uint(message.start, 8)
        out.uint(message.count, 2)
    elif isinstance(message, BlocksReply):
        out.uint(_Kind.REPLY, 1)
        _write_blobs(out, message.blocks, 2)
    elif isinstance(message, SnapshotsRequest):
        out.uint(_Kind.SNAPSHOTS, 1)
    elif isinstance(message, SnapshotOffer):
        out.uint(_Kind.OFFER, 1)
        _write_blobs(out, message.manifests, 1)
    elif isinstance(message, HandoversRequest):
        out.uint(_Kind.HANDOVERS_REQUEST, 1)
        out.uint(message.after, 8)
    elif isinstance(message, Handovers):
        out.uint(_Kind.HANDOVERS, 1)
        _write_blobs(out, message.items, 2)
    else:
        out.uint(_Kind.CHUNK_REQUEST if isinstance(message, ChunkRequest) else _Kind.CHUNK, 1)
        out.uint(message.height, 8)
        out.uint(message.index, 4)
        if isinstance(message, Chunk):
            out.blob(message.data, REPLY_BYTES_MAX)
    return out.getvalue()


def decode(payload: bytes) -> SyncMessage:
    """One SYNC channel message; raises CodecError for anything malformed."""
    reader = Reader(payload, "block sync message")
    reader.version(BLOCKSYNC_VERSION)
    tag = reader.kind(_Kind)
    message: SyncMessage
    if tag is _Kind.STATUS:
        message = Status(reader.uint(8, "height"), reader.uint(8, "base"))
    elif tag is _Kind.REQUEST:
        message = BlocksRequest(reader.uint(8, "start"), reader.uint(2, "count"))
    elif tag is _Kind.REPLY:
        message = BlocksReply(_read_blobs(reader, 2, BLOCKS_PER_REQUEST, "block"))
    elif tag is _Kind.SNAPSHOTS:
        message = SnapshotsRequest()
    elif tag is _Kind.OFFER:
        message = SnapshotOffer(_read_blobs(reader, 1, OFFERED_MAX, "manifest"))
    elif tag in (_Kind.CHUNK_REQUEST, _Kind.CHUNK):
        height, index = reader.uint(8, "height"), reader.uint(4, "index")
        if tag is _Kind.CHUNK_REQUEST:
            message = ChunkRequest(height, index)
        else:
            message = Chunk(height, index, reader.blob(REPLY_BYTES_MAX, "chunk"))
    elif tag is _Kind.HANDOVERS_REQUEST:
        message = HandoversRequest(reader.uint(8, "after"))
    else:  # HANDOVERS
        message = Handovers(_read_blobs(reader, 2, HANDOVERS_PER_REPLY, "hand-over"))
    reader.finish()
    return message


def _fitting(encodings: Iterable[bytes]) -> tuple[bytes, ...]:
    """The leading ``encodings`` that fit one reply together."""
    taken: list[bytes] = []
    size = 0
    for encoded in encodings:
        size += 4 + len(encoded)
        if size > REPLY_BYTES_MAX:
            break
        taken.append(encoded)
    return tuple(taken)


class SyncError(RuntimeError):
    """This node's state disagrees with a certified block: it cannot go on by itself."""


class BlocksPruned(RuntimeError):
    """Every peer ahead has pruned the next height this node needs: block sync cannot go on,
    state sync can (``BlockStore.jump_to``)."""


class Syncer:
    """The node's block sync: who is ahead, and one run at a time to catch up with them.

    ``send(peer, message)`` puts a message on the transport; the node hands incoming STATUS and
    REPLY messages to ``on_message`` and answers REQUESTs with ``answer``.
    """

    def __init__(
        self,
        chain: Chain,
        store: BlockStore,
        send: Callable[[int, SyncMessage], None],
        *,
        processes: int = 0,
        timeout: float = 5.0,
        pruned_wait: float = PRUNED_WAIT,
    ) -> None:
        self.chain, self.store, self._send = chain, store, send
        self.processes = processes or os.cpu_count() or 1
        self.timeout = timeout
        self.pruned_wait = pruned_wait
        self.peer_heights: dict[int, int] = {}
        self.peer_bases: dict[int, int] = {}  # each peer's lowest stored block (pruning)
        self.synced_blocks = 0
        self.runs = 0
        self.running = False
        self._waiting: dict[int, tuple[int, asyncio.Future[BlocksReply]]] = {}
        self._avoid: dict[int, float] = {}  # peer -> loop time until which it is not asked
        self._pool: ProcessPoolExecutor | None = None

    # -- messages --------------------------------------------------------------------------

    def on_message(self, peer: int, message: SyncMessage) -> None:
        if isinstance(message, Status):
            self.peer_heights[peer] = message.height
            self.peer_bases[peer] = message.base
        elif isinstance(message, BlocksReply):
            waiting = self._waiting.pop(peer, None)
            if waiting is not None and not waiting[1].done():
                waiting[1].set_result(message)

    def answer(self, request: BlocksRequest) -> BlocksReply:
        """Our stored blocks from ``request.start`` on, as many as were asked and fit."""
        store = self.store

        def stored() -> Iterator[bytes]:
            for height in range(
                request.start, min(request.start + request.count, store.height + 1)
            ):
                block = store.block(height)
                if block is None:
                    return  # pruned (below our base): the asker finds another peer
                yield block.encode()

        return BlocksReply(_fitting(stored()))

    def answer_handovers(self, request: HandoversRequest) -> Handovers:
        """Our validator-set hand-overs above ``request.after``, as many as fit a reply."""
        held = self.chain.handovers(request.after)[:HANDOVERS_PER_REPLY]
        return Handovers(_fitting(handover.encode() for handover in held))

    def behind(self, lag: int = SYNC_LAG) -> bool:
        """Whether the best peer we hear of is more than ``lag`` heights ahead."""
        return max(self.peer_heights.values(), default=0) > self.store.height + lag

    # -- a run -----------------------------------------------------------------------------

    async def run(self, caught_up: int = CAUGHT_UP) -> int:
        """Fetch, verify and execute blocks until within ``caught_up`` heights of the best peer
        (consensus does the rest); returns the number of blocks executed. Raises SyncError."""
        self.running, self.runs = True, self.runs + 1
        executed = 0
        loop = asyncio.get_running_loop()
        missing_since: float | None = None  # since when no peer holds the next height
        try:
            while self.behind(caught_up):
                blocks = await self._fetch_window()
                if not blocks:
                    wanted = self.store.height + 1
                    if self._holders(wanted):
                        missing_since = None
                    elif missing_since is None:
                        missing_since = loop.time()
                    elif loop.time() - missing_since >= self.pruned_wait:
                        raise BlocksPruned(f"no peer holds height {wanted} any more (pruned)")
                    await asyncio.sleep(0.2)  # nobody answered: statuses will tell us more
                    continue
                executed += await self._verify_and_execute(blocks)
        finally:
            self.running = False
            for _, future in self._waiting.values():
                future.cancel()
            self._waiting.clear()
        return executed

    def _executor(self) -> ProcessPoolExecutor:
        """The worker processes for large ranges, started on first need and kept (spawned,
        never forked: the node has threads)."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _fetch_window(self) -> list[Block]:
        """Consecutive ranges from several peers at once (the best ones first), in order; the
        first peer that fails ends the window there."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = self.store.height + 1
        peers = sorted(
            (p for p in self._holders(start) if self._avoid.get(p, 0) <= now),
            key=lambda p: -self.peer_heights[p],
        )
        requests = []
        for peer in peers[:WINDOW]:
            count = min(BLOCKS_PER_REQUEST, self.peer_heights[peer] - start + 1)
            if count < 1:
                break
            requests.append((peer, BlocksRequest(start, count)))
            start += count
        replies = await asyncio.gather(*(self.fetch(p, r) for p, r in requests))
        blocks: list[Block] = []
        for (peer, request), reply in zip(requests, replies, strict=True):
            decoded = self._decode(request, reply)
            if decoded is None:
                self._avoid[peer] = loop.time() + AVOID_SECONDS
                break
            blocks.extend(decoded)
            if len(decoded) < request.count:
                break  # a short answer: what follows would not link
        return blocks

    def _holders(self, height: int) -> list[int]:
        """Peers whose stored range (their last status) includes ``height``."""
        return [
            p for p, top in self.peer_heights.items() if self.peer_bases.get(p, 1) <= height <= top
        ]

    async def fetch(self, peer: int, request: BlocksRequest) -> BlocksReply | None:
        """Ask ``peer`` for blocks; its reply, or None if none came in time."""
        future: asyncio.Future[BlocksReply] = asyncio.get_running_loop().create_future()
        self._waiting[peer] = (request.start, future)
        self._send(peer, request)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns a result that arrives in
            # the same turn as a cancellation and loses the cancellation (the node's stop then
            # waits for a task that goes on).
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our task is being cancelled (the node stops): never swallow that
            return None  # the request's future was cancelled: the run ended
        finally:
            if self._waiting.get(peer, (0, None))[1] is future:
                del self._waiting[peer]

    @staticmethod
    def _decode(request: BlocksRequest, reply: BlocksReply | None) -> list[Block] | None:
        """The reply's blocks if they are the ones asked for (None: a useless peer)."""
        if reply is None or not reply.blocks or len(reply.blocks) > request.count:
            return None
        try:
            blocks = [Block.decode(encoded) for encoded in reply.blocks]
        except CodecError:
            return None
        if [block.height for block in blocks] != list(
            range(request.start, request.start + len(blocks))
        ):
            return None
        return blocks

    async def _verify_and_execute(self, blocks: list[Block]) -> int:
        """Verify the range against the current validator set, off the event loop (in the
        worker processes when it is long enough to pay for them), up to the first block whose
        header names another set for the next height (the rest waits for the next round, when
        executing these has told the chain that set); where it does not verify (a bad block),
        go block by block with the set each height has. Returns how many blocks were
        executed."""
        chain = self.chain
        for index, block in enumerate(blocks):
            try:
                header = Header.decode(block.header)
            except CodecError:
                break  # verification names it
            if header.next_validators_hash != header.validators_hash:
                blocks = blocks[: index + 1]
                break
        validators = list(chain.validators(blocks[0].height))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                None,
                functools.partial(
                    verify_range,
                    chain.chain_id,
                    blocks,
                    chain.last_hash,
                    validators,
                    slack=chain.slack(validators),
                    processes=self.processes,
                    executor=self._executor() if len(blocks) >= PARALLEL_MIN else None,
                ),
            )
        except CatchUpError:
            executed = 0
            for block in blocks:
                members = chain.validators(block.height)
                try:
                    verify_range(
                        chain.chain_id,
                        [block],
                        chain.last_hash,
                        members,
                        slack=chain.slack(members),
                    )
                except CatchUpError as error:
                    log.warning("block sync: %s", error)
                    return executed
                self._execute(block)
                executed += 1
            return executed
        for block in blocks:
            self._execute(block)
        return len(blocks)

    def _execute(self, block: Block) -> None:
        header = Header.decode(block.header)
        chain = self.chain
        if header.state_root != chain.app_hash:
            raise SyncError(
                f"block {block.height} certifies state {header.state_root.hex()[:16]}, ours is "
                f"{chain.app_hash.hex()[:16]}: this node's state has diverged"
            )
        if header.seed != chain.seed:
            raise SyncError(
                f"block {block.height} carries leader seed {header.seed.hex()[:16]}, ours is "
                f"{chain.seed.hex()[:16]}: this node's chain has diverged"
            )
        try:
            chain.certified_seed(header)
        except InvalidProof as error:
            raise SyncError(f"block {block.height}: its seed proof: {error}") from None
        proposed = Block(
            block.height, block.header, block.transactions, last_commit=block.last_commit
        )
        chain.commit(block.height, proposed.encode(), CommitCertificate.decode(block.certificate))
        self.synced_blocks += 1
