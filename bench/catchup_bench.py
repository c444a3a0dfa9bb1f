"""Catch-up benchmark: verify and store 100,000 blocks (10 transactions and a 7-validator commit
certificate each), sequentially and with all cores, in one run.

Targets (issue 4): verify + store 100,000 blocks in <= 60 s on this 2-core machine; parallel
verification >= 1.7x faster than sequential.

Run: ``.venv/bin/python bench/catchup_bench.py [--blocks N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from _harness import emit
from swarmguard.crypto import SigningKey
from swarmguard.storage.blockstore import Block, BlockStore
from swarmguard.storage.catchup import Header, verify_range
from swarmguard.storage.merkle import merkle_root
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import PHASE_FINAL, SignedVote
from swarmguard.validators.sets import validators_hash

CHAIN = "bench"
KEYS = [SigningKey(bytes([n]) * 32) for n in range(1, 8)]
VALIDATORS = [(key.public_key.raw, 10) for key in KEYS]


def make_chain(count: int) -> list[Block]:
    blocks = []
    previous = bytes(32)
    for height in range(1, count + 1):
        transactions = tuple(os.urandom(100) for _ in range(10))
        header = Header(
            height,
            height,
            previous,
            merkle_root(list(transactions)),
            bytes(32),
            validators_hash(VALIDATORS),
            validators_hash(VALIDATORS),
            bytes(20),
        ).encode()
        block_hash = Header.decode(header).hash(CHAIN)
        signatures = []
        for index, key in enumerate(KEYS):
            vote = SignedVote(height, 0, PHASE_FINAL, block_hash, key.public_key.raw, bytes(64))
            signatures.append((index, key.sign(vote.sign_bytes(CHAIN))))
        certificate = CommitCertificate(height, 0, block_hash, tuple(signatures)).encode()
        blocks.append(Block(height, header, transactions, certificate))
        previous = block_hash
    return blocks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--json")
    args = parser.parse_args()
    start = time.perf_counter()
    blocks = make_chain(args.blocks)
    generate = time.perf_counter() - start
    processes = os.cpu_count() or 1
    timings = {}
    for name, workers in (("sequential", 1), (f"parallel ({processes} processes)", processes)):
        start = time.perf_counter()
        verify_range(CHAIN, blocks, bytes(32), VALIDATORS, processes=workers)
        timings[name] = time.perf_counter() - start
    directory = Path(tempfile.mkdtemp(prefix="swarmguard-catchup-"))
    try:
        start = time.perf_counter()
        with BlockStore(directory / "db", CHAIN) as store:
            for offset in range(0, len(blocks), 1000):
                store.commit_many([(block, {}) for block in blocks[offset : offset + 1000]])
        store_seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    parallel = timings[f"parallel ({processes} processes)"]
    report = {
        "python": platform.python_version(),
        "cores": processes,
        "blocks": args.blocks,
        "signatures_per_block": len(KEYS),
        "generate_seconds": round(generate, 1),
        "verify_seconds": {name: round(value, 1) for name, value in timings.items()},
        "parallel_speedup": round(timings["sequential"] / parallel, 2),
        "store_seconds_batches_of_1000": round(store_seconds, 1),
        "verify_and_store_seconds": round(parallel + store_seconds, 1),
        "targets": {"verify_and_store_seconds_max": 60, "parallel_speedup_min": 1.7},
    }
    report["pass"] = report["verify_and_store_seconds"] <= 60 and report["parallel_speedup"] >= 1.7
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
