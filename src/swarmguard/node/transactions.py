"""Transactions of the built-in ledger: transfers and staking, signed by an account key.

Format, version 2 (keep in sync with docs/node.md, "The built-in ledger")::

    version u8 | kind u8 | sender key (32) | nonce u64 | body | signature (64)

    TRANSFER          to (20) | amount u64 | memo (u32 length, <= MEMO_BYTES_MAX)
    CREATE_VALIDATOR  consensus key (32) | vrf key (32) | commission_ppm u32 | self_bond u64
    DELEGATE          operator (20) | amount u64
    UNDELEGATE        operator (20) | amount u64 (0: the whole delegation)
    REDELEGATE        source (20) | destination (20) | amount u64
    UNJAIL            (empty: the sender's own validator)
    EVIDENCE          evidence blob (u32 length, <= EVIDENCE_BYTES_MAX)

The signature is the sender's Ed25519 signature over the domain-separated preimage
(``Domain.ACCOUNT_TRANSACTION``, the chain id) of everything before it, so a transaction is
valid on one chain only, and the nonce (the sender's count of executed transactions) makes each
one valid once. The sender's address is ``address_of(sender key)``. Decoding is strict (one
encoding per transaction, every length checked) and raises ``CodecError`` only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import SigningKey, signature_is_valid
from swarmguard.crypto.hashing import ADDRESS_BYTES, Domain, address_of, preimage
from swarmguard.validators.evidence import DoubleVoteEvidence

__all__ = [
    "MEMO_BYTES_MAX",
    "TRANSACTION_BYTES_MAX",
    "TRANSACTION_VERSION",
    "Body",
    "CreateValidator",
    "Delegate",
    "Redelegate",
    "SubmitEvidence",
    "Transaction",
    "Transfer",
    "TxKind",
    "Undelegate",
    "Unjail",
]

TRANSACTION_VERSION = 2
EVIDENCE_BYTES_MAX = 1024
MEMO_BYTES_MAX = 256
TRANSACTION_BYTES_MAX = 2 + 32 + 8 + 4 + EVIDENCE_BYTES_MAX + 64
"""No valid transaction is longer (the evidence kind is the largest)."""
_U64 = 2**64


class TxKind(IntEnum):
    TRANSFER = 1
    CREATE_VALIDATOR = 2
    DELEGATE = 3
    UNDELEGATE = 4
    REDELEGATE = 5
    UNJAIL = 6
    EVIDENCE = 7


def _address(value: bytes, field: str) -> None:
    if len(value) != ADDRESS_BYTES:
        raise CodecError(f"transaction: {field} must be {ADDRESS_BYTES} bytes")


def _amount(value: int, field: str, *, zero: bool = False) -> None:
    if not (0 if zero else 1) <= value < _U64:
        raise CodecError(f"transaction: {field} {value} out of range")


@dataclass(frozen=True, slots=True)
class Transfer:
    to: bytes
    amount: int
    memo: bytes = b""
    """The sender's note (a payment reference, say); the ledger does not read it."""

    def __post_init__(self) -> None:
        _address(self.to, "recipient")
        _amount(self.amount, "amount")
        if len(self.memo) > MEMO_BYTES_MAX:
            raise CodecError(f"transaction: memo exceeds {MEMO_BYTES_MAX} bytes")


@dataclass(frozen=True, slots=True)
class CreateValidator:
    consensus_key: bytes
    vrf_key: bytes
    commission_ppm: int
    self_bond: int

    def __post_init__(self) -> None:
        if len(self.consensus_key) != 32 or len(self.vrf_key) != 32:
            raise CodecError("transaction: validator keys are 32 bytes")
        if not 0 <= self.commission_ppm <= 1_000_000:
            raise CodecError("transaction: commission_ppm must be in 0..1000000")
        _amount(self.self_bond, "self_bond")


@dataclass(frozen=True, slots=True)
class Delegate:
    operator: bytes
    amount: int

    def __post_init__(self) -> None:
        _address(self.operator, "operator")
        _amount(self.amount, "amount")


