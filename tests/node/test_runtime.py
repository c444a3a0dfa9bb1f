"""Four nodes in one event loop over the real TLS transport on loopback: transactions submitted
to one node are gossiped, proposed, decided and executed everywhere; a stopped node restarts
from its store and guard record and catches up."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from swarmguard.consensus.replica import Evidence
from swarmguard.crypto import SigningKey
from swarmguard.crypto.hashing import address_of
from swarmguard.node.identity import NodeIdentity
from swarmguard.node.ledger import Code
from swarmguard.node.local import free_ports
from swarmguard.node.mempool import Admission
from swarmguard.node.runtime import Node, NodeConfig
from swarmguard.node.transactions import Transaction, Transfer
from swarmguard.node.transport import Peer
from swarmguard.validators.evidence import PHASE_VOTE, DoubleVoteEvidence, sign_vote

from .test_chain import ALICE, BOB, CONSENSUS, OPERATORS, VRF_SECRETS, genesis
from .test_transport import until

CHAIN = "swarm-chain"


def configs(tmp: Path) -> list[NodeConfig]:
    identities = [NodeIdentity(bytes([70 + i]) * 32) for i in range(4)]
    ports = free_ports(4)
    peers = [Peer(i, "127.0.0.1", ports[i], identities[i].certificate_pem()) for i in range(4)]
    return [
        NodeConfig(
            chain_id=CHAIN,
            home=tmp / f"node{i}",
            consensus_key=CONSENSUS[i],
            vrf_secret=VRF_SECRETS[i],
            node_identity=identities[i],
            app_state=genesis(),
            genesis_time=int(time.time()) - 10,
            host="127.0.0.1",
            port=ports[i],
            peers=[p for p in peers if p.validator != i],
            peer_keys={j: CONSENSUS[j].public_key.raw for j in range(4) if j != i},
        )
        for i in range(4)
    ]


def balance(node: Node, key: SigningKey) -> int:
    result = node.app.query("account", address_of(key.public_key.raw))
    return int.from_bytes(result.value[:8], "big") if result.code == Code.OK else 0


def test_a_cluster_commits_gossiped_transactions_and_a_node_restarts(tmp_path: Path) -> None:
    async def main() -> None:
        settings = configs(tmp_path)
        nodes = [Node(config) for config in settings]
        for node in nodes:
            await node.start()
        try:
            bob = address_of(BOB.public_key.raw)
            for nonce in range(10):
                tx = Transaction.sign(ALICE, CHAIN, nonce, Transfer(bob, 10)).encode()
                assert nodes[0].submit(tx) is Admission.ACCEPTED  # one sender: in order
            await until(lambda: all(balance(n, BOB) == 100 for n in nodes), timeout=30)
            height = min(n.height for n in nodes)
            hashes = {n.store.block_hash(n.store.block(height)) for n in nodes}  # type: ignore[arg-type]
            assert len(hashes) == 1
            assert sum(n.stats.fast + n.stats.slow for n in nodes) > 0

            await nodes[3].stop()  # down; the other three go on (3 of 4 equal powers)
            stopped_at = nodes[3].height
            await until(lambda: nodes[0].height >= stopped_at + 3, timeout=30)
            nodes[3] = Node(settings[3])  # restarts from its store and guard record
            await nodes[3].start()
            target = nodes[0].height + 2
            await until(lambda: nodes[3].height >= target, timeout=60)
            for height in range(1, target + 1):
                blocks = {n.store.block_hash(n.store.block(height)) for n in nodes}  # type: ignore[arg-type]
                assert len(blocks) == 1, height
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(main())


def test_evidence_a_node_finds_is_submitted_and_jails_the_double_signer(tmp_path: Path) -> None:
    """The replica reports an equivocation as an Evidence action; the node signs it with its
    operator key into a transaction, and the ledger slashes and jails the offender."""

    async def main() -> None:
        settings = [
            dataclasses.replace(config, operator_key=OPERATORS[i])
            for i, config in enumerate(configs(tmp_path))
        ]
        nodes = [Node(config) for config in settings]
        for node in nodes:
            await node.start()
        try:
            await until(lambda: all(n.height >= 2 for n in nodes), timeout=30)
            offender = CONSENSUS[3]
            evidence = DoubleVoteEvidence.of(
                sign_vote(offender, CHAIN, 1, 0, PHASE_VOTE, b"x" * 32),
                sign_vote(offender, CHAIN, 1, 0, PHASE_VOTE, b"y" * 32),
            )
            nodes[0]._apply([Evidence(evidence)])
            operator = address_of(OPERATORS[3].public_key.raw)

            def jailed(node: Node) -> bool:
                manager = node.app.manager
                return manager is not None and manager.staking.validators[operator].jailed

            await until(lambda: all(jailed(n) for n in nodes[:3]), timeout=30)
            assert nodes[0].stats.evidence == 1
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(main())


def test_metrics_health_and_readiness_are_served(tmp_path: Path) -> None:
    async def main() -> None:
        settings = configs(tmp_path)
        settings[0] = dataclasses.replace(settings[0], metrics=("127.0.0.1", 0))
        nodes = [Node(config) for config in settings]
        for node in nodes:
            await node.start()
        stopped = False
        try:
            await until(lambda: all(n.height >= 3 for n in nodes), timeout=30)
            port = nodes[0].metrics_port

            def get(path: str) -> tuple[int, str]:
                url = f"http://127.0.0.1:{port}{path}"
                try:
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        return int(answer.status), answer.read().decode()
                except urllib.error.HTTPError as error:
                    error.close()
                    return error.code, ""

            # A client stalled halfway through its request line (a port scanner, a hung
            # scraper) holds one thread, not the server: the probes are still answered.
            stalled = socket.create_connection(("127.0.0.1", port), timeout=5)
            stalled.sendall(b"GET /metr")
            status, body = await asyncio.to_thread(get, "/metrics")
            assert status == 200
            for series in (
                "swarmguard_height",
                "swarmguard_decisions_total",
                "swarmguard_commit_latency_seconds_bucket",
                "swarmguard_views_per_height_bucket",
                "swarmguard_peers_connected 3.0",
                "swarmguard_mempool_transactions",
                "swarmguard_p2p_bytes_sent_total",
                'swarmguard_p2p_breaker_state{peer="1"} 0.0',
                # The resilience library's own series, for what the node runs on it.
                'resilience_circuit_breaker_state{service="peer-1"} 0.0',
                'resilience_circuit_breaker_requests_total{service="peer-3"}',
                'resilience_retry_retries_total{service="peer-2-dial"}',
                'resilience_rate_limiter_requests_total{service="mempool-relays"}',
                'resilience_rate_limiter_rejections_total{service="mempool-clients"} 0.0',
                'resilience_bulkhead_max_concurrent{service="metrics"} 64.0',
            ):
                assert series in body, series
            # Permits held during the scrape: the stalled client's and the scrape's own.
            assert 'resilience_bulkhead_current{service="metrics"} 2.0' in body
            assert (await asyncio.to_thread(get, "/healthz"))[0] == 200
            assert (await asyncio.to_thread(get, "/readyz"))[0] == 200
            stalled.close()
            for node in nodes[1:]:
                await node.stop()  # alone: no quorum of peers, so not ready
            stopped = True
            await until(lambda: not nodes[0].transport.stats(1).connected, timeout=10)
            assert (await asyncio.to_thread(get, "/readyz"))[0] == 503
            assert (await asyncio.to_thread(get, "/healthz"))[0] == 200  # but alive
        finally:
            for node in nodes if not stopped else nodes[:1]:
                await node.stop()

    asyncio.run(main())


def test_a_stopped_node_ignores_its_timers(tmp_path: Path) -> None:
    """A validator alone decides each height on its own timers; once stopped, a timer that
    still fires (the event loop runs on while the process tears down) must not decide a block
    into the closed store."""
    alone = json.loads(genesis())
    alone["validators"] = alone["validators"][:1]
    config = dataclasses.replace(
        configs(tmp_path)[0], app_state=json.dumps(alone).encode(), peers=[], peer_keys={}
    )

    async def main() -> list[dict[str, object]]:
        failures: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: failures.append(context)
        )
        node = Node(config)
        await node.start()
        await until(lambda: node.height >= 2, timeout=30)
        await node.stop()
        await asyncio.sleep(1.5)  # several empty-block timeouts
        return failures

    assert asyncio.run(main()) == []
