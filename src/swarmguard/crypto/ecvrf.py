"""ECVRF-EDWARDS25519-SHA512-TAI, RFC 9381 (suite 0x03): prove, verify, proof_to_hash.

A verifiable random function: only the holder of the secret key can compute ``beta`` for an input
``alpha``, everyone can check it against the public key, and for each (key, alpha) there is exactly
one ``beta``. Leader selection uses it so that every validator can verify every draw.

The steps follow RFC 9381 section 5 with the parameters of section 5.5 (keep the RFC open):

- keys as in RFC 8032: ``x`` = clamped SHA-512(SK)[0:32], ``Y = x*B``, PK = encode(Y);
- encode_to_curve by try-and-increment (5.4.1.1): ``H = 8 * decode(SHA-512(0x03 || 0x01 || PK ||
  alpha || ctr || 0x00)[0:32])`` for the first ``ctr`` whose candidate decodes and whose H is not
  the identity. The candidate need not lie in the prime-order subgroup, so it is checked by
  ``_edwards.is_valid_encoding`` and its cofactor cleared by doublings, not by libsodium's
  subgroup-checking calls;
- nonce (5.4.2.2): ``k = SHA-512(SHA-512(SK)[32:64] || encode(H)) mod L``;
- challenge (5.4.3): ``c = SHA-512(0x03 || 0x02 || Y || H || Gamma || U || V || 0x00)[0:16]``;
- proof ``pi = encode(Gamma) || c (16 bytes LE) || s (32 bytes LE)`` with ``Gamma = x*H``,
  ``s = (k + c*x) mod L``;
- ``beta = SHA-512(0x03 || 0x03 || encode(8*Gamma) || 0x00)``.

Verification rejects (with :class:`InvalidProof`): a public key that is not a canonical encoding or
is of small order (validate_key), a proof of the wrong length, a non-canonical Gamma, ``s >= L``,
and any proof whose recomputed challenge differs.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import nacl.bindings as sodium

from . import _edwards as ed
from .errors import InvalidKey, InvalidProof

__all__ = [
    "BETA_BYTES",
    "PROOF_BYTES",
    "PUBLIC_KEY_BYTES",
    "SECRET_KEY_BYTES",
    "VrfSecretKey",
    "check_public_key",
    "proof_to_hash",
    "prove",
    "public_key",
    "verify",
]

SUITE = b"\x03"
SECRET_KEY_BYTES = 32
PUBLIC_KEY_BYTES = 32
PROOF_BYTES = 80
BETA_BYTES = 64
_CHALLENGE_BYTES = 16
_ENCODE_FRONT, _CHALLENGE_FRONT, _HASH_FRONT, _BACK = b"\x01", b"\x02", b"\x03", b"\x00"
_TAI_ATTEMPTS_MAX = 256
"""ctr is one byte; failing 256 times in a row has probability about 2^-256."""


def _sha512(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).digest()


def _expand(secret_key: bytes) -> tuple[int, bytes]:
    """(x, nonce prefix) from a 32-byte secret key, as RFC 8032 does."""
    if len(secret_key) != SECRET_KEY_BYTES:
        raise InvalidKey(f"a VRF secret key is {SECRET_KEY_BYTES} bytes, got {len(secret_key)}")
    digest = hashlib.sha512(secret_key).digest()
    scalar = bytearray(digest[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    return int.from_bytes(scalar, "little"), digest[32:]


def public_key(secret_key: bytes) -> bytes:
    """The 32-byte public key of a 32-byte secret key (the same as its Ed25519 public key)."""
    x, _ = _expand(secret_key)
    return ed.mul_base(x)


def encode_to_curve(public: bytes, alpha: bytes) -> bytes:
    """RFC 9381 5.4.1.1 (try-and-increment): a point of the prime-order subgroup, not identity."""
    prefix = SUITE + _ENCODE_FRONT + public + alpha
    for counter in range(_TAI_ATTEMPTS_MAX):
        candidate = _sha512(prefix, bytes((counter,)), _BACK)[:32]
        point = ed.clear_cofactor_checked(candidate)
        if point is not None and not ed.is_identity(point):
            return point
    raise InvalidProof("encode_to_curve found no point")  # pragma: no cover - probability 2^-256


def _challenge(*points: bytes) -> int:
    digest = _sha512(SUITE, _CHALLENGE_FRONT, *points, _BACK)
    return int.from_bytes(digest[:_CHALLENGE_BYTES], "little")


class VrfSecretKey:
    """A VRF secret key with its derived scalar and public key (derived once, proved often)."""

    __slots__ = ("_nonce_prefix", "_x", "public_key")

    def __init__(self, secret_key: bytes) -> None:
        self._x, self._nonce_prefix = _expand(bytes(secret_key))
        self.public_key = ed.mul_base(self._x)
        """The 32-byte public key."""

    def prove(self, alpha: bytes) -> bytes:
        """The 80-byte proof ``pi`` for ``alpha``."""
        x = self._x
        h = encode_to_curve(self.public_key, alpha)
        gamma = ed.mul(x, h)
        k = int.from_bytes(_sha512(self._nonce_prefix, h), "little") % ed.L
        c = _challenge(self.public_key, h, gamma, ed.mul_base(k), ed.mul(k, h))
        s = (k + c * x) % ed.L
        return gamma + c.to_bytes(_CHALLENGE_BYTES, "little") + s.to_bytes(32, "little")

    def __repr__(self) -> str:
        return f"<VrfSecretKey public={self.public_key.hex()}>"


def prove(secret_key: bytes, alpha: bytes) -> bytes:
    """The 80-byte proof ``pi`` for ``alpha`` under a 32-byte ``secret_key``."""
    return VrfSecretKey(secret_key).prove(alpha)


def proof_to_hash(proof: bytes) -> bytes:
    """The 64-byte output ``beta`` of a proof (check the proof with :func:`verify` first)."""
    return _beta(_decode_proof(proof)[1])


def _beta(gamma_times_8: bytes) -> bytes:
    return _sha512(SUITE, _HASH_FRONT, gamma_times_8, _BACK)


def check_public_key(public: bytes) -> None:
    """Raise InvalidProof unless ``public`` is a key some proof could verify under (canonical,
    on the curve, not of small order): what a validator's registration is checked with."""
    _checked_public_key(bytes(public))


