"""The report's five resilience scenarios, run against simulated downstream services.

Each scenario returns a result record (so the integration tests assert exactly what the demo
shows) and prints a live, readable account while it runs. Downstream behaviour (failures,
latencies) is drawn from a seeded ``random.Random``; timings are real, so counts that depend on
scheduling may vary slightly between runs while the invariants hold every time.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from swarmguard.resilience import (
    BreakerState,
    BreakerStateChanged,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    Event,
    Policy,
    RateLimitedError,
    RateLimiter,
    Retry,
    RetryScheduled,
)

Printer = Callable[[str], None]


class DownstreamError(ConnectionError):
    """A simulated downstream failure."""


class Downstream:
    """A simulated service whose failure rate and latency can change while it runs."""

    def __init__(self, name: str, rng: random.Random, failure_rate: float, latency: float):
        self.name = name
        self.rng = rng
        self.failure_rate = failure_rate
        self.latency = latency
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(self.latency * (0.5 + self.rng.random()))
        if self.rng.random() < self.failure_rate:
            raise DownstreamError(f"{self.name} failed")
        return "ok"


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``samples`` (seconds)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


# ---------------------------------------------------------------------------- 1. cascading


@dataclass
class CascadeResult:
    """Scenario 1: how much load the breaker kept off a failing service, and its recovery."""

    requests: int
    reached_downstream: int
    rejected_fast: int
    transitions: list[str]
    final_state: str


async def cascading_failure(rng: random.Random, say: Printer) -> CascadeResult:
    """A dependency fails hard for a while; the breaker opens, sheds load, then recovers."""
    say("1. Cascading failure contained by the circuit breaker")
    transitions: list[str] = []
    start = time.monotonic()

    def on_event(event: Event) -> None:
        if isinstance(event, BreakerStateChanged):
            line = f"{event.source.name} -> {event.target.name}"
            transitions.append(line)
            say(f"   t={time.monotonic() - start:5.2f}s  breaker {line}")

    breaker = CircuitBreaker(
        "payments",
        failure_rate_threshold=0.5,
        minimum_calls=10,
        window=5.0,
        buckets=10,
        open_timeout=0.3,
        half_open_max_probes=2,
        half_open_successes=3,
        listeners=[on_event],
    )
    service = Downstream("payments", rng, failure_rate=0.0, latency=0.002)
    protected = breaker(service.__call__)
    rejected = 0
    requests = 0
    for phase, failure_rate, count in (
        ("healthy", 0.0, 40),
        ("outage", 1.0, 150),
        ("recovered", 0.0, 120),
    ):
        service.failure_rate = failure_rate
        say(f"   phase {phase}: downstream failure rate {failure_rate:.0%}")
        for _ in range(count):
            requests += 1
            try:
                await protected()
            except CircuitOpenError:
                rejected += 1
            except DownstreamError:
                pass
            await asyncio.sleep(0.004)
    say(
        f"   {requests} requests: {service.calls} reached the service, "
        f"{rejected} were rejected in microseconds while it was down"
    )
    return CascadeResult(requests, service.calls, rejected, transitions, breaker.state.name)


# ---------------------------------------------------------------------------- 2. burst


@dataclass
class BurstResult:
    """Scenario 2: a burst shaped into the configured rate."""

    requests: int
    admitted_at_once: int
    admitted_after_waiting: int
    rejected: int
    achieved_rate: float
    configured_rate: float


async def burst_traffic(rng: random.Random, say: Printer) -> BurstResult:
    """300 requests arrive at once; the limiter lets the burst through and paces the rest."""
    say("2. Burst traffic shaped by the rate limiter")
    limiter = RateLimiter("api", rate=200.0, burst=50)
    at_once = waited = rejected = 0
    start = time.monotonic()
    last_admitted = start

    async def request() -> None:
        nonlocal at_once, waited, rejected, last_admitted
        if limiter.try_acquire():
            at_once += 1
            return
        try:
            await limiter.acquire_async(1, timeout=0.5)
        except RateLimitedError:
            rejected += 1
            return
        waited += 1
        last_admitted = time.monotonic()

    await asyncio.gather(*(request() for _ in range(300)))
    paced_seconds = max(last_admitted - start, 1e-9)
    achieved = waited / paced_seconds
    say(
        f"   300 requests at once: {at_once} admitted from the burst, {waited} paced at "
        f"{achieved:.0f}/s (limit 200/s), {rejected} rejected (would have waited > 0.5 s)"
    )
    return BurstResult(300, at_once, waited, rejected, achieved, limiter.rate)


# ---------------------------------------------------------------------------- 3. bulkheads


@dataclass
class IsolationResult:
    """Scenario 3: a hung dependency cannot take capacity from a healthy one."""

    slow_completed: int
    slow_rejected: int
    fast_completed: int
    fast_rejected: int
    leaked_permits: int


async def resource_isolation(rng: random.Random, say: Printer) -> IsolationResult:
    """One dependency hangs; its bulkhead fills while the other's calls all go through."""
    say("3. Resource isolation by bulkheads")
    slow_bulkhead = Bulkhead("reports", max_concurrent=5, max_queue=5, queue_timeout=0.05)
    fast_bulkhead = Bulkhead("accounts", max_concurrent=40, max_queue=40, queue_timeout=0.5)
    slow = Downstream("reports", rng, failure_rate=0.0, latency=0.4)
    fast = Downstream("accounts", rng, failure_rate=0.0, latency=0.005)
    outcomes: Counter[str] = Counter()

    async def call(bulkhead: Bulkhead, service: Downstream, label: str) -> None:
        try:
            await bulkhead.call_async(service)
            outcomes[f"{label}_completed"] += 1
        except BulkheadFullError:
            outcomes[f"{label}_rejected"] += 1

    jobs = []
    for _ in range(60):
        jobs.append(call(slow_bulkhead, slow, "slow"))
        jobs.append(call(fast_bulkhead, fast, "fast"))
    await asyncio.gather(*jobs)
    leaked = slow_bulkhead.active + fast_bulkhead.active
    say(
        f"   hung 'reports': {outcomes['slow_completed']} completed, "
        f"{outcomes['slow_rejected']} rejected at its bulkhead (5 running + 5 queued)"
    )
    say(
        f"   healthy 'accounts': {outcomes['fast_completed']} completed, "
        f"{outcomes['fast_rejected']} rejected; permits leaked: {leaked}"
    )
    return IsolationResult(
        outcomes["slow_completed"],
        outcomes["slow_rejected"],
        outcomes["fast_completed"],
        outcomes["fast_rejected"],
        leaked,
    )


