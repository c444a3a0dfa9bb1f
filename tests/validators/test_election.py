"""Leader selection: the stake tree against a naive scan, fairness (chi-square), reputation
masking, and the VRF seed chain."""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.crypto import InvalidProof, ecvrf
from swarmguard.validators.election import (
    LeaderSchedule,
    ScheduledValidator,
    next_seed,
    vrf_input,
)
from swarmguard.validators.stake_tree import StakeTree

CHAIN = "swarm-test"


def naive_owner(weights: list[int], unit: int) -> int:
    running = 0
    for slot, weight in enumerate(weights):
        running += weight
        if unit < running:
            return slot
    raise AssertionError("unit beyond total")


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.integers(0, 1000), min_size=1, max_size=70),
    updates=st.lists(st.tuples(st.integers(0, 69), st.integers(0, 1000)), max_size=30),
    data=st.data(),
)
def test_stake_tree_matches_a_linear_scan(
    weights: list[int], updates: list[tuple[int, int]], data: st.DataObject
) -> None:
    """After any updates, prefix sums and owners equal those of a plain scan."""
    tree = StakeTree.from_weights(weights)
    incremental = StakeTree(len(weights))
    for slot, weight in enumerate(weights):
        incremental.set(slot, weight)
    for slot, weight in updates:
        if slot < len(weights):
            weights[slot] = weight
            tree.set(slot, weight)
            incremental.set(slot, weight)
    total = sum(weights)
    assert tree.total() == incremental.total() == total
    for count in range(len(weights) + 1):
        assert tree.prefix(count) == sum(weights[:count])
    if total:
        units = data.draw(st.lists(st.integers(0, total - 1), min_size=1, max_size=20))
        for unit in [*units, 0, total - 1]:
            assert tree.find(unit) == incremental.find(unit) == naive_owner(weights, unit)
    with pytest.raises(ValueError):
        tree.find(total)


def skewed_set(count: int = 30) -> list[ScheduledValidator]:
    """One whale with about a third of the stake, then geometrically smaller validators."""
    validators = [ScheduledValidator(b"whale".ljust(20, b"\x00"), 1_000_000)]
    stake = 400_000
    for index in range(count - 1):
        validators.append(ScheduledValidator(index.to_bytes(20, "big"), max(stake, 1_000)))
        stake = stake * 3 // 4
    return validators


def chi_square_critical(df: int, z: float = 3.0902) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.0902: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_leader_frequency_matches_stake_share() -> None:
    """100,000 draws with skewed stake: frequencies fit stake shares (chi-square, p = 0.001),
    and the largest validator gets no more than its share (within 4 sigma)."""
    validators = skewed_set()
    schedule = LeaderSchedule(CHAIN, validators)
    total = schedule.total_stake()
    draws = 100_000
    counts: Counter[bytes] = Counter()
    seed = hashlib.sha512(b"fixed genesis seed").digest()
    for height in range(draws):
        seed_h = hashlib.sha512(seed + height.to_bytes(8, "big")).digest()
        counts[schedule.leader(seed_h, 0)] += 1
    statistic = 0.0
    for validator in validators:
        expected = draws * validator.stake / total
        statistic += (counts[validator.address] - expected) ** 2 / expected
    assert statistic < chi_square_critical(len(validators) - 1), statistic
    whale = validators[0]
    share = whale.stake / total
    sigma = math.sqrt(draws * share * (1 - share))
    assert counts[whale.address] <= draws * share + 4 * sigma


def test_views_draw_independently() -> None:
    """Within one height, successive views pick leaders independently of each other."""
    validators = [ScheduledValidator(bytes([i]) * 20, 100) for i in range(10)]
    schedule = LeaderSchedule(CHAIN, validators)
    seed = os.urandom(64)
    leaders = [schedule.leader(seed, view) for view in range(200)]
    assert len(set(leaders)) == 10  # 200 draws over 10 equal validators reach all of them
    assert schedule.leader(seed, 5) == leaders[5]  # and each draw is deterministic


def test_low_reputation_validators_are_skipped() -> None:
    """A validator below the reputation threshold is never picked; if all are, stake decides."""
    validators = [ScheduledValidator(bytes([i]) * 20, 100) for i in range(5)]
    schedule = LeaderSchedule(CHAIN, validators, reputation_threshold=0.5)
    dead = validators[2].address
    schedule.set_reputation(dead, 0.2)
    picks = {schedule.leader(os.urandom(64), 0) for _ in range(500)}
    assert dead not in picks
    assert len(picks) == 4
    for validator in validators:
        schedule.set_reputation(validator.address, 0.0)
    assert len({schedule.leader(os.urandom(64), 0) for _ in range(500)}) == 5
    schedule.set_reputation(dead, 0.9)
    assert {schedule.leader(os.urandom(64), 0) for _ in range(50)} == {dead}


def test_stake_updates_change_the_odds() -> None:
    """Setting a validator's stake to zero removes it from the draw at once."""
    validators = [ScheduledValidator(bytes([i]) * 20, 100) for i in range(3)]
    schedule = LeaderSchedule(CHAIN, validators)
    schedule.set_stake(validators[0].address, 0)
    assert validators[0].address not in {schedule.leader(os.urandom(64), 0) for _ in range(300)}
    assert schedule.total_stake() == 200


def test_vrf_seed_chain() -> None:
    """The proposer proves the next seed over (chain, previous seed, height); anyone verifies it,
    and a proof for another height, chain or key fails."""
    key = ecvrf.VrfSecretKey(os.urandom(32))
    genesis = hashlib.sha512(b"genesis").digest()
    proof = key.prove(vrf_input(CHAIN, genesis, 1))
    seed_1 = next_seed(CHAIN, genesis, 1, key.public_key, proof)
    assert seed_1 == ecvrf.proof_to_hash(proof)
    with pytest.raises(InvalidProof):
        next_seed(CHAIN, genesis, 2, key.public_key, proof)
    with pytest.raises(InvalidProof):
        next_seed("other-chain", genesis, 1, key.public_key, proof)
    with pytest.raises(InvalidProof):
        next_seed(CHAIN, genesis, 1, ecvrf.VrfSecretKey(os.urandom(32)).public_key, proof)
    assert vrf_input(CHAIN, genesis, 1) != vrf_input(CHAIN, seed_1, 1)


def test_invalid_schedules_are_refused() -> None:
    """Empty sets, zero total stake, duplicates and negative stake are refused."""
    with pytest.raises(ValueError):
        LeaderSchedule(CHAIN, [])
    with pytest.raises(ValueError):
        LeaderSchedule(CHAIN, [ScheduledValidator(b"a" * 20, 0)])
    with pytest.raises(ValueError):
        LeaderSchedule(CHAIN, [ScheduledValidator(b"a" * 20, 1), ScheduledValidator(b"a" * 20, 1)])
    with pytest.raises(ValueError):
        LeaderSchedule(CHAIN, [ScheduledValidator(b"a" * 20, -1)])
