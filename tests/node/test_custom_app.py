"""The worked example of docs/node.md, "Writing an application": a key-value store of about
forty lines, run by four nodes over the real transport. Any in-process ``abci.Application``
plugs into ``Node(config, app)`` the same way."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from swarmguard.crypto import ecvrf
from swarmguard.node.abci import (
    BlockRequest,
    CheckResult,
    ChunkOutcome,
    FinalizedBlock,
    Info,
    QueryResult,
    Snapshot,
    ValidatorUpdate,
)
from swarmguard.node.runtime import Node
from swarmguard.storage.state_tree import StateTree

from .test_chain import CONSENSUS, VRF_SECRETS
from .test_runtime import configs
from .test_transport import until

VRF = b"\x00vrf:"  # where the validators' VRF keys live in the tree


class KeyValueApp:
    """Transactions are ``b"key=value"``; the state is those pairs in the sparse Merkle tree,
    whose root is the app hash. Everything the app keeps is in its writes, so ``load_state``
    is all a restart needs."""

    def __init__(self) -> None:
        self.tree, self.height = StateTree(), 0
        self.pending: tuple[int, StateTree] | None = None

    def info(self) -> Info:
        return Info(self.height, self.tree.root, "kv/1")

    def init_chain(self, app_state: bytes) -> FinalizedBlock:
        # [{"key": hex, "vrf_key": hex, "power": int}]
        members = json.loads(app_state)["validators"]
        updates = tuple(
            ValidatorUpdate(bytes.fromhex(m["key"]), bytes.fromhex(m["vrf_key"]), m["power"])
            for m in members
        )
        # The VRF keys are state too (the node asks for them with query("vrf_key", key)).
        writes: dict[bytes, bytes | None] = {VRF + u.consensus_key: u.vrf_key for u in updates}
        self.tree = self.tree.apply(writes)
        return FinalizedBlock((), self.tree.root, writes, updates)

    def load_state(self, state: StateTree, height: int) -> None:
        self.tree, self.height = state, height

    def check_tx(self, transaction: bytes) -> CheckResult:
        return CheckResult() if b"=" in transaction else CheckResult(1, "expected key=value")

    def prepare_proposal(self, height: int, txs: Sequence[bytes], max_bytes: int) -> list[bytes]:
        taken, size = [], 0
        for tx in txs:
            if size + len(tx) > max_bytes:
                break
            taken.append(tx)
            size += len(tx)
        return taken

    def process_proposal(self, height: int, txs: Sequence[bytes]) -> bool:
        return all(b"=" in tx for tx in txs)

    def finalize_block(self, request: BlockRequest) -> FinalizedBlock:
        writes: dict[bytes, bytes | None] = {}
        for tx in request.transactions:
            key, value = tx.split(b"=", 1)
            writes[key] = value
        tree = self.tree.apply(writes)
        self.pending = (request.height, tree)
        results = tuple(CheckResult() for _ in request.transactions)
        return FinalizedBlock(results, tree.root, writes)

    def commit(self) -> None:
        assert self.pending is not None
        self.height, self.tree = self.pending

    def query(self, path: str, data: bytes, *, prove: bool = False) -> QueryResult:
        if path == "vrf_key":
            data = VRF + data
        value = self.tree.get(data)
        proof = self.tree.prove(data).encode() if prove else b""
        return QueryResult(0 if value is not None else 6, value or b"", proof, self.height)

    def list_snapshots(self) -> list[Snapshot]:
        return []

    def load_snapshot_chunk(self, height: int, format: int, chunk: int) -> bytes | None:
        return None

    def offer_snapshot(self, snapshot: Snapshot, app_hash: bytes) -> bool:
        return False

    def apply_snapshot_chunk(self, index: int, chunk: bytes) -> ChunkOutcome:
        return ChunkOutcome.REJECT_SNAPSHOT


def test_four_nodes_run_a_custom_application(tmp_path: Path) -> None:
    state = {
        "validators": [
            {"key": k.public_key.raw.hex(), "vrf_key": ecvrf.public_key(v).hex(), "power": 1}
            for k, v in zip(CONSENSUS, VRF_SECRETS, strict=True)
        ]
    }

    async def main() -> None:
        app_state = json.dumps(state).encode()
        settings = [dataclasses.replace(c, app_state=app_state) for c in configs(tmp_path)]
        nodes = [Node(config, KeyValueApp()) for config in settings]
        for node in nodes:
            await node.start()
        try:
            nodes[0].submit(b"colour=blue")
            nodes[2].submit(b"shape=round")
            assert nodes[1].submit(b"no equals sign").value == "rejected"

            def stored(node: Node) -> bool:
                return node.app.query("", b"shape").value == b"round" and (
                    node.app.query("", b"colour").value == b"blue"
                )

            await until(lambda: all(stored(n) for n in nodes), timeout=30)
            assert len({n.app.info().app_hash for n in nodes}) <= 2  # one may be a block ahead
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(main())
