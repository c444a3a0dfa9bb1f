"""State snapshots: zstd-compressed, chunked, hashed, with a manifest; and their restoration.

A snapshot is taken from one immutable ``StateTree`` version (a consistent view: the node keeps
committing new versions meanwhile). Its leaves, in path order, are cut into chunks of about
``chunk_size`` uncompressed bytes; each chunk is compressed on its own with zstd (level 1: state
is mostly hashes and signatures, which do not compress, and higher levels cost 5-10x the time for
nothing), so chunks can be fetched, checked and decoded independently and in parallel.

Chunk format (uncompressed): a sequence of ``path (32) || u32 value length || value``.

Manifest, version 1 (keep in sync with docs/storage.md, "Snapshots")::

    version u16 | chain id (u32 length + bytes) | height u64 | state root (32) | leaves u64
    | chunks u32 | per chunk: SHA-256 of the compressed chunk (32) || uncompressed length u32

Restoring (``Restorer``) accepts chunks in any order from any source, checks each chunk's hash
before decompressing it (and never decompresses beyond the length the manifest states), rebuilds
the tree once all chunks are in, and accepts the state only if its root equals both the manifest's
root and the root the caller trusts (the one committed in the header at that height). A bad chunk
can be offered again from another source; ``restore`` retries, and gives up with
``SnapshotAbandoned`` without touching anything outside the restorer, so another snapshot can be
tried at once, without a restart.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import zstandard

from swarmguard.codec import CodecError, Reader, Writer

from .state_tree import StateTree

__all__ = [
    "CHUNK_SIZE_DEFAULT",
    "Manifest",
    "Restorer",
    "SnapshotAbandoned",
    "SnapshotError",
    "SnapshotStore",
    "create_snapshot",
    "restore",
]

MANIFEST_VERSION = 1
CHUNK_SIZE_DEFAULT = 4 * 2**20
CHUNK_SIZE_MAX = 64 * 2**20
"""A chunk never decompresses beyond this, whatever a manifest claims."""
CHUNKS_MAX = 1_000_000
VALUE_BYTES_MAX = 16 * 2**20
ZSTD_LEVEL = 1
HOLD_SECONDS = 120.0
"""How long a snapshot a peer is fetching outlives its turn to be pruned, from its last chunk
served: a restore of a large state takes minutes, and new snapshots keep coming meanwhile."""
HELD_MAX = 2
"""Snapshots kept beyond ``keep`` for peers still fetching them (the newest held ones): what a
node owes restoring peers is bounded, whatever they ask for."""


class SnapshotError(ValueError):
    """A manifest or chunk is malformed, or a restored state does not match its root."""


class SnapshotAbandoned(SnapshotError):
    """Restoration gave up on this snapshot (a chunk stayed bad, or the root did not match)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a snapshot is: chain, height, state root, and its chunks' hashes and sizes."""

    chain_id: str
    height: int
    state_root: bytes
    leaves: int
    chunk_hashes: tuple[bytes, ...]
    chunk_lengths: tuple[int, ...]

    def encode(self) -> bytes:
        out = Writer()
        out.uint(MANIFEST_VERSION, 2)
        out.blob(self.chain_id.encode(), 64)
        out.uint(self.height, 8)
        out.fixed(self.state_root, 32)
        out.uint(self.leaves, 8)
        out.uint(len(self.chunk_hashes), 4)
        for digest, length in zip(self.chunk_hashes, self.chunk_lengths, strict=True):
            out.fixed(digest, 32)
            out.uint(length, 4)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> Manifest:
        reader = Reader(data, "snapshot manifest")
        reader.version(MANIFEST_VERSION, width=2)
        try:
            chain_id = reader.blob(64, "chain id").decode("ascii")
        except UnicodeDecodeError:
            raise CodecError("snapshot manifest: chain id is not ASCII") from None
        height = reader.uint(8, "height")
        root = reader.fixed(32, "state root")
        leaves = reader.uint(8, "leaves")
        count = reader.count(36, "chunks")
        if count > CHUNKS_MAX:
            raise CodecError(f"snapshot manifest: {count} chunks exceed {CHUNKS_MAX}")
        hashes, lengths = [], []
        for _ in range(count):
            hashes.append(reader.fixed(32, "chunk hash"))
            length = reader.uint(4, "chunk length")
            if length > CHUNK_SIZE_MAX:
                raise CodecError(f"snapshot manifest: chunk of {length} bytes exceeds the limit")
            lengths.append(length)
        reader.finish()
        return Manifest(chain_id, height, root, leaves, tuple(hashes), tuple(lengths))


