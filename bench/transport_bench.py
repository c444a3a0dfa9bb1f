"""The p2p transport on loopback: 300-byte frames from one node to another over mutual TLS 1.3.

Run: ``.venv/bin/python bench/transport_bench.py [--frames N]``. Both nodes run in this process
on one event loop (so CPU per frame covers both ends: framing, TLS and the handler), in one run:

- joined: the transport as configured, one writer task joining every queued frame into one
  write of up to 1 MiB;
- one write per frame: the same transport with ``write_bytes_max`` below a frame, the
  baseline the issue measured streams at (160-180k messages/s with one write each).

Reported: frames per second, CPU microseconds per frame (process time), writes, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

from swarmguard.node.identity import NodeIdentity
from swarmguard.node.transport import Channel, Peer, Transport, TransportConfig

PAYLOAD = bytes(300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(frames: int, config: TransportConfig, directory: Path) -> tuple[float, float, int]:
    identities = [NodeIdentity(bytes([i + 1]) * 32) for i in range(2)]
    ports = [free_port(), free_port()]
    received = 0
    done = asyncio.Event()

    def on_frame(validator: int, channel: Channel, payload: bytes) -> None:
        nonlocal received
        received += 1
        if received == frames:
            done.set()

    transports = []
    for i in range(2):
        other = 1 - i
        peer = Peer(other, "127.0.0.1", ports[other], identities[other].certificate_pem())
        transport = Transport(
            identity=identities[i],
            host="127.0.0.1",
            port=ports[i],
            peers=[peer],
            on_frame=on_frame if i == 1 else (lambda v, c, p: None),
            tls_dir=directory / f"n{i}",
            config=config,
        )
        await transport.start()
        transports.append(transport)
    sender = transports[0]
    while not sender.stats(1).connected:
        await asyncio.sleep(0.01)
    started, cpu = time.perf_counter(), time.process_time()
    sent = 0
    while sent < frames:  # in bursts, yielding so the writer runs, as a node loop would
        for _ in range(min(1000, frames - sent)):
            sender.send(1, Channel.CONSENSUS, PAYLOAD)
        sent += min(1000, frames - sent)
        await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 120)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    writes = sender.stats(1).writes
    for transport in transports:
        await transport.close()
    return frames / elapsed, cpu / frames * 1e6, writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        joined = asyncio.run(run(args.frames, TransportConfig(), Path(directory)))
        single = asyncio.run(run(args.frames, TransportConfig(write_bytes_max=1), Path(directory)))
    print(f"## Transport, {args.frames} frames of 300 bytes, loopback, mutual TLS 1.3")
    print("| writer | frames/s | CPU us/frame (both ends) | writes |")
    print("|---|---|---|---|")
    for name, (rate, cpu, writes) in (("joined", joined), ("one write per frame", single)):
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {writes:,} |")
    print(f"\njoined / one write per frame: {joined[0] / single[0]:.1f}x the throughput")


if __name__ == "__main__":
    main()
