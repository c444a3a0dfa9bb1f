"""Commit certificates: the signed votes that decided a block, checkable by anyone.

A certificate names (height, view, phase, block hash) and carries, per signer, its index in the
validator set of the height and its Ed25519 signature over that vote's sign-bytes
(``evidence.SignedVote.sign_bytes``: chain id, height, view, phase, block hash, domain-separated).
The consensus brief decides a block two ways, and the certificate is the set that did it:

- fast commit: VOTEs for the block from power >= N - P;
- slow commit: FINALs for the block from power >= N - F - P;

with N the set's total power, P the fast-path slack and F = (N - 2P - 1) // 3, the largest
Byzantine power the set tolerates. ``verify`` derives the threshold from the phase itself, so
a caller cannot accept a mere prepared certificate (VOTEs from N - F - P) as a commit.

Encoding, version 2: ``version u8 | height u64 | view u64 | phase u8 | block_hash (32) |
count u16 | (index u16 || signature (64)) * count``, indices strictly increasing (so one set of
signatures has one encoding). Version 1 (no phase, FINALs only) was never released and is refused.
The same format carries consensus's vote certificates, ⊥ ones included (block hash ``NIL``);
``signed_power`` checks those, and ``verify`` refuses ⊥ because ⊥ is never committed.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import PublicKey

from .evidence import NIL, PHASE_FINAL, PHASE_VOTE, SignedVote

__all__ = ["CERTIFICATE_SIGNERS_MAX", "CertificateError", "CommitCertificate"]

CERTIFICATE_VERSION = 2
CERTIFICATE_SIGNERS_MAX = 10_000
"""The most validators a set may hold (a u16 index with room to spare)."""


class CertificateError(ValueError):
    """A certificate does not prove the commitment it claims."""


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """Vote signatures (VOTEs: fast commit, FINALs: slow commit) for one block, by signer index."""

    height: int
    view: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]
    phase: int = PHASE_FINAL

    def encode(self) -> bytes:
        out = Writer()
        out.uint(CERTIFICATE_VERSION, 1)
        out.uint(self.height, 8)
        out.uint(self.view, 8)
        out.uint(self.phase, 1)
        out.fixed(self.block_hash, 32)
        out.uint(len(self.signatures), 2)
        for index, signature in self.signatures:
            out.uint(index, 2)
            out.fixed(signature, 64)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> CommitCertificate:
        reader = Reader(data, "commit certificate")
        reader.version(CERTIFICATE_VERSION)
        height, view = reader.uint(8, "height"), reader.uint(8, "view")
        phase = reader.uint(1, "phase")
        if phase not in (PHASE_VOTE, PHASE_FINAL):
            raise CodecError(f"commit certificate: phase {phase} is not VOTE or FINAL")
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
        return CommitCertificate(height, view, block_hash, tuple(signatures), phase)

    def required_power(self, total: int, slack: int = 0) -> int:
        """The power this certificate's phase needs from a set of ``total`` power."""
        if total < 2 * slack + 1:
            raise CertificateError(f"slack {slack} is impossible with total power {total}")
        if self.phase == PHASE_VOTE:
            return total - slack
        faults = (total - 2 * slack - 1) // 3
        return total - faults - slack

    def verify(
        self,
        chain_id: str,
        validators: Sequence[tuple[bytes, int]],
        slack: int = 0,
        *,
        known: Container[tuple[int, bytes]] = (),
    ) -> None:
        """Check that this certificate commits its block: every signature valid against
        ``validators`` ((consensus key, power) by index, the whole set of the height) and the
        signers' power at the phase's commit threshold. Raises CertificateError.

        ``known``: (signer index, signature) pairs the caller already verified for this
        certificate's height, view, phase, block and set (a node's own commit certificate of
        the block), which are counted without a second verification."""
        if self.phase not in (PHASE_VOTE, PHASE_FINAL) or self.block_hash == NIL:
            raise CertificateError("only VOTEs or FINALs for a block can commit it")
        required_power = self.required_power(sum(power for _, power in validators), slack)
        power = self.signed_power(chain_id, validators, known=known)
        if power < required_power:
            raise CertificateError(f"signers hold {power} of the {required_power} power required")

    def signed_power(
        self,
        chain_id: str,
        validators: Sequence[tuple[bytes, int]],
        *,
        known: Container[tuple[int, bytes]] = (),
    ) -> int:
        """The power of the signers, once every signature is checked; raises CertificateError.

        Consensus reads its Fast, Slow and ⊥ certificates (same format) through this and
        compares with its own thresholds; ``verify`` is the commit check built on it."""
        power = 0
        previous = -1
        for index, signature in self.signatures:
            if index <= previous:
                raise CertificateError("signer indices must be strictly increasing")
            previous = index
            if index >= len(validators):
                raise CertificateError(f"signer {index} is not in the validator set")
            key, weight = validators[index]
            if (index, signature) not in known:
                vote = SignedVote(
                    self.height, self.view, self.phase, self.block_hash, key, signature
                )
                if not PublicKey(key).is_valid(vote.sign_bytes(chain_id), signature):
                    raise CertificateError(f"signer {index}: the signature does not verify")
            power += weight
        return power
