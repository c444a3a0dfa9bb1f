"""The built-in ledger's block cost against the number of accounts: it must not grow with it.

For each account count, a ledger starts from a genesis with that many funded accounts (plus
the senders and one validator), then runs BLOCKS blocks of TRANSFERS signed transfers between
the senders and fresh recipients. Signatures are verified before the clock starts
(``process_proposal``, as a node does when it votes), so what is timed is what a node does when
a block is decided: ``finalize_block`` (execution, the changed account leaves, the validator
state leaf, the new tree version) and ``commit``. Reports the median per block and the ratio of
each count to the smallest, which should grow only with the state tree's depth (the logarithm
of the number of accounts). Ledger version 1 listed every account and re-encoded every balance
in every block: 576.6 ms per block at 100,000 accounts against 17.5 ms at 1,000.

Then the smallest count again on a chain as old as a full evidence window (``--age``, the
default ``evidence_max_age_blocks``): ledger version 1 re-encoded every block time it kept in
every block.

Run: ``.venv/bin/python bench/ledger_bench.py [--accounts 1000,100000] [--blocks 20]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from swarmguard.crypto import SigningKey, ecvrf
from swarmguard.crypto.hashing import address_of
from swarmguard.node.abci import BlockRequest
from swarmguard.node.ledger import LedgerApp
from swarmguard.node.transactions import Transaction, Transfer

CHAIN = "ledger-bench"
TRANSFERS = 200
"""Transactions per block (a block of the 7-validator `swarmguard bench` at 50 ms RTT)."""


def _genesis(accounts: int, senders: list[SigningKey], operator: SigningKey) -> bytes:
    funded = [address_of(k.public_key.raw) for k in senders]
    return json.dumps(
        {
            "accounts": [{"address": a.hex(), "balance": 10**12} for a in funded]
            + [
                {"address": (i + 1).to_bytes(20, "big").hex(), "balance": 1}
                for i in range(accounts)
            ]
            + [{"address": address_of(operator.public_key.raw).hex(), "balance": 10**6}],
            "validators": [
                {
                    "operator": address_of(operator.public_key.raw).hex(),
                    "consensus_key": operator.public_key.raw.hex(),
                    "vrf_key": ecvrf.public_key(b"v" * 32).hex(),
                    "self_bond": 1_000,
                }
            ],
        }
    ).encode()


def _age(app: LedgerApp, heights: int) -> None:
    """Make the chain ``heights`` blocks old as far as the evidence window goes: its block
    times fill the window (the leaves are not written: a bench of the per-block work only)."""
    manager = app.manager
    assert manager is not None
    for height in range(1, heights + 1):
        manager.block_times[height] = height
    manager.block_times.take_changed()
    manager.staking.height = manager.staking.time = app.height = heights


def run(accounts: int, blocks: int, age: int = 0) -> tuple[float, float]:
    """(median seconds per block, seconds for the genesis)."""
    senders = [SigningKey((i + 1).to_bytes(32, "big")) for i in range(TRANSFERS)]
    operator = SigningKey(b"o" * 32)
    app = LedgerApp(CHAIN)
    started = time.perf_counter()
    app.init_chain(_genesis(accounts, senders, operator))
    genesis = time.perf_counter() - started
    _age(app, age)
    key = operator.public_key.raw
    timings = []
    for height in range(age + 1, age + blocks + 1):
        recipients = [
            (accounts + height * TRANSFERS + i).to_bytes(20, "big") for i in range(TRANSFERS)
        ]
        transactions = tuple(
            Transaction.sign(sender, CHAIN, height - age - 1, Transfer(to, 1)).encode()
            for sender, to in zip(senders, recipients, strict=True)
        )
        assert app.process_proposal(height, transactions)  # verifies, as a voting node does
        request = BlockRequest(height, height, transactions, key, (key,), (), (key,))
        started = time.perf_counter()
        result = app.finalize_block(request)
        app.commit()
        timings.append(time.perf_counter() - started)
        assert all(r.code == 0 for r in result.results)
    return statistics.median(timings), genesis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", default="1000,100000")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument(
        "--age", type=int, default=100_000, help="heights in a full evidence window (default's)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.accounts.split(",")]
    results = {n: run(n, args.blocks) for n in counts}
    aged = run(counts[0], args.blocks, args.age)[0]
    base = results[counts[0]][0]
    print(f"ledger: {TRANSFERS} transfers per block, median of {args.blocks} blocks")
    print("| accounts | finalize + commit ms/block | us/transfer | vs smallest | genesis s |")
    print("|---|---|---|---|---|")
    for n, (seconds, genesis) in results.items():
        print(
            f"| {n:,} | {seconds * 1e3:.2f} | {seconds / TRANSFERS * 1e6:.1f} "
            f"| {seconds / base:.2f}x | {genesis:.1f} |"
        )
    print(
        f"\n{counts[0]:,} accounts, the chain {args.age:,} blocks old (a full evidence window of "
        f"block times): {aged * 1e3:.2f} ms/block, {aged / base:.2f}x the new chain"
    )


if __name__ == "__main__":
    main()
