"""Catch-up verification: valid ranges pass sequentially and in parallel; each kind of forgery
is caught and named; verified ranges are stored in one batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.crypto import PublicKey, SigningKey
from swarmguard.storage.blockstore import Block, BlockStore
from swarmguard.storage.catchup import CatchUpError, Header, verify_range
from swarmguard.storage.merkle import (
    leaf_hash,
    list_inclusion_proof,
    merkle_root,
    verify_inclusion,
)
from swarmguard.validators.certificate import CertificateError, CommitCertificate
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_PROPOSE, PHASE_VOTE, SignedVote
from swarmguard.validators.sets import validators_hash

CHAIN = "swarm-test"
KEYS = [SigningKey(bytes([n]) * 32) for n in range(1, 8)]
VALIDATORS = [(key.public_key.raw, 10) for key in KEYS]
# N = 70, F = 23: a slow commit needs FINALs from 47 power (5 signers), a fast one VOTEs from all.


def certificate(
    height: int, block_hash: bytes, signers: range = range(7), phase: int = PHASE_FINAL
) -> bytes:
    signatures = []
    for index in signers:
        vote = SignedVote(height, 0, phase, block_hash, KEYS[index].public_key.raw, bytes(64))
        signatures.append((index, KEYS[index].sign(vote.sign_bytes(CHAIN))))
    return CommitCertificate(height, 0, block_hash, tuple(signatures), phase).encode()


def chain(count: int, previous: bytes = bytes(32)) -> list[Block]:
    blocks = []
    for height in range(1, count + 1):
        transactions = tuple(b"tx %d.%d" % (height, i) for i in range(10))
        header = Header(
            height,
            1000 + height,
            previous,
            merkle_root(list(transactions)),
            bytes(32),
            validators_hash(VALIDATORS),
            validators_hash(VALIDATORS),
            bytes(20),
        ).encode()
        block_hash = Header.decode(header).hash(CHAIN)
        blocks.append(Block(height, header, transactions, certificate(height, block_hash)))
        previous = block_hash
    return blocks


BLOCKS = chain(40)


@pytest.mark.parametrize("processes", [1, 2])
def test_valid_range_verifies(processes: int) -> None:
    """A correct chain verifies, one process or several, and yields the block hashes."""
    hashes = verify_range(CHAIN, BLOCKS, bytes(32), VALIDATORS, processes=processes, slice_size=7)
    assert hashes == [Header.decode(b.header).hash(CHAIN) for b in BLOCKS]


def tampered(index: int, **changes: object) -> list[Block]:
    blocks = list(BLOCKS)
    blocks[index] = replace(blocks[index], **changes)  # type: ignore[arg-type]
    return blocks


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (tampered(12, transactions=(b"forged",)), "block 13: transactions"),
        (
            tampered(20, certificate=certificate(21, b"\x03" * 32)),
            "block 21: the certificate is for",
        ),
        (
            tampered(
                30,
                certificate=certificate(31, Header.decode(BLOCKS[30].header).hash(CHAIN), range(4)),
            ),
            "block 31: signers hold 40",
        ),
        (tampered(5, header=BLOCKS[6].header), "block 6: its header says height 7"),
        (tampered(9, certificate=b"\x01junk"), "block 10:"),
        (tampered(14, last_commit=b"another commit"), "block 15: its last commit"),
    ],
)
def test_forgeries_are_named(processes: int, blocks: list[Block], message: str) -> None:
    """A changed transaction, a certificate for another block, too little power, a header of
    another height, or an undecodable certificate: the lowest bad block is named."""
    with pytest.raises(CatchUpError, match=message):
        verify_range(CHAIN, blocks, bytes(32), VALIDATORS, processes=processes, slice_size=7)


def test_broken_links_and_gaps_are_caught() -> None:
    """A chain from another parent, or with a gap, does not verify."""
    with pytest.raises(CatchUpError, match="block 1: previous_hash"):
        verify_range(CHAIN, BLOCKS, b"\x01" * 32, VALIDATORS)
    other = chain(3, previous=b"\x02" * 32)
    with pytest.raises(CatchUpError, match="does not follow"):
        verify_range(CHAIN, [BLOCKS[0], BLOCKS[2]], bytes(32), VALIDATORS)
    with pytest.raises(CatchUpError, match="previous_hash"):
        verify_range(CHAIN, [BLOCKS[0], other[1]], bytes(32), VALIDATORS)


def test_certificate_rules() -> None:
    """Signers must be known, distinct (strictly increasing), and sign this chain's vote."""
    block_hash = Header.decode(BLOCKS[0].header).hash(CHAIN)
    good = CommitCertificate.decode(certificate(1, block_hash))
    good.verify(CHAIN, VALIDATORS)
    with pytest.raises(CertificateError, match="not in the validator set"):
        good.verify(CHAIN, VALIDATORS[:3])
    with pytest.raises(CertificateError, match="does not verify"):
        good.verify("other-chain", VALIDATORS)
    doubled = replace(good, signatures=(good.signatures[0], good.signatures[0]))
    with pytest.raises(CertificateError, match="strictly increasing"):
        doubled.verify(CHAIN, VALIDATORS)
    assert CommitCertificate.decode(good.encode()) == good


