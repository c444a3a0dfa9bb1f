"""Signed votes and double-vote (equivocation) evidence.

A vote is signed over ``preimage(VOTE, payload, chain_id)`` with payload (version 1)::

    version u8 | height u64 | view u64 | phase u8 | block_hash (32)

Phases follow the consensus brief (../shared/spec/consensus-protocol.md): PROPOSE (PrePrepare),
VOTE (Prepare) and FINAL (Commit); the "no value" vote, written ⊥ there, is the all-zero block
hash ``NIL``. Equivocation evidence is two messages by the same consensus key for the same
(height, view, phase) and different block hashes, both correctly signed, except that a VOTE for a
value and a VOTE for ⊥ are *not* evidence: rule 7 of the brief lets an honest replica send both.
Two different FINALs (⊥ included) and two different PROPOSEs are. The pair is stored in canonical
order (the smaller block hash first), so the same misbehaviour has exactly one encoding and one
hash, which is what deduplication keys on.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import Domain, PublicKey, SigningKey, digest, hashing

__all__ = [
    "NIL",
    "PHASE_FINAL",
    "PHASE_PROPOSE",
    "PHASE_VOTE",
    "VOTE_VERSION",
    "DoubleVoteEvidence",
    "InvalidEvidence",
    "SignedVote",
    "sign_vote",
]

VOTE_VERSION = 1
HASH_BYTES = 32
KEY_BYTES = 32
SIGNATURE_BYTES = 64
PHASE_PROPOSE = 0
PHASE_VOTE = 1
PHASE_FINAL = 2
NIL = bytes(HASH_BYTES)
"""The block hash of a ⊥ ("no value in this view") vote or final."""


class InvalidEvidence(ValueError):
    """Evidence that does not prove misbehaviour (or is malformed)."""


def _payload(height: int, view: int, phase: int, block_hash: bytes) -> bytes:
    out = Writer()
    out.uint(VOTE_VERSION, 1)
    out.uint(height, 8)
    out.uint(view, 8)
    out.uint(phase, 1)
    out.fixed(block_hash, HASH_BYTES)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class SignedVote:
    """A consensus vote with its signer's key and signature."""

    height: int
    view: int
    phase: int
    block_hash: bytes
    consensus_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.height < 2**64:
            raise InvalidEvidence(f"height {self.height} out of range")
        if not 0 <= self.view < 2**64:
            raise InvalidEvidence(f"view {self.view} out of range")
        if self.phase not in (PHASE_PROPOSE, PHASE_VOTE, PHASE_FINAL):
            raise InvalidEvidence(f"phase {self.phase} is not PROPOSE, VOTE or FINAL")
        if len(self.block_hash) != HASH_BYTES:
            raise InvalidEvidence(f"block hash must be {HASH_BYTES} bytes")
        if len(self.consensus_key) != KEY_BYTES:
            raise InvalidEvidence(f"consensus key must be {KEY_BYTES} bytes")
        if len(self.signature) != SIGNATURE_BYTES:
            raise InvalidEvidence(f"signature must be {SIGNATURE_BYTES} bytes")

    def sign_bytes(self, chain_id: str) -> bytes:
        """The exact bytes the consensus key signs."""
        payload = _payload(self.height, self.view, self.phase, self.block_hash)
        return hashing.preimage(Domain.VOTE, payload, chain_id=chain_id)

    def is_signed(self, chain_id: str) -> bool:
        """True if the signature is the consensus key's over these vote fields and chain."""
        return PublicKey(self.consensus_key).is_valid(self.sign_bytes(chain_id), self.signature)

    def encode(self, out: Writer) -> None:
        out.uint(self.height, 8)
        out.uint(self.view, 8)
        out.uint(self.phase, 1)
        out.fixed(self.block_hash, HASH_BYTES)
        out.fixed(self.consensus_key, KEY_BYTES)
        out.fixed(self.signature, SIGNATURE_BYTES)

    @staticmethod
    def decode(reader: Reader) -> SignedVote:
        return SignedVote(
            reader.uint(8, "height"),
            reader.uint(8, "view"),
            reader.uint(1, "phase"),
            reader.fixed(HASH_BYTES, "block_hash"),
            reader.fixed(KEY_BYTES, "consensus_key"),
            reader.fixed(SIGNATURE_BYTES, "signature"),
        )


def sign_vote(
    key: SigningKey, chain_id: str, height: int, view: int, phase: int, block_hash: bytes
) -> SignedVote:
    """A vote signed by ``key``."""
    unsigned = SignedVote(height, view, phase, block_hash, key.public_key.raw, bytes(64))
    signature = key.sign(unsigned.sign_bytes(chain_id))
    return SignedVote(height, view, phase, block_hash, key.public_key.raw, signature)


@dataclass(frozen=True, slots=True)
class DoubleVoteEvidence:
    """Two conflicting votes by one key, in canonical order (smaller block hash first)."""

    first: SignedVote
    second: SignedVote

    @staticmethod
    def of(one: SignedVote, other: SignedVote) -> DoubleVoteEvidence:
        """Evidence from two votes in either order."""
        if other.block_hash < one.block_hash:
            one, other = other, one
        return DoubleVoteEvidence(one, other)

    def verify(self, chain_id: str) -> None:
        """Raise InvalidEvidence unless this proves an equivocation on ``chain_id``."""
        a, b = self.first, self.second
        if a.consensus_key != b.consensus_key:
            raise InvalidEvidence("the votes are by different keys")
        if (a.height, a.view, a.phase) != (b.height, b.view, b.phase):
            raise InvalidEvidence("the votes are for different height, view or phase")
        if not a.block_hash < b.block_hash:
            raise InvalidEvidence("the votes are equal or not in canonical order")
        if a.phase == PHASE_VOTE and NIL in (a.block_hash, b.block_hash):
            raise InvalidEvidence("a VOTE for a value and a VOTE for ⊥ are not equivocation")
        if not (a.is_signed(chain_id) and b.is_signed(chain_id)):
            raise InvalidEvidence("a vote's signature does not verify")

    @property
    def height(self) -> int:
        return self.first.height

    def encode(self) -> bytes:
        out = Writer()
        out.uint(1, 1)  # evidence kind 1: double vote
        self.first.encode(out)
        self.second.encode(out)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> DoubleVoteEvidence:
        reader = Reader(data, "double-vote evidence")
        kind = reader.uint(1, "kind")
        if kind != 1:
            raise CodecError(f"double-vote evidence: unknown kind {kind}")
        try:
            evidence = DoubleVoteEvidence(SignedVote.decode(reader), SignedVote.decode(reader))
        except InvalidEvidence as error:
            raise CodecError(f"double-vote evidence: {error}") from None
        reader.finish()
        return evidence

    def hash(self, chain_id: str) -> bytes:
        """The identity of this evidence (deduplication key)."""
        return digest(Domain.EVIDENCE, self.encode(), chain_id=chain_id)
