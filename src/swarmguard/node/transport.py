"""Validator-to-validator transport: mutual TLS 1.3 streams of length-prefixed frames.

Each pair of peers keeps one connection, dialed by the side with the smaller node id (both sides
compute the same rule, so they never race to open two). Identities are pinned: the trust store
holds exactly the configured peers' certificates (``identity.tls_context``), and a dialer also
checks that whoever answered holds the key of the peer it meant to reach.

Frame, version 1::

    length u32 (of what follows, 2..FRAME_BYTES_MAX) | version u8 | channel u8 | payload

A frame with a bad length, version or channel closes the connection (counted as ``malformed``):
a peer that speaks garbage is not parsed further, and the dialer's back-off makes it cost
little. The payload belongs to the channel's owner (consensus messages are ``consensus.wire``
envelopes) and is never interpreted here.

Sending never blocks the caller. Each peer has a bounded queue (``queue_frames_max``,
``queue_bytes_max``); when it is full the oldest frames are dropped and counted, because for
consensus the newest messages matter and the re-send timer repeats whatever is still needed. A
writer task per peer joins every queued frame into one write (up to ``write_bytes_max``), which
is where a stream transport gets its throughput (see docs/node.md). A slow peer therefore costs
one bounded queue, never the sender's memory or another peer's latency.

Reconnects go through the resilience library: a ``Retry`` with full jitter between attempts and
a ``CircuitBreaker`` per peer, so a dead peer is probed every ``open_timeout`` instead of dialed
in a loop. ``delay`` injects one-way latency (tests and benchmarks: this machine has no netem).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from swarmguard.consensus.wire import MESSAGE_BYTES_MAX
from swarmguard.node.identity import (
    NodeIdentity,
    node_id,
    public_key_of_certificate,
    public_key_of_pem,
    tls_context,
)
from swarmguard.resilience import CircuitBreaker, CircuitOpenError, Retry

__all__ = [
    "FRAME_BYTES_MAX",
    "FRAME_VERSION",
    "Channel",
    "LinkStats",
    "Peer",
    "Transport",
    "TransportConfig",
]

log = logging.getLogger(__name__)

FRAME_VERSION = 1
FRAME_BYTES_MAX = 2 + MESSAGE_BYTES_MAX
"""The largest frame body: version, channel and the largest consensus message."""
_HEADER = 4
_READ_BYTES = 256 * 1024
CLOSE_SECONDS = 2.0
"""How long closing waits for the server's connections to be gone (they were aborted)."""


class Channel(IntEnum):
    CONSENSUS = 1
    MEMPOOL = 2
    SYNC = 3  # node.blocksync


@dataclass(frozen=True, slots=True)
class Peer:
    """Another node: the validator index its frames are reported under, where to reach it,
    and its certificate (PEM), which is both its trust anchor and its identity."""

    validator: int
    host: str
    port: int
    certificate: bytes

    @property
    def public_key(self) -> bytes:
        return public_key_of_pem(self.certificate)


@dataclass(frozen=True, slots=True)
class TransportConfig:
    queue_frames_max: int = 100_000
    queue_bytes_max: int = 64 * 1024 * 1024
    write_bytes_max: int = 1024 * 1024
    """Frames are joined into one write up to this many bytes (a larger frame goes alone)."""
    connect_timeout: float = 5.0
    """Seconds for TCP connect plus the TLS handshake."""
    reconnect_initial: float = 0.05
    reconnect_max: float = 5.0
    breaker_open_timeout: float = 2.0
    """Seconds a peer whose dials keep failing is left alone before the next probe."""
    delay: float = 0.0
    """One-way latency added to every frame before it is written (tests and benchmarks)."""

    def __post_init__(self) -> None:
        if self.queue_frames_max < 1 or self.queue_bytes_max < 1:
            raise ValueError("queue limits must be positive")
        if self.write_bytes_max < 1:
            raise ValueError("write_bytes_max must be positive")
        if not 0 < self.reconnect_initial <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_initial <= reconnect_max")
        if self.connect_timeout <= 0 or self.breaker_open_timeout <= 0 or self.delay < 0:
            raise ValueError("timeouts must be positive and delay non-negative")


@dataclass(slots=True)
class LinkStats:
    """Counters of one peer link (the node exports them as metrics)."""

    connected: bool = False
    connects: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    writes: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    dropped: int = 0  # oldest frames pushed out of a full queue
    malformed: int = 0  # connections closed for a bad frame
    handler_errors: int = 0  # frames whose handler raised
    queued_frames: int = 0
    queued_bytes: int = 0


