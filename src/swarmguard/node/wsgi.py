"""The node's small HTTP servers (metrics and health probes; the HTTP/JSON API): ``wsgiref``
with a thread per connection under named limits, so that one slow, silent or waiting client
holds up no other, and a liveness probe is answered while a scrape or a stalled client is open.

- ``CONNECTIONS_MAX`` connections are served at once (a bulkhead from the resilience library);
  one more is answered 503 at once, without its request being parsed, rather than queued (the
  answer is sent, then whatever the client is still sending is read and dropped for at most
  ``LINGER_SECONDS`` before the close, so the close does not reset a connection whose client
  is still writing its request, which would lose it the 503; ``REFUSED_MAX`` such connections
  linger at once, past that they are closed at once);
- a client silent for ``IDLE_SECONDS`` while its request is read is disconnected (the
  application sees ``TimeoutError`` if it was reading the body);
- a client that went away or timed out leaves no traceback in the node's log;
- with a TLS context, each connection's handshake runs in its own thread under the idle limit,
  so a client that stalls its handshake holds up nobody either (``node.apitls``).
"""

from __future__ import annotations

import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from swarmguard.resilience import Bulkhead, BulkheadFullError

__all__ = ["CONNECTIONS_MAX", "IDLE_SECONDS", "ThreadedWsgi"]

CONNECTIONS_MAX = 64
"""Connections served at once; each holds a thread (an API call may wait minutes for a commit)."""
IDLE_SECONDS = 10.0
"""Longest silence from a client while its request is being read."""
LINGER_SECONDS = 1.0
"""How long a refused connection is drained before it is closed."""
REFUSED_MAX = 256
"""Refused connections drained at once."""

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class _Quiet(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_seconds)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # requests are not news
        pass


class _Refuser:
    """One thread that drains refused connections until their clients stop sending (or for
    ``LINGER_SECONDS``), then closes them: the accept loop never waits on a refused client."""

    def __init__(self) -> None:
        self._incoming: deque[socket.socket] = deque()
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, connection: socket.socket) -> None:
        """Take ``connection`` (its answer sent, its write side shut) to drain and close."""
        if self._closed or len(self._incoming) >= REFUSED_MAX:
            connection.close()
            return
        self._incoming.append(connection)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="http-refused")
            self._thread.start()

    def close(self) -> None:
        self._closed = True

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        deadlines: dict[socket.socket, float] = {}
        while not self._closed:
            while self._incoming and len(deadlines) < REFUSED_MAX:
                connection = self._incoming.popleft()
                connection.setblocking(False)
                selector.register(connection, selectors.EVENT_READ)
                deadlines[connection] = time.monotonic() + LINGER_SECONDS
            while self._incoming:  # more than REFUSED_MAX: no lingering for these
                self._incoming.popleft().close()
            for key, _ in selector.select(timeout=0.05 if deadlines else 0.2):
                client = key.fileobj
                assert isinstance(client, socket.socket)
                try:
                    drained = bool(client.recv(65536))
                except BlockingIOError:
                    continue
                except OSError:
                    drained = False
                if not drained:  # the client closed (or reset): done with it
                    deadlines[client] = 0.0
            now = time.monotonic()
            for connection in [c for c, due in deadlines.items() if due <= now]:
                selector.unregister(connection)
                connection.close()
                del deadlines[connection]
        for connection in [*deadlines, *self._incoming]:
            connection.close()
        selector.close()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a client still waiting does not hold up the node's exit
    block_on_close = False
    bulkhead: Bulkhead
    idle_seconds: float
    busy: bytes  # the whole 503 answer
    tls: ssl.SSLContext | None
    refuser: _Refuser

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's thread: the TLS handshake (if any), then the request."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.idle_seconds)
        try:
            secured = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # not TLS, a stalled or failed handshake: nothing to answer
        try:
            super().finish_request(secured, client_address)
        finally:
            secured.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self.bulkhead.acquire()
        except BulkheadFullError:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self.bulkhead.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.bulkhead.release()

    def _refuse(self, request: socket.socket) -> None:
        """503 without parsing the request: little is spent on a connection we cannot serve
        (over TLS not even a handshake: the connection is closed)."""
        if self.tls is not None:
            self.shutdown_request(request)
            return
        try:
            request.settimeout(1.0)
            request.sendall(self.busy)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        self.refuser.add(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went silent or away is that client's problem: no traceback."""


class ThreadedWsgi:
    """Serve ``app`` in daemon threads: ``serve`` starts, ``close`` stops.

    ``busy``: the body (and its content type) of the 503 answer past ``connections_max``;
    ``tls``: serve HTTPS with this server-side context.
    """

    def __init__(
        self,
        name: str,
        app: WsgiApp,
        *,
        connections_max: int = CONNECTIONS_MAX,
        idle_seconds: float = IDLE_SECONDS,
        busy: tuple[bytes, str] = (b"too many connections\n", "text/plain"),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not idle_seconds > 0:
            raise ValueError("idle_seconds must be > 0")
        self.name, self.app, self.idle_seconds, self.tls = name, app, idle_seconds, tls
        self.bulkhead = Bulkhead(name, max_concurrent=connections_max, max_queue=0)
        body, content_type = busy
        self._busy = (
            f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        self._server: _Server | None = None
        self._refuser = _Refuser()

    def serve(self, host: str, port: int) -> int:
        """Listen (port 0: any free one) and serve in a daemon thread; returns the port."""
        server = make_server(host, port, self.app, server_class=_Server, handler_class=_Quiet)
        server.bulkhead, server.idle_seconds = self.bulkhead, self.idle_seconds
        server.busy, server.tls, server.refuser = self._busy, self.tls, self._refuser
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name=self.name).start()
        return int(server.server_port)

    def reload_tls(self, context: ssl.SSLContext) -> None:
        """Handshakes from now on use ``context``; raises ``ValueError`` without TLS."""
        if self.tls is None:
            raise ValueError(f"{self.name} was started without TLS: turning it on needs a restart")
        self.tls = context
        if self._server is not None:
            self._server.tls = context  # read once per connection, in its thread

    def close(self) -> None:
        self._refuser.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
