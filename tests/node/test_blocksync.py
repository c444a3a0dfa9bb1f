"""Block sync messages decode strictly, and a node's answer to a request is what its store holds,
consecutive and within a frame; gossip batches likewise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.node import blocksync
from swarmguard.node.blocksync import (
    BLOCKS_PER_REQUEST,
    HANDOVERS_PER_REPLY,
    OFFERED_MAX,
    REPLY_BYTES_MAX,
    BlocksReply,
    BlocksRequest,
    Chunk,
    ChunkRequest,
    Handovers,
    HandoversRequest,
    SnapshotOffer,
    SnapshotsRequest,
    Status,
)
from swarmguard.node.mempool import decode_gossip, encode_gossip
from tests.strict_decoding import check_garbage, check_one_changed_byte

MESSAGES = [
    Status(120, 3),
    BlocksRequest(7, BLOCKS_PER_REQUEST),
    BlocksReply((b"block one", b"", b"block three")),
    BlocksReply(()),
    SnapshotsRequest(),
    SnapshotOffer((b"manifest a", b"manifest b")),
    ChunkRequest(40, 3),
    Chunk(40, 3, b"zstd bytes"),
    Chunk(40, 4, b""),
    HandoversRequest(0),
    HandoversRequest(1234),
    Handovers((b"hand-over a", b"hand-over b")),
    Handovers(()),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: blocksync.SyncMessage) -> None:
    encoded = blocksync.encode(message)
    assert blocksync.decode(encoded) == message
    for broken in (encoded + b"\0", encoded[:-1], b"\2" + encoded[1:]):
        with pytest.raises(CodecError):
            blocksync.decode(broken)


def test_shapes_are_checked() -> None:
    for make in (
        lambda: Status(1, 2),  # base above height
        lambda: BlocksRequest(0, 1),
        lambda: BlocksRequest(1, 0),
        lambda: BlocksRequest(1, BLOCKS_PER_REQUEST + 1),
        lambda: BlocksReply((b"",) * (BLOCKS_PER_REQUEST + 1)),
        lambda: BlocksReply((bytes(REPLY_BYTES_MAX),)),
        lambda: SnapshotOffer((b"m",) * (OFFERED_MAX + 1)),
        lambda: ChunkRequest(0, 1),
        lambda: Chunk(1, 2**32, b""),
        lambda: HandoversRequest(-1),
        lambda: Handovers((b"h",) * (HANDOVERS_PER_REPLY + 1)),
        lambda: Handovers((bytes(REPLY_BYTES_MAX),)),
    ):
        with pytest.raises(CodecError):
            make()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_one_changed_byte_fails_cleanly_or_round_trips(data: st.DataObject) -> None:
    message = data.draw(st.sampled_from(MESSAGES))
    check_one_changed_byte(data, blocksync.encode(message), blocksync.decode, blocksync.encode)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_is_a_codec_error(blob: bytes) -> None:
    check_garbage(blob, blocksync.decode)
    check_garbage(blob, decode_gossip)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_gossip_batches_round_trip(transactions: list[bytes]) -> None:
    encoded = encode_gossip(transactions)
    assert decode_gossip(encoded) == transactions
    with pytest.raises(CodecError):
        decode_gossip(encoded + b"\0")
