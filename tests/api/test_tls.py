"""TLS on the client APIs: configuration checked at start-up naming the field, gRPC and HTTPS
served with an operator's certificate, plaintext refused, and mutual TLS admitting only clients
whose certificates chain to the configured CA; the CLI client connects with ``--tls-ca``."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import json
import shutil
import signal
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from swarmguard.api.grpc_server import ApiServer
from swarmguard.api.v1 import node_pb2, node_pb2_grpc
from swarmguard.cli import main as cli_main
from swarmguard.node.apitls import ApiTls
from swarmguard.node.config import ConfigError, load_home, write_testnet
from swarmguard.node.local import free_ports, spawn_node, stop_processes
from swarmguard.node.runtime import Node
from tests.node.test_runtime import CHAIN, configs

_NOW = datetime.datetime.now(datetime.UTC)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    directory: Path,
    stem: str,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A P-256 key and certificate (self-signed when ``issuer`` is None), written as
    ``<stem>.pem`` and ``<stem>.key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer_key, signer_name = (key, _name(stem))
    if issuer is not None:
        signer_key, signer_name = issuer[0], issuer[1].subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(days=1))
        .not_valid_after(_NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, critical=False)
    certificate = builder.sign(signer_key, hashes.SHA256())
    (directory / f"{stem}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / f"{stem}.key").chmod(0o600)
    return key, certificate


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """An operator CA, the node's certificate for 127.0.0.1, a client CA with one client, and
    a stranger whose certificate that client CA did not issue."""
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = _issue(directory, "ca", None, ca=True)
    _issue(directory, "server", ca, ip="127.0.0.1")
    clients = _issue(directory, "clients", None, ca=True)
    _issue(directory, "client", clients)
    _issue(directory, "stranger", _issue(directory, "other-ca", None, ca=True))
    _issue(directory, "renewed", _issue(directory, "ca2", None, ca=True), ip="127.0.0.1")
    return directory


def test_api_tls_configuration_is_checked_at_start_up(tmp_path: Path, pki: Path) -> None:
    home = write_testnet(tmp_path / "net", 1)[0]
    base = (home / "config.toml").read_text()

    def load(lines: str) -> ApiTls | None:
        (home / "config.toml").write_text(base.replace("[node]\n", "[node]\n" + lines, 1))
        return load_home(home).api_tls

    assert load("") is None
    tls = load(f'api_tls_cert = "{pki}/server.pem"\napi_tls_key = "{pki}/server.key"\n')
    assert tls == ApiTls(pki / "server.pem", pki / "server.key")
    both = f'api_tls_cert = "{pki}/server.pem"\napi_tls_key = "{pki}/server.key"\n'
    mutual = load(both + f'api_tls_client_ca = "{pki}/clients.pem"\n')
    assert mutual is not None
    assert mutual.client_ca == pki / "clients.pem"
    for lines, field in (
        (f'api_tls_cert = "{pki}/server.pem"\n', "node.api_tls_key"),  # half a pair
        (f'api_tls_client_ca = "{pki}/clients.pem"\n', "node.api_tls_cert"),
        (f'api_tls_cert = "{pki}/nothing.pem"\napi_tls_key = "{pki}/server.key"\n', "cert"),
        (f'api_tls_cert = "{pki}/server.pem"\napi_tls_key = "{pki}/client.key"\n', "cert"),
        (both + f'api_tls_client_ca = "{pki}/server.key"\n', "node.api_tls_client_ca"),
        ('api_tls_cert = ""\napi_tls_key = "k"\n', "node.api_tls_cert"),
    ):
        with pytest.raises(ConfigError) as refused:
            load(lines)
        assert refused.value.field.startswith(field if "." in field else "node.api_tls_"), (
            lines,
            refused.value,
        )


def test_an_api_key_others_can_read_is_refused(tmp_path: Path, pki: Path) -> None:
    """PostgreSQL's rule for a server key: 0600 for the node's user, 0640 when root owns it."""
    key = pki / "server.key"
    tls = ApiTls(pki / "server.pem", key)
    tls.check()
    owned_by_root = key.stat().st_uid == 0
    for mode in (0o644, 0o604, 0o660, 0o620):
        key.chmod(mode)
        with pytest.raises(ValueError, match=r"^key: permissions .* run: chmod 6[04]0 "):
            tls.check()
    key.chmod(0o640)
    if owned_by_root:
        tls.check()  # root's key readable by a group such as ssl-cert
    else:
        with pytest.raises(ValueError, match="chmod 600"):
            tls.check()
    key.chmod(0o644)
    home = write_testnet(tmp_path / "net", 1)[0]
    fields = f'api_tls_cert = "{pki}/server.pem"\napi_tls_key = "{key}"\n'
    config = home / "config.toml"
    config.write_text(config.read_text().replace("[node]\n", "[node]\n" + fields, 1))
    with pytest.raises(ConfigError) as refused:
        load_home(home)
    assert refused.value.field == "node.api_tls_key"
    key.chmod(0o600)
    assert load_home(home).api_tls == tls


def _https(port: int, pki: Path, client: str | None, ca: str = "ca") -> int:
    context = ssl.create_default_context(cafile=pki / f"{ca}.pem")
    if client is not None:
        context.load_cert_chain(pki / f"{client}.pem", pki / f"{client}.key")
    request = urllib.request.Request(f"https://127.0.0.1:{port}/v1/GetStatus", data=b"{}")
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        return int(answer.status)


def _plain_http(port: int) -> None:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/GetStatus", data=b"{}", timeout=10)


@pytest.mark.parametrize("mutual", [False, True], ids=["server-tls", "mutual-tls"])
def test_the_apis_over_tls(tmp_path: Path, pki: Path, mutual: bool) -> None:
    tls = ApiTls(pki / "server.pem", pki / "server.key", pki / "clients.pem" if mutual else None)
    config = dataclasses.replace(configs(tmp_path)[0], api_tls=tls)
    client = "client" if mutual else None

    async def main() -> None:
        node = Node(config)
        await node.start()  # alone: it answers, it need not commit
        api = ApiServer(node)
        port = await api.start("127.0.0.1", 0, tls=tls)
        http_port = api.start_http("127.0.0.1", 0, tls=tls)
        try:

            def grpc_status(credentials: grpc.ChannelCredentials | None) -> str:
                target = f"127.0.0.1:{port}"
                channel = (
                    grpc.insecure_channel(target)
                    if credentials is None
                    else grpc.secure_channel(target, credentials)
                )
                with channel:
                    stub = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
                    answer = stub.GetStatus(node_pb2.GetStatusRequest(), timeout=5)
                    return str(answer.chain_id)

            root = (pki / "ca.pem").read_bytes()

            def credentials(who: str | None) -> grpc.ChannelCredentials:
                if who is None:
                    return grpc.ssl_channel_credentials(root)
                key, chain = (pki / f"{who}.key").read_bytes(), (pki / f"{who}.pem").read_bytes()
                return grpc.ssl_channel_credentials(root, key, chain)

            assert await asyncio.to_thread(grpc_status, credentials(client)) == CHAIN
            assert await asyncio.to_thread(_https, http_port, pki, client) == 200
            with pytest.raises(grpc.RpcError):  # plaintext to a TLS port
                await asyncio.to_thread(grpc_status, None)
            with pytest.raises((urllib.error.URLError, ConnectionError)):
                await asyncio.to_thread(_plain_http, http_port)
            if mutual:  # no certificate, or one the client CA did not issue
                for who in (None, "stranger"):
                    with pytest.raises(grpc.RpcError):
                        await asyncio.to_thread(grpc_status, credentials(who))
                    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
                        await asyncio.to_thread(_https, http_port, pki, who)

            command = ["status", "--node", f"127.0.0.1:{port}", "--tls-ca", str(pki / "ca.pem")]
            if mutual:
                command += ["--tls-cert", str(pki / "client.pem")]
                command += ["--tls-key", str(pki / "client.key")]
            assert await asyncio.to_thread(cli_main, command) == 0
            # And the HTTP server still answers after the refused handshakes.
            assert await asyncio.to_thread(_https, http_port, pki, client) == 200
        finally:
            await api.stop()
            await node.stop()

    asyncio.run(main())


def test_the_cli_client_checks_its_tls_options(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = ["status", "--node", "127.0.0.1:1"]
    assert cli_main([*node, "--tls-cert", str(pki / "client.pem")]) == 2
    assert "need --tls-ca" in capsys.readouterr().err
    half = ["--tls-ca", str(pki / "ca.pem"), "--tls-cert", str(pki / "client.pem")]
    assert cli_main([*node, *half]) == 2
    assert "go together" in capsys.readouterr().err
    assert cli_main([*node, "--tls-ca", str(pki / "missing.pem")]) == 2
    assert json.dumps("missing.pem")[1:-1] in capsys.readouterr().err


def test_a_node_process_serves_its_api_over_tls(tmp_path: Path, pki: Path) -> None:
    """``swarmguard node`` with the fields in config.toml (paths from its home): the CLI client
    reaches it with the CA, and not without."""
    api_port, http_port = free_ports(2)
    (home,) = write_testnet(
        tmp_path / "net",
        1,
        ports=free_ports(1),
        api_ports=[api_port],
        http_ports=[http_port],
        genesis_time=int(time.time()),
    )
    (home / "api").mkdir()
    for name in ("server.pem", "server.key"):
        shutil.copy(pki / name, home / "api" / name)
    config = (home / "config.toml").read_text()
    fields = 'api_tls_cert = "api/server.pem"\napi_tls_key = "api/server.key"\n'
    (home / "config.toml").write_text(config.replace("[node]\n", "[node]\n" + fields, 1))
    process = spawn_node(home)
    try:
        status = ["status", "--node", f"127.0.0.1:{api_port}"]
        secured = [*status, "--tls-ca", str(pki / "ca.pem")]
        deadline = time.monotonic() + 60
        while cli_main(secured) != 0:
            assert process.poll() is None, (home / "node.log").read_text()
            assert time.monotonic() < deadline, (home / "node.log").read_text()
            time.sleep(0.5)
        assert cli_main(status) == 1  # plaintext: refused
        assert _https(http_port, pki, None) == 200

        for name in ("pem", "key"):  # renewed in place, then SIGHUP
            shutil.copy(pki / f"renewed.{name}", home / "api" / f"server.{name}")
        process.send_signal(signal.SIGHUP)
        renewed = [*status, "--tls-ca", str(pki / "ca2.pem")]
        while cli_main(renewed) != 0:
            assert process.poll() is None, (home / "node.log").read_text()
            assert time.monotonic() < deadline + 30, (home / "node.log").read_text()
            time.sleep(0.5)
        assert cli_main(secured) == 1  # the old CA no longer matches
        assert _https(http_port, pki, None, "ca2") == 200
        assert "API certificates reloaded" in (home / "node.log").read_text()
    finally:
        stop_processes([process])


def test_renewed_api_certificates_are_served_after_a_reload(tmp_path: Path, pki: Path) -> None:
    """``ApiServer.reload_tls`` (what SIGHUP calls): new connections get the files as they are
    now, on gRPC and HTTPS alike; files that do not serve, or a switch of client certificates,
    are refused and the old certificate stays."""
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.pem", "server.key"):
        shutil.copy(pki / name, live / name)
    tls = ApiTls(live / "server.pem", live / "server.key")
    config = dataclasses.replace(configs(tmp_path)[0], api_tls=tls)

    async def main() -> None:
        node = Node(config)
        await node.start()
        api = ApiServer(node)
        port = await api.start("127.0.0.1", 0, tls=tls)
        http_port = api.start_http("127.0.0.1", 0, tls=tls)

        def chain_id(ca: str) -> str:
            credentials = grpc.ssl_channel_credentials((pki / f"{ca}.pem").read_bytes())
            with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
                stub = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
                return str(stub.GetStatus(node_pb2.GetStatusRequest(), timeout=5).chain_id)

        try:
            assert await asyncio.to_thread(chain_id, "ca") == CHAIN
            shutil.copy(pki / "client.key", live / "server.key")  # not the certificate's key
            with pytest.raises(ValueError, match="certificate and key"):
                api.reload_tls(tls)
            with pytest.raises(ValueError, match="needs a restart"):
                api.reload_tls(dataclasses.replace(tls, client_ca=pki / "clients.pem"))
            assert await asyncio.to_thread(chain_id, "ca") == CHAIN  # unchanged
            assert await asyncio.to_thread(_https, http_port, pki, None) == 200

            for name in ("pem", "key"):  # the renewal, from another CA
                shutil.copy(pki / f"renewed.{name}", live / f"server.{name}")
            api.reload_tls(tls)
            assert await asyncio.to_thread(chain_id, "ca2") == CHAIN
            assert await asyncio.to_thread(_https, http_port, pki, None, "ca2") == 200
            with pytest.raises(grpc.RpcError):
                await asyncio.to_thread(chain_id, "ca")
            with pytest.raises((urllib.error.URLError, ssl.SSLError)):
                await asyncio.to_thread(_https, http_port, pki, None)
        finally:
            await api.stop()
            await node.stop()

    asyncio.run(main())
