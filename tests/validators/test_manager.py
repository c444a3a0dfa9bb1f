"""The validator manager: downtime, reputation, evidence (verification, deduplication, age,
severity, coordination), epochs, and replica agreement on the state hash."""

from __future__ import annotations

import os

import pytest

from swarmguard.codec import CodecError
from swarmguard.crypto import SigningKey, ecvrf
from swarmguard.validators.evidence import (
    NIL,
    PHASE_FINAL,
    PHASE_VOTE,
    DoubleVoteEvidence,
    InvalidEvidence,
    sign_vote,
)
from swarmguard.validators.manager import ValidatorManager
from swarmguard.validators.params import Infraction, StakingParams
from swarmguard.validators.staking import StakingError

CHAIN = "swarm-test"


def addr(n: int) -> bytes:
    return n.to_bytes(20, "big")


class Network:
    """A manager with ``count`` equal validators, past its first epoch boundary."""

    def __init__(self, count: int = 4, **params: int) -> None:
        defaults = {"epoch_length": 10, "signed_blocks_window": 10, "min_signed_ppm": 500_000}
        defaults.update(params)
        self.keys = {addr(n): SigningKey(bytes([n]) * 32) for n in range(1, count + 1)}
        balances = dict.fromkeys(self.keys, 1000000)
        self.manager = ValidatorManager(CHAIN, StakingParams(**defaults), balances)
        self.time = 1_000
        self.manager.begin_block(1, self.time)
        for operator, key in self.keys.items():
            vrf = ecvrf.public_key(key.seed)
            self.manager.staking.create_validator(operator, key.public_key.raw, vrf, 0, 100_000)
        self.finish_block(all_sign=True)
        while self.manager.staking.height % defaults["epoch_length"]:
            self.block(all_sign=True)

    def finish_block(self, *, all_sign: bool, missing: frozenset[bytes] = frozenset()) -> None:
        signers = [op for op in self.manager.staking.active if all_sign or op not in missing]
        if self.manager.staking.active:
            self.manager.record_block(self.manager.staking.active[0], signers)
        self.manager.end_block()

    def block(self, *, all_sign: bool = True, missing: frozenset[bytes] = frozenset()) -> None:
        self.time += 5
        self.manager.begin_block(self.manager.staking.height + 1, self.time)
        self.finish_block(all_sign=all_sign, missing=missing)

    def double_vote(self, operator: bytes, height: int) -> DoubleVoteEvidence:
        key = self.keys[operator]
        one = sign_vote(key, CHAIN, height, 0, 1, b"\x01" * 32)
        other = sign_vote(key, CHAIN, height, 0, 1, b"\x02" * 32)
        return DoubleVoteEvidence.of(other, one)


def test_downtime_jails_slashes_and_removes_at_the_epoch() -> None:
    """Missing more than half of the window jails the validator, slashes 1%, and it leaves the
    active set at the next epoch boundary."""
    network = Network()
    lazy = addr(2)
    for _ in range(4):
        network.block()  # judged only once a whole window (10 blocks) has been observed
    for _ in range(5):
        network.block(all_sign=False, missing=frozenset({lazy}))
    assert not network.manager.staking.validators[lazy].jailed  # 5 of 9 missed: not yet judged
    network.block(all_sign=False, missing=frozenset({lazy}))  # 6 of 10 missed: over half
    validator = network.manager.staking.validators[lazy]
    assert validator.jailed
    assert validator.tokens == 99_000
    while network.manager.staking.height % 10:
        network.block()
    assert lazy not in network.manager.staking.active


def test_reputation_decays_and_the_leader_skips_the_dead_validator() -> None:
    """After 7 missed blocks (0.9^7 < 0.5) a validator is no longer drawn, and after it comes back
    its reputation recovers and it is drawn again."""
    network = Network(signed_blocks_window=1000)
    dead = addr(3)
    for _ in range(7):
        network.block(all_sign=False, missing=frozenset({dead}))
    assert network.manager.reputation.score(dead) < 500_000
    leaders = {network.manager.leader(os.urandom(64), 0) for _ in range(400)}
    assert dead not in leaders
    for _ in range(7):
        network.block()
    assert network.manager.reputation.score(dead) >= 500_000
    assert dead in {network.manager.leader(os.urandom(64), 0) for _ in range(400)}


