"""The block store: lookups, atomic commits, persistence of the accumulator, pruning with flat
disk use, schema and corruption errors, decoder fuzzing, and kill -9 crash safety."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.storage.blockstore import (
    INDEX_BLOCKS,
    SCHEMA_VERSION,
    Block,
    BlockStore,
    CorruptStore,
    StoreError,
    StoreVersionError,
)
from swarmguard.storage.engine import Engine, LmdbEngine, SqliteEngine
from swarmguard.storage.merkle import leaf_hash, merkle_root, verify_inclusion
from swarmguard.storage.snapshots import SnapshotStore, restore
from swarmguard.storage.state_tree import StateTree
from swarmguard.storage.state_tree import verify_inclusion as verify_state_inclusion

CHAIN = "swarm-test"


@pytest.fixture(params=["lmdb", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    """Every store test runs on both engines: the interface is what the store relies on."""
    return str(request.param)


def engine(kind: str, path: Path) -> Engine:
    return LmdbEngine(path) if kind == "lmdb" else SqliteEngine(path)


def open_store(path: Path, kind: str, **options: object) -> BlockStore:
    return BlockStore(path, CHAIN, engine=engine(kind, path), **options)  # type: ignore[arg-type]


def make_block(height: int, size: int = 100) -> Block:
    """Deterministic content per height, so a reader can check any block it finds."""
    rng = random.Random(height)
    transactions = tuple(rng.randbytes(size) for _ in range(height % 5))
    return Block(height, b"header %d" % height, transactions, b"cert %d" % height, ())


def committed(path: Path, kind: str, blocks: int) -> Engine:
    """A closed store holding blocks 1..``blocks``, opened again as a bare engine (to tamper)."""
    with open_store(path, kind) as store:
        for height in range(1, blocks + 1):
            store.commit(make_block(height))
    return engine(kind, path)


def test_commit_and_lookups(tmp_path: Path, kind: str) -> None:
    """Blocks come back by height, hash and transaction hash; state writes apply."""
    with open_store(tmp_path / "db", kind) as store:
        hashes = []
        for height in range(1, 21):
            block = make_block(height)
            writes: dict[bytes, bytes | None] = {b"counter": str(height).encode()}
            if height == 10:
                writes[b"gone"] = None
            if height == 5:
                writes[b"gone"] = b"soon"
            hashes.append(store.commit(block, writes))
        assert store.height == 20
        assert store.block(7) == make_block(7)
        assert store.block_by_hash(hashes[11]) == make_block(12)
        block = make_block(13)
        tx_hash = store.transaction_hash(block.transactions[2])
        assert store.transaction(tx_hash) == (13, 2, block.transactions[2])
        assert store.state(b"counter") == b"20"
        assert store.state(b"gone") is None
        assert store.block(21) is None
        assert store.accumulator.root() == merkle_root(hashes)


def test_known_transaction_hashes_index_the_same(tmp_path: Path, kind: str) -> None:
    """A caller that has the hashes already (a node's mempool) passes them: same index."""
    with open_store(tmp_path / "db", kind) as store:
        store.commit(make_block(1))
        block = make_block(2)
        hashes = [store.transaction_hash(t) for t in block.transactions]
        with pytest.raises(StoreError, match="one transaction hash per transaction"):
            store.commit(block, transaction_hashes=hashes[:-1])
        store.commit(block, transaction_hashes=hashes)
        assert [store.transaction(h) for h in hashes] == [
            (2, i, t) for i, t in enumerate(block.transactions)
        ]


def _on_disk(store: BlockStore, key: bytes) -> bytes | None:
    with store.engine.read() as txn:
        return txn.get(key)


def test_the_transaction_index_is_written_in_batches_and_complete_at_every_moment(
    tmp_path: Path, kind: str
) -> None:
    """Index entries wait in memory up to INDEX_BLOCKS blocks, then go to disk in one commit;
    every transaction is found by hash before, at and after that commit and after a reopen
    (the waiting ones are re-read from their blocks), and nothing is indexed twice."""
    total = INDEX_BLOCKS + 10
    blocks = [make_block(height) for height in range(1, total + 1)]
    every = [(b.height, i, t) for b in blocks for i, t in enumerate(b.transactions)]
    with open_store(tmp_path / "db", kind) as store:
        for block in blocks:
            store.commit(block)
            if block.height in (1, INDEX_BLOCKS - 1, INDEX_BLOCKS, total):
                seen = every[: sum(len(b.transactions) for b in blocks[: block.height])]
                assert [store.transaction(store.transaction_hash(t)) for _, _, t in seen] == seen
        assert _on_disk(store, b"m:indexed") == INDEX_BLOCKS.to_bytes(8, "big")
        late = blocks[-1].transactions[0]
        assert _on_disk(store, b"t:" + store.transaction_hash(late)) is None
        early = blocks[3].transactions[0]
        assert _on_disk(store, b"t:" + store.transaction_hash(early)) is not None
    with open_store(tmp_path / "db", kind) as store:
        assert [store.transaction(store.transaction_hash(t)) for _, _, t in every] == every
        assert store.transaction(bytes(32)) is None


def test_a_version_2_store_is_upgraded_at_open(tmp_path: Path, kind: str) -> None:
    """Version 2 indexed every block as it came: opening records all of them as indexed."""
    raw = committed(tmp_path / "db", kind, 7)
    with raw.write() as txn:
        txn.put(b"m:schema", (2).to_bytes(4, "big"))
        txn.delete(b"m:indexed")
    raw.close()
    with open_store(tmp_path / "db", kind) as store:
        assert _on_disk(store, b"m:schema") == SCHEMA_VERSION.to_bytes(4, "big")
        assert _on_disk(store, b"m:indexed") == (7).to_bytes(8, "big")


def test_pruning_a_block_keeps_a_later_block_with_the_same_transaction_findable(
    tmp_path: Path, kind: str
) -> None:
    """The same bytes in blocks 30, 50 and 66, blocks kept 20 heights: pruning a block removes
    its own entry only, whether that is in memory or (after the flush at INDEX_BLOCKS) on disk."""
    repeated = b"the same bytes three times"
    key = b""
    with open_store(tmp_path / "db", kind, keep_recent=20) as store:
        key = store.transaction_hash(repeated)
        for height in range(1, 91):
            block = make_block(height)
            if height in (30, 50, 66):
                block = Block(height, block.header, (repeated,), block.certificate, ())
            store.commit(block)
            at = max((h for h in (30, 50, 66) if h <= height < h + 20), default=None)
            found = store.transaction(key)
            assert found == (None if at is None else (at, 0, repeated)), height
            if height == INDEX_BLOCKS:
                assert _on_disk(store, b"t:" + key) is not None
            if height == 75:
                assert _on_disk(store, b"t:" + key) is None


def _commit_30_keeping_20(
    store: BlockStore,
    block: Callable[[int], Block],
    writes: Callable[[int], dict[bytes, bytes | None]],
) -> StateTree:
    """Commit blocks 1-30 with their writes; the state after block 20 (what a snapshot at 20
    would restore)."""
    for height in range(1, 31):
        store.commit(block(height), writes(height))
        if height == 20:
            state_at_20 = store.state_tree
    return state_at_20


def test_a_restored_store_starts_at_a_block_and_goes_on_like_the_original(
    tmp_path: Path, kind: str
) -> None:
    """State sync's landing: block 20 and the state after it, then blocks 21-30 give the same
    hashes and state root as a store that holds them all; the restored store reopens."""

    def writes(height: int) -> dict[bytes, bytes | None]:
        return {b"counter": b"%d" % height, b"key %d" % (height % 7): b"v%d" % height}

    with open_store(tmp_path / "full", kind) as full:
        state_at_20 = _commit_30_keeping_20(full, make_block, writes)
        with open_store(tmp_path / "restored", kind) as restored:
            restored.restore(full.block(20), state_at_20)  # type: ignore[arg-type]
            assert (restored.height, restored.base, restored.history_base) == (20, 20, 20)
            assert restored.block(20) == full.block(20)
            assert restored.block(19) is None
            with pytest.raises(StoreError, match="empty"):
                restored.restore(make_block(20), state_at_20)
            for height in range(21, 31):
                assert restored.commit(make_block(height), writes(height)) == full.block_hash(
                    make_block(height)
                )
            assert restored.state_root == full.state_root
        with open_store(tmp_path / "restored", kind) as reopened:
            assert reopened.height == 30
            assert reopened.state(b"counter") == b"30"
            assert len(reopened.accumulator) == 11


def test_a_store_that_fell_behind_jumps_to_a_later_block_and_goes_on(
    tmp_path: Path, kind: str
) -> None:
    """State sync on a store stuck at height 5 (its next blocks pruned everywhere): it jumps to
    block 20 with the state after it, keeps its records, forgets its old blocks, indexes and
    state keys, goes on like the original and reopens that way; a jump backwards is refused."""

    def writes(height: int) -> dict[bytes, bytes | None]:
        return {b"counter": b"%d" % height, b"only at %d" % height: b"x"}

    def block(height: int) -> Block:
        return Block(height, b"header %d" % height, (b"tx %d" % height,), b"cert %d" % height, ())

    with open_store(tmp_path / "full", kind) as full:
        state_at_20 = _commit_30_keeping_20(full, block, writes)
        with open_store(tmp_path / "behind", kind) as behind:
            for height in range(1, 6):
                records = {b"mine:%d" % height: b"kept"}
                behind.commit(block(height), {b"stale %d" % height: b"s"}, records=records)
            old_tx = behind.transaction_hash(b"tx 3")
            with pytest.raises(StoreError, match="not beyond"):
                behind.jump_to(full.block(5), state_at_20)  # type: ignore[arg-type]
            behind.jump_to(full.block(20), state_at_20, {b"theirs": b"new"})  # type: ignore[arg-type]
            assert (behind.height, behind.base, behind.history_base) == (20, 20, 20)
            assert behind.block(5) is None
            assert behind.transaction(old_tx) is None
            assert behind.state(b"stale 3") is None  # the old state's keys are gone
            assert behind.records(b"mine:") == [(b"mine:%d" % h, b"kept") for h in range(1, 6)]
            for height in range(21, 31):
                behind.commit(block(height), writes(height))
            assert behind.state_root == full.state_root
        with open_store(tmp_path / "behind", kind) as reopened:
            assert (reopened.height, reopened.base) == (30, 20)
            assert reopened.state(b"counter") == b"30"
            assert reopened.state(b"stale 4") is None
            assert reopened.records(b"theirs") == [(b"theirs", b"new")]
            assert reopened.transaction(reopened.transaction_hash(b"tx 25")) is not None


def test_heights_must_follow_and_chains_must_match(tmp_path: Path, kind: str) -> None:
    """A skipped height is refused; a store of another chain does not open."""
    with open_store(tmp_path / "db", kind) as store:
        store.commit(make_block(1))
        with pytest.raises(StoreError, match="expected block 2"):
            store.commit(make_block(3))
    with pytest.raises(StoreError, match="chain"):
        BlockStore(tmp_path / "db", "other-chain", engine=engine(kind, tmp_path / "db"))


def test_accumulator_survives_reopen(tmp_path: Path, kind: str) -> None:
    """After a restart the history root and proofs are the same, without recomputation."""
    with open_store(tmp_path / "db", kind) as store:
        hashes = [store.commit(make_block(h)) for h in range(1, 50)]
        root = store.accumulator.root()
    with open_store(tmp_path / "db", kind) as store:
        assert store.height == 49
        assert store.accumulator.root() == root == merkle_root(hashes)
        proof = store.accumulator.inclusion_proof(10)
        verify_inclusion(leaf_hash(hashes[10]), 10, 49, proof, root)
        store.commit(make_block(50))  # and it keeps growing from where it was


def test_unknown_schema_version_fails_clearly(tmp_path: Path, kind: str) -> None:
    """A store written by a newer schema is refused with the versions named."""
    open_store(tmp_path / "db", kind).close()
    raw = engine(kind, tmp_path / "db")
    with raw.write() as txn:
        txn.put(b"m:schema", (SCHEMA_VERSION + 1).to_bytes(4, "big"))
    raw.close()
    with pytest.raises(StoreVersionError, match=f"version {SCHEMA_VERSION + 1}"):
        open_store(tmp_path / "db", kind)


def test_bit_flips_are_detected(tmp_path: Path, kind: str) -> None:
    """A flipped bit or a truncated record raises CorruptStore; other blocks still read."""
    raw = committed(tmp_path / "db", kind, 5)
    with raw.write() as txn:
        key = b"b:" + (3).to_bytes(8, "big")
        record = bytearray(txn.get(key) or b"")
        record[12] ^= 0x10
        txn.put(key, bytes(record))
        key4 = b"b:" + (4).to_bytes(8, "big")
        txn.put(key4, (txn.get(key4) or b"")[:-3])
    raw.close()
    with open_store(tmp_path / "db", kind) as store:
        with pytest.raises(CorruptStore, match="block 3"):
            store.block(3)
        with pytest.raises(CorruptStore, match="block 4"):
            store.block(4)
        assert store.block(5) == make_block(5)


def test_pruning_keeps_disk_flat(tmp_path: Path, kind: str) -> None:
    """keep_recent=20 deletes old blocks and their indexes, and the data file stops growing."""
    path = tmp_path / "db"
    with open_store(path, kind, keep_recent=20) as store:
        for height in range(1, 151):
            store.commit(make_block(height, size=20_000))
        size_early = store.engine.disk_bytes()
        first = make_block(3, size=20_000)
        for height in range(151, 601):
            store.commit(make_block(height, size=20_000))
        size_late = store.engine.disk_bytes()
        assert store.base == 581
        assert store.block(580) is None
        assert store.block(581) == make_block(581, size=20_000)
        assert store.transaction(store.transaction_hash(first.transactions[0])) is None
        assert len(store.accumulator) == 600  # the history keeps every block hash
    assert size_late <= size_early * 1.25, (size_early, size_late)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_block_decoder_never_crashes(data: bytes) -> None:
    """Arbitrary bytes decode to a block or raise CodecError, nothing else."""
    try:
        block = Block.decode(data)
    except CodecError:
        return
    assert block.encode() == data


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 2**63),
    st.binary(max_size=64),
    st.lists(st.binary(max_size=40), max_size=5),
    st.binary(max_size=40),
)
def test_block_round_trip_and_flips(
    height: int, header: bytes, transactions: list[bytes], certificate: bytes
) -> None:
    """Blocks round-trip; truncations and extensions are refused."""
    block = Block(height, header, tuple(transactions), certificate, ())
    encoded = block.encode()
    assert Block.decode(encoded) == block
    with pytest.raises(CodecError):
        Block.decode(encoded[:-1])
    with pytest.raises(CodecError):
        Block.decode(encoded + b"\x00")


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tests.storage.test_blockstore import make_block, open_store
    store = open_store(Path(sys.argv[1]), sys.argv[2])
    height = store.height
    while True:
        height += 1
        store.commit(make_block(height, size=3000), {b"head": str(height).encode()})
        print(height, flush=True)
    """
)


def crash_trials(tmp_path: Path, trials: int, kind: str) -> None:
    path = tmp_path / "crash-db"
    reported = 0
    rng = random.Random(42)
    root = Path(__file__).parents[2]
    for _ in range(trials):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), kind],
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        assert writer.stdout is not None
        line = writer.stdout.readline()  # the writer is up and committing
        assert line.strip(), "writer did not start"
        reported = max(reported, int(line))
        time.sleep(rng.uniform(0.0, 0.15))
        writer.send_signal(signal.SIGKILL)
        remaining, _ = writer.communicate(timeout=30)
        for value in remaining.split():
            reported = max(reported, int(value))
        with open_store(path, kind) as store:
            height = store.height
            assert height >= reported, "a block reported committed was lost"
            assert store.block(height + 1) is None  # nothing half-written beyond the head
            assert store.state(b"head") == str(height).encode()  # state moved with the block
            hashes = []
            for h in range(1, height + 1):
                block = make_block(h, size=3000)
                assert store.block(h) == block
                hashes.append(store.block_hash(block))
                for index, transaction in enumerate(block.transactions):
                    found = store.transaction(store.transaction_hash(transaction))
                    assert found == (h, index, transaction)
            assert store.accumulator.root() == merkle_root(hashes)
        reported = height


def test_kill_9_loses_nothing_committed(tmp_path: Path, kind: str) -> None:
    """A writer killed with SIGKILL at random moments, 8 times: the store reopens at a height at
    least as high as the last one the writer reported, every block intact, state and history
    consistent with it."""
    crash_trials(tmp_path, 8, kind)


@pytest.mark.slow
def test_kill_9_thirty_times(tmp_path: Path, kind: str) -> None:
    """The same, 30 times (the issue's figure for the engines measured)."""
    crash_trials(tmp_path, 30, kind)


def test_state_root_is_committed_with_the_block(tmp_path: Path, kind: str) -> None:
    """The state root moves with each commit, survives a reopen, and tampering is detected."""
    roots = []
    with open_store(tmp_path / "db", kind) as store:
        for height in range(1, 31):
            store.commit(make_block(height), {b"key %d" % (height % 7): b"value %d" % height})
            roots.append(store.state_root)
        assert len(set(roots)) == 30
        proof = store.state_tree.prove(b"key 3")
        verify_state_inclusion(store.state_root, b"key 3", b"value 24", proof)
    with open_store(tmp_path / "db", kind) as store:
        assert store.state_root == roots[-1]
        assert store.state(b"key 3") == b"value 24"
    raw = engine(kind, tmp_path / "db")
    with raw.write() as txn:
        txn.put(b"s:" + hashlib.sha256(b"key 3").digest(), b"forged")
    raw.close()
    with pytest.raises(CorruptStore, match="state"):
        open_store(tmp_path / "db", kind)


def test_periodic_snapshots_restore_the_state_of_their_height(tmp_path: Path, kind: str) -> None:
    """Every 10 heights a snapshot is written in the background (keeping the newest 2); the
    snapshot of height 30 restores exactly the state root committed at 30."""
    snapshots = SnapshotStore(tmp_path / "snapshots", keep=2)
    roots = {}
    with open_store(tmp_path / "db", kind, snapshots=snapshots, snapshot_interval=10) as store:
        for height in range(1, 36):
            store.commit(make_block(height), {b"k%d" % height: b"v" * height})
            roots[height] = store.state_root
        store.wait_for_snapshots()
    assert snapshots.heights() == [20, 30]
    manifest = snapshots.manifest(30)
    restored = restore(manifest, roots[30], lambda index: snapshots.chunk(30, index))
    assert restored.root == roots[30]
    assert restored.get(b"k30") == b"v" * 30
    assert restored.get(b"k31") is None
    with pytest.raises(StoreError, match="both"):
        BlockStore(tmp_path / "db2", CHAIN, snapshot_interval=10)


PAGE_PROBE = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from swarmguard.storage.errors import StoreError
    from tests.storage.test_blockstore import make_block, open_store
    kind, path, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    with open_store(path, kind) as store:
        for height in range(1, 150):
            store.commit(make_block(height, size=2000), {b"k": b"%d" % height})
    data_file = path / ("data.mdb" if kind == "lmdb" else "store.sqlite")
    data = bytearray(data_file.read_bytes())
    rng = random.Random(seed)
    for _ in range(20):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    data_file.write_bytes(bytes(data))
    try:
        with open_store(path, kind) as store:
            for height in range(1, 150):
                store.block(height)
        print("clean")
    except StoreError as error:
        print("reported", type(error).__name__)
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_damaged_database_pages_are_reported_not_crashed(
    tmp_path: Path, kind: str, seed: int
) -> None:
    """Random bit flips in the engine's data file end in a clean read or a StoreError (our CRC
    or the engine's own page check), never another exception and never a crashed process."""
    root = Path(__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-c", PAGE_PROBE, kind, str(tmp_path / "db"), str(seed)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] in ("clean", "reported"), result.stdout
