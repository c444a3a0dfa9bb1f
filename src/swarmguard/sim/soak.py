"""Many seeds on every core: the soak behind ``swarmguard sim soak``.

Each worker process runs whole simulations and returns one line per seed, so a failing seed is
reported with the exact command that replays it (with its trace).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from swarmguard.sim.mutants import replica_class
from swarmguard.sim.scenario import Scenario
from swarmguard.sim.simulation import Simulation

__all__ = ["Outcome", "replay_command", "run_seed", "soak"]


@dataclass(frozen=True, slots=True)
class Outcome:
    seed: int
    ok: bool
    safe: bool
    summary: str
    fast_commits: int
    slow_commits: int
    seconds: float


def replay_command(seed: int, validators: int | None, mutant: str | None) -> str:
    parts = ["swarmguard sim run", f"--seed {seed}"]
    if validators is not None:
        parts.append(f"--validators {validators}")
    if mutant is not None:
        parts.append(f"--mutant {mutant}")
    return " ".join([*parts, "--trace"])


def run_seed(seed: int, validators: int | None = None, mutant: str | None = None) -> Outcome:
    started = time.perf_counter()
    scenario = Scenario.draw(seed, validators, mutant=mutant)
    result = Simulation(scenario, replica_class=replica_class(mutant)).run()
    return Outcome(
        seed,
        result.ok,
        not result.violations,
        result.summary(),
        result.fast_commits,
        result.slow_commits,
        time.perf_counter() - started,
    )


def _work(task: tuple[int, int | None, str | None]) -> Outcome:
    return run_seed(*task)


def soak(
    seeds: range,
    validators: int | None = None,
    mutant: str | None = None,
    workers: int | None = None,
) -> Iterator[Outcome]:
    """Run ``seeds`` on ``workers`` processes (default: every core); outcomes in seed order."""
    tasks = [(seed, validators, mutant) for seed in seeds]
    count = workers or os.cpu_count() or 1
    if count == 1:
        yield from map(_work, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(count) as pool:
        yield from pool.imap(_work, tasks, chunksize=8)
