"""The voted-blocks record: canonical, bounded, and refused when malformed."""

from __future__ import annotations

import pytest

from swarmguard.codec import CodecError
from swarmguard.node.voted import VOTED_BLOCKS_MAX, VotedBlocks


def test_voted_blocks_round_trip_and_refuse_what_is_not_canonical() -> None:
    record = VotedBlocks(7, {b"\x02" * 32: b"second", b"\x01" * 32: b"first"})
    encoded = record.encode()
    assert VotedBlocks.decode(encoded) == record
    with pytest.raises(CodecError):
        VotedBlocks.decode(encoded + b"\x00")  # trailing bytes
    with pytest.raises(CodecError):
        VotedBlocks.decode(b"\x02" + encoded[1:])  # another version
    swapped = encoded[:10] + encoded[10 + 32 + 4 + 5 :] + encoded[10 : 10 + 32 + 4 + 5]
    with pytest.raises(CodecError, match="increasing"):
        VotedBlocks.decode(swapped)
    with pytest.raises(ValueError):
        VotedBlocks(1, {bytes([i]) * 32: b"" for i in range(VOTED_BLOCKS_MAX + 1)}).encode()
