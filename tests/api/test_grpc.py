"""The gRPC API against a live in-process cluster: submit and wait, fetch the transaction with
its inclusion proof, blocks, provable queries, status, validators, the block stream, health, and
status codes for bad requests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from swarmguard.api.grpc_server import ApiServer
from swarmguard.api.v1 import node_pb2, node_pb2_grpc
from swarmguard.crypto.hashing import address_of
from swarmguard.node.runtime import Node
from swarmguard.node.transactions import Transaction, Transfer
from swarmguard.storage.catchup import Header
from swarmguard.storage.merkle import leaf_hash, verify_inclusion
from swarmguard.storage.state_tree import StateProof
from swarmguard.storage.state_tree import verify_inclusion as verify_state
from tests.api.serving import serving
from tests.node.test_chain import ALICE, BOB, CONSENSUS
from tests.node.test_runtime import CHAIN, configs


def test_the_api_end_to_end(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as api:
            port = await api.start("127.0.0.1", 0)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = node_pb2_grpc.NodeStub(channel)
                bob = address_of(BOB.public_key.raw)
                transaction = Transaction.sign(ALICE, CHAIN, 0, Transfer(bob, 42)).encode()
                answer = await stub.SubmitTransaction(
                    node_pb2.SubmitTransactionRequest(transaction=transaction, wait_for_commit=True)
                )
                assert answer.admission == "accepted"
                assert answer.code == 0
                assert answer.height >= 1

                found = await stub.GetTransaction(node_pb2.GetTransactionRequest(hash=answer.hash))
                assert found.transaction == transaction
                block = await stub.GetBlock(node_pb2.GetBlockRequest(height=found.height))
                root = Header.decode(block.header).transactions_root
                verify_inclusion(
                    leaf_hash(transaction), found.index, found.transactions, list(found.proof), root
                )
                same = await stub.GetBlock(node_pb2.GetBlockRequest(hash=block.hash))
                assert same == block

                query = await stub.Query(
                    node_pb2.QueryRequest(path="account", data=bob, prove=True)
                )
                assert int.from_bytes(query.value[:8], "big") == 42
                proof = StateProof.decode(query.proof)
                verify_state(query.app_hash, b"account:" + bob, bob + query.value, proof)

                status = await stub.GetStatus(node_pb2.GetStatusRequest())
                assert status.chain_id == CHAIN
                assert status.peers_connected == 3
                assert status.consensus_key == CONSENSUS[0].public_key.raw
                assert status.earliest_height == 1  # nothing pruned
                validators = await stub.GetValidators(node_pb2.GetValidatorsRequest())
                assert len(validators.validators) == 4

                heights = []
                async for streamed in stub.StreamBlocks(
                    node_pb2.StreamBlocksRequest(from_height=1)
                ):
                    heights.append(streamed.height)
                    if len(heights) == 3:
                        break
                assert heights == [1, 2, 3]

                health = health_pb2_grpc.HealthStub(channel)
                ready = health_pb2.HealthCheckResponse.SERVING
                for _ in range(50):  # reported once a second, from readiness
                    checked = await health.Check(health_pb2.HealthCheckRequest(service=""))
                    if checked.status == ready:
                        break
                    await asyncio.sleep(0.1)
                assert checked.status == ready

                for call, request, code in (
                    (stub.GetBlock, node_pb2.GetBlockRequest(), grpc.StatusCode.INVALID_ARGUMENT),
                    (
                        stub.GetBlock,
                        node_pb2.GetBlockRequest(height=10**9),
                        grpc.StatusCode.NOT_FOUND,
                    ),
                    (
                        stub.GetTransaction,
                        node_pb2.GetTransactionRequest(hash=b"short"),
                        grpc.StatusCode.INVALID_ARGUMENT,
                    ),
                    (
                        stub.SubmitTransaction,
                        node_pb2.SubmitTransactionRequest(timeout_seconds=-1),
                        grpc.StatusCode.INVALID_ARGUMENT,
                    ),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        await call(request)
                    assert raised.value.code() == code
                # Bytes that are not the request message at all: an error status, not a crash.
                raw = channel.unary_unary("/swarmguard.api.v1.Node/GetBlock")
                for garbage in (b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\xff\xff\xff"):
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        await raw(garbage)
                    assert raised.value.code() != grpc.StatusCode.OK
                assert (await stub.GetStatus(node_pb2.GetStatusRequest())).height >= 1
                for junk_bytes in (b"", b"\1junk"):  # not an error: the application refuses it
                    junk = await stub.SubmitTransaction(
                        node_pb2.SubmitTransactionRequest(transaction=junk_bytes)
                    )
                    assert junk.admission == "rejected"
                    assert junk.log

    asyncio.run(main())


def test_calls_past_the_cap_are_refused_and_the_server_recovers(tmp_path: Path) -> None:
    """``calls_max`` calls in progress (here two block streams that never end by themselves):
    one more gets RESOURCE_EXHAUSTED at once; when a stream ends, calls are served again."""

    async def main() -> None:
        async with serving(tmp_path, calls_max=2) as api:
            port = await api.start("127.0.0.1", 0)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = node_pb2_grpc.NodeStub(channel)
                streams = [
                    stub.StreamBlocks(node_pb2.StreamBlocksRequest(from_height=1)) for _ in "ab"
                ]
                for stream in streams:
                    assert (await stream.read()).height == 1  # both are in progress
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.GetStatus(node_pb2.GetStatusRequest(), timeout=10)
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                streams[0].cancel()
                for _ in range(50):  # the server notices the cancellation
                    try:
                        status = await stub.GetStatus(node_pb2.GetStatusRequest(), timeout=10)
                    except grpc.aio.AioRpcError as error:
                        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                        await asyncio.sleep(0.1)
                    else:
                        assert status.chain_id == CHAIN
                        break
                else:
                    raise AssertionError("the server did not free the cancelled stream's slot")
                streams[1].cancel()

    asyncio.run(main())


def test_reflection_describes_the_api_to_generic_clients(tmp_path: Path) -> None:
    """What ``grpcurl list`` / ``describe`` use: the services, and each method's messages
    resolved from the server alone, identical to the compiled proto."""

    async def main() -> None:
        node = Node(configs(tmp_path)[0])
        await node.start()  # alone: it serves, it need not commit
        api = ApiServer(node)
        port = await api.start("127.0.0.1", 0)
        try:

            def describe() -> tuple[set[str], list[tuple[str, str, str]]]:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    database = ProtoReflectionDescriptorDatabase(channel)
                    services = set(database.get_services())
                    pool = DescriptorPool(database)
                    node_service = pool.FindServiceByName("swarmguard.api.v1.Node")
                    methods = [
                        (m.name, m.input_type.full_name, m.output_type.full_name)
                        for m in node_service.methods
                    ]
                return services, methods

            services, methods = await asyncio.to_thread(describe)
            assert services == {
                "swarmguard.api.v1.Node",
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
            }
            compiled = node_pb2.DESCRIPTOR.services_by_name["Node"]
            assert methods == [
                (m.name, m.input_type.full_name, m.output_type.full_name) for m in compiled.methods
            ]
            assert ("SubmitBatch", "swarmguard.api.v1.SubmitBatchRequest") in {
                (name, request) for name, request, _ in methods
            }
        finally:
            await api.stop()
            await node.stop()

    asyncio.run(main())