def test_double_vote_is_slashed_once_and_repeats_tombstone() -> None:
    """A double vote slashes 20% and jails; the same evidence again is refused; a second double
    vote tombstones with 50%; after that all evidence against it is refused."""
    network = Network()
    cheat = addr(1)
    manager = network.manager
    height = manager.staking.height
    evidence = network.double_vote(cheat, height)
    assert manager.submit_evidence(evidence) is Infraction.DOUBLE_VOTE
    assert manager.staking.validators[cheat].tokens == 80_000
    with pytest.raises(InvalidEvidence, match="duplicate"):
        manager.submit_evidence(evidence)
    network.block()
    assert manager.submit_evidence(network.double_vote(cheat, height + 1)) is (
        Infraction.REPEATED_EQUIVOCATION
    )
    assert manager.staking.validators[cheat].tombstoned
    assert manager.staking.validators[cheat].tokens == 40_000
    with pytest.raises(InvalidEvidence, match="tombstoned"):
        manager.submit_evidence(network.double_vote(cheat, height - 1))


def test_a_jailed_validator_never_leads_but_keeps_its_vote_until_the_epoch_ends() -> None:
    """Jailing masks a validator from leader selection at once; its voting power stays until the
    epoch boundary; after unjail (and the jail time) it may lead again."""
    network = Network(misbehaviour_jail_time=5)
    manager = network.manager
    cheat = addr(2)
    manager.report_invalid_proposal(cheat, manager.staking.height)
    assert cheat in manager.epoch_power
    assert cheat not in {manager.leader(os.urandom(64), 0) for _ in range(400)}
    with pytest.raises(StakingError, match="jailed until"):
        manager.unjail(cheat)
    network.block()  # 5 seconds later
    manager.unjail(cheat)
    assert cheat in {manager.leader(os.urandom(64), 0) for _ in range(400)}


def test_coordinated_equivocation_tombstones_the_group() -> None:
    """Equivocators holding a third of the active stake at one height are all tombstoned."""
    network = Network(count=6)
    manager = network.manager
    height = manager.staking.height
    assert manager.submit_evidence(network.double_vote(addr(1), height)) is Infraction.DOUBLE_VOTE
    assert manager.submit_evidence(network.double_vote(addr(2), height)) is (
        Infraction.REPEATED_EQUIVOCATION
    )
    assert manager.staking.validators[addr(1)].tombstoned
    assert manager.staking.validators[addr(2)].tombstoned
    assert not manager.staking.validators[addr(3)].tombstoned


def test_invalid_evidence_is_refused() -> None:
    """Wrong chain, different keys, different heights, equal votes, future and stale evidence."""
    network = Network(evidence_max_age_blocks=5)
    manager = network.manager
    key = network.keys[addr(1)]
    height = manager.staking.height
    other_chain = DoubleVoteEvidence.of(
        sign_vote(key, "other", height, 0, 1, b"\x01" * 32),
        sign_vote(key, "other", height, 0, 1, b"\x02" * 32),
    )
    with pytest.raises(InvalidEvidence, match="signature"):
        manager.submit_evidence(other_chain)
    with pytest.raises(InvalidEvidence, match="different keys"):
        manager.submit_evidence(
            DoubleVoteEvidence.of(
                sign_vote(key, CHAIN, height, 0, 1, b"\x01" * 32),
                sign_vote(network.keys[addr(2)], CHAIN, height, 0, 1, b"\x02" * 32),
            )
        )
    with pytest.raises(InvalidEvidence, match="different height"):
        manager.submit_evidence(
            DoubleVoteEvidence.of(
                sign_vote(key, CHAIN, height, 0, 1, b"\x01" * 32),
                sign_vote(key, CHAIN, height, 1, 1, b"\x02" * 32),
            )
        )
    same = sign_vote(key, CHAIN, height, 0, 1, b"\x01" * 32)
    with pytest.raises(InvalidEvidence, match="equal"):
        manager.submit_evidence(DoubleVoteEvidence(same, same))
    with pytest.raises(InvalidEvidence, match="future"):
        manager.submit_evidence(network.double_vote(addr(1), height + 1))
    for _ in range(6):
        network.block()
    with pytest.raises(InvalidEvidence, match="age limit"):
        manager.submit_evidence(network.double_vote(addr(1), height))
    assert not manager.staking.validators[addr(1)].jailed


