"""Load for ``swarmguard bench``, run as its own process: signed transfers submitted in batches
over gRPC, commit times read from a block stream.

Each sender (an operator key of the testnet) submits to one node, one ``SubmitBatch`` call at a
time, with consecutive nonces, so the mempool's check state admits them in order; a refused
transaction (a full pool) is sent again from its nonce on. The load is either closed
(``--inflight``: at most that many sent and not yet committed, which measures throughput without
an ever-growing queue) or open (``--rate``: a fixed offered rate, which measures latency below
capacity). Transactions are signed before the clock starts, so the client's signing does not
compete with the nodes for these cores. The clock starts when a batch is handed to gRPC and stops
when a block holding the transaction arrives on the ``StreamBlocks`` of the first node.
Writes a JSON summary to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import grpc

from swarmguard.api.v1 import node_pb2, node_pb2_grpc
from swarmguard.crypto import SigningKey, load_key_file
from swarmguard.crypto.hashing import Domain, address_of, hasher
from swarmguard.node.transactions import Transaction, Transfer

__all__ = ["main"]

_SINK = bytes(range(20))  # every transfer pays this address
TRANSFER_BYTES = 250
"""The size of the issue's benchmark transfers (a memo pads ours to it)."""
MEMO = bytes(TRANSFER_BYTES - 138)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class _Sender:
    """One key's transactions, signed ahead, sent in nonce order from the account's next
    nonce (a network that already ran, e.g. one ``swarmguard up`` resumed, has used some)."""

    def __init__(self, key: SigningKey, chain_id: str, count: int, first_nonce: int = 0) -> None:
        self.key, self.chain_id, self.first_nonce = key, chain_id, first_nonce
        self.transactions: list[bytes] = []
        self.hashes: list[bytes] = []  # each transaction's id, computed with its signature
        self._hash = hasher(Domain.TRANSACTION, chain_id=chain_id)
        self.next = 0  # index (nonce - first_nonce) of the next transaction to send
        self._sign(count)

    def _sign(self, count: int) -> None:
        start = self.first_nonce + len(self.transactions)
        signed = [
            Transaction.sign(self.key, self.chain_id, nonce, Transfer(_SINK, 1, MEMO)).encode()
            for nonce in range(start, start + count)
        ]
        self.transactions += signed
        self.hashes += map(self._hash, signed)

    def take(self, count: int) -> tuple[list[bytes], list[bytes]]:
        """The next ``count`` transactions and their hashes."""
        if self.next + count > len(self.transactions):
            self._sign(max(count, 1000))  # ran out of presigned ones: the clock is running
        end = self.next + count
        return self.transactions[self.next : end], self.hashes[self.next : end]


class _Load:
    """The run's shared record: when each transaction was sent and when it committed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sent: dict[bytes, float] = {}
        self.committed: dict[bytes, float] = {}
        self.progress = asyncio.Event()  # set whenever a block arrives
        self.recent: list[float] = []  # commit latencies since the last report
        self.refused = 0
        self.tx_hash = hasher(Domain.TRANSACTION, chain_id=args.chain_id)  # the store's ids

    async def watch(self, node: str, ready: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(node) as channel:
            stub: Any = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
            start = (await stub.GetStatus(node_pb2.GetStatusRequest())).height + 1
            stream = stub.StreamBlocks(node_pb2.StreamBlocksRequest(from_height=start))
            ready.set()
            async for block in stream:
                now = time.perf_counter()
                for transaction in block.transactions:
                    key = self.tx_hash(transaction)
                    self.committed.setdefault(key, now)
                    if key in self.sent:
                        self.recent.append(now - self.sent[key])
                self.progress.set()

    async def report(self, path: Path) -> None:
        """Once a second: committed so far and the median commit latency of the last second
        (``swarmguard up`` shows them live)."""
        while True:
            await asyncio.sleep(1.0)
            recent, self.recent = sorted(self.recent), []
            median = recent[len(recent) // 2] * 1000 if recent else None
            progress = {"committed": len(self.committed), "p50_ms": median}
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(progress))
            temporary.replace(path)

    async def send(
        self, sender: _Sender, node: str, deadline: float, share: float, offset: float = 0.0
    ) -> None:
        """``share``: this sender's part of the offered rate (open loop) or of the in-flight
        limit (closed loop); ``offset``: seconds after the others it starts (open loop), so
        that the senders' batches interleave instead of arriving together."""
        args, committed = self.args, self.committed
        async with grpc.aio.insecure_channel(node) as channel:
            stub: Any = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
            mine: list[bytes] = []  # hashes this sender has had accepted
            done = 0  # how many of them are known committed
            pace = time.perf_counter() + offset
            while (now := time.perf_counter()) < deadline:
                if args.rate:
                    pace += args.batch / share
                    if pace > now:
                        await asyncio.sleep(pace - now)
                else:
                    while done < len(mine) and mine[done] in committed:
                        done += 1
                    if len(mine) - done + args.batch > share:
                        self.progress.clear()
                        await self.progress.wait()
                        continue
                batch, hashes = sender.take(args.batch)
                submitted = time.perf_counter()
                answer = await stub.SubmitBatch(node_pb2.SubmitBatchRequest(transactions=batch))
                for transaction_hash, result in zip(hashes, answer.results, strict=True):
                    if result.admission not in ("accepted", "duplicate"):
                        self.refused += 1
                        break  # this nonce again next time (later ones were refused too)
                    self.sent.setdefault(transaction_hash, submitted)
                    mine.append(transaction_hash)
                    sender.next += 1


