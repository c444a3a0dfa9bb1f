"""Proposals: the wire format is strict and canonical, and verify enforces rule 2."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.consensus.messages import NIL_CERTIFICATES_MAX, Proposal, ProposalError
from swarmguard.consensus.tally import CertificateRank, Kind, Thresholds
from swarmguard.crypto import SigningKey
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_PROPOSE, PHASE_VOTE, SignedVote
from tests.strict_decoding import check_garbage, check_one_changed_byte

CHAIN = "swarm-test"
KEYS = [SigningKey(bytes([n + 1]) * 32) for n in range(4)]
VALIDATORS = [(key.public_key.raw, 10) for key in KEYS]
THRESHOLDS = Thresholds.for_powers([10] * 4)  # N = 40, F = 13: fast cert 14, slow cert 27
X = b"x" * 32
HEIGHT = 7


def sign(index: int, view: int, phase: int, value: bytes) -> bytes:
    key = KEYS[index]
    vote = SignedVote(HEIGHT, view, phase, value, key.public_key.raw, bytes(64))
    return key.sign(vote.sign_bytes(CHAIN))


def cert(view: int, phase: int, value: bytes, signers: range) -> CommitCertificate:
    signatures = tuple((i, sign(i, view, phase, value)) for i in signers)
    return CommitCertificate(HEIGHT, view, value, signatures, phase)


def nils(*slots: tuple[int, Kind]) -> tuple[CommitCertificate, ...]:
    return tuple(
        cert(view, PHASE_VOTE if kind is Kind.FAST else PHASE_FINAL, NIL, range(3))
        for view, kind in slots
    )


def proposal(
    view: int,
    certificate: tuple[Kind, CommitCertificate] | None = None,
    nil_certificates: tuple[CommitCertificate, ...] = (),
    proposer: int = 1,
) -> Proposal:
    signature = sign(proposer, view, PHASE_PROPOSE, X)
    return Proposal(HEIGHT, view, proposer, X, signature, b"block", certificate, nil_certificates)


def test_a_fresh_proposal_in_view_zero() -> None:
    p = proposal(0)
    assert Proposal.decode(p.encode()) == p
    p.verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)


def test_only_the_leader_with_a_valid_signature() -> None:
    p = proposal(0)
    with pytest.raises(ProposalError, match="not the leader"):
        p.verify(CHAIN, VALIDATORS, THRESHOLDS, leader=2)
    with pytest.raises(ProposalError, match="does not verify"):
        p.verify("other-chain", VALIDATORS, THRESHOLDS, leader=1)
    with pytest.raises(ProposalError, match="does not verify"):
        replace(p, block_hash=b"y" * 32).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)


def test_a_fresh_block_after_failed_views_needs_every_nil_certificate() -> None:
    every = ((0, Kind.FAST), (0, Kind.SLOW), (1, Kind.FAST), (1, Kind.SLOW))
    proposal(2, None, nils(*every)).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)
    with pytest.raises(ProposalError, match="no ⊥ certificate"):
        proposal(2, None, nils(*every[:3])).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)
    # The replica's own ⊥ certificates count too (forwarded by rule 8).
    held = {CertificateRank(1, Kind.SLOW.value)}
    proposal(2, None, nils(*every[:3])).verify(CHAIN, VALIDATORS, THRESHOLDS, 1, held)


def test_a_fast_certificate_needs_the_slow_nil_slot_of_its_view() -> None:
    fast = (Kind.FAST, cert(1, PHASE_VOTE, X, range(2)))  # 20 >= 14
    with pytest.raises(ProposalError, match="no ⊥ certificate"):
        proposal(2, fast).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)
    proposal(2, fast, nils((1, Kind.SLOW))).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)
    slow = (Kind.SLOW, cert(1, PHASE_VOTE, X, range(3)))  # 30 >= 27
    proposal(2, slow).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)


def test_certificates_need_their_power() -> None:
    weak_slow = (Kind.SLOW, cert(1, PHASE_VOTE, X, range(2)))  # 20 < 27
    with pytest.raises(ProposalError, match="20 power of the 27"):
        proposal(2, weak_slow).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)
    weak_nil = (cert(0, PHASE_VOTE, NIL, range(1)),)  # 10 < 14
    with pytest.raises(ProposalError, match="10 power of the 14"):
        proposal(1, None, weak_nil).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)
    forged = (Kind.SLOW, replace(cert(0, PHASE_VOTE, X, range(3)), view=1))
    with pytest.raises(ProposalError, match="does not verify"):
        proposal(2, forged).verify(CHAIN, VALIDATORS, THRESHOLDS, leader=1)


def test_shape_errors() -> None:
    with pytest.raises(ProposalError, match="another block"):
        proposal(2, (Kind.SLOW, cert(1, PHASE_VOTE, b"y" * 32, range(3))))
    with pytest.raises(ProposalError, match="earlier view"):
        proposal(1, (Kind.SLOW, cert(1, PHASE_VOTE, X, range(3))))
    with pytest.raises(ProposalError, match="certificate of VOTEs"):
        proposal(2, (Kind.SLOW, cert(1, PHASE_FINAL, X, range(3))))
    with pytest.raises(ProposalError, match="strictly increasing"):
        proposal(2, None, nils((1, Kind.FAST), (0, Kind.FAST)))
    with pytest.raises(ProposalError, match="strictly increasing"):
        proposal(2, None, nils((0, Kind.FAST), (0, Kind.FAST)))
    with pytest.raises(ProposalError, match="VOTEs or FINALs for ⊥"):
        proposal(2, None, (cert(0, PHASE_VOTE, X, range(3)),))
    with pytest.raises(ProposalError, match="not ⊥"):
        replace(proposal(0), block_hash=NIL)


def test_decoding_is_strict() -> None:
    encoded = proposal(2, (Kind.FAST, cert(1, PHASE_VOTE, X, range(2))), nils((1, Kind.SLOW)))
    data = encoded.encode()
    assert Proposal.decode(data) == encoded
    for bad, message in (
        (b"\x02" + data[1:], "unknown version"),
        (data + b"\x00", "trailing"),
        (data[:-1], "truncated"),
        (b"", "truncated"),
    ):
        with pytest.raises(CodecError, match=message):
            Proposal.decode(bad)
    kind_at = 1 + 8 + 8 + 2 + 32 + 64 + 4 + len(b"block") + 1
    with pytest.raises(CodecError, match="not Fast or Slow"):
        Proposal.decode(data[:kind_at] + b"\x07" + data[kind_at + 1 :])


def test_the_nil_certificate_limit() -> None:
    many = nils(*[(v, k) for v in range(NIL_CERTIFICATES_MAX // 2 + 1) for k in Kind])
    with pytest.raises(ProposalError, match="more than"):
        proposal(NIL_CERTIFICATES_MAX, None, many)


@settings(max_examples=300)
@given(st.data())
def test_any_corruption_is_an_error_or_an_equal_encoding(data: st.DataObject) -> None:
    """One changed byte never crashes the decoder, and whatever decodes re-encodes identically."""
    valid = proposal(2, (Kind.FAST, cert(1, PHASE_VOTE, X, range(2))), nils((1, Kind.SLOW)))
    check_one_changed_byte(data, valid.encode(), Proposal.decode, Proposal.encode)


@given(st.binary(max_size=400))
def test_random_bytes_never_crash(blob: bytes) -> None:
    check_garbage(blob, Proposal.decode)
