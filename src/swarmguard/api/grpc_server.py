"""The gRPC API (``proto/swarmguard/api/v1/node.proto``) served from the node's event loop.

Errors carry gRPC status codes and a message saying what was wrong: INVALID_ARGUMENT for a
malformed request, NOT_FOUND for an unknown block or transaction, RESOURCE_EXHAUSTED when the
mempool is full or the client over its rate, DEADLINE_EXCEEDED when a transaction waited for was
not committed in time. A refused transaction (duplicate, rejected by the application) is not an
error: the answer says so in ``admission`` and ``log``. The standard gRPC health service reports
SERVING once the node is ready (see ``node.metrics``), and server reflection lists the services
and their schemas, so ``grpcurl`` and other generic clients need no copy of the .proto files.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from swarmguard.api.v1 import node_pb2, node_pb2_grpc

if TYPE_CHECKING:
    from swarmguard.api.http_server import HttpServer
from swarmguard.node.apitls import ApiTls
from swarmguard.node.mempool import Admission
from swarmguard.node.runtime import ListenError, Node
from swarmguard.storage.blockstore import Block
from swarmguard.storage.merkle import list_inclusion_proof

__all__ = ["BATCH_MAX", "CALLS_MAX", "ApiServer", "Service"]

Context = grpc.aio.ServicerContext[Any, Any]

WAIT_DEFAULT = 10.0
WAIT_MAX = 300.0
BATCH_MAX = 1000
CALLS_MAX = 1024
"""Calls in progress at once (block streams and waits for a commit included); one more is
refused with RESOURCE_EXHAUSTED, so a flood of waiting clients cannot grow the node's memory."""
_REFUSALS = {Admission.FULL, Admission.RATE_LIMITED}