# ---------------------------------------------------------------------------- 4. retries


@dataclass
class RetryResult:
    """Scenario 4: transient failures absorbed by jittered retries."""

    requests: int
    succeeded_first_time: int
    succeeded_after_retry: int
    failed: int
    delays: list[float] = field(default_factory=list)


async def retries_with_jitter(rng: random.Random, say: Printer) -> RetryResult:
    """A service failing 30% of attempts; three attempts with +-25% jitter hide most of it."""
    say("4. Retries with exponential backoff and jitter")
    delays: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, RetryScheduled):
            delays.append(event.delay)

    retry = Retry(
        "flaky",
        attempts=3,
        initial_delay=0.01,
        multiplier=2.0,
        max_delay=0.1,
        on=DownstreamError,
        random_source=rng.random,
        listeners=[on_event],
    )
    service = Downstream("flaky", rng, failure_rate=0.3, latency=0.001)
    first = after = failed = 0
    for _ in range(200):
        before = service.calls
        try:
            await retry.call_async(service)
        except DownstreamError:
            failed += 1
            continue
        if service.calls - before == 1:
            first += 1
        else:
            after += 1
    first_delays = delays[: max(1, len(delays))]
    say(
        f"   200 requests, 30% of attempts failing: {first} succeeded at once, {after} after "
        f"retrying, {failed} failed after 3 attempts (expected ~{200 * 0.3**3:.0f})"
    )
    if first_delays:
        say(
            f"   retry delays spread {min(first_delays) * 1000:.1f}-"
            f"{max(first_delays) * 1000:.1f} ms (bases 10 and 20 ms, +-25% jitter)"
        )
    return RetryResult(200, first, after, failed, delays)


# ---------------------------------------------------------------------------- 5. combined


