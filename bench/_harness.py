"""Shared measurement machinery of the benchmarks in this folder.

A case is a set of contestants (ours, peers, floors). Each sample times one batch of calls,
calibrated to a fixed duration, and divides by the batch size. Samples are interleaved across
contestants in rotated rounds so machine noise hits all alike; P50 and P99 are over the samples;
ratios are to the fastest peer of the case and to each floor, from the same run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Runner = Callable[[int], int]  # runs n calls, returns elapsed ns


@dataclass
class Contestant:
    name: str
    role: str  # "ours", "peer" or "floor"
    run: Runner
    batch: int = 0
    samples: list[float] = field(default_factory=list)

    def p(self, fraction: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Case:
    key: str
    title: str
    target: float | None  # ours / fastest peer at P50 must be <= target
    contestants: list[Contestant]
    note: str = ""


# ---------------------------------------------------------------------------- runners


def sync_runner(func: Callable[[], Any]) -> Runner:
    def run(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            func()
        return time.perf_counter_ns() - start

    return run


def sync_catching_runner(func: Callable[[], Any]) -> Runner:
    def run(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            try:  # noqa: SIM105 - contextlib.suppress would add its own cost to every call
                func()
            except Exception:
                pass
        return time.perf_counter_ns() - start

    return run


LOOP = asyncio.new_event_loop()


def async_runner(func: Callable[[], Awaitable[Any]]) -> Runner:
    async def batch(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            await func()
        return time.perf_counter_ns() - start

    def run(n: int) -> int:
        return LOOP.run_until_complete(batch(n))

    return run


def calibrate(contestant: Contestant, batch_ns: int) -> None:
    contestant.run(50)  # warm up
    per_call = max(1.0, contestant.run(200) / 200)
    contestant.batch = max(5, min(5000, int(batch_ns / per_call)))


def measure(case: Case, rounds: int, per_round: int, batch_ns: int) -> None:
    for contestant in case.contestants:
        calibrate(contestant, batch_ns)
    order = list(case.contestants)
    for round_index in range(rounds):
        shift = round_index % len(order)
        for contestant in order[shift:] + order[:shift]:
            for _ in range(per_round):
                contestant.samples.append(contestant.run(contestant.batch) / contestant.batch)


def summarise(case: Case) -> dict[str, Any]:
    peers = [c for c in case.contestants if c.role == "peer"]
    fastest = min(peers, key=lambda c: c.p(0.5)) if peers else None
    floor_map = {c.name: c for c in case.contestants if c.role == "floor"}
    rows = []
    for contestant in case.contestants:
        row: dict[str, Any] = {
            "name": contestant.name,
            "role": contestant.role,
            "p50_ns": round(contestant.p(0.5), 1),
            "p99_ns": round(contestant.p(0.99), 1),
        }
        if fastest is not None:
            row["p50_vs_fastest_peer"] = round(contestant.p(0.5) / fastest.p(0.5), 3)
            row["p99_vs_fastest_peer"] = round(contestant.p(0.99) / fastest.p(0.99), 3)
        for floor_name, floor in floor_map.items():
            row[f"x {floor_name}"] = round(contestant.p(0.5) / floor.p(0.5), 2)
        rows.append(row)
    result: dict[str, Any] = {
        "key": case.key,
        "title": case.title,
        "target": case.target,
        "fastest_peer": fastest.name if fastest else None,
        "rows": rows,
        "note": case.note,
    }
    ours = [r for r in rows if r["role"] == "ours"]
    if case.target is not None and fastest is not None:
        ratio = ours[0]["p50_vs_fastest_peer"]
        result["ours_ratio"] = ratio
        result["pass"] = ratio <= case.target
    return result


def render_case(case: dict[str, Any]) -> list[str]:
    """A summarised case as text lines: a verdict line, a note, and the table."""
    lines = []
    verdict = ""
    if "pass" in case:
        verdict = (
            f"  -> ours {case['ours_ratio']:.2f}x fastest peer ({case['fastest_peer']}), "
            f"target <= {case['target']}: {'PASS' if case['pass'] else 'FAIL'}"
        )
    lines.append(f"## {case['title']}{verdict}")
    if case["note"]:
        lines.append(f"({case['note']})")
    floor_keys = [k for k in case["rows"][0] if k.startswith("x floor")]
    widths = [max(14, len(k) - 6) for k in floor_keys]
    header = f"{'contestant':<32}{'P50 ns':>9}{'P99 ns':>9}{'P50/peer':>10}{'P99/peer':>10}"
    header += "".join(
        f"{k.replace('x floor: ', 'x '):>{w}}" for k, w in zip(floor_keys, widths, strict=True)
    )
    lines.append(header)
    for row in case["rows"]:
        line = f"{row['name']:<32}{row['p50_ns']:>9.0f}{row['p99_ns']:>9.0f}"
        line += f"{row.get('p50_vs_fastest_peer', float('nan')):>10.2f}"
        line += f"{row.get('p99_vs_fastest_peer', float('nan')):>10.2f}"
        line += "".join(f"{row[k]:>{w}.2f}" for k, w in zip(floor_keys, widths, strict=True))
        lines.append(line)
    lines.append("")
    return lines


def emit(report: dict[str, Any], path: str | None) -> None:
    """Print a JSON report, and also write it to ``path`` when one is given."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        with open(path, "w") as handle:
            handle.write(text)
