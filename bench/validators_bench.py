"""Leader-selection benchmark: time per draw for 100, 10,000 and 1,000,000 validators, and memory
per validator of the schedule (tracemalloc).

Targets (issue 3): <= 20 us per draw for 100 validators; 1,000,000 no more than 3x the 100 case
(logarithmic growth); <= 1 KB per validator, for the leader schedule alone and for the whole
validator manager.

Run: ``.venv/bin/python bench/validators_bench.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import platform
import time
import tracemalloc
from typing import Any

from _harness import emit
from swarmguard.validators.election import LeaderSchedule, ScheduledValidator

CHAIN = "bench"


def validator_set(count: int) -> list[ScheduledValidator]:
    return [
        ScheduledValidator(hashlib.sha256(index.to_bytes(8, "big")).digest()[:20], 1_000 + index)
        for index in range(count)
    ]


def time_draws(schedule: LeaderSchedule, draws: int) -> dict[str, float]:
    seeds = [hashlib.sha512(index.to_bytes(8, "big")).digest() for index in range(draws)]
    samples = []
    for start in range(0, draws, 100):
        begin = time.perf_counter_ns()
        for seed in seeds[start : start + 100]:
            schedule.leader(seed, 0)
        samples.append((time.perf_counter_ns() - begin) / 100)
    samples.sort()
    return {
        "p50_us": round(samples[len(samples) // 2] / 1000, 2),
        "p99_us": round(samples[min(len(samples) - 1, int(0.99 * len(samples)))] / 1000, 2),
    }


def memory_per_validator(count: int) -> float:
    validators = validator_set(count)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    schedule = LeaderSchedule(CHAIN, validators)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del schedule
    return (after - before) / count


def manager_memory_per_validator(count: int) -> float:
    """Bytes per validator of a whole ValidatorManager: records, self-delegation, downtime window,
    reputation, epoch power and leader schedule, after an epoch boundary and one recorded block."""
    from swarmguard.validators.manager import ValidatorManager
    from swarmguard.validators.params import StakingParams

    operators = [hashlib.sha256(i.to_bytes(8, "big")).digest()[:20] for i in range(count)]
    keys = [hashlib.sha256(b"k" + op).digest() for op in operators]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    params = StakingParams(max_validators=count, epoch_length=1)
    manager = ValidatorManager(CHAIN, params, dict.fromkeys(operators, 10**9))
    manager.begin_block(1, 1_000)
    for operator, key in zip(operators, keys, strict=True):
        manager.staking.create_validator(operator, key, key, 0, 1_000_000)
    manager.end_block()
    manager.begin_block(2, 1_005)
    manager.record_block(operators[0], operators)
    manager.end_block()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del manager
    return (after - before) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    sizes = (100, 10_000, 1_000_000)
    schedules = {size: LeaderSchedule(CHAIN, validator_set(size)) for size in sizes}
    results: dict[str, Any] = {size: {"p50_us": [], "p99_us": []} for size in sizes}
    for _ in range(5):  # interleave sizes so noise hits them alike
        for size in sizes:
            timing = time_draws(schedules[size], 20_000)
            results[size]["p50_us"].append(timing["p50_us"])
            results[size]["p99_us"].append(timing["p99_us"])
    summary = {
        str(size): {
            "p50_us": sorted(results[size]["p50_us"])[2],
            "p99_us": sorted(results[size]["p99_us"])[2],
        }
        for size in sizes
    }
    ratio = summary["1000000"]["p50_us"] / summary["100"]["p50_us"]
    report = {
        "python": platform.python_version(),
        "draw_time": summary,
        "ratio_1M_vs_100": round(ratio, 2),
        "bytes_per_validator_100k": round(memory_per_validator(100_000), 1),
        "manager_bytes_per_validator_10k": round(manager_memory_per_validator(10_000), 1),
        "targets": {"draw_100_us": 20, "ratio_max": 3.0, "bytes_per_validator_max": 1024},
    }
    report["pass"] = (
        summary["100"]["p50_us"] <= 20
        and ratio <= 3.0
        and report["bytes_per_validator_100k"] <= 1024
        and report["manager_bytes_per_validator_10k"] <= 1024
    )
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