class Service(node_pb2_grpc.NodeServicer):
    def __init__(self, node: Node) -> None:
        self.node = node
        self._committed = asyncio.Condition()
        node.chain.listeners.append(self._on_commit)

    def _on_commit(self, height: int) -> None:
        async def notify() -> None:
            async with self._committed:
                self._committed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    # -- transactions ----------------------------------------------------------------------

    async def _submit(
        self, request: Any, context: Context, client: str, *, stream: bool = False
    ) -> Any:
        transaction = bytes(request.transaction)  # any bytes: the application judges them
        timeout = request.timeout_seconds or WAIT_DEFAULT
        if not 0 < timeout <= WAIT_MAX:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"timeout_seconds must be in (0, {WAIT_MAX}]"
            )
        node = self.node
        ((admission, answer),) = self._admit([transaction], client)
        if admission in _REFUSALS and not stream:  # on a stream, one refusal ends nothing
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"mempool: {admission.value}")
        key = answer.hash
        if not request.wait_for_commit or admission not in (
            Admission.ACCEPTED,
            Admission.DUPLICATE,
        ):
            return answer
        try:
            async with asyncio.timeout(timeout), self._committed:
                await self._committed.wait_for(lambda: key in node.chain.results)
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"not committed within {timeout} s"
            )
        height, code, result_log = node.chain.results[key]
        answer.height, answer.code, answer.log = height, code, result_log
        return answer

    def _admit(self, transactions: list[bytes], client: str) -> list[tuple[Admission, Any]]:
        node = self.node
        admitted = node.submit_many(transactions, client)
        keys = [node.mempool.hash(transaction) for transaction in transactions]  # after: looked up
        return [
            (
                admission,
                node_pb2.SubmitTransactionResponse(hash=key, admission=admission.value, log=log),
            )
            for key, (admission, log) in zip(keys, admitted, strict=True)
        ]

    async def SubmitBatch(self, request: Any, context: Context) -> Any:
        if len(request.transactions) > BATCH_MAX:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"at most {BATCH_MAX} transactions per batch"
            )
        admitted = self._admit([bytes(t) for t in request.transactions], context.peer())
        return node_pb2.SubmitBatchResponse(results=[answer for _, answer in admitted])

    async def SubmitTransaction(self, request: Any, context: Context) -> Any:
        return await self._submit(request, context, context.peer())

    async def SubmitTransactions(
        self, requests: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[Any]:
        peer = context.peer()
        async for request in requests:
            yield await self._submit(request, context, peer, stream=True)

    async def GetTransaction(self, request: Any, context: Context) -> Any:
        if len(request.hash) != 32:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hash must be 32 bytes")
        store = self.node.store
        found = store.transaction(bytes(request.hash))
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no committed transaction with it")
        assert found is not None  # abort raised
        height, index, transaction = found
        block = store.block(height)
        if block is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"block {height} was pruned")
        assert block is not None
        transactions = list(block.transactions)
        return node_pb2.GetTransactionResponse(
            height=height,
            index=index,
            transaction=transaction,
            block_hash=store.block_hash(block),
            transactions=len(transactions),
            proof=list_inclusion_proof(transactions, index),
        )

    # -- blocks and state ------------------------------------------------------------------

    def _block(self, block: Block) -> Any:
        return node_pb2.Block(
            height=block.height,
            hash=self.node.store.block_hash(block),
            header=block.header,
            transactions=list(block.transactions),
            certificate=block.certificate,
            last_commit=block.last_commit,
        )

    async def GetBlock(self, request: Any, context: Context) -> Any:
        store = self.node.store
        if request.height and request.hash:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give height or hash, not both")
        if request.hash:
            if len(request.hash) != 32:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hash must be 32 bytes")
            block = store.block_by_hash(bytes(request.hash))
        elif request.height:
            block = store.block(request.height)
        else:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give a height or a hash")
        if block is None:
            pruned = 0 < request.height < store.base
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"block {request.height} is pruned: this node keeps blocks from {store.base}"
                if pruned
                else "no such block (or pruned)",
            )
        assert block is not None  # abort raised
        return self._block(block)

    async def Query(self, request: Any, context: Context) -> Any:
        result = self.node.app.query(request.path, bytes(request.data), prove=request.prove)
        return node_pb2.QueryResponse(
            code=result.code,
            value=result.value,
            proof=result.proof,
            height=result.height,
            app_hash=self.node.app.info().app_hash,
            log=result.log,
        )

    async def GetStatus(self, request: Any, context: Context) -> Any:
        node = self.node
        peers = node.transport.peers
        connected = sum(1 for peer in peers if node.transport.stats(peer).connected)
        return node_pb2.Status(
            chain_id=node.config.chain_id,
            height=node.height,
            last_block_hash=node.chain.last_hash,
            app_hash=node.chain.app_hash,
            peers=len(peers),
            peers_connected=connected,
            sync_state="synced" if node.metrics.ready() else "catching_up",
            mempool_transactions=len(node.mempool),
            consensus_key=node.config.consensus_key.public_key.raw,
            earliest_height=node.store.base if node.height else 0,
        )

    async def GetValidators(self, request: Any, context: Context) -> Any:
        node = self.node
        height = node.replica.height
        answer = node.app.query("reputation", b"").value
        scores = {
            answer[i : i + 32]: int.from_bytes(answer[i + 32 : i + 36], "big")
            for i in range(4, len(answer), 36)
        }
        members = [
            node_pb2.Validator(consensus_key=key, power=power, reputation_ppm=scores.get(key, 0))
            for key, power in node.chain.validators(height)
        ]
        return node_pb2.Validators(height=height, validators=members)

    async def StreamBlocks(self, request: Any, context: Context) -> AsyncIterator[Any]:
        store = self.node.store
        next_height = max(request.from_height, store.base, 1)
        while True:
            while next_height <= store.height:
                block = store.block(next_height)
                if block is not None:
                    yield self._block(block)
                next_height += 1
            await self._wait_for_height(next_height)

    async def _wait_for_height(self, height: int) -> None:
        async with self._committed:
            await self._committed.wait_for(lambda: self.node.store.height >= height)


