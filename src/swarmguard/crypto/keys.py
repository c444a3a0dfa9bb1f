"""Ed25519 keys (libsodium), and key files on disk.

A validator holds two secret keys: a consensus key that signs votes and proposals (Ed25519) and a
VRF key that proves leader-selection randomness (ECVRF, whose keys have the same form). Both are
32-byte seeds.

Key file format, version 1 (keep in sync with docs/crypto.md): one JSON object, UTF-8, exactly
these fields, no others::

    {"format": "swarmguard-key", "version": 1, "kind": "ed25519" | "ecvrf",
     "public_key": "<64 lowercase hex>", "secret_seed": "<64 lowercase hex>"}

A key file is created with mode 0600 and never overwritten; loading refuses a file that its group
or others may read or write, a file of another format or version, unknown or missing fields,
wrong lengths, and a public key that does not match the seed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Literal

import nacl.bindings as sodium
import nacl.exceptions

from . import ecvrf
from .errors import InvalidKey, InvalidSignature, KeyFileError

__all__ = [
    "KEY_FILE_BYTES_MAX",
    "KeyKind",
    "PublicKey",
    "SigningKey",
    "load_key_file",
    "public_key_of",
    "write_key_file",
]

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_FILE_BYTES_MAX = 4096
"""A key file is about 200 bytes; anything much larger is not one (and is not read whole)."""
KEY_FILE_VERSION = 1
KeyKind = Literal["ed25519", "ecvrf"]
_KINDS = ("ed25519", "ecvrf")
_FIELDS = {"format", "version", "kind", "public_key", "secret_seed"}


class PublicKey:
    """An Ed25519 public key: verifies signatures."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != PUBLIC_KEY_BYTES:
            raise InvalidKey(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(raw)}")
        self.raw = bytes(raw)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return if ``signature`` is this key's signature of ``message``; raise otherwise."""
        if len(signature) != SIGNATURE_BYTES:
            raise InvalidSignature(f"a signature is {SIGNATURE_BYTES} bytes, got {len(signature)}")
        try:
            sodium.crypto_sign_open(signature + message, self.raw)
        except nacl.exceptions.BadSignatureError:
            raise InvalidSignature("the signature does not verify") from None

    def is_valid(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's signature of ``message``."""
        return signature_is_valid(self.raw, message, signature)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"<PublicKey {self.raw.hex()}>"


_sign_open, _BadSignature = sodium.crypto_sign_open, nacl.exceptions.BadSignatureError


def signature_is_valid(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """``PublicKey(public_key).is_valid(message, signature)`` without the key object, for loops
    that meet each key once (a node checking every transaction's signature); False for a key
    or signature of the wrong length."""
    if len(signature) != SIGNATURE_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
        return False
    try:
        _sign_open(signature + message, public_key)
    except _BadSignature:
        return False
    return True


class SigningKey:
    """An Ed25519 secret key (a 32-byte seed): signs messages."""

    __slots__ = ("_secret", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise InvalidKey(f"an Ed25519 seed is {SEED_BYTES} bytes, got {len(seed)}")
        self.seed = bytes(seed)
        public, self._secret = sodium.crypto_sign_seed_keypair(self.seed)
        self.public_key = PublicKey(public)

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key from the operating system's randomness."""
        return cls(os.urandom(SEED_BYTES))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature of ``message``."""
        return sodium.crypto_sign(message, self._secret)[:SIGNATURE_BYTES]

    def __repr__(self) -> str:
        return f"<SigningKey public={self.public_key.raw.hex()}>"


def public_key_of(kind: str, seed: bytes) -> bytes:
    """The public key of a seed of the given kind ("ed25519" or "ecvrf")."""
    return _public_of(kind, seed)


def _public_of(kind: str, seed: bytes) -> bytes:
    if kind == "ed25519":
        return SigningKey(seed).public_key.raw
    return ecvrf.public_key(seed)


def write_key_file(path: str | Path, kind: KeyKind, seed: bytes) -> None:
    """Create a key file (mode 0600); refuses to overwrite an existing file."""
    if kind not in _KINDS:
        raise KeyFileError(f"kind must be one of {_KINDS}, got {kind!r}")
    if len(seed) != SEED_BYTES:
        raise InvalidKey(f"a seed is {SEED_BYTES} bytes, got {len(seed)}")
    document = {
        "format": "swarmguard-key",
        "version": KEY_FILE_VERSION,
        "kind": kind,
        "public_key": _public_of(kind, seed).hex(),
        "secret_seed": seed.hex(),
    }
    data = (json.dumps(document, sort_keys=True) + "\n").encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # the umask may have narrowed it; never widened
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_key_file(path: str | Path) -> tuple[KeyKind, bytes]:
    """Read a key file: (kind, 32-byte seed). Raises KeyFileError on anything unexpected."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise KeyFileError(f"{path}: cannot open: {error.strerror}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: permissions {stat.filemode(info.st_mode)} let others read or write "
                "the key; run: chmod 600 " + str(path)
            )
        data = os.read(descriptor, KEY_FILE_BYTES_MAX + 1)
    finally:
        os.close(descriptor)
    if len(data) > KEY_FILE_BYTES_MAX:
        raise KeyFileError(f"{path}: larger than {KEY_FILE_BYTES_MAX} bytes: not a key file")
    return _parse(str(path), data)


def _parse(path: str, data: bytes) -> tuple[KeyKind, bytes]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFileError(f"{path}: not a JSON key file") from None
    if not isinstance(document, dict) or set(document) != _FIELDS:
        raise KeyFileError(f"{path}: fields must be exactly {sorted(_FIELDS)}")
    if document["format"] != "swarmguard-key":
        raise KeyFileError(f"{path}: format is {document['format']!r}, not 'swarmguard-key'")
    if document["version"] != KEY_FILE_VERSION or isinstance(document["version"], bool):
        raise KeyFileError(f"{path}: unsupported key file version {document['version']!r}")
    kind = document["kind"]
    if kind not in _KINDS:
        raise KeyFileError(f"{path}: unknown key kind {kind!r}")
    seed = _hex_field(path, document, "secret_seed", SEED_BYTES)
    public = _hex_field(path, document, "public_key", PUBLIC_KEY_BYTES)
    if _public_of(kind, seed) != public:
        raise KeyFileError(f"{path}: public_key does not belong to secret_seed")
    return kind, seed


def _hex_field(path: str, document: dict[str, object], field: str, length: int) -> bytes:
    value = document[field]
    if not isinstance(value, str) or len(value) != 2 * length or value != value.lower():
        raise KeyFileError(f"{path}: {field} must be {2 * length} lowercase hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise KeyFileError(f"{path}: {field} is not hex") from None
