"""The blocks a validator voted for at the height being decided, kept on disk with its votes.

A block that some replica may have decided must be proposed again in a later view (the
consensus core's lock), so it must outlive a restart of every node: proposals are not stored
anywhere else until they are decided. The node writes this record (through a ``GuardFile`` of
its own, so never torn) before the guard record that holds a vote for a block not in it, and
gives it back to the replica after a restart (``Replica.restore_blocks``).

Record, version 1::

    version u8 | height u64 | count u8 | (block_hash (32) | block blob (u32, <= BLOCK_BYTES_MAX))*
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.consensus.messages import BLOCK_BYTES_MAX

__all__ = ["VOTED_BLOCKS_MAX", "VOTED_VERSION", "VotedBlocks"]

VOTED_VERSION = 1
VOTED_BLOCKS_MAX = 8
"""Blocks kept for one height (one per view voted for at most; views beyond are rare)."""


@dataclass(frozen=True, slots=True)
class VotedBlocks:
    height: int
    blocks: dict[bytes, bytes]  # block hash -> encoded block

    def encode(self) -> bytes:
        if len(self.blocks) > VOTED_BLOCKS_MAX:
            raise ValueError(f"at most {VOTED_BLOCKS_MAX} voted blocks, got {len(self.blocks)}")
        out = Writer()
        out.uint(VOTED_VERSION, 1)
        out.uint(self.height, 8)
        out.uint(len(self.blocks), 1)
        for block_hash, block in sorted(self.blocks.items()):
            out.fixed(block_hash, 32)
            out.blob(block, BLOCK_BYTES_MAX)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> VotedBlocks:
        reader = Reader(data, "voted blocks")
        reader.version(VOTED_VERSION)
        height = reader.uint(8, "height")
        count = reader.uint(1, "count")
        if count > VOTED_BLOCKS_MAX:
            raise CodecError(f"voted blocks: {count} blocks, at most {VOTED_BLOCKS_MAX}")
        blocks: dict[bytes, bytes] = {}
        for _ in range(count):
            block_hash = reader.fixed(32, "block_hash")
            if blocks and block_hash <= max(blocks):
                raise CodecError("voted blocks: block hashes must be strictly increasing")
            blocks[block_hash] = reader.blob(BLOCK_BYTES_MAX, "block")
        reader.finish()
        return VotedBlocks(height, blocks)
