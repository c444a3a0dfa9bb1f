"""schemathesis against the node's OpenAPI document, on a live cluster: generated requests (valid
and invalid JSON bodies for every operation) never get a server error, and every answer matches
the documented status codes and schemas."""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings

from swarmguard.api.grpc_server import ApiServer
from swarmguard.api.http_server import openapi_document
from swarmguard.node.runtime import Node
from tests.node.test_runtime import configs
from tests.node.test_transport import until


def test_generated_requests_get_no_server_error(tmp_path: Path) -> None:
    ports: queue.Queue[int] = queue.Queue()
    done = threading.Event()

    async def serve() -> None:
        nodes = [Node(config) for config in configs(tmp_path)]
        for node in nodes:
            await node.start()
        api = ApiServer(nodes[0])
        await api.start("127.0.0.1", 0)
        try:
            await until(lambda: all(n.height >= 2 for n in nodes), timeout=30)
            ports.put(api.start_http("127.0.0.1", 0))
            while not done.is_set():
                await asyncio.sleep(0.05)
        finally:
            await api.stop()
            for node in nodes:
                await node.stop()

    server = threading.Thread(target=asyncio.run, args=(serve(),))
    server.start()
    try:
        base_url = f"http://127.0.0.1:{ports.get(timeout=60)}"
        schema = schemathesis.openapi.from_dict(openapi_document())
        for result in schema.get_all_operations():
            operation = result.ok()

            @settings(
                max_examples=60,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=operation.as_strategy())
            def check(case: schemathesis.Case) -> None:
                response = case.call_and_validate(base_url=base_url, timeout=30)
                assert response.status_code < 500, response.text

            check()
    finally:
        done.set()
        server.join(timeout=60)
