"""Errors of the crypto package: a bad key, a bad proof or signature, a bad key file."""

from __future__ import annotations

__all__ = ["CryptoError", "InvalidKey", "InvalidProof", "InvalidSignature", "KeyFileError"]


class CryptoError(ValueError):
    """Base class: some input failed a cryptographic check."""


class InvalidKey(CryptoError):
    """A key has the wrong length or is not a valid key."""


class InvalidProof(CryptoError):
    """A VRF proof (or the public key it is checked against) does not verify."""


class InvalidSignature(CryptoError):
    """An Ed25519 signature does not verify."""


class KeyFileError(CryptoError):
    """A key file is malformed, of an unknown version, or readable by others."""
