"""Commit certificates: the signed FINAL votes that finalised a block.

A certificate names (height, view, block hash) and carries, per signer, its index in the
validator set of the height and its Ed25519 signature over the FINAL vote's sign-bytes
(``evidence.SignedVote.sign_bytes``: chain id, height, view, phase, block hash, domain-separated).
It proves commitment when its distinct signers hold at least the required voting power (the
consensus brief's slow-commit threshold N - F - P, which the caller computes).

Encoding, version 1: ``version u8 | height u64 | view u64 | block_hash (32) | count u16 |
(index u16 || signature (64)) * count``, indices strictly increasing (so one set of signatures
has one encoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import PublicKey

from .evidence import PHASE_FINAL, SignedVote

__all__ = ["CERTIFICATE_SIGNERS_MAX", "CertificateError", "CommitCertificate"]

CERTIFICATE_VERSION = 1
CERTIFICATE_SIGNERS_MAX = 10_000
"""The most validators a set may hold (a u16 index with room to spare)."""


class CertificateError(ValueError):
    """A certificate does not prove the commitment it claims."""


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """FINAL-vote signatures for one block, by validator index."""

    height: int
    view: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]

    def encode(self) -> bytes:
        out = Writer()
        out.uint(CERTIFICATE_VERSION, 1)
        out.uint(self.height, 8)
        out.uint(self.view, 8)
        out.fixed(self.block_hash, 32)
        out.uint(len(self.signatures), 2)
        for index, signature in self.signatures:
            out.uint(index, 2)
            out.fixed(signature, 64)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> CommitCertificate:
        reader = Reader(data, "commit certificate")
        version = reader.uint(1, "version")
        if version != CERTIFICATE_VERSION:
            raise CodecError(f"commit certificate: unknown version {version}")
        height, view = reader.uint(8, "height"), reader.uint(8, "view")
        block_hash = reader.fixed(32, "block hash")
        count = reader.uint(2, "count")
        if count * 66 > len(data):
            raise CodecError("commit certificate: count exceeds the data")
        signatures = []
        previous = -1
        for _ in range(count):
            index = reader.uint(2, "index")
            if index <= previous:
                raise CodecError("commit certificate: indices not strictly increasing")
            previous = index
            signatures.append((index, reader.fixed(64, "signature")))
        reader.finish()
        return CommitCertificate(height, view, block_hash, tuple(signatures))

    def verify(
        self,
        chain_id: str,
        validators: Sequence[tuple[bytes, int]],
        required_power: int,
    ) -> None:
        """Check every signature against ``validators`` ((consensus key, power) by index) and
        that the signers' power reaches ``required_power``. Raises CertificateError."""
        power = 0
        previous = -1
        for index, signature in self.signatures:
            if index <= previous:
                raise CertificateError("signer indices must be strictly increasing")
            previous = index
            if index >= len(validators):
                raise CertificateError(f"signer {index} is not in the validator set")
            key, weight = validators[index]
            vote = SignedVote(self.height, self.view, PHASE_FINAL, self.block_hash, key, signature)
            if not PublicKey(key).is_valid(vote.sign_bytes(chain_id), signature):
                raise CertificateError(f"signer {index}: the signature does not verify")
            power += weight
        if power < required_power:
            raise CertificateError(f"signers hold {power} of the {required_power} power required")
