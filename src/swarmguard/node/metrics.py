"""Prometheus metrics of a node, and its liveness and readiness endpoints.

Series (prefix ``swarmguard_``; read at scrape time from the node's counters, except the
histograms, which the node loop feeds on every decision):

- consensus: ``height``, ``decisions_total{path}`` (fast, slow, sync), ``commit_latency_seconds
  {path}`` (from entering a height to deciding it), ``views_per_height``, ``timeouts_total``,
  ``failed_views_total``, ``validators``, ``validators_missing`` (Votes missing at the last
  decision, the health monitor's loss estimate times the set size), ``delta_seconds``;
- mempool: ``mempool_transactions``, ``mempool_bytes``, ``mempool_admissions_total{outcome}``;
- p2p: ``peers_connected``, ``p2p_bytes_sent_total{peer}``, ``p2p_bytes_received_total{peer}``,
  ``p2p_queue_frames{peer}``, ``p2p_dropped_frames_total{peer}``, ``p2p_breaker_state{peer}``
  (the resilience library's breaker guarding dials to that peer);
- storage: ``store_height``, ``store_base``;
- resilience: the library's own series (``resilience_circuit_breaker_state{service}`` and the
  rest of ``resilience.metrics``) for what the node runs on it: ``peer-<n>`` (the dial breaker
  of peer n), ``peer-<n>-dial`` (its retry), ``mempool-clients`` and ``mempool-relays`` (the
  admission rate limiters), ``metrics`` and ``http-api`` (the HTTP servers' bulkheads).

``/metrics`` serves them; ``/healthz`` answers 200 while the loop is alive (the last tick is
recent); ``/readyz`` answers 200 once the node is connected to enough peers for a quorum and has
committed a block in the last ``ready_after`` seconds, 503 otherwise. The server runs in daemon
threads (``node.wsgi``: one per connection, capped, idle clients cut off, so a stalled client
cannot make the liveness probe fail): scrapes read plain counters and never block the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swarmguard.consensus.replica import Decide
from swarmguard.node.wsgi import ThreadedWsgi
from swarmguard.resilience import Bulkhead, ResilienceManager

if TYPE_CHECKING:
    from swarmguard.node.runtime import Node

__all__ = ["NodeMetrics"]

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _NodeCollector(Collector):
    def __init__(self, node: Node, bulkheads: list[Bulkhead]) -> None:
        self.node = node
        self.bulkheads = bulkheads

    def _resilience(self, links: Iterable[tuple[int, Any]]) -> Iterator[Metric]:
        """The resilience library's own series (``service`` label: the primitive's name) for
        what the node runs on it: each peer's dial breaker and retry, the mempool's rate
        limiters, the HTTP servers' bulkheads. Gathered per scrape: peers come and go."""
        manager = ResilienceManager()
        transport = self.node.transport
        for peer, _ in links:
            manager.add_circuit_breaker(transport.breaker(peer))
            manager.add_retry(transport.retry(peer))
        for limiter in self.node.mempool.limiters:
            manager.add_keyed_rate_limiter(limiter)
        for bulkhead in self.bulkheads:
            manager.add_bulkhead(bulkhead)
        yield from manager.collector().collect()

    def collect(self) -> Iterator[Metric]:
        node = self.node
        replica, stats = node.replica, node.replica.stats
        yield _gauge("height", "Last committed height.", node.height)
        decided = CounterMetricFamily(
            "swarmguard_decisions", "Heights decided, by path.", labels=["path"]
        )
        decided.add_metric(["fast"], node.stats.fast)
        decided.add_metric(["slow"], node.stats.slow)
        decided.add_metric(["sync"], node.stats.synced)
        yield decided
        yield _counter("timeouts", "View timers that fired and signed nil.", stats.timeouts)
        yield _counter("failed_views", "Views left on nil certificates.", stats.failed_views)
        size = len(node.chain.validators(replica.height))
        yield _gauge("validators", "Validators in the current set.", size)
        yield _gauge(
            "validators_missing",
            "Estimated validators whose votes do not arrive (loss estimate x set size).",
            replica.health.loss * max(size - 1, 0),
        )
        yield _gauge("delta_seconds", "The view timer's delta.", replica.health.delta)
        mempool = node.mempool
        yield _gauge("mempool_transactions", "Transactions waiting.", len(mempool))
        yield _gauge("mempool_bytes", "Bytes waiting.", mempool.bytes)
        admissions = CounterMetricFamily(
            "swarmguard_mempool_admissions", "Admission outcomes.", labels=["outcome"]
        )
        for outcome, count in mempool.outcomes.items():
            admissions.add_metric([outcome.value], count)
        yield admissions
        transport = node.transport
        links = [(peer, transport.stats(peer)) for peer in transport.peers]
        connected = sum(1 for _, link in links if link.connected)
        yield _gauge("peers_connected", "Peers with a live connection.", connected)
        yield _per_peer("p2p_bytes_sent", "Bytes written to a peer.", links, "bytes_sent")
        yield _per_peer("p2p_bytes_received", "Bytes read from a peer.", links, "bytes_received")
        yield _per_peer("p2p_dropped_frames", "Frames dropped at a full queue.", links, "dropped")
        queue = GaugeMetricFamily(
            "swarmguard_p2p_queue_frames", "Frames queued for a peer.", labels=["peer"]
        )
        for peer, link in links:
            queue.add_metric([str(peer)], link.queued_frames)
        yield queue
        breakers = GaugeMetricFamily(
            "swarmguard_p2p_breaker_state",
            "The dial circuit breaker of a peer (resilience BreakerState: 0 closed, 1 open, "
            "2 half-open).",
            labels=["peer"],
        )
        for peer, _ in links:
            breakers.add_metric([str(peer)], transport.breaker(peer).state.value)
        yield breakers
        yield from self._resilience(links)
        syncer = node.syncer
        yield _gauge(
            "blocksync_running", "1 while the node catches up by block sync.", syncer.running
        )
        yield _counter("blocksync_runs", "Block sync runs started.", syncer.runs)
        yield _counter("blocksync_blocks", "Blocks executed by block sync.", syncer.synced_blocks)
        best = max(syncer.peer_heights.values(), default=0)
        yield _gauge("best_peer_height", "The highest height a peer reports.", best)
        yield _gauge("store_height", "Highest stored block.", node.store.height)
        yield _gauge("store_base", "Lowest stored block.", node.store.base)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"swarmguard_{name}", documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"swarmguard_{name}", documentation, value=value)