@lru_cache(maxsize=4096)
def _checked_public_key(public: bytes) -> bytes:
    """Validate a public key once (decode + validate_key); validators reuse their keys."""
    if len(public) != PUBLIC_KEY_BYTES:
        raise InvalidProof(f"a VRF public key is {PUBLIC_KEY_BYTES} bytes, got {len(public)}")
    cleared = ed.clear_cofactor_checked(public)
    if cleared is None:
        raise InvalidProof("the public key is not a canonical curve point")
    if ed.is_identity(cleared):
        raise InvalidProof("the public key is of small order")
    return public


def _decode_proof(proof: bytes) -> tuple[bytes, bytes, int, int]:
    """(Gamma, 8*Gamma, c, s) of a well-formed proof; raises InvalidProof otherwise."""
    if len(proof) != PROOF_BYTES:
        raise InvalidProof(f"a proof is {PROOF_BYTES} bytes, got {len(proof)}")
    gamma = proof[:32]
    gamma_times_8 = ed.clear_cofactor_checked(gamma)
    if gamma_times_8 is None:
        raise InvalidProof("Gamma is not a canonical curve point")
    c = int.from_bytes(proof[32:48], "little")
    s = int.from_bytes(proof[48:], "little")
    if s >= ed.L:
        raise InvalidProof("s is not reduced")
    return gamma, gamma_times_8, c, s


def verify(public: bytes, proof: bytes, alpha: bytes) -> bytes:
    """Check ``proof`` for ``alpha`` under ``public``; return ``beta``, or raise InvalidProof."""
    _checked_public_key(bytes(public))
    gamma, gamma_times_8, c, s = _decode_proof(proof)
    h = encode_to_curve(public, alpha)
    u = ed.sub(ed.mul_base(s), ed.mul(c, public))
    v = ed.sub(ed.mul(s, h), ed.mul(c, gamma))
    if _challenge(public, h, gamma, u, v) != c:
        raise InvalidProof("the proof does not verify")
    return _beta(gamma_times_8)


def _libsodium_ready() -> bool:
    """The operations used here exist in the linked libsodium (checked at import)."""
    return bool(sodium.has_crypto_core_ed25519 and sodium.has_crypto_scalarmult_ed25519)


if not _libsodium_ready():  # pragma: no cover - only with a libsodium built without them
    raise ImportError("the linked libsodium lacks the edwards25519 core operations ECVRF needs")
