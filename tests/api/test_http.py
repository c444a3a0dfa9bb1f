"""The HTTP/JSON API and its OpenAPI document, against a live in-process cluster."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from swarmguard.api.grpc_server import ApiServer
from swarmguard.api.http_server import openapi_document
from swarmguard.api.v1 import node_pb2
from swarmguard.crypto.hashing import address_of
from swarmguard.node.transactions import Transaction, Transfer
from tests.api.serving import serving
from tests.node.test_chain import ALICE, BOB
from tests.node.test_runtime import CHAIN
from tests.node.test_transport import until


def post(port: int, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_http_json_calls_and_errors(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as api:
            await api.start("127.0.0.1", 0)
            port = api.start_http("127.0.0.1", 0)

            async def call(path: str, body: bytes) -> tuple[int, Any]:
                return await asyncio.to_thread(post, port, path, body)

            status, answer = await call("/v1/GetStatus", b"{}")
            assert status == 200
            assert answer["chainId"] == CHAIN
            assert int(answer["height"]) >= 2
            bob = address_of(BOB.public_key.raw)
            transaction = Transaction.sign(ALICE, CHAIN, 0, Transfer(bob, 5)).encode()
            body = json.dumps(
                {
                    "transaction": base64.b64encode(transaction).decode(),
                    "waitForCommit": True,
                }
            ).encode()
            status, answer = await call("/v1/SubmitTransaction", body)
            assert status == 200, answer
            assert answer["admission"] == "accepted"
            status, block = await call(
                "/v1/GetBlock", json.dumps({"height": answer["height"]}).encode()
            )
            assert status == 200
            assert base64.b64encode(transaction).decode() in block["transactions"]
            query = json.dumps({"path": "account", "data": base64.b64encode(bob).decode()})
            status, answer = await call("/v1/Query", query.encode())
            assert status == 200
            assert int.from_bytes(base64.b64decode(answer["value"])[:8], "big") == 5

            assert (await call("/v1/GetBlock", b"{}"))[0] == 400
            assert (await call("/v1/GetBlock", b'{"height": "99999999"}'))[0] == 404
            assert (await call("/v1/GetBlock", b"not json"))[0] == 400
            assert (await call("/v1/GetBlock", b'{"nope": 1}'))[0] == 400
            assert (await call("/v1/Nothing", b"{}"))[0] == 404
            error = (await call("/v1/GetTransaction", b'{"hash": "AAAA"}'))[1]
            assert error["code"] == "INVALID_ARGUMENT"

    asyncio.run(main())


def _slow_client(port: int, sent: bytes) -> socket.socket:
    """A connection that sends ``sent`` and then nothing."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(sent)
    return client


