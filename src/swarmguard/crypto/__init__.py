"""Cryptography: Ed25519 keys and key files, ECVRF (RFC 9381), domain-separated hashing.

libsodium (PyNaCl) does every curve operation; this package adds the protocols built on top.
It imports nothing else from ``swarmguard``. Guide: docs/crypto.md.
"""

from . import ecvrf as ecvrf
from . import hashing as hashing
from .errors import CryptoError as CryptoError
from .errors import InvalidKey as InvalidKey
from .errors import InvalidProof as InvalidProof
from .errors import InvalidSignature as InvalidSignature
from .errors import KeyFileError as KeyFileError
from .hashing import Domain as Domain
from .hashing import digest as digest
from .keys import PublicKey as PublicKey
from .keys import SigningKey as SigningKey
from .keys import load_key_file as load_key_file
from .keys import signature_is_valid as signature_is_valid
from .keys import write_key_file as write_key_file

__all__ = [
    "CryptoError",
    "Domain",
    "InvalidKey",
    "InvalidProof",
    "InvalidSignature",
    "KeyFileError",
    "PublicKey",
    "SigningKey",
    "digest",
    "ecvrf",
    "hashing",
    "load_key_file",
    "signature_is_valid",
    "write_key_file",
]
