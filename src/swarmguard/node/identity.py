"""A node's network identity: an Ed25519 node key and the TLS certificate made from it.

The node key is not the consensus key (CometBFT keeps the two apart for the same reason): the
consensus key may live in a remote signer, while the transport needs its key in the process for
every handshake. Peers authenticate each other with mutual TLS 1.3 on self-signed Ed25519
certificates, each peer's certificate pinned as a trust anchor: OpenSSL accepts exactly the
certificates of the configured peers and nothing else, and TLS 1.3's CertificateVerify proves
the other side holds the key.

The certificate is a pure function of the key (fixed names, serial, validity; Ed25519 signatures
are deterministic), so ``certificate_pem`` returns the same bytes on every call and machine: a
testnet writes it once for the peers' configuration and the node re-derives it at start-up.
The node id is the first 20 bytes of SHA-256 over the public key, in hex (CometBFT's shape).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

__all__ = [
    "NodeIdentity",
    "node_id",
    "public_key_of_certificate",
    "public_key_of_pem",
    "tls_context",
]

_NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


def node_id(public_key: bytes) -> str:
    """The 40-hex-digit id peers are named by."""
    return hashlib.sha256(public_key).digest()[:20].hex()


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValueError("a node key seed is 32 bytes")

    @property
    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def id(self) -> str:
        return node_id(self.public_key)

    def certificate_pem(self) -> bytes:
        """The node's self-signed certificate (deterministic: see the module docstring)."""
        key = self._key
        public = self.public_key
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id(public))])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(int.from_bytes(hashlib.sha256(public).digest()[:8], "big") | 1)
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, None)
        )
        return certificate.public_bytes(serialization.Encoding.PEM)

    def write_tls_files(self, directory: Path) -> tuple[Path, Path]:
        """Write (certificate, private key) PEM files for ``ssl`` to load, the key readable by
        its owner only. Rewriting gives the same bytes, so a restart may do it every time."""
        directory.mkdir(parents=True, exist_ok=True)
        certificate, key = directory / "node-cert.pem", directory / "node-key.pem"
        certificate.write_bytes(self.certificate_pem())
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
        os.chmod(key, 0o600)
        return certificate, key


def public_key_of_certificate(der: bytes) -> bytes:
    """The raw Ed25519 key of a peer's certificate (DER, as ``getpeercert`` gives it)."""
    key = x509.load_der_x509_certificate(der).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the peer's certificate does not hold an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_of_pem(pem: bytes) -> bytes:
    """The raw Ed25519 key of a certificate in PEM (a peer's configured certificate)."""
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return public_key_of_certificate(der)


def tls_context(
    *, server: bool, certificate: Path, key: Path, trusted: list[bytes]
) -> ssl.SSLContext:
    """Mutual TLS 1.3 that accepts exactly the ``trusted`` certificates (PEM) as the peer's."""
    if not trusted:
        raise ValueError("no peer certificates to trust")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(certificate, key)
    context.check_hostname = False  # peers are named by their pinned certificate, not DNS
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=b"".join(trusted).decode("ascii"))
    return context