@dataclass(frozen=True, slots=True)
class Undelegate:
    operator: bytes
    amount: int  # 0: everything

    def __post_init__(self) -> None:
        _address(self.operator, "operator")
        _amount(self.amount, "amount", zero=True)


@dataclass(frozen=True, slots=True)
class Redelegate:
    source: bytes
    destination: bytes
    amount: int

    def __post_init__(self) -> None:
        _address(self.source, "source")
        _address(self.destination, "destination")
        _amount(self.amount, "amount")


@dataclass(frozen=True, slots=True)
class Unjail:
    pass


@dataclass(frozen=True, slots=True)
class SubmitEvidence:
    evidence: DoubleVoteEvidence


Body = Transfer | CreateValidator | Delegate | Undelegate | Redelegate | Unjail | SubmitEvidence

_KINDS: dict[type, TxKind] = {
    Transfer: TxKind.TRANSFER,
    CreateValidator: TxKind.CREATE_VALIDATOR,
    Delegate: TxKind.DELEGATE,
    Undelegate: TxKind.UNDELEGATE,
    Redelegate: TxKind.REDELEGATE,
    Unjail: TxKind.UNJAIL,
    SubmitEvidence: TxKind.EVIDENCE,
}


_HEAD = struct.Struct(">BB32sQ")  # version, kind, sender, nonce
_TRANSFER_HEAD = struct.Struct(">20sQI")  # to, amount, memo length


def _decode_transfer(data: bytes) -> Transaction | None:
    """A well-formed transfer, or None for anything else (``_decode`` then decides): the same
    value ``_decode`` gives, for the kind that dominates load, without a field-by-field read."""
    size = len(data)
    fixed = _HEAD.size + _TRANSFER_HEAD.size
    if type(data) is not bytes or size < fixed + 64:
        return None
    if data[0] != TRANSACTION_VERSION or data[1] != TxKind.TRANSFER:
        return None
    _, _, sender, nonce = _HEAD.unpack_from(data, 0)
    to, amount, memo_length = _TRANSFER_HEAD.unpack_from(data, _HEAD.size)
    end = fixed + memo_length
    if memo_length > MEMO_BYTES_MAX or end + 64 != size or amount == 0:
        return None
    # Every check of the constructors holds here by construction (fixed-width fields, the size
    # and the amount checked above), so the fields are set directly: the constructors were a
    # third of a node's decoding time.
    body = _new(Transfer)
    _set_to(body, to)
    _set_amount(body, amount)
    _set_memo(body, data[fixed:end])
    transaction = _new(Transaction)
    _set_sender(transaction, sender)
    _set_nonce(transaction, nonce)
    _set_body(transaction, body)
    _set_signature(transaction, data[end:])
    return transaction


def _setter(cls: type, field: str) -> Callable[[object, object], None]:
    """The slot's own setter: bypasses a frozen dataclass's refusal, for decoding only."""
    setter: Callable[[object, object], None] = cls.__dict__[field].__set__
    return setter


_new = object.__new__
_set_to, _set_amount, _set_memo = (_setter(Transfer, f) for f in ("to", "amount", "memo"))


def _write_body(out: Writer, body: Body) -> None:
    if isinstance(body, Transfer):
        out.fixed(body.to, ADDRESS_BYTES)
        out.uint(body.amount, 8)
        out.blob(body.memo, MEMO_BYTES_MAX)
    elif isinstance(body, CreateValidator):
        out.fixed(body.consensus_key, 32)
        out.fixed(body.vrf_key, 32)
        out.uint(body.commission_ppm, 4)
        out.uint(body.self_bond, 8)
    elif isinstance(body, Delegate | Undelegate):
        out.fixed(body.operator, ADDRESS_BYTES)
        out.uint(body.amount, 8)
    elif isinstance(body, Redelegate):
        out.fixed(body.source, ADDRESS_BYTES)
        out.fixed(body.destination, ADDRESS_BYTES)
        out.uint(body.amount, 8)
    elif isinstance(body, SubmitEvidence):
        out.blob(body.evidence.encode(), EVIDENCE_BYTES_MAX)


