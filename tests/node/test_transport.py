"""The p2p transport on real loopback sockets: mutual TLS with pinned certificates, frames,
bounded queues, joined writes, reconnects and latency injection."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from swarmguard.node import transport as transport_module
from swarmguard.node.identity import NodeIdentity, tls_context
from swarmguard.node.transport import (
    FRAME_BYTES_MAX,
    Channel,
    Peer,
    Transport,
    TransportConfig,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    def __init__(self, index: int, tmp: Path) -> None:
        self.index = index
        self.identity = NodeIdentity(bytes([index + 1]) * 32)
        self.port = free_port()
        self.tls_dir = tmp / f"node{index}"
        self.received: list[tuple[int, Channel, bytes]] = []
        self.transport: Transport | None = None

    def peer(self) -> Peer:
        return Peer(self.index, "127.0.0.1", self.port, self.identity.certificate_pem())

    async def start(self, peers: list[Peer], config: TransportConfig | None = None) -> Transport:
        transport = Transport(
            identity=self.identity,
            host="127.0.0.1",
            port=self.port,
            peers=peers,
            on_frame=lambda v, c, p: self.received.append((v, c, p)),
            tls_dir=self.tls_dir,
            config=config,
        )
        await transport.start()
        self.transport = transport
        return transport


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def cluster(
    tmp: Path, n: int, body: Callable[[list[Node]], Awaitable[None]], **config: float
) -> None:
    async def main() -> None:
        nodes = [Node(i, tmp) for i in range(n)]
        for node in nodes:
            peers = [other.peer() for other in nodes if other is not node]
            await node.start(peers, TransportConfig(**config) if config else None)  # type: ignore[arg-type]
        try:
            await body(nodes)
        finally:
            for node in nodes:
                assert node.transport is not None
                await node.transport.close()

    asyncio.run(main())


def test_every_node_hears_every_other_in_order(tmp_path: Path) -> None:
    async def body(nodes: list[Node]) -> None:
        for node in nodes:
            assert node.transport is not None
            for i in range(50):
                node.transport.broadcast(Channel.CONSENSUS, b"%d:%d" % (node.index, i))
        await until(lambda: all(len(node.received) == 100 for node in nodes))
        for node in nodes:
            for sender in {v for v, _, _ in node.received}:
                payloads = [p for v, _, p in node.received if v == sender]
                assert payloads == [b"%d:%d" % (sender, i) for i in range(50)]  # per-link order
            assert {v for v, _, _ in node.received} == {0, 1, 2} - {node.index}

    cluster(tmp_path, 3, body)


def test_frames_queued_together_leave_in_few_writes(tmp_path: Path) -> None:
    async def body(nodes: list[Node]) -> None:
        sender = nodes[0].transport
        assert sender is not None
        await until(lambda: sender.stats(1).connected)
        for _ in range(500):
            sender.send(1, Channel.MEMPOOL, bytes(300))
        await until(lambda: len(nodes[1].received) == 500)
        stats = sender.stats(1)
        assert stats.frames_sent == 500
        assert stats.writes <= 5  # the writer joined what was queued into one write each time
        assert all(channel is Channel.MEMPOOL for _, channel, _ in nodes[1].received)

    cluster(tmp_path, 2, body)


def test_a_stranger_with_a_valid_certificate_is_refused(tmp_path: Path) -> None:
    """TLS admits only the configured peers' certificates: an unlisted node cannot connect."""

    async def body(nodes: list[Node]) -> None:
        stranger = Node(9, tmp_path)
        certificate, key = stranger.identity.write_tls_files(stranger.tls_dir)
        context = tls_context(
            server=False,
            certificate=certificate,
            key=key,
            trusted=[nodes[0].identity.certificate_pem()],
        )
        refused = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)
        writer = None
        try:
            with pytest.raises(refused):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", nodes[0].port, ssl=context, server_hostname="x"
                )
                writer.write(b"\0\0\0\3\1\1x")
                await writer.drain()
                await reader.readexactly(1)  # the server closes: the handshake failed for it
        finally:
            if writer is not None:
                writer.close()
                await asyncio.gather(writer.wait_closed(), return_exceptions=True)
        assert nodes[0].received == []

    cluster(tmp_path, 2, body)


def test_a_malformed_frame_closes_only_that_connection(tmp_path: Path) -> None:
    async def body(nodes: list[Node]) -> None:
        # The node with the smaller id dials.
        dialer, listener = (0, 1) if nodes[0].identity.id < nodes[1].identity.id else (1, 0)
        dialing = nodes[dialer].transport
        assert dialing is not None
        await until(lambda: dialing.stats(listener).connected)
        link = dialing._links[listener]  # write raw garbage on the live connection
        assert link.writer is not None
        link.writer.write((FRAME_BYTES_MAX + 1).to_bytes(4, "big"))
        listening = nodes[listener].transport
        assert listening is not None
        await until(lambda: listening.stats(dialer).malformed == 1)
        # The dialer reconnects, and frames flow again.
        await until(lambda: dialing.stats(listener).connects >= 2)
        dialing.send(listener, Channel.CONSENSUS, b"after")
        await until(lambda: (dialer, Channel.CONSENSUS, b"after") in nodes[listener].received)

    cluster(tmp_path, 2, body)


