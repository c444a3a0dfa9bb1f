"""Propose(k, x, C, B): the leader's message, its wire format and rule 2's checks on it.

Votes and Finals travel as ``validators.evidence.SignedVote`` (phase VOTE or FINAL; ⊥ is the
all-zero hash ``NIL``), and every certificate in the ``validators.certificate`` format (height,
view, phase, hash, signatures by validator index). A proposal adds the block and its proof of
safety, signed by the leader as a PROPOSE vote over the block hash, so two proposals for
different blocks in one view are equivocation evidence like any other pair of votes.

Encoding, version 1::

    version u8 | height u64 | view u64 | proposer u16 | block_hash (32) | signature (64)
    | block blob (u32 length, <= BLOCK_BYTES_MAX)
    | has_certificate bool | [kind u8 (0 Fast, 1 Slow) | certificate blob]
    | nil count u32 (<= NIL_CERTIFICATES_MAX) | nil certificate blobs

The ⊥ certificates come in strictly increasing slot order, the slot being read from the phase:
VOTEs for ⊥ fill (l, Fast), FINALs for ⊥ fill (l, Slow); so one set has one encoding. Decoding
checks the shape (heights, views below the proposal's, hashes, phases); ``verify`` checks the
signatures and powers against the validator set and then rule 2.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.consensus.justification import missing_nil_certificates
from swarmguard.consensus.tally import CertificateRank, Kind, Thresholds
from swarmguard.crypto import PublicKey
from swarmguard.validators.certificate import (
    CERTIFICATE_SIGNERS_MAX,
    CertificateError,
    CommitCertificate,
)
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_PROPOSE, PHASE_VOTE, SignedVote

__all__ = [
    "BLOCK_BYTES_MAX",
    "CERTIFICATE_BYTES_MAX",
    "NIL_CERTIFICATES_MAX",
    "PROPOSAL_VERSION",
    "Proposal",
    "ProposalError",
    "UnjustifiedProposal",
    "nil_slot",
]

PROPOSAL_VERSION = 1
BLOCK_BYTES_MAX = 8 * 1024 * 1024
"""The largest block a proposal carries (the batcher's byte limit must stay below it)."""
NIL_CERTIFICATES_MAX = 64
"""⊥ certificates one proposal may carry (32 failed views). Replicas hold the ones they saw
forwarded (rule 8), so a leader after a longer outage sends the most recent and relies on that."""
CERTIFICATE_BYTES_MAX = 1 + 8 + 8 + 1 + 32 + 2 + 66 * CERTIFICATE_SIGNERS_MAX


class ProposalError(ValueError):
    """A proposal that must not be voted for; the message says which check failed."""


class UnjustifiedProposal(ProposalError):
    """Well formed and signed by the leader, but it leaves a slot above its C without the ⊥
    certificate rule 2 asks for, counting those this replica holds. An honest leader that
    has not seen a certificate this replica holds sends exactly this, so it is no evidence of
    a fault: the view fails, and the leader learns the certificate from the rule 8 pairs."""


def nil_slot(certificate: CommitCertificate) -> CertificateRank:
    """The slot a ⊥ certificate fills: VOTEs for ⊥ the Fast slot, FINALs for ⊥ the Slow one."""
    kind = Kind.FAST if certificate.phase == PHASE_VOTE else Kind.SLOW
    return CertificateRank(certificate.view, kind.value)


@dataclass(frozen=True, slots=True)
class Proposal:
    """Propose(view, block_hash, C, B) for one height, signed by validator ``proposer``."""

    height: int
    view: int
    proposer: int
    block_hash: bytes
    signature: bytes
    block: bytes
    certificate: tuple[Kind, CommitCertificate] | None
    nil_certificates: tuple[CommitCertificate, ...] = ()

    def __post_init__(self) -> None:
        _check_shape(self)

    @property
    def rank(self) -> CertificateRank | None:
        """The rank of C, the value certificate justifying the proposal (None: fresh block)."""
        if self.certificate is None:
            return None
        kind, certificate = self.certificate
        return CertificateRank(certificate.view, kind.value)

    def vote(self, proposer_key: bytes) -> SignedVote:
        """The proposal's signature as a PROPOSE vote (what equivocation evidence is made of)."""
        return SignedVote(
            self.height, self.view, PHASE_PROPOSE, self.block_hash, proposer_key, self.signature
        )

    def encode(self) -> bytes:
        out = Writer()
        out.uint(PROPOSAL_VERSION, 1)
        out.uint(self.height, 8)
        out.uint(self.view, 8)
        out.uint(self.proposer, 2)
        out.fixed(self.block_hash, 32)
        out.fixed(self.signature, 64)
        out.blob(self.block, BLOCK_BYTES_MAX)
        out.boolean(self.certificate is not None)
        if self.certificate is not None:
            kind, certificate = self.certificate
            out.uint(kind.value, 1)
            out.blob(certificate.encode(), CERTIFICATE_BYTES_MAX)
        out.uint(len(self.nil_certificates), 4)
        for nil in self.nil_certificates:
            out.blob(nil.encode(), CERTIFICATE_BYTES_MAX)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> Proposal:
        """Parse and shape-check a proposal; raises CodecError for anything malformed."""
        reader = Reader(data, "proposal")
        reader.version(PROPOSAL_VERSION)
        height, view = reader.uint(8, "height"), reader.uint(8, "view")
        proposer = reader.uint(2, "proposer")
        block_hash = reader.fixed(32, "block hash")
        signature = reader.fixed(64, "signature")
        block = reader.blob(BLOCK_BYTES_MAX, "block")
        certificate = None
        if reader.boolean("has certificate"):
            kind_value = reader.uint(1, "certificate kind")
            if kind_value not in (Kind.FAST.value, Kind.SLOW.value):
                raise CodecError(f"proposal: certificate kind {kind_value} is not Fast or Slow")
            encoded = reader.blob(CERTIFICATE_BYTES_MAX, "certificate")
            certificate = (Kind(kind_value), CommitCertificate.decode(encoded))
        count = reader.count(4, "nil certificates")
        if count > NIL_CERTIFICATES_MAX:
            raise CodecError(f"proposal: {count} ⊥ certificates exceed {NIL_CERTIFICATES_MAX}")
        nils = tuple(
            CommitCertificate.decode(reader.blob(CERTIFICATE_BYTES_MAX, "nil certificate"))
            for _ in range(count)
        )
        reader.finish()
        try:
            return Proposal(height, view, proposer, block_hash, signature, block, certificate, nils)
        except ProposalError as error:
            raise CodecError(f"proposal: {error}") from None

    def verify(
        self,
        chain_id: str,
        validators: Sequence[tuple[bytes, int]],
        thresholds: Thresholds,
        leader: int,
        held: Collection[CertificateRank] = (),
    ) -> None:
        """Rule 2's checks, except the block's own validity (the application's): the leader of
        (height, view) signed it, C and every carried ⊥ certificate are signed by enough power,
        and with the ⊥ certificates ``held`` by the replica no slot above C is left open.
        Raises ProposalError."""
        if self.proposer != leader:
            raise ProposalError(f"validator {self.proposer} is not the leader ({leader})")
        if self.proposer >= len(validators):
            raise ProposalError(f"proposer {self.proposer} is not in the validator set")
        key = validators[self.proposer][0]
        if not PublicKey(key).is_valid(self.vote(key).sign_bytes(chain_id), self.signature):
            raise ProposalError("the leader's signature does not verify")
        if self.certificate is not None:
            kind, certificate = self.certificate
            needed = (
                thresholds.fast_certificate if kind is Kind.FAST else thresholds.slow_certificate
            )
            _require_power(certificate, chain_id, validators, needed, "C")
        carried = set()
        for nil in self.nil_certificates:
            slot = nil_slot(nil)
            needed = (
                thresholds.fast_certificate
                if slot.kind == Kind.FAST.value
                else thresholds.slow_certificate
            )
            _require_power(nil, chain_id, validators, needed, f"⊥ certificate {slot}")
            carried.add(slot)
        missing = missing_nil_certificates(self.view, self.rank, carried.union(held))
        if missing:
            raise UnjustifiedProposal(f"no ⊥ certificate for slots {missing}")


def _require_power(
    certificate: CommitCertificate,
    chain_id: str,
    validators: Sequence[tuple[bytes, int]],
    needed: int,
    what: str,
) -> None:
    try:
        power = certificate.signed_power(chain_id, validators)
    except CertificateError as error:
        raise ProposalError(f"{what}: {error}") from None
    if power < needed:
        raise ProposalError(f"{what}: signed by {power} power of the {needed} required")


def _check_shape(proposal: Proposal) -> None:
    """Everything checkable without the validator set; raises ProposalError."""
    if not 1 <= proposal.height < 2**64 or not 0 <= proposal.view < 2**64:
        raise ProposalError("height or view out of range")
    if not 0 <= proposal.proposer < CERTIFICATE_SIGNERS_MAX:
        raise ProposalError(f"proposer index {proposal.proposer} out of range")
    if len(proposal.block_hash) != 32 or proposal.block_hash == NIL:
        raise ProposalError("the block hash must be 32 bytes and not ⊥")
    if len(proposal.signature) != 64:
        raise ProposalError("the signature must be 64 bytes")
    if proposal.certificate is not None:
        _, certificate = proposal.certificate
        if certificate.phase != PHASE_VOTE:
            raise ProposalError("C must be a certificate of VOTEs")
        if certificate.block_hash != proposal.block_hash:
            raise ProposalError("C certifies another block")
        if certificate.height != proposal.height or certificate.view >= proposal.view:
            raise ProposalError("C must come from an earlier view of the same height")
    if len(proposal.nil_certificates) > NIL_CERTIFICATES_MAX:
        raise ProposalError(f"more than {NIL_CERTIFICATES_MAX} ⊥ certificates")
    previous: CertificateRank | None = None
    for nil in proposal.nil_certificates:
        if nil.block_hash != NIL or nil.phase not in (PHASE_VOTE, PHASE_FINAL):
            raise ProposalError("a ⊥ certificate must be VOTEs or FINALs for ⊥")
        if nil.height != proposal.height or nil.view >= proposal.view:
            raise ProposalError("a ⊥ certificate must come from an earlier view of the same height")
        slot = nil_slot(nil)
        if previous is not None and not previous < slot:
            raise ProposalError("⊥ certificates must be in strictly increasing slot order")
        previous = slot
