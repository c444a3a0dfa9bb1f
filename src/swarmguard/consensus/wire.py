"""One consensus message as bytes: the envelope every transport carries.

The replica's messages each have a canonical, length-checked format of their own (proposals in
``messages``, votes in ``validators.evidence``, certificates in ``validators.certificate``, the
catch-up messages in ``sync``). The envelope says which one follows, so a receiver decodes
exactly one way::

    version u8 (= WIRE_VERSION) | kind u8 | body

``body`` is the message's own encoding and must be consumed exactly; a vote's body is
``SignedVote``'s fields (it has no version of its own: the envelope's covers it). Decoding never
raises anything but ``CodecError``: a transport turns that into "drop and count the sender".
"""

from __future__ import annotations

from enum import IntEnum

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.consensus.messages import (
    BLOCK_BYTES_MAX,
    CERTIFICATE_BYTES_MAX,
    NIL_CERTIFICATES_MAX,
    Proposal,
)
from swarmguard.consensus.replica import Message
from swarmguard.consensus.sync import (
    SYNC_VERSION,
    BlockReply,
    BlockRequest,
    Decision,
    DecisionRequest,
)
from swarmguard.validators.certificate import CERTIFICATE_VERSION, CommitCertificate
from swarmguard.validators.evidence import SignedVote

__all__ = ["MESSAGE_BYTES_MAX", "WIRE_VERSION", "Kind", "decode", "encode", "is_stale"]

WIRE_VERSION = 1

MESSAGE_BYTES_MAX = (
    2 + 512 + BLOCK_BYTES_MAX + (NIL_CERTIFICATES_MAX + 1) * (4 + CERTIFICATE_BYTES_MAX)
)
"""The largest envelope any valid message needs (a full block with a justification and the
most ⊥ certificates a proposal may carry, plus fixed fields): a transport's frame limit."""


class Kind(IntEnum):
    PROPOSAL = 1
    VOTE = 2
    CERTIFICATE = 3
    DECISION = 4
    DECISION_REQUEST = 5
    BLOCK_REQUEST = 6
    BLOCK_REPLY = 7


def encode(message: Message) -> bytes:
    out = Writer()
    out.uint(WIRE_VERSION, 1)
    if isinstance(message, SignedVote):
        out.uint(Kind.VOTE, 1)
        message.encode(out)
        return out.getvalue()
    kind, body = _body(message)
    out.uint(kind, 1)
    return out.getvalue() + body


def _body(message: Message) -> tuple[Kind, bytes]:
    if isinstance(message, Proposal):
        return Kind.PROPOSAL, message.encode()
    if isinstance(message, CommitCertificate):
        return Kind.CERTIFICATE, message.encode()
    if isinstance(message, Decision):
        return Kind.DECISION, message.encode()
    if isinstance(message, DecisionRequest):
        return Kind.DECISION_REQUEST, message.encode()
    if isinstance(message, BlockRequest):
        return Kind.BLOCK_REQUEST, message.encode()
    if isinstance(message, BlockReply):
        return Kind.BLOCK_REPLY, message.encode()
    raise TypeError(f"not a consensus message: {type(message).__name__}")


def is_stale(data: bytes, height: int) -> bool:
    """Whether ``data`` is a certificate or a decision for a height below ``height``, read
    from its fixed header without decoding it. A replica at ``height`` does nothing with either
    (``on_certificate`` keeps only later heights, ``on_decision`` drops decided ones), and after
    every decision most of them arrive late (each validator's commit proof and view
    certificates), so a transport drops them unread. Every other message, and anything this
    header check cannot place, goes to ``decode``."""
    if len(data) < 16 or data[0] != WIRE_VERSION:
        return False
    if data[1] == Kind.CERTIFICATE and data[2] == CERTIFICATE_VERSION:
        return int.from_bytes(data[3:11], "big") < height
    if data[1] == Kind.DECISION and data[2] == SYNC_VERSION and data[7] == CERTIFICATE_VERSION:
        return int.from_bytes(data[8:16], "big") < height
    return False


def decode(data: bytes) -> Message:
    """The message in ``data``; raises CodecError for anything malformed or oversized."""
    if len(data) > MESSAGE_BYTES_MAX:
        raise CodecError(f"message of {len(data)} bytes exceeds {MESSAGE_BYTES_MAX}")
    reader = Reader(data, "consensus message")
    reader.version(WIRE_VERSION)
    kind = reader.kind(Kind)
    body = data[2:]
    try:
        if kind is Kind.VOTE:
            vote = SignedVote.decode(reader)
            reader.finish()
            return vote
        if kind is Kind.PROPOSAL:
            return Proposal.decode(body)
        if kind is Kind.CERTIFICATE:
            return CommitCertificate.decode(body)
        if kind is Kind.DECISION:
            return Decision.decode(body)
        if kind is Kind.DECISION_REQUEST:
            return DecisionRequest.decode(body)
        if kind is Kind.BLOCK_REQUEST:
            return BlockRequest.decode(body)
        return BlockReply.decode(body)
    except CodecError:
        raise
    except ValueError as error:  # a shape check in a constructor: still malformed input
        raise CodecError(f"consensus message ({kind.name.lower()}): {error}") from None