def test_a_restarted_peer_is_redialed_and_queued_frames_are_bounded(tmp_path: Path) -> None:
    async def body(nodes: list[Node]) -> None:
        a, b = nodes
        assert a.transport is not None
        assert b.transport is not None
        await until(lambda: a.transport is not None and a.transport.stats(1).connected)
        await b.transport.close()
        await until(lambda: a.transport is not None and not a.transport.stats(1).connected)
        for i in range(30):
            a.transport.send(1, Channel.CONSENSUS, b"%d" % i)  # queue of 10: the oldest go
        stats = a.transport.stats(1)
        assert stats.queued_frames == 10
        assert stats.dropped == 20
        b.received.clear()
        await b.start([a.peer()], TransportConfig(queue_frames_max=10))
        await until(lambda: len(b.received) == 10)
        assert [p for _, _, p in b.received] == [b"%d" % i for i in range(20, 30)]

    cluster(tmp_path, 2, body, queue_frames_max=10, reconnect_max=0.2, breaker_open_timeout=0.2)


def test_injected_delay_holds_each_frame(tmp_path: Path) -> None:
    async def body(nodes: list[Node]) -> None:
        a, b = nodes
        assert a.transport is not None
        await until(lambda: a.transport is not None and a.transport.stats(1).connected)
        loop = asyncio.get_running_loop()
        started = loop.time()
        a.transport.send(1, Channel.CONSENSUS, b"late")
        await until(lambda: len(b.received) == 1)
        assert loop.time() - started >= 0.1

    cluster(tmp_path, 2, body, delay=0.1)


def test_peers_are_checked_at_construction(tmp_path: Path) -> None:
    node = Node(0, tmp_path)
    with pytest.raises(ValueError):
        Transport(
            identity=node.identity,
            host="127.0.0.1",
            port=0,
            peers=[node.peer()],  # itself
            on_frame=lambda v, c, p: None,
            tls_dir=tmp_path,
        )
    with pytest.raises(ValueError):
        TransportConfig(reconnect_initial=0)


def test_closing_does_not_wait_for_a_peer_that_never_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configured peer connects (TLS done), then never reads again (a stuck or dying
    process). Closing the node it connected to returns at once, its connection handler has
    ended, and asyncio logs nothing: a polite TLS close would wait for the peer's answer, and
    the handler, still waiting, would be cancelled at the loop's end (3.11 logs that as an
    error, as every node's log showed after a benchmark)."""
    caplog.set_level(logging.DEBUG, logger="asyncio")
    nodes = [Node(0, tmp_path), Node(1, tmp_path)]
    # The node with the smaller id dials: it is the silent peer, the other one listens.
    silent, listening = sorted(nodes, key=lambda node: node.identity.id)
    certificate, key = silent.identity.write_tls_files(silent.tls_dir)
    context = tls_context(
        server=False,
        certificate=certificate,
        key=key,
        trusted=[listening.identity.certificate_pem()],
    )
    up, connected, release = threading.Event(), threading.Event(), threading.Event()

    def silent_peer() -> None:
        up.wait(10)
        with socket.create_connection(("127.0.0.1", listening.port)) as raw:
            with context.wrap_socket(raw, server_hostname="x") as tls:
                tls.do_handshake()
                connected.set()
                release.wait(10)  # never reads: no answer to a TLS goodbye

    async def main() -> None:
        transport = await listening.start([silent.peer()])
        up.set()
        await until(lambda: connected.is_set() and bool(transport._accepted))
        started = asyncio.get_running_loop().time()
        await transport.close()
        assert asyncio.get_running_loop().time() - started < 1.0
        assert not transport._accepted

    thread = threading.Thread(target=silent_peer, daemon=True)
    thread.start()
    try:
        asyncio.run(main())  # ends while the peer is still silent
    finally:
        release.set()
        thread.join(5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_closing_ends_every_connection_quietly_and_quickly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Close while connections are busy: each close returns within a second (no TLS goodbye
    to wait for), the server's connection handlers have ended by then, and asyncio logs
    nothing (3.11 logs a cancelled handler as an error)."""
    caplog.set_level(logging.DEBUG, logger="asyncio")

    async def main() -> None:
        nodes = [Node(i, tmp_path) for i in range(3)]
        for node in nodes:
            await node.start([other.peer() for other in nodes if other is not node])
        for node in nodes:
            assert node.transport is not None
            node.transport.broadcast(Channel.CONSENSUS, b"x" * 1000)
        await until(lambda: all(len(node.received) == 2 for node in nodes))
        for node in nodes:
            assert node.transport is not None
            started = asyncio.get_running_loop().time()
            await node.transport.close()
            assert asyncio.get_running_loop().time() - started < 1.0
            assert not node.transport._accepted

    asyncio.run(main())
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_dial_ending_as_the_transport_closes_does_not_outlive_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection attempt fails in the same turn as ``close()`` cancels the dial loop. On
    Python 3.11 ``asyncio.wait_for`` hands the failure back instead of the cancellation, and
    the dial loop retried for ever (an in-process cluster's stop once hung on it in CI); the
    loop must end with ``close()``."""

    async def main() -> None:
        attempt: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        async def connect(*args: object, **kwargs: object) -> object:
            return await attempt

        monkeypatch.setattr(asyncio, "open_connection", connect)
        a, b = Node(0, tmp_path), Node(1, tmp_path)
        dialer, other = (a, b) if a.identity.id < b.identity.id else (b, a)
        transport = await dialer.start([other.peer()])
        await asyncio.sleep(0.05)  # the dial loop now waits on the attempt
        tasks = set(transport._tasks)
        attempt.set_exception(ConnectionRefusedError("refused"))
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):  # (it hung here before)
            await transport.close()  # cancels in this same turn, before the loop resumes
        assert asyncio.get_running_loop().time() - started < 1.0
        assert all(task.done() for task in tasks)

    asyncio.run(main())