def test_known_signatures_are_counted_unverified_and_only_exactly_those(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``known`` pairs (index, signature) skip the verify; any other pair is verified, so a
    forged signature at a known signer's index still fails, and known pairs never lift the
    threshold (they count only the power of signers the certificate names)."""
    block_hash = Header.decode(BLOCKS[0].header).hash(CHAIN)
    good = CommitCertificate.decode(certificate(1, block_hash))
    known = frozenset(good.signatures[:5])
    checked: list[bytes] = []
    real = PublicKey.is_valid
    monkeypatch.setattr(
        PublicKey, "is_valid", lambda self, m, s: checked.append(s) or real(self, m, s)
    )
    good.verify(CHAIN, VALIDATORS, known=known)
    assert checked == [signature for _, signature in good.signatures[5:]]
    forged = replace(good, signatures=((0, bytes(64)), *good.signatures[1:]))
    with pytest.raises(CertificateError, match="signer 0: the signature does not verify"):
        forged.verify(CHAIN, VALIDATORS, known=known)
    short = replace(good, signatures=good.signatures[:4])
    with pytest.raises(CertificateError, match="40 of the 47"):
        short.verify(CHAIN, VALIDATORS, known=known)


def test_commit_threshold_follows_the_phase() -> None:
    """FINALs commit from N - F power; VOTEs only from all of it (P = 0): a prepared
    certificate (VOTEs from N - F) is not a commit and must not pass as one."""
    block_hash = Header.decode(BLOCKS[0].header).hash(CHAIN)

    def check(signers: range, phase: int, slack: int = 0) -> None:
        CommitCertificate.decode(certificate(1, block_hash, signers, phase)).verify(
            CHAIN, VALIDATORS, slack
        )

    check(range(5), PHASE_FINAL)
    with pytest.raises(CertificateError, match="40 of the 47"):
        check(range(4), PHASE_FINAL)
    check(range(7), PHASE_VOTE)
    with pytest.raises(CertificateError, match="60 of the 70"):
        check(range(6), PHASE_VOTE)
    check(range(6), PHASE_VOTE, slack=10)  # P = 10: the fast path may miss one validator


def test_signed_power_counts_valid_signers_for_any_value() -> None:
    """Consensus's certificates (⊥ included) are read through signed_power."""
    nil = CommitCertificate.decode(certificate(1, NIL, range(2, 6), PHASE_FINAL))
    assert nil.signed_power(CHAIN, VALIDATORS) == 40
    forged = replace(nil, view=1)  # signatures were over view 0
    with pytest.raises(CertificateError, match="does not verify"):
        forged.signed_power(CHAIN, VALIDATORS)


def test_certificate_format_is_strict() -> None:
    block_hash = Header.decode(BLOCKS[0].header).hash(CHAIN)
    encoded = certificate(1, block_hash)
    assert encoded[0] == 2
    with pytest.raises(CodecError, match="unknown version"):
        CommitCertificate.decode(b"\x01" + encoded[1:])
    with pytest.raises(CodecError, match="not VOTE or FINAL"):
        CommitCertificate.decode(encoded[:17] + bytes([PHASE_PROPOSE]) + encoded[18:])
    nil = CommitCertificate.decode(encoded[:18] + NIL + encoded[50:])  # a ⊥ certificate decodes
    with pytest.raises(CertificateError, match="only VOTEs or FINALs for a block"):
        nil.verify(CHAIN, VALIDATORS)  # but never commits
    with pytest.raises(CodecError):
        CommitCertificate.decode(encoded[:-1])


def test_verified_range_is_stored_in_one_batch(tmp_path: Path) -> None:
    """commit_many stores a verified range atomically; a gap refuses the whole batch."""
    with BlockStore(tmp_path / "db", CHAIN) as store:
        hashes = store.commit_many([(block, {}) for block in BLOCKS])
        assert store.height == 40
        assert hashes[-1] == Header.decode(BLOCKS[-1].header).hash(CHAIN)
        with pytest.raises(Exception, match="expected block 41"):
            store.commit_many([(replace(BLOCKS[0], height=42), {})])
        assert store.height == 40


def test_transaction_inclusion_against_the_header() -> None:
    """Each transaction of a block has an RFC 9162 proof against its header's root."""
    block = BLOCKS[7]
    root = Header.decode(block.header).transactions_root
    for index, transaction in enumerate(block.transactions):
        proof = list_inclusion_proof(list(block.transactions), index)
        verify_inclusion(leaf_hash(transaction), index, len(block.transactions), proof, root)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_header_and_certificate_decoders_never_crash(data: bytes) -> None:
    """Arbitrary bytes decode or raise CodecError, and what decodes re-encodes identically."""
    for decoder in (Header.decode, CommitCertificate.decode):
        try:
            value = decoder(data)
        except CodecError:
            continue
        assert value.encode() == data
