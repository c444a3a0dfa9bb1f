"""Prometheus metrics for everything a ResilienceManager holds.

A collector reads each primitive's counters when Prometheus scrapes, so metrics cost nothing on
the call path. Every series carries a ``service`` label with the primitive's name, as in the
report. Counters follow Prometheus naming: the family ``resilience_circuit_breaker_requests`` is
exposed as the sample ``resilience_circuit_breaker_requests_total``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .events import BreakerState

if TYPE_CHECKING:
    from .manager import ResilienceManager

__all__ = ["ResilienceCollector"]

_STATE_HELP = "Circuit breaker state: " + ", ".join(
    f"{state.value}={state.name.lower()}" for state in BreakerState
)


class ResilienceCollector(Collector):
    """Exposes a manager's breakers, limiters, bulkheads, retries and timeouts."""

    def __init__(self, manager: ResilienceManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        yield from self._breakers()
        yield from self._limiters()
        yield from self._bulkheads()
        yield from self._retries()
        yield from self._timeouts()

    def _breakers(self) -> Iterator[Metric]:
        label = ["service"]
        state = GaugeMetricFamily("resilience_circuit_breaker_state", _STATE_HELP, labels=label)
        requests = CounterMetricFamily(
            "resilience_circuit_breaker_requests",
            "Calls the breaker admitted and recorded (successes and failures).",
            labels=label,
        )
        failures = CounterMetricFamily(
            "resilience_circuit_breaker_failures", "Calls recorded as failures.", labels=label
        )
        slow = CounterMetricFamily(
            "resilience_circuit_breaker_slow_calls", "Calls recorded as slow.", labels=label
        )
        rejections = CounterMetricFamily(
            "resilience_circuit_breaker_rejections",
            "Calls rejected with CircuitOpenError.",
            labels=label,
        )
        window_rate = GaugeMetricFamily(
            "resilience_circuit_breaker_failure_rate",
            "Failure rate over the breaker's current rolling window.",
            labels=label,
        )
        for breaker in self._manager.circuit_breakers.values():
            stats = breaker.stats()
            labels = [breaker.name]
            state.add_metric(labels, breaker.state.value)
            requests.add_metric(labels, stats["requests_total"])
            failures.add_metric(labels, stats["failures_total"])
            slow.add_metric(labels, stats["slow_calls_total"])
            rejections.add_metric(labels, stats["rejections_total"])
            window_rate.add_metric(labels, stats["window_failure_rate"])
        yield from (state, requests, failures, slow, rejections, window_rate)

    def _limiters(self) -> Iterator[Metric]:
        label = ["service"]
        requests = CounterMetricFamily(
            "resilience_rate_limiter_requests",
            "Token requests (admitted and rejected).",
            labels=label,
        )
        rejections = CounterMetricFamily(
            "resilience_rate_limiter_rejections", "Token requests rejected.", labels=label
        )
        limiters = [
            *self._manager.rate_limiters.values(),
            *self._manager.keyed_rate_limiters.values(),
        ]
        for limiter in limiters:
            stats = limiter.stats()
            requests.add_metric([limiter.name], stats["requests_total"])
            rejections.add_metric([limiter.name], stats["rejections_total"])
        yield from (requests, rejections)

    def _bulkheads(self) -> Iterator[Metric]:
        label = ["service"]
        current = GaugeMetricFamily(
            "resilience_bulkhead_current", "Permits held right now.", labels=label
        )
        maximum = GaugeMetricFamily(
            "resilience_bulkhead_max_concurrent", "The bulkhead's concurrency limit.", labels=label
        )
        queued = GaugeMetricFamily(
            "resilience_bulkhead_queued", "Callers waiting for a permit.", labels=label
        )
        rejections = CounterMetricFamily(
            "resilience_bulkhead_rejections", "Calls rejected with BulkheadFullError.", labels=label
        )
        for bulkhead in self._manager.bulkheads.values():
            stats = bulkhead.stats()
            labels = [bulkhead.name]
            current.add_metric(labels, stats["active"])
            maximum.add_metric(labels, stats["max_concurrent"])
            queued.add_metric(labels, stats["queued"])
            rejections.add_metric(labels, stats["rejections_total"])
        yield from (current, maximum, queued, rejections)

    def _retries(self) -> Iterator[Metric]:
        label = ["service"]
        retries = CounterMetricFamily(
            "resilience_retry_retries", "Retries scheduled.", labels=label
        )
        gave_up = CounterMetricFamily(
            "resilience_retry_exhausted",
            "Calls that failed after retrying (or were refused a retry).",
            labels=label,
        )
        for retry in self._manager.retries.values():
            stats = retry.stats()
            retries.add_metric([retry.name], stats["retries_total"])
            gave_up.add_metric([retry.name], stats["exhausted_total"])
        yield from (retries, gave_up)

    def _timeouts(self) -> Iterator[Metric]:
        timeouts = CounterMetricFamily(
            "resilience_timeout_timeouts",
            "Calls abandoned at their deadline.",
            labels=["service"],
        )
        for timeout in self._manager.timeouts.values():
            timeouts.add_metric([timeout.name], timeout.stats()["timeouts_total"])
        yield timeouts