def test_a_handshake_completing_after_close_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer's connection accepted before ``close()`` whose TLS handshake finishes after it
    reaches the connection handler late. Served, it kept a closed node "connected" to its peer
    (a restarted-peer test saw the survivor stay connected for 10 s); it must be dropped."""

    async def main() -> None:
        a, b = Node(0, tmp_path), Node(1, tmp_path)
        listener, dialer = (b, a) if a.identity.id < b.identity.id else (a, b)
        transport = await listener.start([dialer.peer()])
        await transport.close()
        key = dialer.identity.public_key
        monkeypatch.setattr(transport_module, "_peer_key", lambda writer: key)
        ends: list[asyncio.StreamWriter] = []
        plain = await asyncio.start_server(lambda r, w: ends.append(w), "127.0.0.1", 0)
        port = plain.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(2):  # served, it would read until the peer hangs up
            await transport._accept(reader, writer)
        assert writer.transport.is_closing()
        assert not transport.stats(dialer.index).connected
        for end in ends:
            end.close()
        plain.close()
        await plain.wait_closed()

    asyncio.run(main())


def test_peers_are_added_and_removed_while_running(tmp_path: Path) -> None:
    """An operator's reload: node 0 starts alone (not listening), then trusts 1 and 2, which
    already list it, and frames flow both ways; then it drops 1: the link's loops end, its
    connection goes, and nothing 1 sends is delivered any more, while 2 is untouched. A list
    naming a peer twice, or this node, changes nothing."""

    async def main() -> None:
        a, b, c = (Node(i, tmp_path) for i in range(3))
        first = await a.start([])
        await b.start([a.peer(), c.peer()])
        await c.start([a.peer(), b.peer()])
        try:
            assert first._server is None
            assert await first.update_peers([b.peer(), c.peer()]) == ([], [1, 2])
            await until(lambda: first.stats(1).connected and first.stats(2).connected)
            first.broadcast(Channel.CONSENSUS, b"hello")
            await until(lambda: (0, Channel.CONSENSUS, b"hello") in b.received + c.received)
            await until(lambda: (0, Channel.CONSENSUS, b"hello") in c.received)
            assert b.transport is not None
            b.transport.send(0, Channel.CONSENSUS, b"from b")
            await until(lambda: (1, Channel.CONSENSUS, b"from b") in a.received)

            loops = set(first._links[1].tasks)
            assert 1 <= len(loops) <= 2  # its writer, and its dialer if node 0 dials
            assert await first.update_peers([c.peer()]) == ([1], [])
            assert first.peers == [2]
            assert all(task.done() for task in loops)
            a.received.clear()
            for i in range(20):
                b.transport.send(0, Channel.CONSENSUS, b"late %d" % i)
                await asyncio.sleep(0.05)
            assert c.transport is not None
            c.transport.send(0, Channel.CONSENSUS, b"from c")
            await until(lambda: (2, Channel.CONSENSUS, b"from c") in a.received)
            assert [r for r in a.received if r[0] == 1] == []
            for wrong in ([c.peer(), c.peer()], [a.peer(), c.peer()]):
                with pytest.raises(ValueError, match="twice|own peer"):
                    await first.update_peers(wrong)
            assert first.peers == [2]
        finally:
            for node in (a, b, c):
                assert node.transport is not None
                await node.transport.close()

    asyncio.run(main())