FrameHandler = Callable[[int, Channel, bytes], None]
"""Called with (validator, channel, payload) for every frame received, on the event loop."""


@dataclass(slots=True)
class _Link:
    peer: Peer
    public_key: bytes
    breaker: CircuitBreaker
    retry: Retry
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)  # (due, frame)
    writer: asyncio.StreamWriter | None = None
    signal: asyncio.Event = field(default_factory=asyncio.Event)  # queued or connected
    stats: LinkStats = field(default_factory=LinkStats)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # its write and dial loops


class Transport:
    def __init__(
        self,
        *,
        identity: NodeIdentity,
        host: str,
        port: int,
        peers: Sequence[Peer],
        on_frame: FrameHandler,
        tls_dir: Path,
        config: TransportConfig | None = None,
    ) -> None:
        self.identity = identity
        self.host, self.port = host, port
        self.config = config or TransportConfig()
        self._on_frame = on_frame
        self._tls_dir = tls_dir
        self._links: dict[int, _Link] = {}
        self._by_key: dict[bytes, _Link] = {}
        for peer in peers:
            self._add_link(peer)
        self._server: asyncio.Server | None = None
        self._server_context: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted: dict[asyncio.StreamWriter, asyncio.Task[Any]] = {}
        """Connections the server handed to ``_accept``, with their handler tasks (the
        server's, not ours: they must end on their own, see ``close``)."""
        self._closed = False
        self._client_context: ssl.SSLContext | None = None
        self._now: Callable[[], float] = lambda: 0.0  # the event loop's clock, once started

    def _add_link(self, peer: Peer) -> _Link:
        key = peer.public_key
        if peer.validator in self._links or key in self._by_key or key == self.identity.public_key:
            raise ValueError(f"peer {peer.validator} is listed twice or is this node")
        breaker = CircuitBreaker(
            f"peer-{peer.validator}",
            minimum_calls=3,
            failure_rate_threshold=0.5,
            window=30.0,
            open_timeout=self.config.breaker_open_timeout,
        )
        config = self.config
        retry = Retry(
            f"peer-{peer.validator}-dial",
            attempts=1000,
            initial_delay=config.reconnect_initial,
            max_delay=config.reconnect_max,
            jitter="full",
            on=(OSError, TimeoutError, ConnectionError),
        )
        link = _Link(peer, key, breaker, retry)
        self._links[peer.validator] = self._by_key[key] = link
        return link

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, and dial the peers this node is the dialer for. A node with no peers (a
        single-validator chain) has no one to accept or dial, so it does not listen."""
        self._now = asyncio.get_running_loop().time
        if not self._links:
            log.info("transport: no peers configured, not listening")
            return
        await self._listen()
        for link in self._links.values():
            self._run_link(link)

    async def _listen(self) -> None:
        certificate, key = self.identity.write_tls_files(self._tls_dir)
        trusted = [link.peer.certificate for link in self._links.values()]
        context = tls_context(server=True, certificate=certificate, key=key, trusted=trusted)
        self._server_context = context
        self._client_context = tls_context(
            server=False, certificate=certificate, key=key, trusted=trusted
        )
        self._server = await asyncio.start_server(
            self._accept,
            self.host,
            self.port,
            ssl=context,
            ssl_handshake_timeout=self.config.connect_timeout,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _run_link(self, link: _Link) -> None:
        self._spawn(self._write_loop(link), link)
        if self._dials(link):
            self._spawn(self._dial_loop(link), link)

    async def update_peers(self, peers: Sequence[Peer]) -> tuple[list[int], list[int]]:
        """Make ``peers`` the configured set while running (an operator's reload): a peer no
        longer listed, or listed with another address or certificate, is dropped (its loops
        cancelled, its connection aborted, its queue discarded, and a connection from it
        refused from now on); a new one is trusted and dialed or awaited. Returns the ids
        (removed, added). Its TLS certificate stays in the contexts' trust stores until a
        restart (OpenSSL cannot remove one), which admits nothing: a connection whose key
        names no peer is closed."""
        keys = [peer.public_key for peer in peers]
        wanted = {peer.validator: peer for peer in peers}
        if len(wanted) != len(peers) or len(set(keys)) != len(keys):
            raise ValueError("a peer is listed twice")
        if self.identity.public_key in keys:
            raise ValueError("this node is listed as its own peer")
        removed = [
            validator
            for validator, link in self._links.items()
            if wanted.get(validator) != link.peer
        ]
        for validator in removed:
            await self._drop_link(self._links[validator])
        added = [validator for validator in wanted if validator not in self._links]
        links = [self._add_link(wanted[validator]) for validator in added]
        if links and not self._closed:
            if self._server is None:
                await self._listen()  # the first peer of a node that had none
            else:
                for link in links:
                    cadata = link.peer.certificate.decode("ascii")
                    for context in (self._server_context, self._client_context):
                        assert context is not None
                        context.load_verify_locations(cadata=cadata)
            for link in links:
                self._run_link(link)
        return sorted(removed), sorted(added)

    async def _drop_link(self, link: _Link) -> None:
        del self._links[link.peer.validator]
        del self._by_key[link.public_key]
        for task in link.tasks:
            task.cancel()
        if link.writer is not None:
            link.writer.transport.abort()
            link.writer = None
        link.stats.connected = False
        if link.tasks:
            await asyncio.wait(list(link.tasks), timeout=CLOSE_SECONDS)

    async def close(self) -> None:
        """Stop listening, cancel our tasks and abort every connection (no TLS goodbye: a peer
        that is shutting down too may never answer one, and Python 3.11's ``wait_closed``
        waits for every served connection). The server's connection handlers end on their
        own once their connection is gone, not by cancellation (3.11 logs a cancelled one as
        an error)."""
        self._closed = True  # a handshake that completes from now on is not served
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for link in self._links.values():
            if link.writer is not None:
                link.writer.transport.abort()
                link.writer = None
            link.stats.connected = False
        handlers = list(self._accepted.values())
        for writer in list(self._accepted):
            writer.transport.abort()
        if self._tasks:  # bounded: a task that lost its cancellation must not hang a stop
            _, pending = await asyncio.wait(list(self._tasks), timeout=CLOSE_SECONDS)
            if pending:
                log.warning("transport: %d tasks still running after cancel", len(pending))
        if handlers:  # each sees its connection gone and returns
            await asyncio.wait(handlers, timeout=CLOSE_SECONDS)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_SECONDS)
            except TimeoutError:
                log.warning("transport: connections still open after %.0f s", CLOSE_SECONDS)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], link: _Link | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if link is not None:
            link.tasks.add(task)
            task.add_done_callback(link.tasks.discard)

    def _dials(self, link: _Link) -> bool:
        return self.identity.id < node_id(link.public_key)

    # -- sending ------------------------------------------------------------------------

    def send(self, validator: int, channel: Channel, payload: bytes) -> None:
        """Queue one frame for ``validator``; never blocks (a full queue drops its oldest)."""
        link = self._links.get(validator)
        if link is None:
            raise KeyError(f"no peer {validator}")
        self._enqueue(link, _frame(channel, payload))

    def broadcast(self, channel: Channel, payload: bytes) -> None:
        frame = _frame(channel, payload)
        for link in self._links.values():
            self._enqueue(link, frame)

    def _enqueue(self, link: _Link, frame: bytes) -> None:
        config, stats = self.config, link.stats
        due = self._now() + config.delay
        link.queue.append((due, frame))
        stats.queued_frames += 1
        stats.queued_bytes += len(frame)
        while link.queue and (
            stats.queued_frames > config.queue_frames_max
            or stats.queued_bytes > config.queue_bytes_max
        ):
            _, oldest = link.queue.popleft()
            stats.queued_frames -= 1
            stats.queued_bytes -= len(oldest)
            stats.dropped += 1
        link.signal.set()

    async def _write_loop(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        config, stats = self.config, link.stats
        while True:
            writer = link.writer
            if writer is None or not link.queue:
                link.signal.clear()
                await link.signal.wait()
                continue
            now = loop.time()
            if link.queue[0][0] > now:
                await asyncio.sleep(link.queue[0][0] - now)
                continue
            batch: list[bytes] = []
            size = 0
            while link.queue and link.queue[0][0] <= now:
                frame = link.queue[0][1]
                if batch and size + len(frame) > config.write_bytes_max:
                    break
                link.queue.popleft()
                batch.append(frame)
                size += len(frame)
            stats.queued_frames -= len(batch)
            stats.queued_bytes -= size
            try:
                writer.write(b"".join(batch))
                await writer.drain()
            except (ConnectionError, OSError):
                writer.close()  # the read side notices and clears the link
                continue
            stats.frames_sent += len(batch)
            stats.bytes_sent += size
            stats.writes += 1

    # -- connections --------------------------------------------------------------------

    async def _dial_loop(self, link: _Link) -> None:
        config, retry = self.config, link.retry
        while True:
            try:
                reader, writer = await retry.call_async(link.breaker.call_async, self._dial, link)
            except CircuitOpenError as error:
                await asyncio.sleep(max(error.args[1], config.reconnect_initial))
                continue
            except (OSError, TimeoutError, ConnectionError) as error:
                log.info("peer %d unreachable: %s", link.peer.validator, error)
                continue
            await self._serve(link, reader, writer)
            # A connection that ends is redialed, after a pause so a peer that accepts and
            # drops at once is not hammered.
            await asyncio.sleep(config.reconnect_initial * (1 + random.random()))

    async def _dial(self, link: _Link) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        peer = link.peer
        # asyncio.timeout, not wait_for: on 3.11 wait_for lets a connection (or a refusal)
        # that completes in the same turn as a cancellation win over it, and the dial loop
        # then outlives close().
        async with asyncio.timeout(self.config.connect_timeout):
            reader, writer = await asyncio.open_connection(
                peer.host,
                peer.port,
                ssl=self._client_context,
                server_hostname=node_id(link.public_key),
                ssl_handshake_timeout=self.config.connect_timeout,
            )
        if _peer_key(writer) != link.public_key:  # another trusted peer answered there
            writer.close()
            raise ConnectionError(f"{peer.host}:{peer.port} is not peer {peer.validator}")
        return reader, writer

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:  # accepted before close, its TLS handshake done after it
            writer.transport.abort()
            return
        task = asyncio.current_task()
        if task is not None:
            self._accepted[writer] = task
        try:
            try:
                link = self._by_key.get(_peer_key(writer))
            except (ConnectionError, ValueError):
                link = None
            if link is None or self._dials(link):  # TLS admitted a peer; only dialers are served
                writer.close()
                return
            await self._serve(link, reader, writer)
        finally:
            self._accepted.pop(writer, None)

    async def _serve(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Own the link's connection until it ends (a newer one replaces an older one)."""
        if link.writer is not None:
            link.writer.close()
        link.writer = writer
        link.stats.connected = True
        link.stats.connects += 1
        link.signal.set()
        try:
            await self._read_loop(link, reader)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            if link.writer is writer:
                link.writer = None
                link.stats.connected = False
            writer.close()

    async def _read_loop(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Parse every complete frame in what arrived, then wait for more: one await per read
        of up to 256 KiB, not two per frame (the difference is most of the CPU per frame)."""
        stats, validator, handler = link.stats, link.peer.validator, self._on_frame
        buffer = bytearray()
        while True:
            data = await reader.read(_READ_BYTES)
            if not data:
                return
            buffer += data
            offset = 0
            while len(buffer) - offset >= _HEADER:
                length = int.from_bytes(buffer[offset : offset + _HEADER], "big")
                if not 2 <= length <= FRAME_BYTES_MAX:
                    stats.malformed += 1
                    log.warning("peer %d sent a frame of %d bytes: closing", validator, length)
                    return
                end = offset + _HEADER + length
                if end > len(buffer):
                    break
                version, channel = buffer[offset + _HEADER], buffer[offset + _HEADER + 1]
                if version != FRAME_VERSION or channel not in _CHANNELS:
                    stats.malformed += 1
                    log.warning(
                        "peer %d sent frame version %d channel %d", validator, version, channel
                    )
                    return
                payload = bytes(buffer[offset + _HEADER + 2 : end])
                offset = end
                stats.frames_received += 1
                stats.bytes_received += _HEADER + length
                try:
                    handler(validator, _CHANNELS[channel], payload)
                except Exception:
                    stats.handler_errors += 1
                    log.exception("handler failed on a frame from peer %d", validator)
            del buffer[:offset]

    # -- introspection ------------------------------------------------------------------

    def stats(self, validator: int) -> LinkStats:
        return self._links[validator].stats

    def breaker(self, validator: int) -> CircuitBreaker:
        """The circuit breaker guarding dials to ``validator`` (for metrics)."""
        return self._links[validator].breaker

    def retry(self, validator: int) -> Retry:
        """The retry policy of dials to ``validator`` (for metrics)."""
        return self._links[validator].retry

    @property
    def peers(self) -> list[int]:
        return sorted(self._links)


_CHANNELS = {channel.value: channel for channel in Channel}


def _frame(channel: Channel, payload: bytes) -> bytes:
    length = 2 + len(payload)
    if length > FRAME_BYTES_MAX:
        raise ValueError(f"a payload of {len(payload)} bytes exceeds the frame limit")
    return length.to_bytes(_HEADER, "big") + bytes((FRAME_VERSION, channel)) + payload


def _peer_key(writer: asyncio.StreamWriter) -> bytes:
    ssl_object = writer.get_extra_info("ssl_object")
    der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
    if der is None:
        raise ConnectionError("no peer certificate")
    return public_key_of_certificate(der)
