"""TLS for the client APIs (gRPC and HTTP/JSON alike), for a node whose API is reached from
other machines.

The validators' own links use mutual TLS on certificates pinned to their node keys
(``node.identity``); the API is different: its clients are people and programs that know the
node by an address and trust an operator's certificate authority. So the operator brings a
certificate chain for the address clients use (a subjectAltName for the host or IP), its key,
and, to admit only clients holding certificates, the CA that issued theirs (mutual TLS).
Everything is PEM, read at start-up: a missing file, a key that does not match the
certificate, or a CA file with no certificate stops the node naming the field. TLS 1.2 is the
oldest version accepted.

The key file must be private by PostgreSQL's rule for its server key: owned by the node's user
with no access for group or others (0600), or owned by root and at most group-readable (0640,
Debian's ``ssl-cert`` group). A key others can read is refused, as for the node's own keys.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ApiTls"]


@dataclass(frozen=True, slots=True)
class ApiTls:
    certificate: Path
    """PEM: the server's certificate, then any intermediates."""
    key: Path
    """PEM: the certificate's private key (unencrypted)."""
    client_ca: Path | None = None
    """PEM: the CA certificates client certificates must chain to (None: clients need none)."""

    def check(self) -> None:
        """Raise ``ValueError`` naming the file at fault, if any cannot serve."""
        for name, path in (("certificate", self.certificate), ("key", self.key)):
            if not path.is_file():
                raise ValueError(f"{name}: no such file {path}")
        _check_private(self.key)
        self.server_context()

    def server_context(self) -> ssl.SSLContext:
        """The HTTP server's context (gRPC gets the same files through ``credentials``)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.certificate, self.key)
        except (ssl.SSLError, OSError) as error:
            raise ValueError(f"certificate and key: {error}") from None
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (ssl.SSLError, OSError) as error:
                raise ValueError(f"client_ca: {error}") from None
            if not context.get_ca_certs():
                raise ValueError(f"client_ca: no CA certificate in {self.client_ca}")
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def credentials(self) -> tuple[bytes, bytes, bytes | None]:
        """(certificate chain, key, client CA or None), as gRPC's server credentials take them."""
        client_ca = None if self.client_ca is None else self.client_ca.read_bytes()
        return self.certificate.read_bytes(), self.key.read_bytes(), client_ca


def _check_private(path: Path) -> None:
    """Raise ``ValueError`` if the key file is open to others (see the module's docstring)."""
    try:
        info = path.stat()
    except OSError as error:  # gone or unreadable since the is_file check
        raise ValueError(f"key: {path}: {error.strerror}") from None
    if info.st_uid not in (os.geteuid(), 0):
        raise ValueError(f"key: {path} is owned by user {info.st_uid}, not this user or root")
    allowed_group_read = info.st_uid == 0
    if info.st_mode & (0o037 if allowed_group_read else 0o077):
        limit = "640" if allowed_group_read else "600"
        raise ValueError(
            f"key: permissions {stat.filemode(info.st_mode)} let others reach the private key "
            f"{path}; run: chmod {limit} {path}"
        )
