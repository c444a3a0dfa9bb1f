"""Consensus on the simulator: commit latency per path at a 50 ms round trip, and CPU per block.

Run: ``.venv/bin/python bench/consensus_bench.py [--heights N]``. Everything runs in one
process, one after another, and is reported as ratios where the issue asks for them:

- latency: 7 validators of equal power, one-way delay uniform in 20-30 ms (a 50 ms round trip
  on average), no faults. All seven voting gives the fast path (two message delays); the same
  network with one validator crashed gives the slow path (three). Latency is virtual time from
  a replica entering the height to its decision, so it is exact, not a wall-clock estimate;
- CPU: process time of the whole simulated network per committed height, with 7 and with 100
  validators, split into Ed25519 (signing and verification, measured by the profiler) and
  everything else (the core's own work plus the simulator's event queue).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

from swarmguard.consensus.batching import BatchConfig
from swarmguard.sim.scenario import Scenario
from swarmguard.sim.simulation import Result, Simulation

REPORT_P50, REPORT_P99 = 0.510, 0.720  # the original report's fast path at a 50 ms round trip


def scenario(
    validators: int, heights: int, crashed: bool, leaders: str = "round-robin"
) -> Scenario:
    return Scenario.calm(validators, heights, crashed=1 if crashed else 0, leaders=leaders)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latencies(result: Result, path: str) -> list[float]:
    return [latency for _, _, kind, latency, _ in result.decisions if kind == path]


def cpu_per_height(validators: int, heights: int) -> tuple[float, float, int]:
    """(total CPU seconds per height, of which Ed25519, heights decided)."""
    profiler = cProfile.Profile()
    started = time.process_time()
    profiler.enable()
    result = Simulation(scenario(validators, heights, crashed=False)).run()
    profiler.disable()
    total = time.process_time() - started
    stats = pstats.Stats(profiler)
    crypto = 0.0
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if "crypto" in filename and name in ("is_valid", "sign"):
            crypto += row[3]  # cumulative time
    decided = min(result.heights.values())
    return total / decided, crypto / decided, decided


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heights", type=int, default=200)
    args = parser.parse_args()

    fast_sim = Simulation(scenario(7, args.heights, crashed=False))
    fast_run = fast_sim.run()
    slow_sim = Simulation(scenario(7, args.heights, crashed=True))
    slow_run = slow_sim.run()
    assert fast_run.ok, fast_run.summary()
    assert slow_run.ok, slow_run.summary()
    fast = latencies(fast_run, "fast")
    slow = latencies(slow_run, "slow")
    fast_p50, slow_p50 = statistics.median(fast), statistics.median(slow)
    print(f"## Commit latency, 7 validators, 50 ms round trip ({args.heights} heights each)")
    print("| path | decisions | P50 ms | P99 ms |")
    print("|---|---|---|---|")
    for name, values in (("fast (all 7 vote)", fast), ("slow (one crashed)", slow)):
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"| {name} | {len(values)} | {p50 * 1e3:.1f} | {p99 * 1e3:.1f} |")
    ratio = fast_p50 / slow_p50
    verdict = "PASS" if ratio <= 0.7 else "FAIL"
    print(f"\nfast / slow P50: {ratio:.2f}x (target <= 0.7): {verdict}")
    print(
        f"fast path against the report's {REPORT_P50 * 1e3:.0f} / {REPORT_P99 * 1e3:.0f} ms: "
        f"P50 {REPORT_P50 / fast_p50:.1f}x lower, P99 {REPORT_P99 / percentile(fast, 0.99):.1f}x "
        "lower (aim: 3x)"
    )
    print(f"fast-path share with all 7 up: {len(fast) / len(fast_run.decisions):.0%}")
    deltas = [node.replica.health.delta for node in fast_sim.nodes]
    losses = [node.replica.health.loss for node in slow_sim.nodes[:6]]
    print(
        f"Δ measured by the health monitor after the run: {min(deltas) * 1e3:.0f}-"
        f"{max(deltas) * 1e3:.0f} ms (starts at 500 ms); loss estimate with one of 7 down: "
        f"{min(losses):.3f}-{max(losses):.3f} (one of 6 others: 0.167)"
    )

    dead = Simulation(scenario(7, args.heights, crashed=True, leaders="reputation")).run()
    assert dead.ok, dead.summary()
    changed = sorted({h for _, h, _, _, view in dead.decisions if view > 0})
    paths = sorted({kind for _, _, kind, _, _ in dead.decisions})
    dead_slow = latencies(dead, "slow")
    print("\n## One of 7 crashed, leaders drawn by stake with reputation (validator manager rules)")
    print(
        f"heights decided: {args.heights}; paths: {paths}; heights that paid a view change: "
        f"{changed} (target: only the first turn of the dead leader)"
    )
    print(
        f"slow path P50 {statistics.median(dead_slow) * 1e3:.1f} ms, "
        f"P99 {percentile(dead_slow, 0.99) * 1e3:.1f} ms"
    )

    print("\n## End to end: a transaction reaching the leader until the leader decides it")
    timeout = 0.05
    floor = 2 * 0.025 + timeout  # two mean one-way delays plus the batch timeout
    print(
        f"7 validators, fixed leader, batch timeout {timeout * 1e3:.0f} ms, "
        f"floor {floor * 1e3:.0f} ms"
    )
    print("| load tx/s | transactions | P50 ms | P99 ms | P50 / floor |")
    print("|---|---|---|---|---|")
    ratios = {}
    for load in (5.0, 200.0):
        batched = Scenario.calm(
            7, args.heights, leaders="fixed", load=load, batch=BatchConfig(timeout=timeout)
        )
        run = Simulation(batched).run()
        assert run.ok, run.summary()
        values = run.transaction_latencies
        ratios[load] = statistics.median(values) / floor
        print(
            f"| {load:.0f} | {len(values)} | {statistics.median(values) * 1e3:.1f} | "
            f"{percentile(values, 0.99) * 1e3:.1f} | {ratios[load]:.2f}x |"
        )
    verdict = "PASS" if ratios[5.0] <= 1.3 else "FAIL"
    print(f"\nlight load P50 within {ratios[5.0]:.2f}x of the floor (target <= 1.3x): {verdict}")

    print("\n## CPU per committed height (whole simulated network, one process)")
    print(
        "| validators | heights | CPU ms / height | of which Ed25519 | core + simulator "
        "| core + simulator per replica |"
    )
    print("|---|---|---|---|---|---|")
    rows = {}
    for validators, heights in ((7, args.heights), (100, max(3, args.heights // 40))):
        total, crypto, decided = cpu_per_height(validators, heights)
        rows[validators] = total - crypto
        print(
            f"| {validators} | {decided} | {total * 1e3:.1f} | {crypto * 1e3:.1f} | "
            f"{(total - crypto) * 1e3:.1f} | {(total - crypto) * 1e3 / validators:.2f} |"
        )
    growth = rows[100] / rows[7]
    print(
        f"\nwithout signatures, 100 validators cost {growth:.0f}x 7 validators per height "
        f"({100 / 7:.1f}x the validators, {(100 / 7) ** 2:.0f}x the messages); "
        f"per replica {growth * 7 / 100:.1f}x"
    )


if __name__ == "__main__":
    main()
