"""edwards25519 helpers on top of libsodium (strictly private).

libsodium does the curve arithmetic (point addition, scalar multiplication); Python does only what
libsodium cannot be asked for:

- Deciding whether 32 bytes are a valid *encoding* of a curve point (RFC 8032, 5.1.3): libsodium's
  ``is_valid_point`` also demands membership of the prime-order subgroup, which the candidates of
  ECVRF's try-and-increment need not have before their cofactor is cleared. We check canonicity
  in Python and let libsodium's point addition (which checks only that a point is on the curve)
  do the decoding; tests cross-check this against a pure-Python RFC 8032 decoder.
- Scalar multiplication of a point that may carry a small-order (torsion) component: libsodium's
  ``*_noclamp`` refuses such points, but RFC 9381 verification must still compute with them (an
  adversary may send one). Such a point P splits as G + T, G = (8^-1 mod L)(8P) in the subgroup
  and T = P - G of order dividing 8, so kP = kG + (k mod 8)T.
"""

from __future__ import annotations

import nacl.bindings as sodium
import nacl.exceptions

__all__ = [
    "IDENTITY",
    "L",
    "P",
    "add",
    "clear_cofactor",
    "clear_cofactor_checked",
    "is_identity",
    "is_valid_encoding",
    "mul",
    "mul_base",
    "scalar_bytes",
    "sub",
]

P = 2**255 - 19
"""The field prime."""
L = 2**252 + 27742317777372353535851937790883648493
"""The order of the prime-order subgroup."""
_INVERSE_8 = pow(8, L - 2, L)

IDENTITY = b"\x01" + b"\x00" * 31
"""The encoding of the neutral element (0, 1)."""


def _canonical(encoded: bytes) -> bool:
    """The checks of RFC 8032 decoding that libsodium's decoder leaves out: the length, y < p,
    and no "negative" zero x (x = 0 exactly when y = 1 or y = p - 1)."""
    if len(encoded) != 32:
        return False
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    if y >= P:
        return False
    return not (encoded[31] >> 7 and (y == 1 or y == P - 1))


def clear_cofactor_checked(encoded: bytes) -> bytes | None:
    """8 * point, or None when ``encoded`` is not a canonical encoding of a curve point.

    Any point qualifies, small-order and non-subgroup points included. The first doubling is
    libsodium's ``crypto_core_ed25519_add``, which returns -1 (RuntimeError here) for bytes that
    do not decode to a point of the curve; canonicity is checked first, in Python, because that
    decoder does not check it.
    """
    if not _canonical(encoded):
        return None
    try:
        doubled = add(encoded, encoded)
    except nacl.exceptions.RuntimeError:
        return None  # (y^2 - 1) / (d y^2 + 1) has no square root: not on the curve
    doubled = add(doubled, doubled)
    return add(doubled, doubled)


def is_valid_encoding(encoded: bytes) -> bool:
    """True when ``encoded`` is the canonical RFC 8032 encoding of any point of the curve."""
    if not _canonical(encoded):
        return False
    try:
        add(encoded, IDENTITY)
    except nacl.exceptions.RuntimeError:
        return False
    return True


def is_identity(encoded: bytes) -> bool:
    """True for the canonical encoding of the neutral element."""
    return encoded == IDENTITY


def add(first: bytes, second: bytes) -> bytes:
    """first + second for any two valid encodings (libsodium checks only curve membership)."""
    return sodium.crypto_core_ed25519_add(first, second)


def sub(first: bytes, second: bytes) -> bytes:
    """first - second for any two valid encodings."""
    return sodium.crypto_core_ed25519_sub(first, second)


def clear_cofactor(encoded: bytes) -> bytes:
    """8 * point, by three doublings (valid for points outside the subgroup too)."""
    doubled = add(encoded, encoded)
    doubled = add(doubled, doubled)
    return add(doubled, doubled)


def scalar_bytes(scalar: int) -> bytes:
    """A scalar reduced mod L, as 32 little-endian bytes."""
    return (scalar % L).to_bytes(32, "little")


def mul_base(scalar: int) -> bytes:
    """scalar * B for the standard base point B."""
    reduced = scalar % L
    if reduced == 0:
        return IDENTITY
    return sodium.crypto_scalarmult_ed25519_base_noclamp(reduced.to_bytes(32, "little"))


def _mul_subgroup(scalar: int, encoded: bytes) -> bytes:
    """scalar * point for a point of the prime-order subgroup (or the identity)."""
    reduced = scalar % L
    if reduced == 0 or is_identity(encoded):
        return IDENTITY
    return sodium.crypto_scalarmult_ed25519_noclamp(reduced.to_bytes(32, "little"), encoded)


def mul(scalar: int, encoded: bytes) -> bytes:
    """scalar * point for any valid encoding, torsion component included."""
    try:
        return _mul_subgroup(scalar, encoded)
    except nacl.exceptions.RuntimeError:
        pass  # libsodium refused the point: it is not in the prime-order subgroup
    subgroup_part = _mul_subgroup(_INVERSE_8, clear_cofactor(encoded))
    torsion = sub(encoded, subgroup_part)
    result = _mul_subgroup(scalar, subgroup_part)
    for _ in range(scalar % 8):
        result = add(result, torsion)
    return result
