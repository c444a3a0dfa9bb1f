"""Catch-up messages: what a replica that missed something asks for and is answered with.

Messages get lost, so the rules alone do not finish a height (the brief: "certificates and commit
proofs are re-sent or fetched"). Four messages close the gaps the re-send timer cannot:

- ``Decision(certificate, block)``: a height's commit proof with its block, sent to a validator
  still working on a height this replica has decided. Anyone holding the validator set checks it
  (``CommitCertificate.verify``), so trusting the sender is never needed.
- ``DecisionRequest(height)``: "I am still at ``height``", sent to a validator whose messages
  show it is past it; the answer is Decisions from ``height`` on.
- ``BlockRequest(height, block_hash)``: "I hold a certificate for this block but not the block".
- ``BlockReply(height, block_hash, block)``: the block; kept only if it was asked for and the
  application says it hashes to ``block_hash``.

Encodings, version 1 each, after a version byte::

    Decision:        certificate blob (u32 length) | block blob (u32 length, <= BLOCK_BYTES_MAX)
    DecisionRequest: height u64
    BlockRequest:    height u64 | block_hash (32)
    BlockReply:      height u64 | block_hash (32) | block blob (u32 length, <= BLOCK_BYTES_MAX)
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.consensus.messages import BLOCK_BYTES_MAX, CERTIFICATE_BYTES_MAX
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_VOTE

__all__ = ["SYNC_VERSION", "BlockReply", "BlockRequest", "Decision", "DecisionRequest"]

SYNC_VERSION = 1


def _check_block(height: int, block_hash: bytes, block: bytes) -> None:
    if not 1 <= height < 2**64:
        raise CodecError(f"height {height} out of range")
    if len(block_hash) != 32 or block_hash == NIL:
        raise CodecError("the block hash must be 32 bytes and not ⊥")
    if len(block) > BLOCK_BYTES_MAX:
        raise CodecError(f"a block of {len(block)} bytes exceeds {BLOCK_BYTES_MAX}")


@dataclass(frozen=True, slots=True)
class Decision:
    """A decided height: the commit certificate (fast VOTEs or slow FINALs) and the block."""

    certificate: CommitCertificate
    block: bytes

    def __post_init__(self) -> None:
        certificate = self.certificate
        if certificate.phase not in (PHASE_VOTE, PHASE_FINAL):
            raise CodecError("a decision's certificate must be VOTEs or FINALs")
        _check_block(certificate.height, certificate.block_hash, self.block)

    @property
    def height(self) -> int:
        return self.certificate.height

    def encode(self) -> bytes:
        out = Writer()
        out.uint(SYNC_VERSION, 1)
        out.blob(self.certificate.encode(), CERTIFICATE_BYTES_MAX)
        out.blob(self.block, BLOCK_BYTES_MAX)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> Decision:
        reader = Reader(data, "decision")
        reader.version(SYNC_VERSION)
        certificate = CommitCertificate.decode(reader.blob(CERTIFICATE_BYTES_MAX, "certificate"))
        block = reader.blob(BLOCK_BYTES_MAX, "block")
        reader.finish()
        return Decision(certificate, block)


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    height: int

    def __post_init__(self) -> None:
        if not 1 <= self.height < 2**64:
            raise CodecError(f"height {self.height} out of range")

    def encode(self) -> bytes:
        out = Writer()
        out.uint(SYNC_VERSION, 1)
        out.uint(self.height, 8)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> DecisionRequest:
        reader = Reader(data, "decision request")
        reader.version(SYNC_VERSION)
        height = reader.uint(8, "height")
        reader.finish()
        return DecisionRequest(height)


@dataclass(frozen=True, slots=True)
class BlockRequest:
    height: int
    block_hash: bytes

    def __post_init__(self) -> None:
        _check_block(self.height, self.block_hash, b"")

    def encode(self) -> bytes:
        out = Writer()
        out.uint(SYNC_VERSION, 1)
        out.uint(self.height, 8)
        out.fixed(self.block_hash, 32)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> BlockRequest:
        reader = Reader(data, "block request")
        reader.version(SYNC_VERSION)
        height, block_hash = reader.uint(8, "height"), reader.fixed(32, "block hash")
        reader.finish()
        return BlockRequest(height, block_hash)


@dataclass(frozen=True, slots=True)
class BlockReply:
    height: int
    block_hash: bytes
    block: bytes

    def __post_init__(self) -> None:
        _check_block(self.height, self.block_hash, self.block)

    def encode(self) -> bytes:
        out = Writer()
        out.uint(SYNC_VERSION, 1)
        out.uint(self.height, 8)
        out.fixed(self.block_hash, 32)
        out.blob(self.block, BLOCK_BYTES_MAX)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> BlockReply:
        reader = Reader(data, "block reply")
        reader.version(SYNC_VERSION)
        height, block_hash = reader.uint(8, "height"), reader.fixed(32, "block hash")
        block = reader.blob(BLOCK_BYTES_MAX, "block")
        reader.finish()
        return BlockReply(height, block_hash, block)
