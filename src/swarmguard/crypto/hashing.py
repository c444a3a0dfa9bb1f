"""The one place that fixes how every structure is hashed and signed: domain separation.

Every hash and every signature in SwarmGuard covers a *preimage* that starts with a header naming
what is hashed, for which chain, under which version of these rules (keep in sync with
docs/crypto.md, "Hashing")::

    preimage = b"SWGD" || version (1 byte) || domain (2 bytes, big-endian)
               || len(chain_id) (1 byte) || chain_id || payload
    digest   = SHA-256(preimage)

The header has a fixed layout with one length-prefixed field, so it can be read back from the
front of any preimage: two preimages with different (version, domain, chain id) differ within the
header, whatever their payloads. Hence no two kinds of object, and no two chains, can ever share
a preimage: a signed vote cannot be replayed as a proposal, nor a testnet block on mainnet.

Domain codes are permanent: a code is never reused, and a change of meaning takes a new code.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from enum import IntEnum

__all__ = [
    "ADDRESS_BYTES",
    "CHAIN_ID_BYTES_MAX",
    "HASH_BYTES",
    "HASH_VERSION",
    "Domain",
    "address_of",
    "digest",
    "hasher",
    "preimage",
]

HASH_VERSION = 1
HASH_BYTES = 32
CHAIN_ID_BYTES_MAX = 50
"""As CometBFT: a chain id is a short printable ASCII name."""
_MAGIC = b"SWGD"
ADDRESS_BYTES = 20
_ADDRESS_TAG = b"SWGD-address-v1"


class Domain(IntEnum):
    """Every kind of object that is hashed or signed. Codes are permanent (see module docstring)."""

    BLOCK_HEADER = 1
    TRANSACTION = 2
    VOTE = 3
    PROPOSAL = 4
    COMMIT_CERTIFICATE = 5
    EVIDENCE = 6
    VALIDATOR_SET = 7
    STATE = 8
    VRF_INPUT = 9
    """The alpha of the VRF proof for leader-selection randomness: (previous seed, height)."""
    LEADER_DRAW = 10
    """H(seed, view): the stake unit that owns a (height, view)."""
    SNAPSHOT = 11
    STAKING_TRANSACTION = 12
    """Reserved (never used: the ledger signs every account transaction under 13)."""
    ACCOUNT_TRANSACTION = 13
    """What an account key signs: a transaction of the built-in ledger (transfers, staking)."""


def _chain_id_bytes(chain_id: str) -> bytes:
    if not chain_id or not chain_id.isascii() or not chain_id.isprintable():
        raise ValueError(f"a chain id is printable ASCII, got {chain_id!r}")
    encoded = chain_id.encode("ascii")
    if len(encoded) > CHAIN_ID_BYTES_MAX:
        raise ValueError(f"a chain id has at most {CHAIN_ID_BYTES_MAX} characters: {chain_id!r}")
    return encoded


@functools.lru_cache(maxsize=256, typed=True)
def _header(domain: Domain, chain_id: str) -> bytes:
    """Everything before the payload: built once per (domain, chain), not once per hash."""
    if not isinstance(domain, Domain):
        raise TypeError(f"domain must be a hashing.Domain, got {domain!r}")
    chain = _chain_id_bytes(chain_id)
    return (
        _MAGIC + bytes((HASH_VERSION,)) + domain.to_bytes(2, "big") + bytes((len(chain),)) + chain
    )


def preimage(domain: Domain, payload: bytes, *, chain_id: str) -> bytes:
    """The exact bytes that are hashed (and that consensus keys sign) for ``payload``."""
    return _header(domain, chain_id) + payload


def digest(domain: Domain, payload: bytes, *, chain_id: str) -> bytes:
    """The 32-byte domain-separated hash of ``payload``."""
    return hashlib.sha256(preimage(domain, payload, chain_id=chain_id)).digest()


def hasher(domain: Domain, *, chain_id: str) -> Callable[[bytes], bytes]:
    """``digest`` for one (domain, chain) fixed: the header is built once, so a hot loop
    (a node hashing every transaction) pays for one SHA-256 call and nothing else."""
    header, sha256 = _header(domain, chain_id), hashlib.sha256

    def hash_payload(payload: bytes) -> bytes:
        return sha256(header + payload).digest()

    return hash_payload


@functools.lru_cache(maxsize=1 << 16)
def address_of(public_key: bytes) -> bytes:
    """An account's address: the first 20 bytes of SHA-256 over a fixed tag and its Ed25519
    key. Not bound to a chain id: one key has one address on every chain (as in Cosmos), and
    transactions, which are chain-bound, carry the key itself."""
    if len(public_key) != 32:
        raise ValueError("an account key is 32 bytes")
    return hashlib.sha256(_ADDRESS_TAG + public_key).digest()[:ADDRESS_BYTES]