def _chunks(items: Iterable[tuple[bytes, bytes]], chunk_size: int) -> Iterable[bytes]:
    """Uncompressed chunks of whole leaves, each about ``chunk_size`` bytes."""
    parts: list[bytes] = []
    size = 0
    for path, value in items:
        record = path + len(value).to_bytes(4, "big") + value
        parts.append(record)
        size += len(record)
        if size >= chunk_size:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


def create_snapshot(
    tree: StateTree, chain_id: str, height: int, *, chunk_size: int = CHUNK_SIZE_DEFAULT
) -> tuple[Manifest, list[bytes]]:
    """Snapshot one state version: (manifest, compressed chunks)."""
    if not 1024 <= chunk_size <= CHUNK_SIZE_MAX // 2:
        raise SnapshotError(f"chunk_size must be in 1 KiB..{CHUNK_SIZE_MAX // 2} bytes")
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    compressed, lengths = [], []
    for chunk in _chunks(tree.items(), chunk_size):
        compressed.append(compressor.compress(chunk))
        lengths.append(len(chunk))
    manifest = Manifest(
        chain_id,
        height,
        tree.root,
        len(tree),
        tuple(hashlib.sha256(chunk).digest() for chunk in compressed),
        tuple(lengths),
    )
    return manifest, compressed


class Restorer:
    """Collects and checks the chunks of one snapshot, then rebuilds and verifies the state."""

    def __init__(self, manifest: Manifest, trusted_root: bytes) -> None:
        if manifest.state_root != trusted_root:
            raise SnapshotAbandoned("the manifest's root is not the trusted root for its height")
        self.manifest = manifest
        self._leaves: dict[int, list[tuple[bytes, bytes]]] = {}

    def missing(self) -> list[int]:
        """Indices of the chunks still needed."""
        return [i for i in range(len(self.manifest.chunk_hashes)) if i not in self._leaves]

    def add_chunk(self, index: int, data: bytes) -> None:
        """Check and decode one chunk; raises SnapshotError if it is not the one expected."""
        if not 0 <= index < len(self.manifest.chunk_hashes):
            raise SnapshotError(f"no chunk {index} in this snapshot")
        if hashlib.sha256(data).digest() != self.manifest.chunk_hashes[index]:
            raise SnapshotError(f"chunk {index}: hash mismatch")
        length = self.manifest.chunk_lengths[index]
        try:
            raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=length)
        except zstandard.ZstdError as error:
            raise SnapshotError(f"chunk {index}: {error}") from None
        if len(raw) != length:
            raise SnapshotError(f"chunk {index}: {len(raw)} bytes, manifest says {length}")
        self._leaves[index] = _parse_chunk(index, raw)

    def finish(self) -> StateTree:
        """The restored state, once every chunk is in; SnapshotAbandoned if it does not match."""
        if self.missing():
            raise SnapshotError(f"chunks missing: {self.missing()[:10]}")
        leaves = [leaf for index in sorted(self._leaves) for leaf in self._leaves[index]]
        if len(leaves) != self.manifest.leaves:
            raise SnapshotAbandoned("the chunks hold another number of leaves than the manifest")
        try:
            tree = StateTree.from_leaves(leaves)
        except ValueError as error:
            raise SnapshotAbandoned(f"the leaves are not a canonical state: {error}") from None
        if tree.root != self.manifest.state_root:
            raise SnapshotAbandoned("the rebuilt state root does not match")
        return tree