def test_value_and_nil_votes_are_not_evidence_but_finals_are() -> None:
    """Following the consensus brief: Vote(k, x) with Vote(k, ⊥) is allowed (rule 7), so it is
    not evidence; two different Finals, ⊥ included, are."""
    network = Network()
    key = network.keys[addr(1)]
    height = network.manager.staking.height
    value_and_nil = DoubleVoteEvidence.of(
        sign_vote(key, CHAIN, height, 0, PHASE_VOTE, b"\x01" * 32),
        sign_vote(key, CHAIN, height, 0, PHASE_VOTE, NIL),
    )
    with pytest.raises(InvalidEvidence, match="not equivocation"):
        network.manager.submit_evidence(value_and_nil)
    finals = DoubleVoteEvidence.of(
        sign_vote(key, CHAIN, height, 0, PHASE_FINAL, b"\x01" * 32),
        sign_vote(key, CHAIN, height, 0, PHASE_FINAL, NIL),
    )
    assert network.manager.submit_evidence(finals) is Infraction.DOUBLE_VOTE
    with pytest.raises(InvalidEvidence, match="phase"):
        sign_vote(key, CHAIN, height, 0, 7, NIL)


def test_evidence_encoding_round_trip_and_rejections() -> None:
    """Evidence encodes canonically and refuses truncated or trailing input."""
    network = Network()
    evidence = network.double_vote(addr(1), network.manager.staking.height)
    encoded = evidence.encode()
    assert DoubleVoteEvidence.decode(encoded) == evidence
    with pytest.raises(CodecError):
        DoubleVoteEvidence.decode(encoded[:-1])
    with pytest.raises(CodecError):
        DoubleVoteEvidence.decode(encoded + b"\x00")


def test_replicas_agree_and_snapshots_round_trip() -> None:
    """Two managers fed the same blocks have the same state hash; a snapshot restores it."""
    first, second = Network(), Network()
    for network in (first, second):
        network.block(all_sign=False, missing=frozenset({addr(2)}))
        network.manager.submit_evidence(
            network.double_vote(addr(4), network.manager.staking.height)
        )
        network.manager.staking.delegate(addr(1), addr(3), 5_000)
        network.block()
    assert first.manager.state_hash() == second.manager.state_hash()
    restored = ValidatorManager.decode(CHAIN, first.manager.encode())
    assert restored.state_hash() == first.manager.state_hash()
    # Stake changed mid-epoch (the delegation above): the restored node must still draw from
    # the epoch's voting powers, exactly as the original does.
    for _ in range(200):
        seed = os.urandom(64)
        assert restored.leader(seed, 3) == first.manager.leader(seed, 3)
    with pytest.raises(CodecError):
        ValidatorManager.decode(CHAIN, first.manager.encode() + b"\x00")


def test_a_failed_leader_leaves_the_rotation_at_once_and_earns_its_way_back() -> None:
    """One failed turn as leader (the height decided in a later view) drops reputation to 0;
    seven on-time blocks (0.1, 0.19, ..., 0.52) bring it back over the 0.5 threshold."""
    network = Network(signed_blocks_window=1000)
    failed = addr(3)
    network.manager.begin_block(network.manager.staking.height + 1, network.time + 5)
    network.manager.record_block(
        addr(1), list(network.manager.staking.active), failed_leaders=[failed]
    )
    assert network.manager.reputation.score(failed) == 100_000  # penalised, then signed
    assert failed not in {network.manager.leader(os.urandom(64), 0) for _ in range(400)}
    for _ in range(5):
        network.block()
    assert network.manager.reputation.score(failed) < 500_000
    network.block()
    assert network.manager.reputation.score(failed) >= 500_000
    assert failed in {network.manager.leader(os.urandom(64), 0) for _ in range(400)}
