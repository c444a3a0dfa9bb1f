"""Ledger transactions: every kind round-trips canonically, signatures bind the chain, and
malformed bytes are a CodecError and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.crypto import SigningKey
from swarmguard.crypto.hashing import address_of
from swarmguard.node.transactions import (
    MEMO_BYTES_MAX,
    TRANSACTION_BYTES_MAX,
    TRANSACTION_VERSION,
    CreateValidator,
    Delegate,
    Redelegate,
    SubmitEvidence,
    Transaction,
    Transfer,
    Undelegate,
    Unjail,
)
from swarmguard.validators.evidence import PHASE_VOTE, DoubleVoteEvidence, sign_vote
from tests.strict_decoding import check_garbage, check_one_changed_byte

CHAIN = "swarm-test"
ALICE = SigningKey(b"a" * 32)
BOB = address_of(SigningKey(b"b" * 32).public_key.raw)
EVIDENCE = DoubleVoteEvidence.of(
    sign_vote(ALICE, CHAIN, 5, 0, PHASE_VOTE, b"x" * 32),
    sign_vote(ALICE, CHAIN, 5, 0, PHASE_VOTE, b"y" * 32),
)
BODIES = [
    Transfer(BOB, 10),
    Transfer(BOB, 11, b"invoice 42"),
    CreateValidator(b"c" * 32, b"v" * 32, 50_000, 1000),
    Delegate(BOB, 5),
    Undelegate(BOB, 0),
    Redelegate(BOB, b"o" * 20, 7),
    Unjail(),
    SubmitEvidence(EVIDENCE),
]
TRANSACTIONS = [Transaction.sign(ALICE, CHAIN, n, body) for n, body in enumerate(BODIES)]


@pytest.mark.parametrize("tx", TRANSACTIONS, ids=lambda tx: tx.kind.name)
def test_round_trip_signature_and_chain_binding(tx: Transaction) -> None:
    encoded = tx.encode()
    assert len(encoded) <= TRANSACTION_BYTES_MAX
    assert Transaction.decode(encoded) == tx
    assert tx.is_signed(CHAIN)
    assert tx.is_signed(CHAIN, encoded)  # the signed part sliced from the encoding
    assert not tx.is_signed("another-chain")  # replay on another chain fails
    assert not tx.is_signed("another-chain", encoded)
    assert tx.address == address_of(ALICE.public_key.raw)
    for broken in (encoded + b"\0", encoded[:-1], bytes([TRANSACTION_VERSION + 1]) + encoded[1:]):
        with pytest.raises(CodecError):
            Transaction.decode(broken)


def test_a_changed_field_breaks_the_signature() -> None:
    tx = TRANSACTIONS[0]
    forged = Transaction(tx.sender, tx.nonce + 1, tx.body, tx.signature)  # replay, next nonce
    assert not forged.is_signed(CHAIN)


def test_shapes_are_checked() -> None:
    for make in (
        lambda: Transfer(b"short", 1),
        lambda: Transfer(BOB, 0),
        lambda: Transfer(BOB, 2**64),
        lambda: Transfer(BOB, 1, bytes(MEMO_BYTES_MAX + 1)),
        lambda: CreateValidator(b"c" * 32, b"v" * 32, 1_000_001, 1),
        lambda: Transaction(b"k" * 31, 0, Unjail(), bytes(64)),
    ):
        with pytest.raises(CodecError):
            make()


@settings(max_examples=300)
@given(st.data())
def test_any_corruption_is_an_error_or_an_equal_encoding(data: st.DataObject) -> None:
    tx = data.draw(st.sampled_from(TRANSACTIONS))
    check_one_changed_byte(data, tx.encode(), Transaction.decode, Transaction.encode)


@given(st.binary(max_size=400))
def test_random_bytes_never_crash(blob: bytes) -> None:
    check_garbage(blob, Transaction.decode)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_the_transfer_fast_path_decodes_exactly_as_the_general_one(data: st.DataObject) -> None:
    """Same value or same refusal, whatever a byte or the length is changed to."""
    memo = data.draw(st.binary(max_size=MEMO_BYTES_MAX + 2))
    encoded = bytearray(
        Transaction.sign(ALICE, CHAIN, 3, Transfer(BOB, 5, memo[:MEMO_BYTES_MAX])).encode()
    )
    if data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    else:
        encoded = encoded[: data.draw(st.integers(0, len(encoded) + 1))] + bytes(
            data.draw(st.integers(0, 2))
        )
    outcomes = []
    for decode in (Transaction.decode, Transaction._decode):
        try:
            outcomes.append(decode(bytes(encoded)))
        except CodecError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


def test_the_transfer_fast_path_refuses_and_builds_what_the_constructors_would() -> None:
    """The fast path sets fields without the constructors' checks: a zero amount still gets
    their refusal, and what it builds is an ordinary, frozen, hashable value."""
    encoded = bytearray(Transaction.sign(ALICE, CHAIN, 2**64 - 1, Transfer(BOB, 1)).encode())
    amount_at = 2 + 32 + 8 + 20
    encoded[amount_at : amount_at + 8] = bytes(8)
    with pytest.raises(CodecError, match="amount 0 out of range"):
        Transaction.decode(bytes(encoded))
    value = Transfer(BOB, 2**64 - 1, b"m" * MEMO_BYTES_MAX)
    original = Transaction.sign(ALICE, CHAIN, 2**64 - 1, value)
    decoded = Transaction.decode(original.encode())
    assert decoded == original
    assert hash(decoded) == hash(original)
    assert decoded.is_signed(CHAIN)
    assert decoded.encode() == original.encode()
    with pytest.raises(AttributeError):
        decoded.nonce = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        decoded.body.amount = 1  # type: ignore[misc, union-attr]
