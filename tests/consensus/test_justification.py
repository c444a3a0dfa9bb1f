"""Rule 2: the ⊥ certificates a proposal needs, in each of the brief's three cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard.consensus.justification import (
    is_justified,
    missing_nil_certificates,
    required_nil_certificates,
)
from swarmguard.consensus.tally import CertificateRank, Kind

FAST, SLOW = Kind.FAST.value, Kind.SLOW.value


def slots(view: int, certificate: CertificateRank | None) -> list[tuple[int, int]]:
    return [(s.view, s.kind) for s in required_nil_certificates(view, certificate)]


def test_view_zero_needs_nothing() -> None:
    assert slots(0, None) == []
    assert is_justified(0, None, set())


def test_no_certificate_needs_both_nil_certificates_of_every_earlier_view() -> None:
    assert slots(3, None) == [(0, FAST), (0, SLOW), (1, FAST), (1, SLOW), (2, FAST), (2, SLOW)]


def test_fast_certificate_also_needs_the_slow_nil_certificate_of_its_own_view() -> None:
    between = [(2, FAST), (2, SLOW), (3, FAST), (3, SLOW)]
    assert slots(4, CertificateRank(1, FAST)) == [(1, SLOW), *between]
    assert slots(2, CertificateRank(1, FAST)) == [(1, SLOW)]


def test_slow_certificate_needs_only_the_views_between() -> None:
    assert slots(4, CertificateRank(1, SLOW)) == [(2, FAST), (2, SLOW), (3, FAST), (3, SLOW)]
    assert slots(2, CertificateRank(1, SLOW)) == []


def test_a_certificate_must_come_from_an_earlier_view() -> None:
    assert not is_justified(2, CertificateRank(2, SLOW), set())
    assert not is_justified(2, CertificateRank(5, FAST), set())
    with pytest.raises(ValueError):
        list(required_nil_certificates(2, CertificateRank(2, FAST)))
    with pytest.raises(ValueError):
        list(required_nil_certificates(-1, None))


def test_the_slot_left_open_by_ranking_by_view_only_is_caught() -> None:
    # Fast-Cert(1, x) and a Slow-Cert(1, ⊥) missing: a slow commit of another value in view 1
    # could be hiding behind it, so the proposal is not justified.
    held = {CertificateRank(2, FAST), CertificateRank(2, SLOW)}
    assert missing_nil_certificates(3, CertificateRank(1, FAST), held) == [CertificateRank(1, SLOW)]
    assert not is_justified(3, CertificateRank(1, FAST), held)
    assert is_justified(3, CertificateRank(1, FAST), held | {CertificateRank(1, SLOW)})


@given(
    st.integers(0, 30),
    st.one_of(st.none(), st.tuples(st.integers(0, 30), st.sampled_from([FAST, SLOW]))),
)
def test_required_slots_are_exactly_those_between(view: int, cert: tuple[int, int] | None) -> None:
    if cert is not None and cert[0] >= view:
        return
    rank = None if cert is None else CertificateRank(*cert)
    every = [CertificateRank(v, k) for v in range(view) for k in (FAST, SLOW)]
    expected = [s for s in every if rank is None or s > rank]
    assert list(required_nil_certificates(view, rank)) == expected
    assert is_justified(view, rank, set(expected))
    for dropped in expected:
        assert not is_justified(view, rank, set(expected) - {dropped})
