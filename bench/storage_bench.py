"""Storage benchmark: the block store against SQLite, and snapshots of 1,000,000 accounts.

Block store (issue 4): sustained appends of 1 KB and 100 KB blocks with durable commits, and
reads by height and by hash, our LMDB store against a plain SQLite block table (WAL,
synchronous=FULL) doing the same writes, alternating over rounds in one run.

Snapshots (issue 4): for a state of 1,000,000 accounts (balance, nonce, a 32-byte public key),
the size reduction by zstd (level 1), and the time to create and to restore (2 fetch workers).

Run: ``.venv/bin/python bench/storage_bench.py [--accounts N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import emit
from swarmguard.storage.blockstore import Block, BlockStore
from swarmguard.storage.snapshots import create_snapshot, restore
from swarmguard.storage.state_tree import StateTree

CHAIN = "bench"


def blocks(count: int, size: int) -> list[Block]:
    rng = random.Random(size)
    transactions_per_block = 10
    tx_size = max(1, size // transactions_per_block)
    return [
        Block(
            height,
            hashlib.sha256(height.to_bytes(8, "big")).digest() * 4,
            tuple(rng.randbytes(tx_size) for _ in range(transactions_per_block)),
            rng.randbytes(7 * 96),
        )
        for height in range(1, count + 1)
    ]


def ours(directory: Path, chain: list[Block], keep_recent: int | None = None) -> dict[str, float]:
    latencies = []
    with BlockStore(directory, CHAIN, keep_recent=keep_recent) as store:
        hashes = []
        for block in chain:
            start = time.perf_counter()
            hashes.append(store.commit(block))
            latencies.append(time.perf_counter() - start)
        kept = chain[-keep_recent:] if keep_recent else chain
        kept_hashes = hashes[-keep_recent:] if keep_recent else hashes
        start = time.perf_counter()
        for block in kept:
            store.block(block.height)
        by_height = (time.perf_counter() - start) / len(kept)
        start = time.perf_counter()
        for block_hash in kept_hashes:
            store.block_by_hash(block_hash)
        by_hash = (time.perf_counter() - start) / len(kept)
    return summary(latencies, by_height, by_hash)


def ours_pruned(directory: Path, chain: list[Block]) -> dict[str, float]:
    return ours(directory, chain, keep_recent=100)


def sqlite(directory: Path, chain: list[Block]) -> dict[str, float]:
    """The same work on SQLite: block row, hash index row, transaction index rows, one
    transaction per block, durable."""
    directory.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(directory / "blocks.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE blocks (height INTEGER PRIMARY KEY, data BLOB)")
    db.execute("CREATE TABLE hashes (hash BLOB PRIMARY KEY, height INTEGER) WITHOUT ROWID")
    db.execute("CREATE TABLE txs (hash BLOB PRIMARY KEY, location BLOB) WITHOUT ROWID")
    latencies = []
    hashes = []
    for block in chain:
        start = time.perf_counter()
        encoded = block.encode()
        block_hash = hashlib.sha256(block.header).digest()
        db.execute("BEGIN")
        db.execute("INSERT INTO blocks VALUES (?, ?)", (block.height, encoded))
        db.execute("INSERT INTO hashes VALUES (?, ?)", (block_hash, block.height))
        for index, tx in enumerate(block.transactions):
            location = block.height.to_bytes(8, "big") + index.to_bytes(4, "big")
            db.execute("INSERT INTO txs VALUES (?, ?)", (hashlib.sha256(tx).digest(), location))
        db.execute("COMMIT")
        latencies.append(time.perf_counter() - start)
        hashes.append(block_hash)
    start = time.perf_counter()
    for block in chain:
        Block.decode(
            db.execute("SELECT data FROM blocks WHERE height=?", (block.height,)).fetchone()[0]
        )
    by_height = (time.perf_counter() - start) / len(chain)
    start = time.perf_counter()
    for block_hash in hashes:
        height = db.execute("SELECT height FROM hashes WHERE hash=?", (block_hash,)).fetchone()[0]
        Block.decode(db.execute("SELECT data FROM blocks WHERE height=?", (height,)).fetchone()[0])
    by_hash = (time.perf_counter() - start) / len(chain)
    db.close()
    return summary(latencies, by_height, by_hash)


def summary(latencies: list[float], by_height: float, by_hash: float) -> dict[str, float]:
    latencies.sort()
    return {
        "commit_p50_ms": round(latencies[len(latencies) // 2] * 1e3, 3),
        "commit_p99_ms": round(latencies[int(0.99 * len(latencies))] * 1e3, 3),
        "blocks_per_second": round(len(latencies) / sum(latencies), 1),
        "read_by_height_us": round(by_height * 1e6, 1),
        "read_by_hash_us": round(by_hash * 1e6, 1),
    }


def block_store_bench(rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size, count in ((1024, 2000), (100 * 1024, 300)):
        chain = blocks(count, size)
        contestants = (
            ("swarmguard (LMDB)", ours),
            ("swarmguard (LMDB), keep_recent=100", ours_pruned),
            ("SQLite", sqlite),
        )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in contestants}
        for _ in range(rounds):
            for name, func in contestants:
                directory = Path(tempfile.mkdtemp(prefix="swarmguard-bench-"))
                try:
                    runs[name].append(func(directory / "db", chain))
                finally:
                    shutil.rmtree(directory, ignore_errors=True)
        results[f"{size // 1024} KB blocks x {count}"] = {
            name: {key: statistics.median(r[key] for r in values) for key in values[0]}
            for name, values in runs.items()
        }
    return results


def snapshot_bench(accounts: int) -> dict[str, Any]:
    rng = random.Random(1)
    leaves = sorted(
        (
            hashlib.sha256(b"account %d" % i).digest(),
            rng.randrange(10**12).to_bytes(8, "big")  # balance
            + rng.randrange(10**4).to_bytes(8, "big")  # nonce
            + rng.randbytes(32),  # public key
        )
        for i in range(accounts)
    )
    start = time.perf_counter()
    tree = StateTree.from_leaves(leaves)
    build = time.perf_counter() - start
    start = time.perf_counter()
    manifest, chunks = create_snapshot(tree, CHAIN, 1)
    create = time.perf_counter() - start
    raw = sum(manifest.chunk_lengths)
    compressed = sum(len(chunk) for chunk in chunks)
    start = time.perf_counter()
    restored = restore(manifest, tree.root, chunks.__getitem__, workers=2)
    restore_seconds = time.perf_counter() - start
    assert restored.root == tree.root
    return {
        "accounts": accounts,
        "chunks": len(chunks),
        "raw_mib": round(raw / 2**20, 1),
        "compressed_mib": round(compressed / 2**20, 1),
        "size_reduction_percent": round(100 * (1 - compressed / raw), 1),
        "build_tree_seconds": round(build, 2),
        "create_seconds": round(create, 2),
        "restore_seconds": round(restore_seconds, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    report = {
        "python": platform.python_version(),
        "block_store": block_store_bench(args.rounds),
        "snapshots": snapshot_bench(args.accounts),
    }
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
