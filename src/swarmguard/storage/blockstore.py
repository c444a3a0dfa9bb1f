"""The block store: blocks, their indexes, the history accumulator and application state,
committed together, one height per atomic LMDB transaction.

Why LMDB (measured here, docs/storage.md): durable commits of 1 KB blocks cost the same as
SQLite's (WAL, synchronous=FULL) at P50, but for 100 KB blocks SQLite's P99 was 8.2 ms against
LMDB's 0.64 ms, and LMDB reads were 5-10x faster. Both survive kill -9. LMDB is copy-on-write: a
commit is one atomic switch of the root page after an fsync, so a crash leaves exactly the last
committed transaction, never half of one.

Keys (schema version 3, keep in sync with docs/storage.md):

    m:schema        u32 schema version          m:height   u64 last committed height
    m:chain         chain id                    m:base     u64 lowest height still stored
    m:indexed       u64 the transactions of every block up to here are under t:
    b:<h u64>       block record: CRC-32 of the encoded block (u32) || encoded block
    h:<hash 32>     u64 height of the block with that header hash
    t:<hash 32>     u64 height || u32 index of the transaction with that hash
    a:<level u8><position u64>   a node of the history accumulator (32 bytes)
    m:state_root    root of the application state tree after the last committed block
    s:<path 32>     application state value of the key whose SHA-256 is ``path``
    x:<key>         a record of the chain's own (the node's validator-set history), written
                    with the block that made it; never pruned

Records (``x:``) are for what the node keeps about the chain beside blocks and application
state and must not lose or half-write in a crash: committed in the block's transaction, they
are exactly as current as the block. Keys are at most ``RECORD_KEY_BYTES_MAX`` bytes.

The transaction index is written in batches, not with every block: its keys are hashes, so in
a B-tree each transaction dirties a page of its own, and writing them block by block cost about
7% of a loaded node's throughput (docs/benchmarks.md). Blocks above ``m:indexed`` have their
entries in memory (looked up first) and are re-read from their blocks at open; every
``INDEX_BLOCKS`` blocks or ``INDEX_ENTRIES`` entries they go to ``t:`` inside a block's commit,
with ``m:indexed``, so the index on disk is always exactly the blocks up to ``m:indexed``.

A block record carries the CRC-32 of its encoding, checked on every read, so a flipped bit is
reported (``CorruptStore``) instead of returned. (A CRC, not a cryptographic hash: this guards
against the disk, not an adversary; block contents are authenticated by hashes and certificates.)
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import Domain, digest
from swarmguard.crypto.hashing import hasher

from .engine import Engine, EngineTransaction, LmdbEngine
from .errors import CorruptStore, StoreError, StoreVersionError
from .merkle import MerkleAccumulator, merkle_root
from .snapshots import SnapshotStore, create_snapshot
from .state_tree import StateTree

__all__ = [
    "SCHEMA_VERSION",
    "Block",
    "BlockStore",
    "CorruptStore",
    "StoreError",
    "StoreVersionError",
]

SCHEMA_VERSION = 3
"""3: the transaction index is deferred (``m:indexed``); a version 2 store (everything
indexed) is upgraded at open by recording ``m:indexed``."""
INDEX_BLOCKS = 64
INDEX_ENTRIES = 16_384
"""The in-memory part of the transaction index is written out when it spans this many blocks or
holds this many transactions: bounds its memory (~2 MiB) and the blocks re-read at open."""
BLOCK_VERSION = 2
HEADER_BYTES_MAX = 64 * 1024
TRANSACTION_BYTES_MAX = 1024 * 1024
TRANSACTIONS_MAX = 100_000
RECORD_KEY_BYTES_MAX = 64
_CHAIN_PREFIXES = (b"b:", b"h:", b"t:", b"a:", b"s:")
"""What ``jump_to`` clears: blocks, hash and transaction indexes, history, state (the meta
keys are rewritten; records, ``x:``, stay)."""
CERTIFICATE_BYTES_MAX = 1024 * 1024
EVIDENCE_MAX = 1_000
MAP_SIZE_DEFAULT = 64 * 2**30
"""LMDB reserves address space, not disk: 64 GiB of it costs nothing until used."""


@dataclass(frozen=True, slots=True)
class Block:
    """What is stored for a height: header, transactions, commit certificate, evidence, and
    the previous height's commit certificate as the proposer included it (``last_commit``: the
    one every node agrees on, so the application can account signers deterministically)."""

    height: int
    header: bytes
    transactions: tuple[bytes, ...] = ()
    certificate: bytes = b""
    evidence: tuple[bytes, ...] = field(default=())
    last_commit: bytes = b""

    def encode(self) -> bytes:
        out = Writer()
        out.uint(BLOCK_VERSION, 1)
        out.uint(self.height, 8)
        out.blob(self.header, HEADER_BYTES_MAX)
        out.uint(len(self.transactions), 4)
        for transaction in self.transactions:
            out.blob(transaction, TRANSACTION_BYTES_MAX)
        out.blob(self.certificate, CERTIFICATE_BYTES_MAX)
        out.uint(len(self.evidence), 4)
        for item in self.evidence:
            out.blob(item, CERTIFICATE_BYTES_MAX)
        out.blob(self.last_commit, CERTIFICATE_BYTES_MAX)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> Block:
        reader = Reader(data, "block")
        reader.version(BLOCK_VERSION)
        height = reader.uint(8, "height")
        header = reader.blob(HEADER_BYTES_MAX, "header")
        count = reader.count(4, "transactions")
        if count > TRANSACTIONS_MAX:
            raise CodecError(f"block: {count} transactions exceed {TRANSACTIONS_MAX}")
        transactions = tuple(
            reader.blob(TRANSACTION_BYTES_MAX, "transaction") for _ in range(count)
        )
        certificate = reader.blob(CERTIFICATE_BYTES_MAX, "certificate")
        evidence_count = reader.count(4, "evidence")
        if evidence_count > EVIDENCE_MAX:
            raise CodecError(f"block: {evidence_count} evidence items exceed {EVIDENCE_MAX}")
        evidence = tuple(
            reader.blob(CERTIFICATE_BYTES_MAX, "evidence") for _ in range(evidence_count)
        )
        last_commit = reader.blob(CERTIFICATE_BYTES_MAX, "last commit")
        reader.finish()
        return Block(height, header, transactions, certificate, evidence, last_commit)

    def transactions_root(self) -> bytes:
        """RFC 9162 root over the transactions (what a header commits to)."""
        return merkle_root(list(self.transactions))


def _check_records(records: Mapping[bytes, bytes]) -> None:
    for key in records:
        if not 0 < len(key) <= RECORD_KEY_BYTES_MAX:
            raise StoreError(f"a record key of {len(key)} bytes (1-{RECORD_KEY_BYTES_MAX})")


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _meta_u64(txn: EngineTransaction, key: bytes) -> int:
    value = txn.get(key)
    if value is None:
        raise CorruptStore(f"metadata {key.decode()} is missing")
    return int.from_bytes(value, "big")


class BlockStore:
    """A durable, crash-safe store of one chain's blocks (one writer process at a time).

    Args:
        path: Directory of the LMDB environment (created if missing).
        chain_id: The chain this store holds; opening a store of another chain fails.
        keep_recent: Keep only the last N blocks (None: keep all). Pruning happens inside each
            commit, so disk use stays flat (LMDB reuses freed pages).
        snapshots: Where to write periodic state snapshots (None: no snapshots).
        snapshot_interval: Take a snapshot every this many heights.

    The application state lives in a ``StateTree`` (in memory, rebuilt from ``s:`` at open and
    checked against the stored root); each commit applies the block's state writes to a new
    tree version and stores the values and the new root in the block's transaction.
    """

    def __init__(
        self,
        path: str | Path,
        chain_id: str,
        *,
        keep_recent: int | None = None,
        map_size: int = MAP_SIZE_DEFAULT,
        engine: Engine | None = None,
        snapshots: SnapshotStore | None = None,
        snapshot_interval: int | None = None,
    ) -> None:
        if (snapshots is None) != (snapshot_interval is None):
            raise StoreError("give both snapshots and snapshot_interval, or neither")
        if snapshot_interval is not None and snapshot_interval < 1:
            raise StoreError("snapshot_interval must be >= 1")
        self.snapshots = snapshots
        self.snapshot_interval = snapshot_interval
        self._snapshot_threads: list[threading.Thread] = []
        if keep_recent is not None and keep_recent < 1:
            raise StoreError("keep_recent must be >= 1 or None")
        self.chain_id = chain_id
        self._transaction_hash = hasher(Domain.TRANSACTION, chain_id=chain_id)
        self.keep_recent = keep_recent
        os.makedirs(path, exist_ok=True)
        self.engine: Engine = engine if engine is not None else LmdbEngine(path, map_size=map_size)
        self._check_or_initialise()
        with self.engine.read() as txn:
            self._height = _meta_u64(txn, b"m:height")
        self._pending: dict[bytes, bytes] = {}
        """Transaction hash -> location for the blocks above ``m:indexed``."""
        self._indexed = 0
        self._load_pending()
        self.history_base = 1  # the height of the accumulator's first leaf (see ``restore``)
        self.accumulator = self._load_accumulator()
        self.state_tree = self._load_state()

    def _check_or_initialise(self) -> None:
        with self.engine.write() as txn:
            schema = txn.get(b"m:schema")
            if schema is None:
                txn.put(b"m:schema", SCHEMA_VERSION.to_bytes(4, "big"))
                txn.put(b"m:chain", self.chain_id.encode())
                txn.put(b"m:height", _u64(0))
                txn.put(b"m:base", _u64(1))
                txn.put(b"m:indexed", _u64(0))
                return
            version = int.from_bytes(schema, "big")
            if version == 2:  # indexed every block as it came: all of them are
                txn.put(b"m:indexed", _u64(_meta_u64(txn, b"m:height")))
                txn.put(b"m:schema", SCHEMA_VERSION.to_bytes(4, "big"))
                version = SCHEMA_VERSION
            if version != SCHEMA_VERSION:
                raise StoreVersionError(
                    f"store schema version {version}; this code reads version {SCHEMA_VERSION}"
                )
            chain = (txn.get(b"m:chain") or b"").decode(errors="replace")
            if chain != self.chain_id:
                raise StoreError(f"the store holds chain {chain!r}, not {self.chain_id!r}")

    def _load_pending(self) -> None:
        """The index entries of the blocks above ``m:indexed``, from the blocks themselves."""
        with self.engine.read() as txn:
            self._indexed = _meta_u64(txn, b"m:indexed")
        self._pending = {}
        for height in range(max(self._indexed, self.base - 1) + 1, self._height + 1):
            try:
                block = self.block(height)
            except CorruptStore:
                continue  # reported when it is read; the others stay findable
            if block is not None:
                self._pending.update(self._locations(block, None))

    def _locations(
        self, block: Block, known: Sequence[bytes] | None
    ) -> Iterable[tuple[bytes, bytes]]:
        height = _u64(block.height)
        hashes = known if known is not None else map(self.transaction_hash, block.transactions)
        for index, key in enumerate(hashes):
            yield key, height + index.to_bytes(4, "big")

    def _load_state(self) -> StateTree:
        """Rebuild the state tree from the stored values and check it against the stored root."""
        with self.engine.read() as txn:
            stored_root = txn.get(b"m:state_root")
            try:  # the values are read inside the build, with the collector paused
                tree = StateTree.from_leaves((key[2:], value) for key, value in txn.scan(b"s:"))
            except ValueError as error:
                raise CorruptStore(f"application state: {error}") from None
        if tree.root != (stored_root if stored_root is not None else StateTree().root):
            raise CorruptStore("application state does not match its stored root")
        return tree

    @property
    def state_root(self) -> bytes:
        """The application state root after the last committed block."""
        return self.state_tree.root

    def _load_accumulator(self) -> MerkleAccumulator:
        """Rebuild the accumulator from its stored leaves (no hash is recomputed for interior
        nodes: they are read back as stored)."""
        accumulator = MerkleAccumulator()
        with self.engine.read() as txn:
            for key, value in txn.scan(b"a:"):
                level = key[2]
                while len(accumulator._levels) <= level:
                    accumulator._levels.append(bytearray())
                accumulator._levels[level] += value
            stored = txn.get(b"m:history_base")  # absent unless the store was restored
            self.history_base = 1 if stored is None else int.from_bytes(stored, "big")
        accumulator._size = len(accumulator._levels[0]) // 32
        expected = max(self.height - self.history_base + 1, 0)
        if accumulator._size != expected:
            raise CorruptStore(
                f"history accumulator has {accumulator._size} leaves for height {self.height}"
            )
        return accumulator

    def restore(self, block: Block, state: StateTree, records: Mapping[bytes, bytes] = {}) -> bytes:
        """Start an empty store at ``block`` (state sync): the block with its certificate, the
        application state after it, the chain's records up to it (``records``), and a history
        accumulator from its height on (``history_base``: leaf i is the block at
        ``history_base + i``). Lower heights are never stored here (``base`` is the block's
        height). The caller has verified the block, the state and the records against certified
        headers; returns the block's hash."""
        if self.height != 0:
            raise StoreError("only an empty store can be restored (jump_to: one that fell behind)")
        if block.height < 1:
            raise StoreError("restore at height 1 or more")
        return self._start_at(block, state, records, clear=False)

    def jump_to(self, block: Block, state: StateTree, records: Mapping[bytes, bytes] = {}) -> bytes:
        """``restore`` for a store that fell behind (state sync on a node whose missing blocks
        every peer has pruned): its blocks, indexes, state and history go, its records stay,
        all in the one transaction that writes the new start, so a crash leaves either store
        whole. The history accumulator restarts at ``block`` (no proofs over the skipped
        heights from this store)."""
        if block.height <= self.height:
            raise StoreError(f"jump to {block.height}: not beyond height {self.height}")
        self.wait_for_snapshots()
        return self._start_at(block, state, records, clear=True)

    def _start_at(
        self, block: Block, state: StateTree, records: Mapping[bytes, bytes], *, clear: bool
    ) -> bytes:
        block_hash = self.block_hash(block)
        accumulator = MerkleAccumulator()
        accumulator.append(block_hash)
        encoded = block.encode()
        _check_records(records)
        with self.engine.write() as txn:
            if clear:
                for prefix in _CHAIN_PREFIXES:
                    for key in [key for key, _ in txn.scan(prefix)]:
                        txn.delete(key)
            for key, value in records.items():
                txn.put(b"x:" + key, value)
            txn.put(b"b:" + _u64(block.height), zlib.crc32(encoded).to_bytes(4, "big") + encoded)
            txn.put(b"h:" + block_hash, _u64(block.height))
            for key, location in self._locations(block, None):
                txn.put(b"t:" + key, location)
            txn.put(b"m:indexed", _u64(block.height))
            for path, value in state.items():
                txn.put(b"s:" + path, value)
            txn.put(b"a:" + bytes((0,)) + _u64(0), accumulator._node(0, 0))
            txn.put(b"m:history_base", _u64(block.height))
            txn.put(b"m:base", _u64(block.height))
            txn.put(b"m:state_root", state.root)
            txn.put(b"m:height", _u64(block.height))
        self._height, self.history_base = block.height, block.height
        self._indexed = block.height
        self._pending = {}
        self.accumulator, self.state_tree = accumulator, state
        return block_hash

    # ------------------------------------------------------------------ reading

    @property
    def height(self) -> int:
        """The last committed height (0 before the first block); kept in memory, as this
        process is the store's only writer."""
        return self._height

    @property
    def base(self) -> int:
        """The lowest height still stored."""
        with self.engine.read() as txn:
            return _meta_u64(txn, b"m:base")

    def put_records(self, records: Mapping[bytes, bytes]) -> None:
        """Write records outside a block's commit: only for what follows from committed data
        (a restored store's set derived from its state), since they are not atomic with a
        block."""
        _check_records(records)
        with self.engine.write() as txn:
            for key, value in records.items():
                txn.put(b"x:" + key, value)

    def records(self, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """The chain's records whose keys start with ``prefix``, in key order (prefix kept)."""
        with self.engine.read() as txn:
            return [(key[2:], value) for key, value in txn.scan(b"x:" + prefix)]

    def block_hash(self, block: Block) -> bytes:
        """The block's identity: the domain-separated hash of its header."""
        return digest(Domain.BLOCK_HEADER, block.header, chain_id=self.chain_id)

    def transaction_hash(self, transaction: bytes) -> bytes:
        return self._transaction_hash(transaction)

    def block(self, height: int) -> Block | None:
        """The block at ``height``, or None if it is not (or no longer) stored."""
        with self.engine.read() as txn:
            record = txn.get(b"b:" + _u64(height))
        if record is None:
            return None
        return self._decode_record(height, record)

    @staticmethod
    def _decode_record(height: int, record: bytes) -> Block:
        checksum, encoded = record[:4], record[4:]
        if len(record) < 4 or zlib.crc32(encoded).to_bytes(4, "big") != checksum:
            raise CorruptStore(f"block {height}: checksum mismatch")
        try:
            block = Block.decode(encoded)
        except CodecError as error:
            raise CorruptStore(f"block {height}: {error}") from None
        if block.height != height:
            raise CorruptStore(f"block stored at {height} says height {block.height}")
        return block

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        with self.engine.read() as txn:
            height = txn.get(b"h:" + block_hash)
        return None if height is None else self.block(int.from_bytes(height, "big"))

    def transaction(self, transaction_hash: bytes) -> tuple[int, int, bytes] | None:
        """(height, index, transaction) for a transaction hash, if its block is stored."""
        location = self._pending.get(transaction_hash)
        if location is None:
            with self.engine.read() as txn:
                location = txn.get(b"t:" + transaction_hash)
        if location is None:
            return None
        height = int.from_bytes(location[:8], "big")
        index = int.from_bytes(location[8:12], "big")
        block = self.block(height)
        if block is None or index >= len(block.transactions):
            return None
        return height, index, block.transactions[index]

    def state(self, key: bytes) -> bytes | None:
        """Application state as of the last committed height."""
        return self.state_tree.get(key)

    # ------------------------------------------------------------------ writing

    def commit(
        self,
        block: Block,
        state_writes: Mapping[bytes, bytes | None] = {},
        *,
        transaction_hashes: Sequence[bytes] | None = None,
        records: Mapping[bytes, bytes] = {},
    ) -> bytes:
        """Store ``block`` (the next height), its indexes, its leaf in the history accumulator,
        the application's state changes (None deletes) and the chain's ``records``, atomically;
        returns its hash. ``transaction_hashes``: ``transaction_hash`` of each of its
        transactions, when the caller has them already (a node's mempool does)."""
        if transaction_hashes is not None and len(transaction_hashes) != len(block.transactions):
            raise StoreError("one transaction hash per transaction")
        _check_records(records)
        return self._commit([(block, state_writes)], transaction_hashes, records)[0]

    def commit_many(
        self, entries: Sequence[tuple[Block, Mapping[bytes, bytes | None]]]
    ) -> list[bytes]:
        """Commit consecutive blocks with their state changes in one transaction (one fsync):
        all of them or none. Catch-up uses it to store verified ranges quickly."""
        return self._commit(entries, None)

    def _commit(
        self,
        entries: Sequence[tuple[Block, Mapping[bytes, bytes | None]]],
        known: Sequence[bytes] | None,
        records: Mapping[bytes, bytes] = {},
    ) -> list[bytes]:
        """``known``: the transaction hashes of a single block, if the caller has them."""
        expected = self.height + 1
        staged = []
        state = self.state_tree
        for block, writes in entries:
            if block.height != expected:
                raise StoreError(f"expected block {expected}, got {block.height}")
            expected += 1
            state = state.apply(writes)  # new versions; the committed one stays as it was
            staged.append((block, block.encode(), self.block_hash(block), writes, state))
        try:
            self._write(staged, known, records)
        except BaseException:
            # The transaction was aborted: the in-memory accumulator and index may hold entries
            # of blocks that were not stored.
            self.accumulator = self._load_accumulator()
            self._load_pending()
            raise
        for block, _, _, _, version in staged:
            self.state_tree = version
            if self.snapshot_interval and block.height % self.snapshot_interval == 0:
                self._snapshot(block.height, version)
        return [block_hash for _, _, block_hash, _, _ in staged]

    def _snapshot(self, height: int, version: StateTree) -> None:
        """Snapshot an immutable state version in the background; commits go on meanwhile."""
        store = self.snapshots
        if store is None:  # configured together with the interval, checked at open
            raise StoreError("no snapshot store configured")

        def take() -> None:
            manifest, chunks = create_snapshot(version, self.chain_id, height)
            store.save(manifest, chunks)

        # One snapshot at a time, in height order: a slow one delays the next, never reorders.
        previous = self._snapshot_threads[-1] if self._snapshot_threads else None

        def run() -> None:
            if previous is not None:
                previous.join()
            take()

        thread = threading.Thread(target=run, name=f"swarmguard-snapshot-{height}", daemon=True)
        self._snapshot_threads = [thread]
        thread.start()

    def wait_for_snapshots(self) -> None:
        """Block until background snapshots are written (for orderly shutdown and tests)."""
        for thread in self._snapshot_threads:
            thread.join()

    def _write(
        self,
        staged: Sequence[tuple[Block, bytes, bytes, Mapping[bytes, bytes | None], StateTree]],
        known: Sequence[bytes] | None = None,
        records: Mapping[bytes, bytes] = {},
    ) -> None:
        pending = self._pending
        with self.engine.write() as txn:
            for name, content in records.items():
                txn.put(b"x:" + name, content)
            for block, encoded, block_hash, writes, _version in staged:
                record = zlib.crc32(encoded).to_bytes(4, "big") + encoded
                txn.put(b"b:" + _u64(block.height), record)
                txn.put(b"h:" + block_hash, _u64(block.height))
                pending.update(self._locations(block, known))
                for key, value in writes.items():
                    path = b"s:" + hashlib.sha256(key).digest()
                    if value is None:
                        txn.delete(path)
                    else:
                        txn.put(path, value)
                for level, position, node in self._append_leaf(block_hash):
                    txn.put(b"a:" + bytes((level,)) + _u64(position), node)
                if self.keep_recent is not None:
                    self._prune(txn, block.height - self.keep_recent + 1)
            last = staged[-1]
            height = last[0].height
            flush = height - self._indexed >= INDEX_BLOCKS or len(pending) >= INDEX_ENTRIES
            if flush:  # sorted: neighbouring keys share pages
                for key in sorted(pending):
                    txn.put(b"t:" + key, pending[key])
                txn.put(b"m:indexed", _u64(height))
            txn.put(b"m:state_root", last[4].root)
            txn.put(b"m:height", _u64(height))
        self._height = height  # only once the transaction has committed
        if flush:
            self._indexed = height
            pending.clear()

    def _append_leaf(self, block_hash: bytes) -> Iterable[tuple[int, int, bytes]]:
        """Append to the in-memory accumulator; yields the nodes to persist."""
        index = self.accumulator.append(block_hash)
        position, level = index, 0
        yield 0, index, self.accumulator._node(0, index)
        while position & 1:
            position >>= 1
            level += 1
            yield level, position, self.accumulator._node(level, position)

    def _prune(self, txn: EngineTransaction, below: int) -> None:
        """Delete blocks under ``below`` (with their indexes), inside the commit's transaction."""
        base = _meta_u64(txn, b"m:base")
        while base < below:
            record = txn.get(b"b:" + _u64(base))
            if record is not None:
                block = self._decode_record(base, record)
                txn.delete(b"h:" + self.block_hash(block))
                height = _u64(base)
                for transaction in block.transactions:
                    # Only this block's entry: the same bytes may sit in a later block too.
                    key = self.transaction_hash(transaction)
                    location = self._pending.get(key)
                    if location is not None and location[:8] == height:
                        del self._pending[key]
                    location = txn.get(b"t:" + key)
                    if location is not None and location[:8] == height:
                        txn.delete(b"t:" + key)
                txn.delete(b"b:" + _u64(base))
            base += 1
        txn.put(b"m:base", _u64(base))

    def close(self) -> None:
        self.wait_for_snapshots()
        self.engine.close()

    def __enter__(self) -> BlockStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
