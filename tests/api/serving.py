"""A live in-process cluster with the first node's API server, for the API tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from swarmguard.api.grpc_server import ApiServer
from swarmguard.node.runtime import Node
from tests.node.test_runtime import configs
from tests.node.test_transport import until


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **api: Any) -> AsyncIterator[ApiServer]:
    """An ``ApiServer(**api)`` (not started: the test starts what it needs) of the first of
    four validators past height 2; everything stopped on the way out."""
    nodes = [Node(config) for config in configs(tmp_path)]
    for node in nodes:
        await node.start()
    server = ApiServer(nodes[0], **api)
    try:
        await until(lambda: all(n.height >= 2 for n in nodes), timeout=30)
        yield server
    finally:
        await server.stop()
        for node in nodes:
            await node.stop()
