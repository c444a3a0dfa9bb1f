"""Ed25519 keys, key files (format, permissions, tampering) and domain-separated hashing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard import cli
from swarmguard.crypto import (
    Domain,
    InvalidKey,
    InvalidSignature,
    KeyFileError,
    PublicKey,
    SigningKey,
    digest,
    ecvrf,
    hashing,
    load_key_file,
    signature_is_valid,
    write_key_file,
)

SEED = bytes(range(32))


def test_sign_and_verify_agree_with_pynacl() -> None:
    """Signatures are plain Ed25519: PyNaCl verifies ours and we verify PyNaCl's."""
    key = SigningKey(SEED)
    reference = nacl.signing.SigningKey(SEED)
    assert key.public_key.raw == bytes(reference.verify_key)
    signature = key.sign(b"vote")
    assert signature == reference.sign(b"vote").signature
    reference.verify_key.verify(b"vote", signature)
    key.public_key.verify(b"vote", signature)
    assert key.public_key.is_valid(b"vote", signature)


def test_bad_signatures_are_rejected() -> None:
    """Another message, another key, a flipped bit or a wrong length all fail."""
    key = SigningKey(SEED)
    signature = key.sign(b"vote")
    with pytest.raises(InvalidSignature):
        key.public_key.verify(b"other", signature)
    with pytest.raises(InvalidSignature):
        SigningKey.generate().public_key.verify(b"vote", signature)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not key.public_key.is_valid(b"vote", flipped)
    with pytest.raises(InvalidSignature, match="64 bytes"):
        key.public_key.verify(b"vote", signature[:63])
    with pytest.raises(InvalidKey):
        PublicKey(b"short")
    with pytest.raises(InvalidKey):
        SigningKey(b"short")
    raw = key.public_key.raw  # the key-object-free form answers the same, never raises
    assert signature_is_valid(raw, b"vote", signature)
    assert not signature_is_valid(raw, b"other", signature)
    assert not signature_is_valid(raw, b"vote", flipped)
    assert not signature_is_valid(raw, b"vote", signature[:63])
    assert not signature_is_valid(raw[:31], b"vote", signature)
    assert not signature_is_valid(SigningKey.generate().public_key.raw, b"vote", signature)


@pytest.mark.parametrize("kind", ["ed25519", "ecvrf"])
def test_key_file_round_trip_with_0600(tmp_path: Path, kind: str) -> None:
    """A written key file is mode 0600, documents its public key, and loads back."""
    path = tmp_path / "key.json"
    write_key_file(path, kind, SEED)  # type: ignore[arg-type]
    assert path.stat().st_mode & 0o777 == 0o600
    document = json.loads(path.read_text())
    assert document["version"] == 1
    expected_public = (
        SigningKey(SEED).public_key.raw if kind == "ed25519" else ecvrf.public_key(SEED)
    )
    assert document["public_key"] == expected_public.hex()
    assert load_key_file(path) == (kind, SEED)


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    """Writing over an existing file fails instead of destroying a key."""
    path = tmp_path / "key.json"
    write_key_file(path, "ed25519", SEED)
    with pytest.raises(FileExistsError):
        write_key_file(path, "ed25519", bytes(32))
    assert load_key_file(path)[1] == SEED


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    """Group or world access makes the file unusable, with the fix in the message."""
    path = tmp_path / "key.json"
    write_key_file(path, "ed25519", SEED)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_file(path)


