"""Validator-set hand-overs: how a node that trusts only the genesis set comes to trust a later
height's set without executing the blocks in between (state sync).

The set that signs height h + 1 is chosen by the application while it executes height
h - 1 (``SET_CHANGE_DELAY``), so when height h is proposed its proposer knows that set and puts
its hash in the header (``next_validators_hash``). Header h is certified by h's own set; so the
old set, by certifying h, vouches for the new one. A hand-over is that evidence::

    version u8 | height u64 (the new set's first height, h + 1) | validators | header blob
    | certificate blob

with the set encoded as ``validators.sets`` does (sorted by key, powers above zero).

``follow`` checks a run of hand-overs from the genesis set: each header is at the height before
the change, names the set trusted so far (``validators_hash``) and the new one
(``next_validators_hash``), and its commit certificate carries the trusted set's threshold.
Nothing else is believed: a peer can withhold hand-overs (the node then finds a later header
naming a set it does not trust, and asks another peer) but cannot forge one without a
threshold of a set the node already trusts.

The trust argument is the light client's: it holds while no set the node trusts on the way
has ever had a third or more of its power Byzantine, including sets that have since left, which
could sign a different history (a long-range attack; a trusted header, ``[statesync]
trust_height`` and ``trust_hash``, bounds it). Nodes keep every hand-over they commit
(block-store records, never pruned) and serve them on the SYNC channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.storage.catchup import Header
from swarmguard.validators.certificate import CertificateError, CommitCertificate
from swarmguard.validators.sets import (
    VALIDATORS_MAX,
    fast_path_slack,
    read_validators,
    validators_hash,
    write_validators,
)

__all__ = [
    "HANDOVER_BYTES_MAX",
    "HANDOVER_VERSION",
    "SET_CHANGE_DELAY",
    "Handover",
    "HandoverError",
    "follow",
]

HANDOVER_VERSION = 1
SET_CHANGE_DELAY = 2
"""Validator updates returned by ``finalize_block`` at height h take effect at h + 2 (as in
CometBFT), so that header h + 1 can name the set after it."""
HEADER_BYTES_MAX = 4096
CERTIFICATE_BYTES_MAX = 8 + VALIDATORS_MAX * 66 + 64
HANDOVER_BYTES_MAX = (
    1 + 8 + 4 + VALIDATORS_MAX * 40 + 4 + HEADER_BYTES_MAX + 4 + CERTIFICATE_BYTES_MAX
)
"""A hand-over decodes only up to this size (the largest set with a full certificate)."""

Validators = Sequence[tuple[bytes, int]]


class HandoverError(ValueError):
    """A hand-over that does not follow from the sets trusted so far."""


@dataclass(frozen=True, slots=True)
class Handover:
    """The set from ``height`` on, with the header of ``height - 1`` that names it and that
    header's commit certificate."""

    height: int
    validators: tuple[tuple[bytes, int], ...]
    header: bytes
    certificate: bytes

    def encode(self) -> bytes:
        out = Writer()
        out.uint(HANDOVER_VERSION, 1)
        out.uint(self.height, 8)
        write_validators(out, self.validators)
        out.blob(self.header, HEADER_BYTES_MAX)
        out.blob(self.certificate, CERTIFICATE_BYTES_MAX)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> Handover:
        if len(data) > HANDOVER_BYTES_MAX:
            raise CodecError(f"hand-over: {len(data)} bytes exceed {HANDOVER_BYTES_MAX}")
        reader = Reader(data, "hand-over")
        reader.version(HANDOVER_VERSION)
        height = reader.uint(8, "height")
        if height < 2:
            raise CodecError("hand-over: the first changed height is 2 or more")
        handover = Handover(
            height,
            tuple(read_validators(reader)),
            reader.blob(HEADER_BYTES_MAX, "header"),
            reader.blob(CERTIFICATE_BYTES_MAX, "certificate"),
        )
        reader.finish()
        return handover


def follow(
    chain_id: str,
    genesis: Validators,
    handovers: Sequence[Handover],
    slack_ppm: int = 0,
    *,
    since: int = 1,
) -> list[tuple[int, list[tuple[bytes, int]]]]:
    """The sets by first height, from the genesis set (height 1; or a set the caller already
    trusts from height ``since``) through ``handovers`` in order; raises HandoverError at the
    first that does not follow. ``slack_ppm``: the chain's fast-path slack
    (``validators.sets.fast_path_slack``)."""
    sets = [(since, list(genesis))]
    for handover in handovers:
        since, trusted = sets[-1]
        where = f"hand-over to height {handover.height}"
        if handover.height <= since:
            raise HandoverError(f"{where}: not after the one to height {since}")
        try:
            header = Header.decode(handover.header)
            certificate = CommitCertificate.decode(handover.certificate)
            certificate.verify(chain_id, trusted, fast_path_slack(trusted, slack_ppm))
        except (CodecError, CertificateError) as error:
            raise HandoverError(f"{where}: {error}") from None
        if header.height != handover.height - 1 or certificate.height != header.height:
            raise HandoverError(f"{where}: the header or certificate is for another height")
        if certificate.block_hash != header.hash(chain_id):
            raise HandoverError(f"{where}: the certificate is for another block")
        if header.validators_hash != validators_hash(trusted):
            raise HandoverError(f"{where}: header {header.height} is not the trusted set's")
        if header.next_validators_hash != validators_hash(handover.validators):
            raise HandoverError(f"{where}: the header names another set")
        sets.append((handover.height, list(handover.validators)))
    return sets