def _answer(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_slow_and_excess_http_clients_hold_up_nobody(tmp_path: Path) -> None:
    """A client that stalls (in its headers, in its body) or waits for a commit has its own
    thread; the silent ones are cut off after the idle limit; past the connection cap the
    answer is an immediate 503, and a freed slot serves again."""

    async def main() -> None:
        async with serving(tmp_path) as api:
            await api.start("127.0.0.1", 0)
            port = api.start_http("127.0.0.1", 0, connections_max=3, idle_seconds=3.0)
            clients: list[socket.socket] = []
            try:
                await _stalled_and_refused(api, port, clients)
            finally:
                for client in clients:
                    client.close()

    asyncio.run(main())


async def _stalled_and_refused(api: ApiServer, port: int, clients: list[socket.socket]) -> None:
    headers = _slow_client(port, b"POST /v1/GetStatus HTTP/1.1\r\nHost: x\r\n")
    clients.append(headers)
    body = _slow_client(
        port,
        b"POST /v1/GetStatus HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{}",
    )
    clients.append(body)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    status, answer = await asyncio.to_thread(post, port, "/v1/GetStatus", b"{}")
    assert status == 200
    assert answer["chainId"] == CHAIN
    assert time.monotonic() - started < 2.0  # not queued behind the stalled two

    http = api.http
    assert http is not None
    # The answer can reach the client a moment before its thread gives the permit back.
    await until(lambda: http.bulkhead.active == 2, 10)
    clients.append(_slow_client(port, b"POST /v1/GetStatus HTTP/1.1\r\n"))
    await until(lambda: http.bulkhead.active == 3, 10)
    refused = await asyncio.to_thread(post, port, "/v1/GetStatus", b"{}")
    assert refused == (503, {"code": "UNAVAILABLE", "message": "too many connections"})
    # A refused client still writing its request when the server has answered (a slow
    # sender, or one that connects first and writes later) still gets the 503: the server
    # drains it before closing, so the close does not reset the connection under it.
    late = await asyncio.to_thread(_late_request, port)
    assert late.startswith(b"HTTP/1.0 503 "), late
    exported = generate_latest(api.node.metrics.registry).decode()
    assert 'resilience_bulkhead_current{service="http-api"} 3.0' in exported
    assert 'resilience_bulkhead_rejections_total{service="http-api"} 2.0' in exported

    stalled = await asyncio.to_thread(_answer, headers)
    assert stalled == b""  # cut off, nothing to answer: its request never arrived
    timed_out = await asyncio.to_thread(_answer, body)
    assert timed_out.startswith(b"HTTP/1.0 408 ")
    assert b"DEADLINE_EXCEEDED" in timed_out
    assert time.monotonic() - started < 10
    for client in clients:
        client.close()
    await until(lambda: http.bulkhead.active == 0, 10)
    assert (await asyncio.to_thread(post, port, "/v1/GetStatus", b"{}"))[0] == 200


def _late_request(port: int) -> bytes:
    """Connect, wait for the server to answer first, then send a request in two writes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        time.sleep(0.3)
        client.sendall(b"POST /v1/GetStatus HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        time.sleep(0.05)
        client.sendall(b"{}")
        return _answer(client)


def _garbage(rng: random.Random) -> bytes:
    """One malformed or hostile HTTP request: raw bytes, broken request lines, oversized or
    binary headers, bodies that disagree with their length, unsupported framing."""
    body = rng.randbytes(rng.randrange(0, 64))
    shapes = [
        rng.randbytes(rng.randrange(1, 2048)),
        b"POST /v1/GetStatus HTTP/1.1\r\n" + rng.randbytes(rng.randrange(1, 256)) + b"\r\n\r\n",
        b"POST /v1/GetStatus HTTP/1.1\r\nX: " + b"a" * rng.choice([70000, 200000]) + b"\r\n\r\n",
        b"G" * rng.choice([65536, 70000]) + b" / HTTP/1.0\r\n\r\n",
        b"POST /v1/GetBlock HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % rng.choice([-1, 2**63])
        + body,
        b"POST /v1/GetBlock HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (len(body) + 5) + body,
        b"POST /v1/Query HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n" + body,
        b"POST /v1/Query HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + body,  # a TLS hello to a plain port
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + body,
    ]
    return rng.choice(shapes)


def _serving_threads() -> list[str]:
    """Threads the HTTP server started for connections (socketserver names them so)."""
    return [t.name for t in threading.enumerate() if "process_request_thread" in t.name]


def _send_and_drain(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        try:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close on a line it will not read
        received = b""
        try:
            while chunk := client.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def test_hostile_http_input_gets_an_answer_or_a_close_never_a_hang(tmp_path: Path) -> None:
    """Three hundred malformed requests (seeded): each ends within the idle limit with an HTTP
    answer (a 4xx, or a 200 where the bytes happen to make a request; never a 500) or a closed
    connection; afterwards no permit or thread is left behind and a proper call is answered."""

    async def main() -> None:
        async with serving(tmp_path) as api:
            await api.start("127.0.0.1", 0)
            port = api.start_http("127.0.0.1", 0, idle_seconds=2.0)
            rng = random.Random(20261125)

            def attack() -> list[bytes]:
                return [_send_and_drain(port, _garbage(rng)) for _ in range(300)]

            started = time.monotonic()
            answers = await asyncio.to_thread(attack)
            assert time.monotonic() - started < 120
            # 200 too (an empty body is the request {}); 501 and 505 are the HTTP server's
            # words for a method or version it does not speak. A 500 would be a crash.
            allowed = re.compile(rb"2\d\d|4\d\d|501|505")
            for answer in answers:
                if answer.startswith(b"HTTP/"):
                    assert allowed.fullmatch(answer.split(b" ", 2)[1]), answer[:200]
                elif answer:  # a request line without a version is HTTP/0.9: no status line
                    code = re.search(rb"Error code: (\d+)", answer)
                    assert code, answer[:200]
                    assert allowed.fullmatch(code.group(1)), answer[:200]
            assert any(answers)
            assert api.http is not None
            await until(lambda: api.http is not None and api.http.bulkhead.active == 0, 10)
            await until(lambda: not _serving_threads(), 10)
            status, answer = await asyncio.to_thread(post, port, "/v1/GetStatus", b"{}")
            assert status == 200
            assert answer["chainId"] == CHAIN

    asyncio.run(main())


def test_the_openapi_document_matches_the_proto() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    service = node_pb2.DESCRIPTOR.services_by_name["Node"]
    unary = {
        f"/v1/{method.name}"
        for method in service.methods
        if not method.client_streaming and not method.server_streaming
    }
    assert "/v1/SubmitBatch" in unary
    assert set(document["paths"]) == unary  # every unary call, and only those
    block = document["components"]["schemas"]["Block"]["properties"]
    assert block["transactions"]["type"] == "array"
    assert set(block) == {"height", "hash", "header", "transactions", "certificate", "lastCommit"}