def _parse_chunk(index: int, raw: bytes) -> list[tuple[bytes, bytes]]:
    leaves = []
    offset = 0
    while offset < len(raw):
        if offset + 36 > len(raw):
            raise SnapshotError(f"chunk {index}: truncated leaf")
        path = raw[offset : offset + 32]
        length = int.from_bytes(raw[offset + 32 : offset + 36], "big")
        if length > VALUE_BYTES_MAX or offset + 36 + length > len(raw):
            raise SnapshotError(f"chunk {index}: bad value length {length}")
        leaves.append((path, raw[offset + 36 : offset + 36 + length]))
        offset += 36 + length
    return leaves


def restore(
    manifest: Manifest,
    trusted_root: bytes,
    fetch: Callable[[int], bytes],
    *,
    workers: int = 4,
    attempts: int = 3,
) -> StateTree:
    """Fetch every chunk (in parallel, any order) with ``fetch(index)``, re-fetching a bad one
    up to ``attempts`` times in all; returns the verified state or raises SnapshotAbandoned."""
    restorer = Restorer(manifest, trusted_root)

    def obtain(index: int) -> None:
        for attempt in range(attempts):
            try:
                restorer.add_chunk(index, fetch(index))
                return
            except (SnapshotError, OSError) as error:
                if attempt == attempts - 1:
                    raise SnapshotAbandoned(f"chunk {index} stayed bad: {error}") from None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(obtain, index) for index in restorer.missing()]:
            future.result()
    return restorer.finish()


class SnapshotStore:
    """Snapshots on disk, one folder per height, keeping the newest ``keep`` of them, plus up to
    ``HELD_MAX`` older ones that peers are still fetching (``hold``).

    ``save`` runs on the store's snapshot thread while ``hold`` and ``chunk`` serve peers from
    the node's loop; a lock orders pruning decisions against holds. A chunk read that races its
    folder's removal raises ``OSError`` like any missing chunk.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        keep: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if keep < 1:
            raise SnapshotError("keep must be >= 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._clock = clock
        self._held: dict[int, float] = {}  # height -> until (clock seconds)
        self._lock = threading.Lock()

    def heights(self) -> list[int]:
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())

    def save(self, manifest: Manifest, chunks: list[bytes]) -> None:
        """Write a snapshot (atomically: a folder renamed into place), then prune old ones."""
        final = self.directory / f"{manifest.height:020d}"
        staging = self.directory / f".staging-{manifest.height}"
        staging.mkdir(exist_ok=True)
        for index, chunk in enumerate(chunks):
            _write(staging / f"chunk-{index:06d}.zst", chunk)
        _write(staging / "manifest.bin", manifest.encode())
        os.replace(staging, final)
        self.prune()

    def hold(self, height: int) -> None:
        """Keep ``height`` for ``HOLD_SECONDS`` more (a peer just fetched a chunk of it)."""
        with self._lock:
            self._held[height] = self._clock() + HOLD_SECONDS

    def prune(self) -> None:
        """Remove all but the newest ``keep`` snapshots and the newest ``HELD_MAX`` held ones."""
        with self._lock:  # decided under the lock, deleted outside it (hold never waits)
            now = self._clock()
            self._held = {h: until for h, until in self._held.items() if until > now}
            older = self.heights()[: -self.keep]
            spared = set([h for h in older if h in self._held][-HELD_MAX:])
            doomed = [h for h in older if h not in spared]
            for height in doomed:
                self._held.pop(height, None)
        for height in doomed:
            folder = self.directory / f"{height:020d}"
            for item in folder.iterdir():
                item.unlink()
            folder.rmdir()

    def manifest(self, height: int) -> Manifest:
        return Manifest.decode((self.directory / f"{height:020d}" / "manifest.bin").read_bytes())

    def chunk(self, height: int, index: int) -> bytes:
        return (self.directory / f"{height:020d}" / f"chunk-{index:06d}.zst").read_bytes()


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
