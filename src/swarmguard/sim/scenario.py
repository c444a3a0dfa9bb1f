"""What one simulated run faces, drawn from its seed: validators and stakes, who is Byzantine
and how, crashes, partitions, and the network's latency, loss and duplication.

Everything is a pure function of the seed (and the optional overrides), so ``Scenario.draw(s)``
is the whole reproduction recipe for seed ``s``. The fault period ends at ``faults_end``: after
it the network delivers everything, partitions heal, crashed validators are back, and liveness
is judged. Byzantine validators stay Byzantine to the end; their total power never exceeds F.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from enum import Enum
from typing import Any

from swarmguard.consensus.batching import BatchConfig
from swarmguard.consensus.tally import Thresholds

__all__ = ["SIZES", "Behaviour", "Crash", "Epoch", "Scenario"]

SIZES = (4, 7, 10)
"""Validator counts a seed cycles through when none is asked for."""


class Behaviour(Enum):
    """How a Byzantine validator misbehaves (all but SILENT run the real replica underneath)."""

    SILENT = "silent"  # never sends anything
    EQUIVOCATE = "equivocate"  # per view: two blocks, split or muted votes, value and ⊥ votes
    SELECTIVE = "selective"  # each message reaches a random half of the validators
    INVALID = "invalid"  # corrupts the signature on half of what it sends
    WITHHOLD = "withhold"  # holds every message until a release time, then sends them at once
    TWIN = "twin"  # a second replica runs with the same key (Diem's Twins)


_WEIGHTS = {
    Behaviour.SILENT: 1,
    Behaviour.EQUIVOCATE: 4,  # the one that forks broken protocols: most of the budget
    Behaviour.SELECTIVE: 1,
    Behaviour.INVALID: 1,
    Behaviour.WITHHOLD: 1,
    Behaviour.TWIN: 2,
}


@dataclass(frozen=True, slots=True)
class Crash:
    """An honest validator down from ``at`` to ``restart`` (it resumes from what it persisted)."""

    validator: int
    at: float
    restart: float


@dataclass(frozen=True, slots=True)
class Epoch:
    """The network from ``start`` to ``end``: messages cross only within a group of node ids
    (no groups: no partition), and the directed ``slow_links`` are ``slow_factor`` slower.
    Epochs change every 0.1-1.5 s, about a view, so each view meets its own network."""

    start: float
    end: float
    groups: tuple[frozenset[int], ...]
    slow_links: frozenset[tuple[int, int]]
    slow_factor: float

    def separates(self, sender: int, receiver: int) -> bool:
        if not self.groups:
            return False
        return not any(sender in group and receiver in group for group in self.groups)


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int
    powers: tuple[int, ...]
    byzantine: tuple[tuple[int, Behaviour], ...]
    crashes: tuple[Crash, ...]
    epochs: tuple[Epoch, ...]  # the network's conditions during the faults, back to back
    latency: tuple[float, float]  # per-link base latency is drawn from this range (seconds)
    jitter: float  # each message adds uniform(0, jitter)
    loss: float  # per-message loss probability during the faults
    targeted: float  # chance that one link delays one kind of message of one view past a timer
    isolation: float  # chance per height that one honest node is heard by nobody (a victim)
    duplication: float  # per-message duplication probability (all run long)
    faults_end: float
    release_at: float  # when WITHHOLD validators release what they held
    heights_after: int = 2  # heights every honest replica decides after the faults end
    leaders: str = "round-robin"  # "reputation": stake-weighted, failed leaders masked; "fixed"
    load: float = 0.0  # transactions per second reaching validator 0 (Poisson), for benchmarks
    batch: BatchConfig | None = None  # the replicas' batcher (None: blocks proposed at once)
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
            f"crashes {crashes or 'none'}; {len(self.epochs)} network epochs "
            f"({sum(1 for e in self.epochs if e.groups)} partitioned); "
            f"latency {self.latency[0] * 1e3:.0f}-{self.latency[1] * 1e3:.0f} ms "
            f"+ {self.jitter * 1e3:.0f} ms jitter; loss {self.loss:.1%}; "
            f"duplication {self.duplication:.1%}; targeted delays {self.targeted:.0%}; "
            f"victims {self.isolation:.0%}; "
            f"faults end {self.faults_end:.2f}s"
            + (
                f"; batching (timeout {self.batch.timeout * 1e3:.0f} ms, empty block after "
                f"{self.batch.empty_block_after * 1e3:.0f} ms, {self.load:.0f} tx/s)"
                if self.batch is not None
                else ""
            )
            + (f"; mutant {self.mutant}" if self.mutant else "")
        )

    @classmethod
    def calm(
        cls,
        validators: int,
        heights: int,
        *,
        crashed: int = 0,
        leaders: str = "round-robin",
        latency: tuple[float, float] = (0.020, 0.030),
        load: float = 0.0,
        batch: BatchConfig | None = None,
    ) -> Scenario:
        """A healthy network of equal validators (the last ``crashed`` of them down from the
        start), one-way latency uniform in ``latency``: for benchmarks and the
        crashed-validator checks, not for the search."""
        silent = tuple((v, Behaviour.SILENT) for v in range(validators - crashed, validators))
        return cls(
            seed=0,
            powers=tuple([1] * validators),
            byzantine=silent,
            crashes=(),
            epochs=(),
            latency=latency,
            jitter=0.0,
            loss=0.0,
            targeted=0.0,
            isolation=0.0,
            duplication=0.0,
            faults_end=0.0,
            release_at=0.0,
            heights_after=heights,
            leaders=leaders,
            load=load,
            batch=batch,
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
                weights = [_WEIGHTS[b] for b in behaviours]
                byzantine.append((validator, rng.choices(behaviours, weights)[0]))
        byzantine.sort()
        faults_end = rng.uniform(0.5, 10.0)
        bad = {v for v, _ in byzantine}
        honest = [v for v in range(n) if v not in bad]
        crashes = []
        if rng.random() < 0.35:
            victim = rng.choice(honest)
            at = rng.uniform(0.0, faults_end * 0.8)
            crashes.append(Crash(victim, at, rng.uniform(at + 0.05, faults_end)))
        nodes = n + sum(1 for _, b in byzantine if b is Behaviour.TWIN)
        epochs = []
        share = rng.choice((0.0, 0.1, 0.3, 0.5))  # of directed links slow in an epoch
        split = rng.choice((0.0, 0.3, 0.7))  # chance that an epoch is partitioned
        clock = 0.0
        while clock < faults_end:
            end = min(clock + rng.uniform(0.1, 1.5), faults_end)
            groups: tuple[frozenset[int], ...] = ()
            if rng.random() < split:
                ids = rng.sample(range(nodes), nodes)
                cuts = sorted(rng.sample(range(1, nodes), rng.choice((1, 1, 2))))
                bounds = zip([0, *cuts], [*cuts, nodes], strict=True)
                groups = tuple(frozenset(ids[a:b]) for a, b in bounds)
            slow = frozenset(
                (a, b)
                for a in range(nodes)
                for b in range(nodes)
                if a != b and rng.random() < share
            )
            epochs.append(Epoch(clock, end, groups, slow, rng.uniform(3.0, 30.0)))
            clock = end
        low = rng.uniform(0.001, 0.03)
        high = rng.uniform(low, 0.12)
        scenario = cls(
            seed=seed,
            powers=powers,
            byzantine=tuple(byzantine),
            crashes=tuple(crashes),
            epochs=tuple(epochs),
            latency=(low, high),
            jitter=rng.uniform(0.0, 0.08),
            loss=rng.uniform(0.0, 0.15) if rng.random() < 0.5 else 0.0,
            targeted=rng.choice((0.0, 0.15, 0.3, 0.5)),
            isolation=rng.choice((0.0, 0.3, 0.6, 0.9)),
            duplication=rng.uniform(0.0, 0.05) if rng.random() < 0.3 else 0.0,
            faults_end=faults_end,
            release_at=rng.uniform(0.0, faults_end),
            mutant=mutant,
        )
        # Drawn last, so the seeds drawn before batching joined the search keep the rest of
        # their scenario.
        return dataclasses.replace(scenario, **_draw_batching(rng))


def _draw_batching(rng: random.Random) -> dict[str, Any]:
    """Three seeds in ten batch: a batching leader may hold its proposal for the allowance A
    (rule 1, "Timers" in docs/consensus.md), and a re-proposal after a Slow-Cert waits within
    it, so those waits meet the adversary too. Load reaches validator 0 only; the other
    leaders propose empty blocks after A."""
    if rng.random() >= 0.3:
        return {}
    timeout = rng.uniform(0.005, 0.05)
    batch = BatchConfig(timeout=timeout, empty_block_after=rng.uniform(timeout, 0.4))
    return {"batch": batch, "load": rng.choice((0.0, 50.0, 500.0))}
