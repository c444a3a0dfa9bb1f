"""Hand-overs and validator sets decode strictly: one encoding per value, malformed input a
CodecError and nothing else, non-canonical sets (unsorted, repeated, zero power) refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.node.handover import Handover
from swarmguard.validators.sets import decode_validators, encode_validators
from tests.strict_decoding import check_garbage, check_one_changed_byte

SET = ((b"\x01" * 32, 10), (b"\x02" * 32, 20), (b"\x03" * 32, 30))
HANDOVER = Handover(9, SET, b"header bytes", b"certificate bytes")


def test_round_trip_and_shapes() -> None:
    assert Handover.decode(HANDOVER.encode()) == HANDOVER
    assert decode_validators(encode_validators(SET)) == list(SET)
    for members in (
        [SET[1], SET[0]],  # unsorted
        [SET[0], SET[0]],  # repeated
        [(b"\x01" * 32, 0)],  # no power
        [],
    ):
        with pytest.raises(CodecError):
            decode_validators(encode_validators(members))
    with pytest.raises(CodecError):
        Handover.decode(Handover(1, SET, b"h", b"c").encode())  # height 1 is never a change
    for broken in (
        HANDOVER.encode() + b"\0",
        HANDOVER.encode()[:-1],
        b"\2" + HANDOVER.encode()[1:],
    ):
        with pytest.raises(CodecError):
            Handover.decode(broken)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_one_changed_byte_fails_cleanly_or_round_trips(data: st.DataObject) -> None:
    check_one_changed_byte(data, HANDOVER.encode(), Handover.decode, Handover.encode)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_a_codec_error(blob: bytes) -> None:
    check_garbage(blob, Handover.decode)
    check_garbage(blob, decode_validators)