class ApiServer:
    """The gRPC server of one node, with the standard health service."""

    def __init__(self, node: Node, *, calls_max: int = CALLS_MAX) -> None:
        self.node = node
        # No SO_REUSEPORT (gRPC's default on Linux): a second node configured with this
        # port must fail to start, not silently take half of this node's calls.
        self.server = grpc.aio.server(
            options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=calls_max
        )
        self.service = Service(node)
        node_pb2_grpc.add_NodeServicer_to_server(self.service, self.server)  # type: ignore[no-untyped-call]
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                node_pb2.DESCRIPTOR.services_by_name["Node"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self._watch: asyncio.Task[None] | None = None
        self.http: HttpServer | None = None
        self._tls: ApiTls | None = None
        self._pending: grpc.ServerCertificateConfiguration | None = None

    async def start(self, host: str, port: int, tls: ApiTls | None = None) -> int:
        """Listen (port 0: any free one) and start serving, over ``tls`` if given; returns the
        port."""
        try:
            if tls is None:
                bound = int(self.server.add_insecure_port(f"{host}:{port}"))
            else:
                credentials = grpc.dynamic_ssl_server_credentials(
                    _certificates(tls),
                    self._fetch_certificates,  # type: ignore[arg-type]  # None: keep (gRPC's docs)
                    require_client_authentication=tls.client_ca is not None,
                )
                bound = int(self.server.add_secure_port(f"{host}:{port}", credentials))
                self._tls = tls
        except RuntimeError:  # gRPC's only word for a failed bind; its log line has the cause
            reason = "address in use, or not an address of this machine"
            raise ListenError(f"node.api: cannot listen on {host}:{port}: {reason}") from None
        await self.server.start()
        self._watch = asyncio.get_running_loop().create_task(self._report_health())
        return bound

    def _fetch_certificates(self) -> grpc.ServerCertificateConfiguration | None:
        """Asked by gRPC before every handshake (on its own thread): a reloaded configuration
        once, then None (keep it)."""
        pending, self._pending = self._pending, None
        return pending

    def reload_tls(self, tls: ApiTls) -> None:
        """Serve new connections (gRPC and HTTPS) with ``tls``'s files as they are now, e.g.
        a renewed certificate on SIGHUP; open connections keep theirs. Raises ``ValueError``
        (nothing changed) if the files do not serve, or if TLS or mutual TLS would be switched
        on or off, which needs a restart."""
        if self._tls is None:
            raise ValueError("the API was started without TLS: turning it on needs a restart")
        if (tls.client_ca is None) != (self._tls.client_ca is None):
            raise ValueError("switching client certificates on or off needs a restart")
        tls.check()
        context, certificates = tls.server_context(), _certificates(tls)
        if self.http is not None:
            self.http.reload_tls(context)
        self._pending, self._tls = certificates, tls

    async def _report_health(self) -> None:
        status = health_pb2.HealthCheckResponse
        while True:
            serving = status.SERVING if self.node.metrics.ready() else status.NOT_SERVING
            await self.health.set("", serving)
            await self.health.set("swarmguard.api.v1.Node", serving)
            await asyncio.sleep(1.0)

    def start_http(self, host: str, port: int, tls: ApiTls | None = None, **limits: Any) -> int:
        """Serve the same calls over HTTP/JSON (``http_server``; HTTPS with ``tls``;
        ``limits``: its keyword arguments); returns the port."""
        from swarmguard.api.http_server import HttpServer  # noqa: PLC0415 - only if asked

        context = None if tls is None else tls.server_context()
        self.http = HttpServer(self.service, asyncio.get_running_loop(), tls=context, **limits)
        self.node.metrics.watch(self.http.bulkhead)
        with ListenError.naming("node.http", host, port):
            return self.http.serve(host, port)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self.http is not None:
            self.http.close()
        await self.server.stop(grace=1.0)


def _certificates(tls: ApiTls) -> grpc.ServerCertificateConfiguration:
    chain, key, client_ca = tls.credentials()
    return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)