def _per_peer(
    name: str, documentation: str, links: Iterable[tuple[int, Any]], field: str
) -> CounterMetricFamily:
    family = CounterMetricFamily(f"swarmguard_{name}", documentation, labels=["peer"])
    for peer, link in links:
        family.add_metric([str(peer)], getattr(link, field))
    return family


class NodeMetrics:
    """The node's registry, the histograms it feeds, and the HTTP endpoints."""

    def __init__(self, node: Node, *, ready_after: float = 30.0) -> None:
        self.node = node
        self.ready_after = ready_after
        self.registry = CollectorRegistry()
        self.bulkheads: list[Bulkhead] = []
        """Bulkheads exported with the resilience series (``watch``)."""
        self.registry.register(_NodeCollector(node, self.bulkheads))
        self.latency = Histogram(
            "swarmguard_commit_latency_seconds",
            "From entering a height to deciding it, by path.",
            ["path"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.views = Histogram(
            "swarmguard_views_per_height",
            "Views a height took (1: decided in its first view).",
            buckets=(1, 2, 3, 4, 6, 8, 16),
            registry=self.registry,
        )
        self.last_tick = time.monotonic()
        self.last_commit = 0.0
        self._server = ThreadedWsgi("metrics", self._app())
        self.watch(self._server.bulkhead)

    def watch(self, bulkhead: Bulkhead) -> None:
        """Export ``bulkhead`` with the resilience series (the API's HTTP server's, say); it
        replaces one watched under the same name (a restarted server's)."""
        self.bulkheads[:] = [b for b in self.bulkheads if b.name != bulkhead.name]
        self.bulkheads.append(bulkhead)

    def observe(self, decision: Decide) -> None:
        self.latency.labels(decision.path).observe(decision.latency)
        self.views.observe(decision.certificate.view + 1)
        self.last_commit = time.monotonic()

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def ready(self) -> bool:
        node = self.node
        peers = node.transport.peers
        connected = sum(1 for peer in peers if node.transport.stats(peer).connected)
        quorum = (2 * (len(peers) + 1)) // 3  # others needed beside this node, equal powers
        recent = time.monotonic() - self.last_commit < self.ready_after
        return connected >= quorum and recent and not node.syncer.running

    def _app(self) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/healthz":
                alive = time.monotonic() - self.last_tick < 10.0
                start_response("200 OK" if alive else "503 Service Unavailable", [])
                return [b"ok\n" if alive else b"stalled\n"]
            if path == "/readyz":
                ready = self.ready()
                start_response("200 OK" if ready else "503 Service Unavailable", [])
                return [b"ready\n" if ready else b"not ready\n"]
            return metrics(environ, start_response)  # type: ignore[no-any-return]

        return app

    def serve(self, host: str, port: int) -> int:
        """Start the endpoints in a daemon thread; returns the bound port."""
        return self._server.serve(host, port)

    def close(self) -> None:
        self._server.close()
