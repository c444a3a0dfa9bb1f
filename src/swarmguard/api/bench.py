"""``swarmguard bench``: a local network under load, measured from a separate client process.

For each case (validators, injected round trip, fast path on or off, offered load) it writes a
testnet, starts one ``swarmguard node`` process per validator, waits for blocks, runs
``swarmguard.api.loadgen`` as its own process (presigned 250-byte transfers submitted in
batches over gRPC, commit times from a block stream), stops the nodes, and reports throughput,
commit latency P50/P99 and CPU per committed transaction (nodes: per node; client). Capacity is
measured with a closed loop (a bounded number in flight), latency with an open loop at a rate
below capacity, since latency at saturation is only queueing. In the same run it measures one
Ed25519 verification here, right before and right after every case, for the
signature-verification bound the issue sets: cores / (validators x one verify) transactions per
second, since every validator verifies every transaction once. Each case's bound uses the faster
of its two measurements (the strictest): this shared machine's speed drifts by a quarter between
runs minutes apart (the client's fixed work per transaction moves with it), so a bound measured
once per run would compare a case with a machine it did not run on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmguard.crypto import SigningKey

__all__ = ["BenchCase", "run_bench"]

THROUGHPUT_BATCH = 500
LATENCY_BATCH = 10
"""Transactions per submit call: large batches measure capacity (500 rather than 100 halved the
client's CPU per transaction, 10 -> 5.5 us, which it takes from the nodes on these cores); at an
offered rate, small ones keep arrivals smooth (a batch's transactions all start their clocks
together)."""
REPORT = {"fast": (0.510, 0.720, 2_100), "slow": (0.850, 1.200, None)}
"""The original report's commit latency P50/P99 (s) and TPS at a 50 ms round trip."""


@dataclass(frozen=True, slots=True)
class BenchCase:
    validators: int
    rtt: float  # seconds, injected by the transport (this machine has no netem)
    fast_path: bool = True
    slack_ppm: int = 0  # the chain's fast-path slack (genesis consensus_params)


def verify_seconds() -> float:
    """One Ed25519 verification of a transaction-sized message, median of many."""
    key = SigningKey(b"b" * 32)
    message = bytes(150)
    signature = key.sign(message)
    public = key.public_key
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(2000):
            public.is_valid(message, signature)
        samples.append((time.perf_counter() - started) / 2000)
    return sorted(samples)[3]


def _run_case(case: BenchCase, seconds: float, root: Path, rate: float) -> dict[str, Any]:
    from swarmguard.node.config import write_testnet  # noqa: PLC0415
    from swarmguard.node.local import (  # noqa: PLC0415
        free_ports,
        latest_progress,
        spawn_node,
        stop_processes,
    )

    home = (
        root
        / f"v{case.validators}-rtt{int(case.rtt * 1000)}-{'fast' if case.fast_path else 'slow'}"
    )
    n = case.validators
    free = free_ports(2 * n)
    ports, api_ports = free[:n], free[n:]
    homes = write_testnet(
        home,
        n,
        ports=ports,
        api_ports=api_ports,
        genesis_time=int(time.time()),
        fast_path_slack_ppm=case.slack_ppm,
    )
    for node_home in homes:
        extra = f"\n[transport]\ndelay = {case.rtt / 2}\n"
        extra += "\n[mempool]\nclient_rate = 1000000.0\nclient_burst = 1000000.0\n"
        extra += f"\n[consensus]\nfast_path = {'true' if case.fast_path else 'false'}\n"
        with (node_home / "config.toml").open("a") as config:
            config.write(extra)
    processes = [spawn_node(node_home) for node_home in homes]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        deadline = time.monotonic() + 60
        while not all(
            latest_progress(node_home / "node.log").get("height", 0) >= 2 for node_home in homes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no blocks from {home}")
            time.sleep(0.2)
        out = home / "load.json"
        node_cpu = sum(_cpu_seconds(process.pid) for process in processes)
        genesis = json.loads((homes[0] / "genesis.json").read_text())
        subprocess.run(
            [
                sys.executable,
                "-m",
                "swarmguard.api.loadgen",
                "--api",
                ",".join(f"127.0.0.1:{port}" for port in api_ports),
                "--keys",
                ",".join(str(h / "operator_key.json") for h in homes),
                "--chain-id",
                genesis["chain_id"],
                "--seconds",
                str(seconds),
                "--rate",
                str(rate),
                "--batch",
                str(LATENCY_BATCH if rate else THROUGHPUT_BATCH),
                "--out",
                str(out),
            ],
            check=True,
            env=environment,
            timeout=seconds + 120,
        )
        result = dict(json.loads(out.read_text()))
        committed = max(int(result["committed"]), 1)
        node_cpu = sum(_cpu_seconds(process.pid) for process in processes) - node_cpu
        result["node_cpu_us"] = node_cpu / n / committed * 1e6
        result["client_cpu_us"] = result["client_cpu"] / committed * 1e6
        return result
    finally:
        stop_processes(processes)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_bench(
    validator_counts: Sequence[int],
    rtt: float,
    seconds: float,
    rate: float = 2_200.0,
    slack_ppm: int = 0,
) -> str:
    """For each validator count: capacity (closed loop) with no injected latency, then at
    ``rtt`` with the fast path on and off; then commit latency at ``rtt`` under an offered load
    below capacity (``rate``, at most 60% of the measured capacity), fast path on and off.
    Returns the report (markdown)."""
    cores = os.cpu_count() or 1
    verifies = [verify_seconds()]
    rows: list[tuple[BenchCase, float, dict[str, Any]]] = []

    def run(case: BenchCase, where: Path, offered: float) -> dict[str, Any]:
        result = _run_case(case, seconds, where, offered)
        verifies.append(verify_seconds())
        result["verify"] = min(verifies[-2:])  # before and after this case: the faster
        return result

    with tempfile.TemporaryDirectory(prefix="swarmguard-bench-") as directory:
        root = Path(directory)
        for n in validator_counts:
            capacity = {}
            cases = (
                BenchCase(n, 0.0, True, slack_ppm),
                BenchCase(n, rtt, True, slack_ppm),
                BenchCase(n, rtt, False, slack_ppm),
            )
            for case in cases:
                result = run(case, root / "closed", 0.0)
                capacity[case] = result["throughput"]
                rows.append((case, 0.0, result))
            for fast in (True, False):
                case = BenchCase(n, rtt, fast, slack_ppm)
                offered = min(rate, 0.6 * capacity[case])
                rows.append((case, offered, run(case, root / "open", offered)))
    lines = [
        f"## swarmguard bench: {seconds:.0f} s of load per case, {cores} cores, one Ed25519 "
        f"verify {min(verifies) * 1e6:.1f}-{max(verifies) * 1e6:.1f} us ({len(verifies)} "
        f"measurements: before and after every case), fast-path slack {slack_ppm} ppm",
        "",
        "Bound: cores / (validators x one verify), with the faster of the verify measurements "
        "just before and just after the case; strict: with the fastest verify of the whole run "
        "(the host's load moves a verify by half within a run). Load: closed loop (6,000 in "
        f"flight, {THROUGHPUT_BATCH} per call) for capacity; open loop at the offered rate "
        f"({LATENCY_BATCH} per call) for latency.",
        "",
        "| validators | RTT ms | fast path | offered tx/s | committed | TPS | verify us "
        "| bound TPS | TPS / bound | strict | P50 ms | P99 ms | node CPU us/tx "
        "| client CPU us/tx |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, offered, result in rows:
        bound = cores / (case.validators * result["verify"])
        strict = cores / (case.validators * min(verifies))
        lines.append(
            f"| {case.validators} | {case.rtt * 1000:.0f} | {'on' if case.fast_path else 'off'} "
            f"| {f'{offered:.0f}' if offered else 'closed loop'} | {result['committed']} "
            f"| {result['throughput']:.0f} | {result['verify'] * 1e6:.1f} | {bound:.0f} "
            f"| {result['throughput'] / bound:.2f} | {result['throughput'] / strict:.2f} "
            f"| {result['p50'] * 1000:.0f} | {result['p99'] * 1000:.0f} "
            f"| {result['node_cpu_us']:.0f} | {result['client_cpu_us']:.0f} |"
        )
    lines.append("")
    for n in validator_counts:
        closed = {c.fast_path: r for c, o, r in rows if c.validators == n and c.rtt and not o}
        opened = {c.fast_path: r for c, o, r in rows if c.validators == n and o}
        if len(closed) == 2 and len(opened) == 2 and opened[True]["p50"] > 0:
            lines.append(
                f"- {n} validators, fast path on / off at {rtt * 1000:.0f} ms RTT: capacity "
                f"{closed[True]['throughput'] / max(closed[False]['throughput'], 1e-9):.2f}x, "
                f"P50 {opened[False]['p50'] / opened[True]['p50']:.2f}x lower, P99 "
                f"{opened[False]['p99'] / max(opened[True]['p99'], 1e-9):.2f}x lower"
            )
            p50, p99, tps = REPORT["fast"]
            lines.append(
                f"- {n} validators against the report's fast path (P50 {p50 * 1000:.0f} ms, "
                f"P99 {p99 * 1000:.0f} ms at {tps} TPS): P50 {p50 / opened[True]['p50']:.1f}x "
                f"lower, P99 {p99 / max(opened[True]['p99'], 1e-9):.1f}x lower, at "
                f"{opened[True]['throughput']:.0f} TPS; capacity at this RTT "
                f"{closed[True]['throughput'] / tps:.2f}x its TPS"
            )
    return "\n".join(lines)
