"""``swarmguard up``: a local validator network in one command, with a live terminal view.

It writes a testnet into the home directory (once: an existing network is reused, so a second
``up`` resumes the same chain), starts one ``swarmguard node`` process per validator, optionally
a load of signed transfers from a separate client process (``load``: transactions per second,
``swarmguard.api.loadgen``), and prints a line per second: each validator's height, blocks and
committed transactions per second, the median commit latency, and the share of heights decided
on the fast path, read from the nodes' JSON logs. Ctrl-C (or ``duration``) stops them all with
SIGTERM.

``spawn_node`` and ``stop_processes`` are the one way this code base starts and stops node
processes (``swarmguard bench`` and the process tests use them too).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swarmguard.node.config import write_testnet

__all__ = ["free_ports", "latest_progress", "run_local_network", "spawn_node", "stop_processes"]


PICKED_PORT_LOW = 10_000
"""``free_ports`` picks from here up to the kernel's ephemeral range."""


def _ephemeral_low() -> int:
    """Where the kernel's ephemeral ports start (32768 unless configured otherwise)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now, for nodes about to be started. Picked below the
    ephemeral range: a port the kernel handed out for ``bind(0)`` is one it may also hand to
    any outgoing connection (a node dialing its peers) before our node binds it. All are held
    together while picking, so none repeats."""
    high = _ephemeral_low()
    if high - PICKED_PORT_LOW < 4 * count:
        raise OSError(f"no room below the ephemeral range ({high}) for {count} ports")
    chance = random.SystemRandom()
    held: list[socket.socket] = []
    try:
        for _ in range(100 * count):
            if len(held) == count:
                break
            candidate = socket.socket()
            try:
                candidate.bind(("127.0.0.1", chance.randrange(PICKED_PORT_LOW, high)))
            except OSError:  # in use (or just picked): another one
                candidate.close()
                continue
            held.append(candidate)
        if len(held) < count:
            raise OSError(f"found only {len(held)} of {count} free ports")
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def spawn_node(home: Path) -> subprocess.Popen[bytes]:
    """``swarmguard node --home home`` as a child process, logging to ``home/node.log``."""
    with (home / "node.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "swarmguard.cli", "node", "--home", str(home)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM each, then wait; whatever has not exited by ``timeout`` is killed."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def latest_progress(log: Path) -> dict[str, Any]:
    """The last height entry a node logged (empty before its first block)."""
    latest: dict[str, Any] = {}
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


def _start_load(homes: list[Path], rate: float, duration: float | None) -> subprocess.Popen[bytes]:
    from swarmguard.node.config import load_home  # noqa: PLC0415

    configs = [load_home(home) for home in homes]
    apis = [f"{c.api[0]}:{c.api[1]}" for c in configs if c.api is not None]
    with (homes[0].parent / "load.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "swarmguard.api.loadgen",
                "--api",
                ",".join(apis),
                "--keys",
                ",".join(str(home / "operator_key.json") for home in homes),
                "--chain-id",
                configs[0].chain_id,
                "--seconds",
                str(duration or 365 * 86400),
                "--rate",
                str(rate),
                "--batch",
                "10",
                "--presign-max",
                "2000",
                "--progress",
                str(homes[0].parent / "load-progress.json"),
                "--out",
                str(homes[0].parent / "load.json"),
            ],
            stdout=log,
            stderr=log,
        )


def _latency(home: Path, entries: list[dict[str, Any]]) -> str:
    """The load's median commit latency over the last second (submission to a committed
    block), or without load the nodes' median time per height."""
    try:
        progress = json.loads((home / "load-progress.json").read_text())
    except (OSError, ValueError):
        progress = None
    if progress is not None and progress.get("p50_ms") is not None:
        return f"commit P50 {progress['p50_ms']:5.0f} ms"
    heights = [e["commit_ms"] for e in entries if e.get("commit_ms") is not None]
    return f"height P50 {statistics.median(heights):5.0f} ms" if heights else "height P50     - ms"


def _report_exits(
    nodes: Sequence[subprocess.Popen[bytes]], homes: Sequence[Path], told: set[int]
) -> bool:
    """Say once why each node that exited did (the last line of its log: a start-up refusal
    names the cause, say a port in use); True when none is left. One node down is something
    to watch, not a reason to stop the others: the network goes on without it."""
    for index, process in enumerate(nodes):
        code = process.poll()
        if code is not None and index not in told:
            told.add(index)
            lines = (homes[index] / "node.log").read_text(errors="replace").strip().splitlines()
            why = lines[-1] if lines else "(nothing logged)"
            print(f"node{index} exited with code {code}: {why}", file=sys.stderr, flush=True)
    return len(told) == len(nodes)


def run_local_network(
    home: Path, validators: int, base_port: int, duration: float | None = None, load: float = 0.0
) -> int:
    homes = sorted(home.glob("node*"))
    for node_home in homes:  # resumed: this run's view must not start from the last run's
        log = node_home / "node.log"
        if log.exists():
            log.replace(node_home / "node.log.1")
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
    processes = [spawn_node(node_home) for node_home in homes]
    nodes = list(processes)
    print(f"{len(homes)} validators under {home}; logs in node*/node.log. Ctrl-C stops.")
    started = time.monotonic()
    previous = (started, 0, 0)
    told: set[int] = set()
    try:
        if load:
            while max(latest_progress(h / "node.log").get("height", 0) for h in homes) < 2:
                if _report_exits(nodes, homes, told):
                    return 1
                time.sleep(0.2)
            processes.append(_start_load(homes, load, duration))
            print(f"load: {load:.0f} signed transfers/s from a separate client process")
        while duration is None or time.monotonic() - started < duration:
            time.sleep(1.0)
            if _report_exits(nodes, homes, told):
                return 1
            entries = [latest_progress(node_home / "node.log") for node_home in homes]
            heights = [e.get("height", 0) for e in entries]
            fast = sum(e.get("fast", 0) for e in entries)
            decided = sum(e.get("fast", 0) + e.get("slow", 0) for e in entries)
            transactions = max(e.get("transactions", 0) for e in entries)
            now, top = time.monotonic(), max(heights)
            elapsed = now - previous[0]
            blocks, tps = (top - previous[1]) / elapsed, (transactions - previous[2]) / elapsed
            previous = (now, top, transactions)
            latency = _latency(home, entries)
            share = f"{fast / decided:.0%}" if decided else "-"
            dead = [i for i, p in enumerate(processes) if p.poll() is not None]
            print(
                f"heights {heights}  {blocks:4.1f} blocks/s  {max(tps, 0):6.0f} tx/s  "
                f"{latency}  fast path {share}" + (f"  exited: {dead}" if dead else ""),
                flush=True,
            )
    except KeyboardInterrupt:
        pass
    finally:
        stop_processes(processes)
    return 0
