"""Load for ``swarmguard bench``, run as its own process: signed transfers streamed to the nodes'
gRPC APIs, commit times read from a block stream.

Each sender (an operator key of the testnet) has its own stream to one node and sends its
transfers with consecutive nonces, so the mempool's check state admits them in order; the clock
starts when a transaction is handed to the stream and stops when a block holding it arrives on
the ``StreamBlocks`` of the first node. Writes a JSON summary to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from swarmguard.api.v1 import node_pb2, node_pb2_grpc
from swarmguard.crypto import SigningKey, load_key_file
from swarmguard.crypto.hashing import Domain, digest
from swarmguard.node.transactions import Transaction, Transfer

__all__ = ["main"]

_SINK = bytes(range(20))  # every transfer pays this address


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    nodes = args.api.split(",")
    keys = [SigningKey(load_key_file(path)[1]) for path in args.keys.split(",")]
    sent: dict[bytes, float] = {}
    committed: dict[bytes, float] = {}
    refused = 0

    def tx_hash(transaction: bytes) -> bytes:  # the id the block store and mempool use
        return digest(Domain.TRANSACTION, transaction, chain_id=args.chain_id)

    async def watch() -> None:
        async with grpc.aio.insecure_channel(nodes[0]) as channel:
            stub: Any = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
            start = (await stub.GetStatus(node_pb2.GetStatusRequest())).height + 1
            async for block in stub.StreamBlocks(node_pb2.StreamBlocksRequest(from_height=start)):
                now = time.perf_counter()
                for transaction in block.transactions:
                    committed.setdefault(tx_hash(transaction), now)

    async def send(key: SigningKey, node: str, deadline: float) -> None:
        nonlocal refused
        transactions = (
            Transaction.sign(key, args.chain_id, nonce, Transfer(_SINK, 1)).encode()
            for nonce in range(10**9)
        )

        async def requests() -> AsyncIterator[Any]:
            for transaction in transactions:
                if time.perf_counter() >= deadline:
                    return
                sent[tx_hash(transaction)] = time.perf_counter()
                yield node_pb2.SubmitTransactionRequest(transaction=transaction)
                if args.rate:
                    await asyncio.sleep(len(keys) / args.rate)

        async with grpc.aio.insecure_channel(node) as channel:
            stub: Any = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
            async for answer in stub.SubmitTransactions(requests()):
                if answer.admission != "accepted":
                    refused += 1

    watcher = asyncio.get_running_loop().create_task(watch())
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    deadline = started + args.seconds
    await asyncio.gather(
        *(send(key, nodes[i % len(nodes)], deadline) for i, key in enumerate(keys))
    )
    await asyncio.sleep(args.drain)
    watcher.cancel()
    latencies = [committed[h] - sent[h] for h in sent if h in committed]
    window = max(committed.values(), default=started) - started
    done = [t for t in committed.values() if t >= started]
    return {
        "sent": len(sent),
        "committed": len(latencies),
        "refused": refused,
        "seconds": window,
        "throughput": len(done) / window if window > 0 else 0.0,
        "p50": _percentile(latencies, 0.5),
        "p99": _percentile(latencies, 0.99),
        "mean": statistics.fmean(latencies) if latencies else 0.0,
        "bytes": len(Transaction.sign(keys[0], args.chain_id, 0, Transfer(_SINK, 1)).encode()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", required=True, help="comma-separated gRPC addresses")
    parser.add_argument("--keys", required=True, help="comma-separated sender key files")
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--drain", type=float, default=5.0, help="wait for the last commits")
    parser.add_argument("--rate", type=float, default=0.0, help="total tx/s (0: as fast as)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    summary = asyncio.run(_run(args))
    Path(args.out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