@dataclass
class LoadResult:
    """Scenario 5: every request ends in exactly one of five outcomes."""

    requests: int
    succeeded: int
    failed: int
    breaker_blocked: int
    rate_limited: int
    bulkhead_full: int
    p50_ms: float
    p99_ms: float
    leaked_permits: int
    breaker_state: str


async def combined_load(rng: random.Random, say: Printer, requests: int = 500) -> LoadResult:
    """500 concurrent requests, 20% failing, through breaker, limiter, bulkhead and retry."""
    say(f"5. Combined load test: {requests} concurrent requests, 20% downstream failures")
    breaker = CircuitBreaker("backend", failure_rate_threshold=0.5, minimum_calls=20)
    limiter = RateLimiter("backend", rate=2000.0, burst=250, max_wait=0.05)
    bulkhead = Bulkhead("backend", max_concurrent=60, max_queue=80, queue_timeout=0.05)
    retry = Retry(
        "backend", attempts=3, initial_delay=0.005, on=DownstreamError, random_source=rng.random
    )
    policy = Policy(
        "backend", retry=retry, circuit_breaker=breaker, rate_limiter=limiter, bulkhead=bulkhead
    )
    service = Downstream("backend", rng, failure_rate=0.2, latency=0.01)
    protected = policy(service.__call__)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []

    async def request() -> None:
        started = time.perf_counter()
        try:
            await protected()
            outcome = "succeeded"
        except CircuitOpenError:
            outcome = "breaker_blocked"
        except RateLimitedError:
            outcome = "rate_limited"
        except BulkheadFullError:
            outcome = "bulkhead_full"
        except DownstreamError:
            outcome = "failed"
        latencies.append(time.perf_counter() - started)
        outcomes[outcome] += 1
        done = sum(outcomes.values())
        if done % 100 == 0:
            say(
                f"   ... {done}/{requests} done: "
                + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            )

    await asyncio.gather(*(request() for _ in range(requests)))
    result = LoadResult(
        requests=requests,
        succeeded=outcomes["succeeded"],
        failed=outcomes["failed"],
        breaker_blocked=outcomes["breaker_blocked"],
        rate_limited=outcomes["rate_limited"],
        bulkhead_full=outcomes["bulkhead_full"],
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        leaked_permits=bulkhead.active + bulkhead.queued,
        breaker_state=breaker.state.name,
    )
    total = (
        result.succeeded
        + result.failed
        + result.breaker_blocked
        + result.rate_limited
        + result.bulkhead_full
    )
    say(f"   {'outcome':<16}{'count':>6}")
    for name in ("succeeded", "failed", "breaker_blocked", "rate_limited", "bulkhead_full"):
        say(f"   {name:<16}{getattr(result, name):>6}")
    say(f"   {'total':<16}{total:>6}  (of {requests})")
    mean_ms = statistics.fmean(latencies) * 1000
    say(
        f"   latency P50 {result.p50_ms:.1f} ms, P99 {result.p99_ms:.1f} ms, mean {mean_ms:.1f} ms;"
        f" leaked permits {result.leaked_permits}; breaker {result.breaker_state}"
    )
    return result


async def run_all(seed: int, say: Printer) -> dict[str, Any]:
    """All five scenarios, in order; returns their results as plain data."""
    rng = random.Random(seed)
    say(f"SwarmGuard resilience demo (seed {seed})\n")
    results: dict[str, Any] = {}
    for key, scenario in (
        ("cascading_failure", cascading_failure),
        ("burst_traffic", burst_traffic),
        ("resource_isolation", resource_isolation),
        ("retries_with_jitter", retries_with_jitter),
        ("combined_load", combined_load),
    ):
        result = await scenario(rng, say)
        results[key] = asdict(result)
        say("")
    return results


def main(seed: int = 7, printer: Printer = print) -> dict[str, Any]:
    """Run the demo (the ``swarmguard demo resilience`` command)."""
    return asyncio.run(run_all(seed, printer))


__all__ = [
    "BreakerState",
    "BurstResult",
    "CascadeResult",
    "IsolationResult",
    "LoadResult",
    "RetryResult",
    "burst_traffic",
    "cascading_failure",
    "combined_load",
    "main",
    "resource_isolation",
    "retries_with_jitter",
    "run_all",
]
