"""What one simulated run faces, drawn from its seed: validators and stakes, who is Byzantine
and how, crashes, partitions, and the network's latency, loss and duplication.

Everything is a pure function of the seed (and the optional overrides), so ``Scenario.draw(s)``
is the whole reproduction recipe for seed ``s``. The fault period ends at ``faults_end``: after
it the network delivers everything, partitions heal, crashed validators are back, and liveness
is judged. Byzantine validators stay Byzantine to the end; their total power never exceeds F.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from swarmguard.consensus.tally import Thresholds

__all__ = ["SIZES", "Behaviour", "Crash", "Partition", "Scenario"]

SIZES = (4, 7, 10)
"""Validator counts a seed cycles through when none is asked for."""


class Behaviour(Enum):
    """How a Byzantine validator misbehaves (all but SILENT run the real replica underneath)."""

    SILENT = "silent"  # never sends anything
    EQUIVOCATE = "equivocate"  # two blocks per view it leads; value votes and finals split
    SELECTIVE = "selective"  # each message reaches a random half of the validators
    INVALID = "invalid"  # corrupts the signature on half of what it sends
    WITHHOLD = "withhold"  # holds every message until a release time, then sends them at once
    TWIN = "twin"  # a second replica runs with the same key (Diem's Twins)


@dataclass(frozen=True, slots=True)
class Crash:
    """An honest validator down from ``at`` to ``restart`` (it resumes from what it persisted)."""

    validator: int
    at: float
    restart: float


@dataclass(frozen=True, slots=True)
class Partition:
    """From ``start`` to ``end``, messages cross only within a group (by node id)."""

    start: float
    end: float
    groups: tuple[frozenset[int], ...]

    def separates(self, sender: int, receiver: int) -> bool:
        return not any(sender in group and receiver in group for group in self.groups)


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int
    powers: tuple[int, ...]
    byzantine: tuple[tuple[int, Behaviour], ...]
    crashes: tuple[Crash, ...]
    partitions: tuple[Partition, ...]
    latency: tuple[float, float]  # per-link base latency is drawn from this range (seconds)
    jitter: float  # each message adds uniform(0, jitter)
    slow_links: frozenset[tuple[int, int]]  # directed (sender, receiver) links slowed down
    slow_factor: float  # how much slower they are during the faults
    loss: float  # per-message loss probability during the faults
    duplication: float  # per-message duplication probability (all run long)
    faults_end: float
    release_at: float  # when WITHHOLD validators release what they held
    heights_after: int = 2  # heights every honest replica decides after the faults end
    mutant: str | None = None  # a deliberately broken replica (sim.mutants), to test the checker

    @property
    def behaviours(self) -> dict[int, Behaviour]:
        return dict(self.byzantine)

    @property
    def nodes(self) -> int:
        """Node ids: one per validator, then one per twin."""
        twins = sum(1 for _, behaviour in self.byzantine if behaviour is Behaviour.TWIN)
        return len(self.powers) + twins

    def describe(self) -> str:
        byzantine = ", ".join(f"v{v} {b.value}" for v, b in self.byzantine) or "none"
        crashes = ", ".join(f"v{c.validator} {c.at:.2f}-{c.restart:.2f}s" for c in self.crashes)
        return (
            f"seed {self.seed}: powers {list(self.powers)}; byzantine {byzantine}; "
            f"crashes {crashes or 'none'}; {len(self.partitions)} partitions; "
            f"latency {self.latency[0] * 1e3:.0f}-{self.latency[1] * 1e3:.0f} ms "
            f"+ {self.jitter * 1e3:.0f} ms jitter; loss {self.loss:.1%}; "
            f"duplication {self.duplication:.1%}; {len(self.slow_links)} slow links "
            f"(x{self.slow_factor:.0f}); "
            f"faults end {self.faults_end:.2f}s"
            + (f"; mutant {self.mutant}" if self.mutant else "")
        )

    @classmethod
    def draw(
        cls,
        seed: int,
        validators: int | None = None,
        *,
        mutant: str | None = None,
        behaviours: tuple[Behaviour, ...] = tuple(Behaviour),
    ) -> Scenario:
        """The scenario of ``seed`` (``validators`` defaults to cycling through SIZES)."""
        rng = random.Random(f"swarmguard-sim/{seed}")
        n = validators if validators is not None else SIZES[seed % len(SIZES)]
        if rng.random() < 0.3:
            powers = tuple([1] * n)
        else:
            powers = tuple(rng.randint(1, 10) for _ in range(n))
        faults = Thresholds.for_powers(powers).faults
        byzantine: list[tuple[int, Behaviour]] = []
        budget = faults if rng.random() < 0.85 else 0
        for validator in rng.sample(range(n), n):
            if powers[validator] <= budget and rng.random() < 0.8:
                budget -= powers[validator]
                byzantine.append((validator, rng.choice(behaviours)))
        byzantine.sort()
        faults_end = rng.uniform(0.5, 6.0)
        bad = {v for v, _ in byzantine}
        honest = [v for v in range(n) if v not in bad]
        crashes = []
        if rng.random() < 0.35:
            victim = rng.choice(honest)
            at = rng.uniform(0.0, faults_end * 0.8)
            crashes.append(Crash(victim, at, rng.uniform(at + 0.05, faults_end)))
        nodes = n + sum(1 for _, b in byzantine if b is Behaviour.TWIN)
        partitions = []
        if rng.random() < 0.5:
            clock = rng.uniform(0.0, 0.5)
            while clock < faults_end:
                length = rng.uniform(0.1, 1.5)
                if rng.random() < 0.75:
                    ids = rng.sample(range(nodes), nodes)
                    parts = rng.choice((2, 2, 3))
                    cuts = sorted(rng.sample(range(1, nodes), parts - 1))
                    groups = [
                        frozenset(ids[a:b]) for a, b in zip([0, *cuts], [*cuts, nodes], strict=True)
                    ]
                    end = min(clock + length, faults_end)
                    partitions.append(Partition(clock, end, tuple(groups)))
                clock += length
        slow_links: frozenset[tuple[int, int]] = frozenset()
        if rng.random() < 0.6:
            share = rng.uniform(0.1, 0.5)
            slow_links = frozenset(
                (a, b) for a in range(nodes) for b in range(nodes) if a != b and rng.random() < share
            )
        low = rng.uniform(0.001, 0.03)
        high = rng.uniform(low, 0.12)
        return cls(
            seed=seed,
            powers=powers,
            byzantine=tuple(byzantine),
            crashes=tuple(crashes),
            partitions=tuple(partitions),
            latency=(low, high),
            jitter=rng.uniform(0.0, 0.08),
            slow_links=slow_links,
            slow_factor=rng.uniform(3.0, 30.0),
            loss=rng.uniform(0.0, 0.15) if rng.random() < 0.5 else 0.0,
            duplication=rng.uniform(0.0, 0.05) if rng.random() < 0.3 else 0.0,
            faults_end=faults_end,
            release_at=rng.uniform(0.0, faults_end),
            mutant=mutant,
        )
