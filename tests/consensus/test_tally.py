"""The vote tally: thresholds in power, what counts once, equivocation, rule 7's trigger."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard.consensus.tally import (
    VALUES_PER_VALIDATOR_MAX,
    Accepted,
    CertificateRank,
    Kind,
    Thresholds,
    ViewTally,
)
from swarmguard.crypto import SigningKey
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_VOTE, SignedVote

A = b"a" * 32
B = b"b" * 32


def tally(powers: list[int], slack: int = 0) -> ViewTally:
    return ViewTally(powers, Thresholds.for_powers(powers, slack))


def test_four_equal_validators() -> None:
    t = Thresholds.for_powers([1, 1, 1, 1])
    assert (t.total, t.faults) == (4, 1)
    assert (t.fast_certificate, t.slow_certificate, t.fast_commit, t.slow_commit) == (2, 3, 4, 3)


def test_faults_are_the_largest_the_bound_allows() -> None:
    assert Thresholds.for_powers([1] * 7).faults == 2
    assert Thresholds.for_powers([1] * 6).faults == 1
    assert Thresholds.for_powers([10, 20, 30, 40]).faults == 33
    assert Thresholds.for_powers([1] * 9, slack=1).faults == 2  # 9 >= 3*2 + 2*1 + 1


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=40), st.integers(0, 50))
def test_threshold_bound_holds_and_is_tight(powers: list[int], slack: int) -> None:
    total = sum(powers)
    if total < 2 * slack + 1:
        with pytest.raises(ValueError):
            Thresholds.for_powers(powers, slack)
        return
    t = Thresholds.for_powers(powers, slack)
    assert total >= 3 * t.faults + 2 * slack + 1
    assert total < 3 * (t.faults + 1) + 2 * slack + 1
    # Two slow certificates for different values would need an honest validator to vote twice.
    assert 2 * t.slow_certificate - total > t.faults
    # After a fast commit of x, any N - F of Votes hold a Fast-Cert for x: at most P power did not
    # vote x and at most F more may have told these voters something else.
    heard = total - t.faults
    assert heard - (total - t.fast_commit) - t.faults >= t.fast_certificate


def test_invalid_sets_are_refused() -> None:
    for powers in ([], [0, 1], [-1, 5]):
        with pytest.raises(ValueError):
            Thresholds.for_powers(powers)
    with pytest.raises(ValueError):
        Thresholds(total=3, faults=1)


def test_certificates_and_commits_follow_power_not_counts() -> None:
    v = tally([40, 30, 20, 10])  # N = 100, F = 33: fast cert 34, slow cert 67, fast commit 100
    assert v.add_vote(0, A) is Accepted.COUNTED
    assert v.fast_certificate() == A  # 40 >= 34 with one validator
    assert v.slow_certificate() is None
    v.add_vote(1, A)
    assert v.slow_certificate() == A  # 70 >= 67
    assert v.fast_commit() is None
    v.add_vote(2, A)
    v.add_vote(3, A)
    assert v.fast_commit() == A
    for i in (0, 1):
        v.add_final(i, A)
    assert v.slow_commit() == A


def test_duplicates_count_once() -> None:
    v = tally([1, 1, 1, 1])
    assert v.add_vote(0, A) is Accepted.COUNTED
    assert v.add_vote(0, A) is Accepted.DUPLICATE
    assert v.fast_certificate() is None
    assert v.add_final(0, A) is Accepted.COUNTED
    assert v.add_final(0, A) is Accepted.DUPLICATE


def test_value_and_nil_vote_are_not_equivocation() -> None:
    v = tally([1, 1, 1, 1])
    assert v.add_vote(0, A) is Accepted.COUNTED
    assert v.add_vote(0, NIL) is Accepted.COUNTED
    assert v.add_vote(1, NIL) is Accepted.COUNTED
    assert v.add_vote(1, A) is Accepted.COUNTED  # order cannot be proven from signatures
    assert v.fast_certificate() == A
    assert v.nil_fast_certificate()


def test_equivocation_is_reported_and_counts_toward_each_value_signed() -> None:
    """A certificate is a set of signatures: an equivocator is in every one it signed for
    (the thresholds charge F to both sides), but its power counts once toward rule 7."""
    v = tally([1, 1, 1, 1])
    v.add_vote(0, A)
    assert v.add_vote(0, B) is Accepted.EQUIVOCATION
    assert v.add_vote(0, B) is Accepted.DUPLICATE
    assert v.first_message(0, PHASE_VOTE) == (A, b"")
    v.add_vote(1, B)
    assert v.fast_certificate() == B  # 0 and 1 signed B: N - 2F = 2
    v.add_vote(2, NIL)
    assert not v.no_fast_certificate_possible()  # three voters, though 0 signed twice
    v.add_final(2, A)
    assert v.add_final(2, NIL) is Accepted.EQUIVOCATION
    v.add_final(3, NIL)
    assert v.add_final(3, B) is Accepted.EQUIVOCATION
    assert not v.nil_slow_certificate()  # 2 of the 3 needed
    v.add_final(1, NIL)
    assert v.nil_slow_certificate()


def test_one_key_stores_a_bounded_number_of_values() -> None:
    v = tally([1, 1, 1, 1])
    values = [bytes([i + 1]) * 32 for i in range(VALUES_PER_VALIDATOR_MAX + 3)]
    for value in values:
        v.add_vote(0, value, b"signature")
        v.add_final(0, value, b"signature")
    counted = [x for x in values if v.certificate(PHASE_VOTE, x).signatures]
    assert counted == values[:VALUES_PER_VALIDATOR_MAX]
    finals = [x for x in values if v.certificate(PHASE_FINAL, x).signatures]
    assert finals == values[:VALUES_PER_VALIDATOR_MAX]


def test_unknown_validator() -> None:
    v = tally([1, 1, 1, 1])
    assert v.add_vote(4, A) is Accepted.UNKNOWN_VALIDATOR
    assert v.add_vote(-1, A) is Accepted.UNKNOWN_VALIDATOR
    assert v.add_final(9, A) is Accepted.UNKNOWN_VALIDATOR


def test_nil_certificates() -> None:
    v = tally([1, 1, 1, 1])
    v.add_vote(0, NIL)
    assert not v.nil_fast_certificate()
    v.add_vote(1, NIL)
    assert v.nil_fast_certificate()
    assert v.fast_certificate() is None  # ⊥ is never a value certificate
    for i in range(3):
        v.add_final(i, NIL)
    assert v.nil_slow_certificate()
    assert v.slow_commit() is None


def test_rule_seven_reads_no_fast_certificate() -> None:
    # Split votes from N - F power with no value reaching N - 2F: send Vote(⊥).
    v = tally([1] * 7)  # N = 7, F = 2: fast cert 3, N - F = 5
    for i, value in enumerate([A, A, B, B, NIL]):
        v.add_vote(i, value)
    assert v.no_fast_certificate_possible()
    # A Fast-Cert among the votes (no Slow-Cert) must not trigger it: that reading is unsafe.
    w = tally([1] * 7)
    for i, value in enumerate([A, A, A, B, B]):
        w.add_vote(i, value)
    assert w.fast_certificate() == A
    assert w.slow_certificate() is None
    assert not w.no_fast_certificate_possible()
    # Too little power heard from: wait.
    u = tally([1] * 7)
    for i, value in enumerate([A, B, NIL, NIL]):
        u.add_vote(i, value)
    assert not u.no_fast_certificate_possible()


def test_a_validator_voting_value_and_nil_counts_once_towards_rule_seven() -> None:
    v = tally([1] * 7)
    for i in range(4):
        v.add_vote(i, NIL)
        v.add_vote(i, bytes([i]) * 32)
    assert not v.no_fast_certificate_possible()  # only 4 validators heard, N - F = 5


def test_certificate_ranking() -> None:
    ranks = [
        CertificateRank(0, Kind.FAST.value),
        CertificateRank(0, Kind.SLOW.value),
        CertificateRank(1, Kind.FAST.value),
        CertificateRank(1, Kind.SLOW.value),
        CertificateRank(5, Kind.FAST.value),
    ]
    assert all(lower < higher for lower, higher in pairwise(ranks))


def test_certificates_built_from_the_tally_verify() -> None:
    chain = "swarm-test"
    keys = [SigningKey(bytes([n + 1]) * 32) for n in range(4)]
    validators = [(key.public_key.raw, 1) for key in keys]

    def signed(index: int, phase: int, value: bytes) -> bytes:
        vote = SignedVote(3, 2, phase, value, keys[index].public_key.raw, bytes(64))
        return keys[index].sign(vote.sign_bytes(chain))

    v = ViewTally([1] * 4, Thresholds.for_powers([1] * 4), height=3, view=2)
    for i in (3, 1, 0, 2):  # arrival order does not matter: indices come out sorted
        v.add_vote(i, A, signed(i, PHASE_VOTE, A))
    v.add_vote(0, A, signed(0, PHASE_VOTE, B))  # a duplicate is not stored twice
    assert v.fast_commit() == A
    fast = v.certificate(PHASE_VOTE, A)
    assert [i for i, _ in fast.signatures] == [0, 1, 2, 3]
    fast.verify(chain, validators)
    for i in range(3):
        v.add_final(i, NIL, signed(i, PHASE_FINAL, NIL))
    assert v.nil_slow_certificate()
    assert v.certificate(PHASE_FINAL, NIL).signed_power(chain, validators) == 3
    w = ViewTally([1] * 4, Thresholds.for_powers([1] * 4))
    w.add_vote(0, A)
    with pytest.raises(ValueError, match="without its signature"):
        w.certificate(PHASE_VOTE, A)
