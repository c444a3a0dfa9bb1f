"""The simulator itself: the default seed budget passes, a seed replays exactly, scenarios keep
their promises, and the checker fails on a replica that breaks a rule."""

from __future__ import annotations

import os

import pytest

from swarmguard.consensus.health import HealthConfig
from swarmguard.consensus.tally import Thresholds
from swarmguard.sim import Behaviour, Scenario, Simulation
from swarmguard.sim.mutants import MUTANTS
from swarmguard.sim.soak import replay_command, soak

SEEDS = int(os.environ.get("SWARMGUARD_SIM_SEEDS", "2000"))
"""The default budget: seeds 0..SEEDS-1, cycling through 4, 7 and 10 validators."""


@pytest.mark.timeout(1200)
def test_the_default_seed_budget_is_safe_and_live() -> None:
    failures = [
        f"{outcome.summary}\n  replay: {replay_command(outcome.seed, None, None)}"
        for outcome in soak(range(SEEDS), workers=2)
        if not outcome.ok
    ]
    assert not failures, "\n".join(failures)


def test_a_seed_replays_exactly() -> None:
    for seed in (3, 4, 5):
        first = Simulation(Scenario.draw(seed), trace=True).run()
        second = Simulation(Scenario.draw(seed), trace=True).run()
        assert first.trace == second.trace
        assert first.summary() == second.summary()
        assert len(first.trace) > 100


def test_the_trace_reads_as_a_story() -> None:
    result = Simulation(Scenario.draw(0), trace=True).run()
    text = "\n".join(result.trace)
    for needle in ("PROPOSE h1 v0", "VOTE h1", "decides h1", "faults end"):
        assert needle in text


@pytest.mark.parametrize("seed", range(60))
def test_scenarios_keep_byzantine_power_within_f(seed: int) -> None:
    scenario = Scenario.draw(seed)
    faults = Thresholds.for_powers(scenario.powers).faults
    assert sum(scenario.powers[v] for v, _ in scenario.byzantine) <= faults
    honest = set(range(len(scenario.powers))) - {v for v, _ in scenario.byzantine}
    assert {crash.validator for crash in scenario.crashes} <= honest
    assert all(crash.restart <= scenario.faults_end for crash in scenario.crashes)
    twins = sum(1 for _, b in scenario.byzantine if b is Behaviour.TWIN)
    assert scenario.nodes == len(scenario.powers) + twins
    assert all(e.end <= scenario.faults_end for e in scenario.epochs)


def test_every_behaviour_and_size_is_drawn_within_the_budget() -> None:
    scenarios = [Scenario.draw(seed) for seed in range(min(SEEDS, 300))]
    assert {len(s.powers) for s in scenarios} == {4, 7, 10}
    assert {b for s in scenarios for _, b in s.byzantine} == set(Behaviour)
    assert any(s.crashes for s in scenarios)
    assert any(e.groups for s in scenarios for e in s.epochs)
    assert any(len(set(s.powers)) > 1 for s in scenarios)


def test_crash_and_restart_resume_from_the_persisted_record() -> None:
    """A crashed honest validator comes back from its last record and takes part again."""
    found = 0
    for seed in range(200):
        scenario = Scenario.draw(seed)
        if not scenario.crashes:
            continue
        result = Simulation(scenario, trace=True).run()
        assert result.ok, result.summary()
        assert any("restarts at height" in line for line in result.trace)
        found += 1
        if found == 5:
            break
    assert found == 5


def test_a_restarted_validator_still_holds_the_blocks_it_voted_for() -> None:
    """Seed 591: v2 (5 of 13 power, a Fast-Cert on its own) proposes a block nobody hears,
    votes for it, crashes and restarts. The node keeps the bodies of the blocks it voted for
    with its record (``node.voted``), and so does the simulator: without them every later
    leader waits forever for a block behind a certificate that only v2 ever held."""
    scenario = Scenario.draw(591)
    assert scenario.crashes
    assert scenario.batch is not None
    result = Simulation(scenario).run()
    assert result.ok, result.summary()


FOUND_BY_SEARCH = sorted(MUTANTS)
"""Mutants the random search must catch within the default budget: all of them (each also has
or shares a scripted regression in tests/sim/test_regressions.py)."""


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("mutant", FOUND_BY_SEARCH)
def test_the_checker_catches_a_broken_rule_within_the_budget(mutant: str) -> None:
    """A checker that cannot find a known bug proves nothing: each deliberately broken replica
    must produce a safety violation (a fork, or a decision on a certificate that does not
    verify) within the seeds the default suite runs."""
    for outcome in soak(range(SEEDS), mutant=mutant, workers=2):
        if not outcome.safe:
            assert "SAFETY" in outcome.summary
            return
    pytest.fail(f"{mutant}: no safety violation in {SEEDS} seeds")


def test_the_reports_fast_path_is_caught_by_the_certificate_check() -> None:
    outcome = next(o for o in soak(range(SEEDS), mutant="fast-commit-2f1", workers=1) if not o.safe)
    assert "commit certificate" in outcome.summary
    assert outcome.seed < 10


def test_a_dead_leader_costs_one_view_change_then_reputation_skips_it() -> None:
    """One of seven validators down: every height commits on the slow path, and once the dead
    validator's first turn as leader fails, reputation keeps it from leading again."""
    result = Simulation(Scenario.calm(7, 60, crashed=1, leaders="reputation")).run()
    assert result.ok, result.summary()
    assert {path for _, _, path, _, _ in result.decisions} == {"slow"}
    changed = {height for _, height, _, _, view in result.decisions if view > 0}
    assert len(changed) == 1, changed


def test_round_robin_keeps_paying_for_the_dead_leader() -> None:
    """The same network with round-robin leaders: the dead validator's every seventh turn costs
    a view change (what the reputation check above is measured against)."""
    result = Simulation(Scenario.calm(7, 60, crashed=1)).run()
    assert result.ok, result.summary()
    changed = {height for _, height, _, _, view in result.decisions if view > 0}
    assert len(changed) >= 60 // 7 - 1


def test_delta_follows_the_network() -> None:
    """Δ starts at delta_initial and settles where the measured delay puts it: on a 20-30 ms
    network it drops to the floor, and a dead leader's view change costs that much less."""
    simulation = Simulation(Scenario.calm(7, 40, crashed=1, latency=(0.020, 0.030)))
    result = simulation.run()
    assert result.ok, result.summary()
    config = HealthConfig()
    live = [node.replica for node in simulation.nodes[:6]]  # the seventh is down from the start
    assert all(replica.health.delta < config.delta_initial / 4 for replica in live)
    # Each live replica's loss estimate sees the dead seventh validator (1 of 6 others).
    assert all(0.1 < replica.health.loss <= 1 / 6 + 1e-9 for replica in live)
