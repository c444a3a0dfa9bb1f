"""The consensus envelope: every message kind round-trips, one encoding per value, and malformed
input is a CodecError and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.consensus import wire
from swarmguard.consensus.replica import Message
from swarmguard.consensus.sync import BlockReply, BlockRequest, Decision, DecisionRequest
from swarmguard.consensus.tally import Kind
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_VOTE, SignedVote
from tests.strict_decoding import check_garbage, check_one_changed_byte

from .test_messages import HEIGHT, KEYS, X, cert, nils, proposal, sign

VOTE = SignedVote(HEIGHT, 3, PHASE_VOTE, X, KEYS[2].public_key.raw, sign(2, 3, PHASE_VOTE, X))
COMMIT = cert(2, PHASE_FINAL, X, range(3))
MESSAGES: list[Message] = [
    proposal(2, (Kind.FAST, cert(1, PHASE_VOTE, X, range(2))), nils((1, Kind.SLOW))),
    proposal(0),
    VOTE,
    COMMIT,
    cert(4, PHASE_VOTE, NIL, range(3)),
    Decision(COMMIT, b"block"),
    DecisionRequest(HEIGHT),
    BlockRequest(HEIGHT, X),
    BlockReply(HEIGHT, X, b"block"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_kind_round_trips_canonically(message: Message) -> None:
    encoded = wire.encode(message)
    assert encoded[0] == wire.WIRE_VERSION
    assert wire.decode(encoded) == message
    assert wire.encode(wire.decode(encoded)) == encoded
    for broken in (encoded + b"\0", encoded[:-1], bytes([2]) + encoded[1:]):
        with pytest.raises(CodecError):
            wire.decode(broken)


def test_unknown_kinds_and_oversized_input_are_refused() -> None:
    for tag in (0, 8, 255):
        with pytest.raises(CodecError, match="unknown kind"):
            wire.decode(bytes([wire.WIRE_VERSION, tag]) + wire.encode(VOTE)[2:])
    with pytest.raises(CodecError, match="exceeds"):
        wire.decode(bytes(wire.MESSAGE_BYTES_MAX + 1))
    with pytest.raises(CodecError):
        wire.decode(b"")


def test_a_body_of_another_kind_is_refused() -> None:
    """The kind byte decides the decoder: a Decision's body under the BlockReply tag fails."""
    decision = wire.encode(Decision(COMMIT, b"block"))
    with pytest.raises(CodecError):
        wire.decode(bytes([wire.WIRE_VERSION, wire.Kind.BLOCK_REPLY]) + decision[2:])


@settings(max_examples=400)
@given(st.data())
def test_any_corruption_is_an_error_or_an_equal_encoding(data: st.DataObject) -> None:
    message = data.draw(st.sampled_from(MESSAGES))
    check_one_changed_byte(data, wire.encode(message), wire.decode, wire.encode)


@given(st.binary(max_size=600))
def test_random_bytes_never_crash(blob: bytes) -> None:
    check_garbage(blob, wire.decode)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_stale_certificates_and_decisions_are_told_by_their_header(message: Message) -> None:
    """``is_stale`` agrees with the decoded height for certificates and decisions, says no
    for every other kind (their late copies still matter: a Vote from a decided height is
    answered), and never raises on anything."""
    encoded = wire.encode(message)
    placed = isinstance(message, Decision | type(COMMIT))
    for height in (HEIGHT - 1, HEIGHT, HEIGHT + 1, 2**64 - 1):
        assert wire.is_stale(encoded, height) == (placed and message.height < height)
    for cut in range(len(encoded)):
        wire.is_stale(encoded[:cut], HEIGHT + 1)
    for tag in range(256):  # another version byte or kind: not placed, left to decode
        if tag != wire.WIRE_VERSION:
            assert not wire.is_stale(bytes([tag]) + encoded[1:], HEIGHT + 1)


@given(st.binary(max_size=64), st.integers(0, 2**64))
def test_stale_check_never_crashes(blob: bytes, height: int) -> None:
    assert wire.is_stale(blob, height) in (True, False)