async def _next_nonces(node: str, keys: list[SigningKey]) -> list[int]:
    """Each sender account's next nonce, as the node's committed state has it."""
    nonces = []
    async with grpc.aio.insecure_channel(node) as channel:
        stub: Any = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
        for key in keys:
            request = node_pb2.QueryRequest(path="account", data=address_of(key.public_key.raw))
            answer = await stub.Query(request, wait_for_ready=True, timeout=60)
            nonces.append(int.from_bytes(answer.value[8:16], "big") if answer.code == 0 else 0)
    return nonces


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    nodes = args.api.split(",")
    keys = [SigningKey(load_key_file(path)[1]) for path in args.keys.split(",")]
    presign = int((args.rate or args.presign_rate) * args.seconds * 1.1 / len(keys)) + args.batch
    presign = min(presign, args.presign_max)
    nonces = await _next_nonces(nodes[0], keys)
    senders = [
        _Sender(key, args.chain_id, presign, nonce) for key, nonce in zip(keys, nonces, strict=True)
    ]
    load = _Load(args)
    ready = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(load.watch(nodes[0], ready))
    await ready.wait()
    started = time.perf_counter()
    cpu = time.process_time()
    deadline = started + args.seconds
    share = args.rate / len(senders) if args.rate else max(args.inflight / len(senders), args.batch)
    interval = args.batch / share if args.rate else 0.0  # between one sender's batches
    reporter = None
    if args.progress:
        reporter = asyncio.get_running_loop().create_task(load.report(Path(args.progress)))
    await asyncio.gather(
        *(
            load.send(sender, nodes[i % len(nodes)], deadline, share, i * interval / len(senders))
            for i, sender in enumerate(senders)
        )
    )
    if reporter is not None:
        reporter.cancel()
    await asyncio.sleep(args.drain)
    watcher.cancel()
    cpu = time.process_time() - cpu
    sent, committed = load.sent, load.committed
    latencies = [committed[h] - sent[h] for h in sent if h in committed]
    in_window = [t for t in committed.values() if started <= t <= deadline]
    return {
        "sent": len(sent),
        "committed": len(latencies),
        "refused": load.refused,
        "seconds": args.seconds,
        "throughput": len(in_window) / args.seconds,
        "p50": _percentile(latencies, 0.5),
        "p99": _percentile(latencies, 0.99),
        "mean": statistics.fmean(latencies) if latencies else 0.0,
        "client_cpu": cpu,  # this process's CPU seconds from the first send to the end
        "bytes": len(senders[0].transactions[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", required=True, help="comma-separated gRPC addresses")
    parser.add_argument("--keys", required=True, help="comma-separated sender key files")
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--drain", type=float, default=5.0, help="wait for the last commits")
    parser.add_argument("--rate", type=float, default=0.0, help="offered tx/s (0: closed loop)")
    parser.add_argument(
        "--inflight", type=int, default=6000, help="closed loop: most sent, not yet committed"
    )
    parser.add_argument("--batch", type=int, default=100, help="transactions per call")
    parser.add_argument(
        "--presign-rate", type=float, default=6000.0, help="closed loop: tx/s to sign ahead"
    )
    parser.add_argument(
        "--presign-max", type=int, default=1_000_000, help="most signed ahead per sender"
    )
    parser.add_argument("--progress", help="write live progress (JSON) here every second")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    summary = asyncio.run(_run(args))
    Path(args.out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