def _read_body(reader: Reader, kind: TxKind) -> Body:
    if kind is TxKind.TRANSFER:
        return Transfer(
            reader.fixed(ADDRESS_BYTES, "to"),
            reader.uint(8, "amount"),
            reader.blob(MEMO_BYTES_MAX, "memo"),
        )
    if kind is TxKind.CREATE_VALIDATOR:
        return CreateValidator(
            reader.fixed(32, "consensus key"),
            reader.fixed(32, "vrf key"),
            reader.uint(4, "commission"),
            reader.uint(8, "self bond"),
        )
    if kind is TxKind.DELEGATE:
        return Delegate(reader.fixed(ADDRESS_BYTES, "operator"), reader.uint(8, "amount"))
    if kind is TxKind.UNDELEGATE:
        return Undelegate(reader.fixed(ADDRESS_BYTES, "operator"), reader.uint(8, "amount"))
    if kind is TxKind.REDELEGATE:
        return Redelegate(
            reader.fixed(ADDRESS_BYTES, "source"),
            reader.fixed(ADDRESS_BYTES, "destination"),
            reader.uint(8, "amount"),
        )
    if kind is TxKind.UNJAIL:
        return Unjail()
    blob = reader.blob(EVIDENCE_BYTES_MAX, "evidence")
    return SubmitEvidence(DoubleVoteEvidence.decode(blob))


@dataclass(frozen=True, slots=True)
class Transaction:
    sender: bytes  # the account's Ed25519 key
    nonce: int
    body: Body
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.sender) != 32 or len(self.signature) != 64:
            raise CodecError("transaction: sender key 32 bytes, signature 64")
        _amount(self.nonce, "nonce", zero=True)

    @property
    def kind(self) -> TxKind:
        return _KINDS[type(self.body)]

    @property
    def address(self) -> bytes:
        return address_of(self.sender)

    def _unsigned(self) -> bytes:
        out = Writer()
        out.uint(TRANSACTION_VERSION, 1)
        out.uint(self.kind, 1)
        out.fixed(self.sender, 32)
        out.uint(self.nonce, 8)
        _write_body(out, self.body)
        return out.getvalue()

    def signing_bytes(self, chain_id: str) -> bytes:
        return preimage(Domain.ACCOUNT_TRANSACTION, self._unsigned(), chain_id=chain_id)

    def encode(self) -> bytes:
        return self._unsigned() + self.signature

    def is_signed(self, chain_id: str, encoded: bytes | None = None) -> bool:
        """``encoded``: this transaction's encoding, when at hand (what ``decode`` read): its
        unsigned part is then sliced off rather than encoded again (decoding is canonical, so
        the two are the same bytes)."""
        unsigned = self._unsigned() if encoded is None else encoded[:-64]
        signing_bytes = preimage(Domain.ACCOUNT_TRANSACTION, unsigned, chain_id=chain_id)
        return signature_is_valid(self.sender, signing_bytes, self.signature)

    @staticmethod
    def sign(key: SigningKey, chain_id: str, nonce: int, body: Body) -> Transaction:
        unsigned = Transaction(key.public_key.raw, nonce, body, bytes(64))
        return Transaction(unsigned.sender, nonce, body, key.sign(unsigned.signing_bytes(chain_id)))

    @staticmethod
    def decode(data: bytes) -> Transaction:
        if len(data) > TRANSACTION_BYTES_MAX:
            raise CodecError(f"transaction of {len(data)} bytes exceeds {TRANSACTION_BYTES_MAX}")
        transfer = _decode_transfer(data)  # the common kind, in two unpacks
        return transfer if transfer is not None else Transaction._decode(data)

    @staticmethod
    def _decode(data: bytes) -> Transaction:
        """Any kind, field by field (and the error that names what is wrong)."""
        reader = Reader(data, "transaction")
        reader.version(TRANSACTION_VERSION)
        kind = reader.kind(TxKind)
        sender = reader.fixed(32, "sender")
        nonce = reader.uint(8, "nonce")
        body = _read_body(reader, kind)
        signature = reader.fixed(64, "signature")
        reader.finish()
        return Transaction(sender, nonce, body, signature)


_set_sender, _set_nonce, _set_body, _set_signature = (
    _setter(Transaction, f) for f in ("sender", "nonce", "body", "signature")
)