def tamper(path: Path, **changes: object) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    for key, value in list(document.items()):
        if value is None:
            del document[key]
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 2}, "version"),
        ({"version": True}, "version"),
        ({"format": "other"}, "format"),
        ({"kind": "rsa"}, "kind"),
        ({"extra": 1}, "fields"),
        ({"secret_seed": None}, "fields"),
        ({"secret_seed": "00" * 31}, "64 lowercase hex"),
        ({"secret_seed": "zz" * 32}, "not hex"),
        ({"secret_seed": "AB" * 32}, "lowercase"),
        ({"public_key": "00" * 32}, "does not belong"),
    ],
)
def test_malformed_key_files_are_refused(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    """Every deviation from the format gets a KeyFileError naming the problem."""
    path = tmp_path / "key.json"
    write_key_file(path, "ed25519", SEED)
    tamper(path, **changes)
    with pytest.raises(KeyFileError, match=message):
        load_key_file(path)


def test_garbage_and_oversized_key_files(tmp_path: Path) -> None:
    """Non-JSON, a JSON list, a huge file and a missing file are all clean errors."""
    cases = {"garbage": b"\xff\xfe not json", "list": b"[1, 2]", "huge": b" " * 10_000}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        os.chmod(path, 0o600)
        with pytest.raises(KeyFileError):
            load_key_file(path)
    with pytest.raises(KeyFileError, match="cannot open"):
        load_key_file(tmp_path / "missing")


def test_key_file_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    """A symlink could point the node at a file someone else controls: refused."""
    real = tmp_path / "real.json"
    write_key_file(real, "ed25519", SEED)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with pytest.raises(KeyFileError):
        load_key_file(link)


def test_digest_known_answer() -> None:
    """The preimage layout is fixed: this digest may only change with a new HASH_VERSION."""
    assert hashing.preimage(Domain.VOTE, b"payload", chain_id="swarm-1") == (
        b"SWGD\x01\x00\x03\x07swarm-1payload"
    )
    # SHA-256(b"SWGD\x01\x00\x03\x04test"), computed outside this code base.
    assert digest(Domain.VOTE, b"", chain_id="test").hex() == (
        "fb9b4218a003b04b383afdbebaffbbe56c1c6c2b53686e95fe769bf585e7ec62"
    )


def parse(preimage: bytes) -> tuple[int, int, bytes, bytes]:
    """Read (version, domain, chain id, payload) back from a preimage: it is unambiguous."""
    assert preimage[:4] == b"SWGD"
    length = preimage[7]
    return (
        preimage[4],
        int.from_bytes(preimage[5:7], "big"),
        preimage[8 : 8 + length],
        preimage[8 + length :],
    )


@given(
    st.sampled_from(list(Domain)),
    st.sampled_from(list(Domain)),
    st.text(alphabet="abcdefgh-1", min_size=1, max_size=50),
    st.text(alphabet="abcdefgh-1", min_size=1, max_size=50),
    st.binary(max_size=64),
    st.binary(max_size=64),
)
def test_no_two_objects_share_a_preimage(
    domain_a: Domain,
    domain_b: Domain,
    chain_a: str,
    chain_b: str,
    payload_a: bytes,
    payload_b: bytes,
) -> None:
    """Equal preimages imply equal (domain, chain id, payload): the encoding is injective."""
    first = hashing.preimage(domain_a, payload_a, chain_id=chain_a)
    second = hashing.preimage(domain_b, payload_b, chain_id=chain_b)
    assert parse(first) == (1, domain_a, chain_a.encode(), payload_a)
    if first == second:
        assert (domain_a, chain_a, payload_a) == (domain_b, chain_b, payload_b)


def test_domain_codes_are_permanent_and_distinct() -> None:
    """Codes are unique, and the ones fixed so far keep their values."""
    codes = [domain.value for domain in Domain]
    assert len(codes) == len(set(codes))
    assert Domain.BLOCK_HEADER == 1
    assert Domain.VOTE == 3
    assert Domain.VRF_INPUT == 9


@pytest.mark.parametrize("chain_id", ["", "x" * 51, "caf\u00e9", "a\nb"])
def test_bad_chain_ids_are_refused(chain_id: str) -> None:
    """Chain ids are 1-50 printable ASCII characters."""
    with pytest.raises(ValueError, match="chain id"):
        digest(Domain.BLOCK_HEADER, b"", chain_id=chain_id)


def test_cli_generates_and_shows_key_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`swarmguard keys generate` writes a 0600 key file; `keys show` prints its public key;
    neither overwrites nor accepts a world-readable file."""
    path = tmp_path / "vrf.json"
    assert cli.main(["keys", "generate", str(path), "--kind", "ecvrf"]) == 0
    generated = json.loads(capsys.readouterr().out)
    assert path.stat().st_mode & 0o777 == 0o600
    assert cli.main(["keys", "show", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == generated
    assert generated["public_key"] == ecvrf.public_key(load_key_file(path)[1]).hex()
    assert cli.main(["keys", "generate", str(path)]) == 1
    assert "never overwritten" in capsys.readouterr().err
    os.chmod(path, 0o644)
    assert cli.main(["keys", "show", str(path)]) == 1
    assert "chmod 600" in capsys.readouterr().err


@given(
    st.sampled_from(list(Domain)),
    st.text(alphabet="abcdefgh-1", min_size=1, max_size=50),
    st.binary(max_size=300),
)
def test_a_hasher_is_digest_with_domain_and_chain_fixed(
    domain: Domain, chain: str, payload: bytes
) -> None:
    assert hashing.hasher(domain, chain_id=chain)(payload) == digest(
        domain, payload, chain_id=chain
    )


def test_a_hasher_refuses_what_digest_refuses() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        hashing.hasher(Domain.VOTE, chain_id="")
