"""``swarmguard up``: a local validator network in one command, with a live terminal view.

It writes a testnet into the home directory (once: an existing network is reused, so a second
``up`` resumes the same chain), starts one ``swarmguard node`` process per validator, and prints
a line per second: each validator's height, the chain's blocks per second, and the share of
heights decided on the fast path, read from the nodes' JSON logs. Ctrl-C (or ``duration``)
stops them all with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from swarmguard.node.config import write_testnet

__all__ = ["run_local_network"]


def _latest(log: Path) -> dict[str, int]:
    """The last height entry a node logged (empty before its first block)."""
    latest: dict[str, int] = {}
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return latest
    for line in lines:
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "height":
                latest = entry
    return latest


def run_local_network(
    home: Path, validators: int, base_port: int, duration: float | None = None
) -> int:
    homes = sorted(home.glob("node*"))
    if not homes:
        homes = write_testnet(
            home,
            validators,
            base_port=base_port,
            metrics_ports=[base_port + 1000 + i for i in range(validators)],
            api_ports=[base_port + 2000 + i for i in range(validators)],
            http_ports=[base_port + 3000 + i for i in range(validators)],
            genesis_time=int(time.time()),
        )
    processes = []
    for node_home in homes:
        log = (node_home / "node.log").open("ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "swarmguard.cli", "node", "--home", str(node_home)],
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )
    print(f"{len(homes)} validators under {home}; logs in node*/node.log. Ctrl-C stops.")
    started = time.monotonic()
    previous = (started, 0)
    try:
        while duration is None or time.monotonic() - started < duration:
            time.sleep(1.0)
            entries = [_latest(node_home / "node.log") for node_home in homes]
            heights = [e.get("height", 0) for e in entries]
            fast = sum(e.get("fast", 0) for e in entries)
            decided = sum(e.get("fast", 0) + e.get("slow", 0) for e in entries)
            now, top = time.monotonic(), max(heights)
            rate = (top - previous[1]) / (now - previous[0])
            previous = (now, top)
            share = f"{fast / decided:.0%}" if decided else "-"
            dead = [i for i, p in enumerate(processes) if p.poll() is not None]
            print(
                f"heights {heights}  {rate:4.1f} blocks/s  fast path {share}"
                + (f"  exited: {dead}" if dead else ""),
                flush=True,
            )
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0
