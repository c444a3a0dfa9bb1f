"""Catch-up: the Decision, BlockRequest and BlockReply formats, and a replica that missed
heights catching up from the others' decisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.consensus.sync import (
    SYNC_VERSION,
    BlockReply,
    BlockRequest,
    Decision,
    DecisionRequest,
)
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_PROPOSE

from .test_replica import Network

HASH = b"h" * 32
CERTIFICATE = CommitCertificate(3, 1, HASH, ((0, b"s" * 64), (2, b"t" * 64)), PHASE_FINAL)
MESSAGES = [
    Decision(CERTIFICATE, b"block"),
    DecisionRequest(3),
    BlockRequest(3, HASH),
    BlockReply(3, HASH, b"x"),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_round_trip_and_one_encoding(
    message: Decision | DecisionRequest | BlockRequest | BlockReply,
) -> None:
    encoded = message.encode()
    assert encoded[0] == SYNC_VERSION
    assert type(message).decode(encoded) == message
    for broken in (encoded + b"\0", encoded[:-1], bytes([SYNC_VERSION + 1]) + encoded[1:]):
        with pytest.raises(CodecError):
            type(message).decode(broken)


def test_shapes_are_checked() -> None:
    with pytest.raises(CodecError):
        BlockRequest(3, NIL)  # ⊥ is not a block
    with pytest.raises(CodecError):
        BlockRequest(0, HASH)
    with pytest.raises(CodecError):
        DecisionRequest(0)
    with pytest.raises(CodecError):
        Decision(CommitCertificate(3, 1, HASH, (), PHASE_PROPOSE), b"")


@given(st.binary(max_size=300))
def test_garbage_is_a_codec_error_never_a_crash(data: bytes) -> None:
    for kind in (Decision, DecisionRequest, BlockRequest, BlockReply):
        try:
            kind.decode(data)
        except CodecError:
            pass


def test_a_replica_that_missed_heights_catches_up_from_decisions() -> None:
    network = Network([1, 1, 1, 1], silent={3})
    network.run(heights=3)  # three of four decide without it (slow path)
    behind = network.replicas[3]
    assert behind.height == 1
    network.silent = set()
    network.apply(3, behind.start(network.now))  # back: its messages reach the others
    network.run(heights=4, start=False)  # who answer with their decisions
    assert behind.stats.caught_up >= 2
    assert [network.decisions[3][h].block_hash for h in (1, 2, 3)] == [
        network.decisions[0][h].block_hash for h in (1, 2, 3)
    ]
