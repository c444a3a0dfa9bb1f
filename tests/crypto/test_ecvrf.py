"""ECVRF-EDWARDS25519-SHA512-TAI against RFC 9381 Appendix B.3, must-fail cases, and the
libsodium-based point helpers against an independent pure-Python reference."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.crypto import InvalidKey, InvalidProof, ecvrf
from swarmguard.crypto import _edwards as ed

from . import reference_edwards as ref

VECTORS_FILE = Path(__file__).parent / "rfc9381_vectors.json"
SHARED_VECTORS = (
    Path(__file__).parents[3] / "shared" / "vectors" / "rfc9381_ecvrf_edwards25519_sha512_tai.json"
)


def load_examples() -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text())["examples"]
    return examples


EXAMPLES = load_examples()


def test_vector_copy_matches_the_shared_file() -> None:
    """The repository's copy of the vectors is the project's shared file, unchanged."""
    if not SHARED_VECTORS.exists():
        pytest.skip("../shared/vectors is not next to this checkout")
    assert VECTORS_FILE.read_bytes() == SHARED_VECTORS.read_bytes()
    assert len(EXAMPLES) == 3


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"example-{e['example']}")
def test_rfc9381_examples_byte_for_byte(example: dict[str, Any]) -> None:
    """Every value of Appendix B.3 is reproduced exactly: pk, H, k, U, V, pi and beta."""
    secret = bytes.fromhex(example["sk"])
    alpha = bytes.fromhex(example["alpha"])
    key = ecvrf.VrfSecretKey(secret)
    assert key.public_key.hex() == example["pk"]
    h = ecvrf.encode_to_curve(key.public_key, alpha)
    assert h.hex() == example["h"]
    digest = hashlib.sha512(secret).digest()
    k_string = hashlib.sha512(digest[32:] + h).digest()
    assert k_string.hex() == example["k_string"]
    k = int.from_bytes(k_string, "little") % ed.L
    assert ed.mul_base(k).hex() == example["u"]
    assert ed.mul(k, h).hex() == example["v"]
    proof = key.prove(alpha)
    assert proof.hex() == example["pi"]  # pi, not only beta: earlier drafts share beta
    assert ecvrf.prove(secret, alpha) == proof
    assert ecvrf.verify(key.public_key, proof, alpha).hex() == example["beta"]
    assert ecvrf.proof_to_hash(proof).hex() == example["beta"]


@pytest.fixture(scope="module")
def honest() -> tuple[ecvrf.VrfSecretKey, bytes, bytes]:
    key = ecvrf.VrfSecretKey(bytes.fromhex(EXAMPLES[1]["sk"]))
    alpha = bytes.fromhex(EXAMPLES[1]["alpha"])
    return key, alpha, key.prove(alpha)


def test_modified_proofs_fail(honest: tuple[ecvrf.VrfSecretKey, bytes, bytes]) -> None:
    """Flipping any single bit of Gamma, c or s makes verification fail."""
    key, alpha, proof = honest
    for byte in range(len(proof)):
        for bit in (0, 3, 7):
            tampered = bytearray(proof)
            tampered[byte] ^= 1 << bit
            with pytest.raises(InvalidProof):
                ecvrf.verify(key.public_key, bytes(tampered), alpha)


def test_wrong_key_and_wrong_input_fail(honest: tuple[ecvrf.VrfSecretKey, bytes, bytes]) -> None:
    """A proof does not verify under another key or for another input."""
    key, alpha, proof = honest
    other = ecvrf.VrfSecretKey(os.urandom(32))
    with pytest.raises(InvalidProof):
        ecvrf.verify(other.public_key, proof, alpha)
    with pytest.raises(InvalidProof):
        ecvrf.verify(key.public_key, proof, alpha + b"!")


def non_canonical(encoded: bytes) -> bytes:
    """The same point with y + p in place of y (only possible when y < 19)."""
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    assert y < 19
    return ((y + ed.P) | ((encoded[31] >> 7) << 255)).to_bytes(32, "little")


def test_non_canonical_encodings_fail(honest: tuple[ecvrf.VrfSecretKey, bytes, bytes]) -> None:
    """A public key or Gamma whose y is not reduced mod p is rejected, even for a real point."""
    key, alpha, proof = honest
    identity_alias = non_canonical(ed.IDENTITY)  # y = p + 1
    assert ref.decode(identity_alias) is None
    with pytest.raises(InvalidProof, match="canonical"):
        ecvrf.verify(identity_alias, proof, alpha)
    with pytest.raises(InvalidProof, match="Gamma"):
        ecvrf.verify(key.public_key, identity_alias + proof[32:], alpha)
    negative_zero = b"\x01" + b"\x00" * 30 + b"\x80"  # x = 0 with the sign bit set
    with pytest.raises(InvalidProof):
        ecvrf.verify(negative_zero, proof, alpha)


@pytest.mark.parametrize("point", ref.small_order_points(), ids=lambda p: p.hex()[:8])
def test_small_order_keys_fail(
    honest: tuple[ecvrf.VrfSecretKey, bytes, bytes], point: bytes
) -> None:
    """All eight points of order dividing 8 are refused as public keys (validate_key)."""
    _, alpha, proof = honest
    with pytest.raises(InvalidProof, match="small order|canonical"):
        ecvrf.verify(point, proof, alpha)


def test_unreduced_s_and_bad_lengths_fail(honest: tuple[ecvrf.VrfSecretKey, bytes, bytes]) -> None:
    """s >= L, short or long proofs, and short keys are rejected with a clear error."""
    key, alpha, proof = honest
    s = int.from_bytes(proof[48:], "little")
    unreduced = proof[:48] + (s + ed.L).to_bytes(32, "little")
    with pytest.raises(InvalidProof, match="s is not reduced"):
        ecvrf.verify(key.public_key, unreduced, alpha)
    with pytest.raises(InvalidProof, match="80 bytes"):
        ecvrf.verify(key.public_key, proof[:79], alpha)
    with pytest.raises(InvalidProof, match="80 bytes"):
        ecvrf.proof_to_hash(proof + b"\x00")
    with pytest.raises(InvalidProof, match="32 bytes"):
        ecvrf.verify(key.public_key[:31], proof, alpha)
    with pytest.raises(InvalidKey):
        ecvrf.VrfSecretKey(b"short")


def test_torsioned_gamma_verifies_as_the_rfc_says() -> None:
    """A prover may add a small-order point to Gamma and still pass RFC 9381 verification (it
    guesses c mod 8); we must accept such a proof too, and it must yield the same beta."""
    key = ecvrf.VrfSecretKey(bytes.fromhex(EXAMPLES[0]["sk"]))
    alpha = b"torsion"
    x, _ = ecvrf._expand(bytes.fromhex(EXAMPLES[0]["sk"]))
    h = ecvrf.encode_to_curve(key.public_key, alpha)
    torsion = ref.small_order_points()[3]
    assert ref.encode(ref.multiply(8, ref.decode(torsion) or ref.IDENTITY)) == ed.IDENTITY
    gamma = ed.add(ed.mul(x, h), torsion)
    for attempt in range(200):
        k = int.from_bytes(hashlib.sha512(b"nonce" + bytes([attempt])).digest(), "little") % ed.L
        guess = attempt % 8
        k_h = ed.mul(k, h)
        v = k_h
        for _ in range(guess):
            v = ed.sub(v, torsion)
        c = ecvrf._challenge(key.public_key, h, gamma, ed.mul_base(k), v)
        if c % 8 == guess:
            s = (k + c * x) % ed.L
            proof = gamma + c.to_bytes(16, "little") + s.to_bytes(32, "little")
            beta = ecvrf.verify(key.public_key, proof, alpha)
            assert beta == ecvrf.verify(key.public_key, key.prove(alpha), alpha)
            return
    pytest.fail("no torsioned proof found in 200 attempts (expected about 8)")


def test_proofs_are_unique_per_key_and_input() -> None:
    """Proving twice gives the same proof; different inputs give different outputs."""
    key = ecvrf.VrfSecretKey(os.urandom(32))
    assert key.prove(b"a") == key.prove(b"a")
    beta_a = ecvrf.verify(key.public_key, key.prove(b"a"), b"a")
    beta_b = ecvrf.verify(key.public_key, key.prove(b"b"), b"b")
    assert beta_a != beta_b
    assert len(beta_a) == ecvrf.BETA_BYTES


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_encoding_check_matches_the_reference_decoder(encoded: bytes) -> None:
    """libsodium-backed validity of an encoding agrees with RFC 8032 decoding, on random bytes
    (about half decode) and on their non-canonical and negative-zero variants."""
    assert ed.is_valid_encoding(encoded) == (ref.decode(encoded) is not None)
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    if y < 19:
        assert not ed.is_valid_encoding(non_canonical(encoded))


@settings(max_examples=60, deadline=None)
@given(
    scalar=st.integers(0, 2**256),
    torsion_index=st.integers(0, 7),
    seed=st.binary(min_size=32, max_size=32),
)
def test_scalar_multiplication_matches_the_reference(
    scalar: int, torsion_index: int, seed: bytes
) -> None:
    """k * P agrees with the reference for P in the subgroup and for P with a torsion part,
    and 8 * P (cofactor clearing by doublings) agrees too."""
    base_multiple = ref.multiply(int.from_bytes(seed, "little") % ref.L, ref.BASE)
    torsion = ref.decode(ref.small_order_points()[torsion_index])
    assert torsion is not None
    point = ref.add(base_multiple, torsion)
    encoded = ref.encode(point)
    assert ed.mul(scalar, encoded) == ref.encode(ref.multiply(scalar, point))
    assert ed.clear_cofactor(encoded) == ref.encode(ref.multiply(8, point))
    assert ed.mul_base(scalar) == ref.encode(ref.multiply(scalar % ref.L, ref.BASE))
