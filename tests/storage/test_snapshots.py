"""Snapshots: round trip through chunks in any order, bad chunks re-fetched or abandoned, roots
checked, manifests fuzzed, decompression bounded, and the on-disk store pruned."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.storage.snapshots import (
    HELD_MAX,
    HOLD_SECONDS,
    Manifest,
    Restorer,
    SnapshotAbandoned,
    SnapshotError,
    SnapshotStore,
    create_snapshot,
    restore,
)
from swarmguard.storage.state_tree import StateTree

CHAIN = "swarm-test"


def state(count: int = 3000, seed: int = 1) -> StateTree:
    rng = random.Random(seed)
    return StateTree().apply(
        {f"account {i}".encode(): rng.randbytes(rng.randrange(0, 80)) for i in range(count)}
    )


def test_round_trip_in_any_order() -> None:
    """Chunks fed in shuffled order rebuild the exact state (same root, same values)."""
    tree = state()
    manifest, chunks = create_snapshot(tree, CHAIN, 42, chunk_size=8192)
    assert len(chunks) > 10
    assert Manifest.decode(manifest.encode()) == manifest
    restorer = Restorer(manifest, tree.root)
    order = list(range(len(chunks)))
    random.Random(3).shuffle(order)
    for index in order:
        restorer.add_chunk(index, chunks[index])
    restored = restorer.finish()
    assert restored.root == tree.root
    assert restored.get(b"account 17") == tree.get(b"account 17")
    assert len(restored) == len(tree)


def test_parallel_restore_refetches_a_bad_chunk() -> None:
    """A chunk that arrives corrupt once is fetched again, and the restore succeeds."""
    tree = state()
    manifest, chunks = create_snapshot(tree, CHAIN, 42, chunk_size=8192)
    served: dict[int, int] = {}

    def flaky(index: int) -> bytes:
        served[index] = served.get(index, 0) + 1
        if index == 5 and served[index] == 1:
            return chunks[index][:-1] + bytes([chunks[index][-1] ^ 1])
        return chunks[index]

    assert restore(manifest, tree.root, flaky, workers=4).root == tree.root
    assert served[5] == 2


def test_hopeless_snapshots_are_abandoned_and_another_can_follow() -> None:
    """A chunk that stays bad, or a root that is not the trusted one, abandons the snapshot;
    a good snapshot restores right after, with nothing to reset."""
    tree = state()
    manifest, chunks = create_snapshot(tree, CHAIN, 42, chunk_size=8192)
    with pytest.raises(SnapshotAbandoned, match="chunk 2 stayed bad"):
        restore(manifest, tree.root, lambda i: b"garbage" if i == 2 else chunks[i])
    with pytest.raises(SnapshotAbandoned, match="trusted root"):
        Restorer(manifest, bytes(32))
    assert restore(manifest, tree.root, chunks.__getitem__).root == tree.root


def test_forged_snapshots_are_rejected() -> None:
    """A manifest whose root matches but whose chunks hold another state is rejected at the
    end; one with a wrong leaf count too; a chunk larger than declared is refused."""
    tree = state(500)
    other = state(500, seed=2)
    manifest, _ = create_snapshot(tree, CHAIN, 42, chunk_size=4096)
    _, other_chunks = create_snapshot(other, CHAIN, 42, chunk_size=4096)
    forged = replace(
        manifest,
        chunk_hashes=tuple(hashlib.sha256(c).digest() for c in other_chunks),
        chunk_lengths=tuple(len(zstandard.ZstdDecompressor().decompress(c)) for c in other_chunks),
    )
    with pytest.raises(SnapshotAbandoned, match="root does not match|number of leaves"):
        restore(forged, tree.root, other_chunks.__getitem__)
    manifest2, chunks2 = create_snapshot(tree, CHAIN, 42, chunk_size=4096)
    shrunk = replace(manifest2, chunk_lengths=(10, *manifest2.chunk_lengths[1:]))
    restorer = Restorer(shrunk, tree.root)
    with pytest.raises(SnapshotError):
        restorer.add_chunk(0, chunks2[0])  # decompression stops at the declared 10 bytes
    with pytest.raises(SnapshotError, match="no chunk"):
        restorer.add_chunk(len(chunks2), chunks2[0])


def test_leaves_out_of_order_are_rejected() -> None:
    """Chunks whose leaves are not in strictly increasing path order are not a state."""
    path_a, path_b = bytes(31) + b"\x02", bytes(31) + b"\x01"
    raw = path_a + (1).to_bytes(4, "big") + b"x" + path_b + (1).to_bytes(4, "big") + b"y"
    chunk = zstandard.ZstdCompressor(level=1).compress(raw)
    manifest = Manifest(CHAIN, 1, bytes(32), 2, (hashlib.sha256(chunk).digest(),), (len(raw),))
    restorer = Restorer(manifest, bytes(32))
    restorer.add_chunk(0, chunk)
    with pytest.raises(SnapshotAbandoned, match="canonical"):
        restorer.finish()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_manifest_decoder_never_crashes(data: bytes) -> None:
    """Arbitrary bytes decode to a manifest or raise CodecError, nothing else."""
    try:
        manifest = Manifest.decode(data)
    except CodecError:
        return
    assert manifest.encode() == data


def test_snapshot_store_saves_reads_and_prunes(tmp_path: Path) -> None:
    """Saved snapshots read back; only the newest ``keep`` remain."""
    store = SnapshotStore(tmp_path / "snapshots", keep=2)
    tree = state(300)
    for height in (100, 200, 300):
        manifest, chunks = create_snapshot(tree, CHAIN, height, chunk_size=2048)
        store.save(manifest, chunks)
    assert store.heights() == [200, 300]
    manifest = store.manifest(300)
    restored = restore(manifest, tree.root, lambda i: store.chunk(300, i))
    assert restored.root == tree.root


def test_snapshots_peers_are_fetching_outlive_pruning(tmp_path: Path) -> None:
    """A snapshot a peer fetched a chunk of stays past its turn to be pruned for HOLD_SECONDS
    from the last chunk, at most HELD_MAX of them (the newest held), then goes."""
    now = [0.0]
    store = SnapshotStore(tmp_path / "snapshots", keep=1, clock=lambda: now[0])
    tree = state(50)
    manifest, chunks = create_snapshot(tree, CHAIN, 10, chunk_size=2048)

    def save(height: int) -> None:
        store.save(replace(manifest, height=height), chunks)

    save(10)
    store.hold(10)
    save(20)
    assert store.heights() == [10, 20]  # 10 is being fetched
    now[0] = HOLD_SECONDS - 1
    store.hold(10)  # another chunk served: the hold runs from here
    store.hold(20)
    save(30)
    store.hold(30)
    save(40)
    save(50)
    # held: 10, 20, 30 (all older than the newest one kept); only the newest HELD_MAX stay
    assert HELD_MAX == 2
    assert store.heights() == [20, 30, 50]
    assert store.chunk(20, 0) == chunks[0]
    now[0] += HOLD_SECONDS + 1  # no chunk served for a while: holds lapse
    store.prune()
    assert store.heights() == [50]
    with pytest.raises(OSError):
        store.chunk(20, 0)


def test_bad_chunk_size_is_refused() -> None:
    """Chunk sizes outside the named limits are refused at creation."""
    with pytest.raises(SnapshotError, match="chunk_size"):
        create_snapshot(state(10), CHAIN, 1, chunk_size=10)
