"""The block store's commit under a loaded node's blocks: the transaction index written with
every block against written in batches (what the store does), in one run, alternating.

Each round commits BLOCKS blocks of TRANSACTIONS random 250-byte transactions into a fresh
store (durable LMDB commits, hashes handed in as a node's mempool does) and reports CPU and wall
time per transaction and bytes written to disk per transaction. "Every block" sets the store's
batch limits to one block, which writes each block's entries in its own commit as schema 2 did.

Run: ``.venv/bin/python bench/store_commit_bench.py [--blocks 240] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from swarmguard.storage import blockstore
from swarmguard.storage.blockstore import Block, BlockStore

TRANSACTIONS = 830
"""About a block of the 4-validator `swarmguard bench` at capacity."""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def one_round(blocks: list[Block], batched: bool) -> tuple[float, float, float]:
    """(CPU us, wall us, bytes written) per transaction."""
    saved = blockstore.INDEX_BLOCKS, blockstore.INDEX_ENTRIES
    if not batched:
        blockstore.INDEX_BLOCKS = blockstore.INDEX_ENTRIES = 1
    directory = tempfile.mkdtemp(prefix="store-commit-")
    try:
        store = BlockStore(directory, "bench")
        hashes = [[store.transaction_hash(t) for t in block.transactions] for block in blocks]
        cpu, wall, written = _cpu(), time.perf_counter(), _written()
        for block, known in zip(blocks, hashes, strict=True):
            store.commit(block, {b"k%d" % (block.height % 50): b"v"}, transaction_hashes=known)
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
        written = _written() - written
        store.close()
    finally:
        blockstore.INDEX_BLOCKS, blockstore.INDEX_ENTRIES = saved
        shutil.rmtree(directory, ignore_errors=True)
    count = len(blocks) * TRANSACTIONS
    return cpu / count * 1e6, wall / count * 1e6, written / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(1)
    blocks = [
        Block(h, b"header %d" % h, tuple(rng.randbytes(250) for _ in range(TRANSACTIONS)), b"c")
        for h in range(1, args.blocks + 1)
    ]
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for batched in (False, True):
            results[batched].append(one_round(blocks, batched))
    print(
        f"## Block store commit, {args.blocks} blocks of {TRANSACTIONS} transactions "
        f"(250 bytes), median of {args.rounds} rounds\n"
    )
    print("| transaction index | CPU us/tx | wall us/tx | bytes written/tx |")
    print("|---|---|---|---|")
    medians = {}
    for batched, label in ((False, "with every block"), (True, "in batches (the store)")):
        cpu, wall, written = (statistics.median(r[i] for r in results[batched]) for i in range(3))
        medians[batched] = cpu, wall, written
        print(f"| {label} | {cpu:.1f} | {wall:.1f} | {written:,.0f} |")
    every, batches = medians[False], medians[True]
    print(
        f"\nbatched / every block: CPU {batches[0] / every[0]:.2f}x, wall "
        f"{batches[1] / every[1]:.2f}x, bytes written {batches[2] / max(every[2], 1):.2f}x"
    )


if __name__ == "__main__":
    main()
