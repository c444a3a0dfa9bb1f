"""Redis backends against a real redis-server on loopback: shared limits, a shared breaker,
several OS processes, and Redis going away."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from prometheus_client import CollectorRegistry, generate_latest

from swarmguard.resilience import (
    BreakerState,
    BreakerStateChanged,
    CircuitOpenError,
    ConfigError,
    Event,
    RateLimitedError,
    ResilienceManager,
)
from swarmguard.resilience.redis_backend import (
    RedisCircuitBreaker,
    RedisKeyedRateLimiter,
    RedisRateLimiter,
    redis_client,
)
from swarmguard.resilience.testing import ManualClock
from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis_client(redis_server.url, timeout=2.0)
    yield connection
    connection.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never interfere."""
    return f"test-{uuid.uuid4().hex}"


def dead_client() -> redis.Redis:
    """A client pointed at a loopback port nothing listens on: connection refused at once."""
    return redis_client(f"redis://127.0.0.1:{free_port()}/0")


# ---------------------------------------------------------------------------- rate limiter


def test_two_instances_share_one_bucket(client: redis.Redis, prefix: str) -> None:
    """Two limiters (as two processes would have) with one name admit ``burst`` in total."""
    first = RedisRateLimiter("api", rate=0.001, burst=10, client=client, key_prefix=prefix)
    second_client = redis.Redis(connection_pool=client.connection_pool)
    second = RedisRateLimiter("api", rate=0.001, burst=10, client=second_client, key_prefix=prefix)
    admitted = [first.try_acquire() for _ in range(7)] + [second.try_acquire() for _ in range(7)]
    assert sum(admitted) == 10
    assert admitted[:10] == [True] * 10
    assert second.stats()["rejections_total"] == 4


def test_acquire_reserves_and_waits_exactly(client: redis.Redis, prefix: str) -> None:
    """A blocking acquire reserves in Redis and sleeps (on the local clock) exactly the refill."""
    clock = ManualClock()
    limiter = RedisRateLimiter(
        "api", rate=10.0, burst=1, client=client, key_prefix=prefix, clock=clock
    )
    limiter.acquire()
    limiter.acquire()
    assert len(clock.sleeps) == 1
    assert 0.09 <= clock.sleeps[0] <= 0.1001
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire(1, timeout=0.01)
    assert caught.value.retry_after > 0.1


def test_async_client(redis_server: RedisServer, prefix: str) -> None:
    """With a redis.asyncio client the async methods use it directly."""

    async def scenario() -> list[bool]:
        async_client = redis.asyncio.Redis.from_url(redis_server.url)
        limiter = RedisRateLimiter(
            "api", rate=0.001, burst=2, async_client=async_client, key_prefix=prefix
        )
        results = []
        for _ in range(3):
            try:
                await limiter.acquire_async(1, timeout=0)
                results.append(True)
            except RateLimitedError:
                results.append(False)
        await async_client.aclose()
        return results

    assert asyncio.run(scenario()) == [True, True, False]


def test_keyed_buckets_expire_in_redis(client: redis.Redis, prefix: str) -> None:
    """Per-key buckets are separate, and each key's TTL is its refill time (bounded memory)."""
    limiter = RedisKeyedRateLimiter(
        "per-client", rate=10.0, burst=2, client=client, key_prefix=prefix
    )
    assert limiter.try_acquire("alice")
    assert limiter.try_acquire("alice")
    assert not limiter.try_acquire("alice")
    assert limiter.try_acquire("bob")
    ttl_ms = client.pttl(f"{prefix}:per-client:alice")
    assert 0 < ttl_ms <= 1200  # refills in 0.2 s, plus a second of slack


def test_processes_share_one_limit(redis_server: RedisServer, prefix: str) -> None:
    """Four OS processes hammering one bucket admit burst + rate x (time they ran), not 4x."""
    program = textwrap.dedent(
        f"""
        import time, redis
        from swarmguard.resilience.redis_backend import RedisRateLimiter
        client = redis.Redis.from_url({redis_server.url!r})
        limiter = RedisRateLimiter("shared", rate=50.0, burst=20, client=client,
                                   key_prefix={prefix!r})
        admitted = 0
        start = time.monotonic()
        end = start + 1.0
        while time.monotonic() < end:
            admitted += limiter.try_acquire()
        print(admitted, start, time.monotonic())
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    rows = [p.communicate(timeout=60)[0].split() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    total = sum(int(row[0]) for row in rows)
    # CLOCK_MONOTONIC is system-wide on Linux, so the processes' times are comparable.
    span = max(float(row[2]) for row in rows) - min(float(row[1]) for row in rows)
    assert span >= 1.0
    assert total >= 20 + 50 * 1.0 * 0.9, rows  # one process alone would get this much
    assert total <= 20 + 50 * span + 5, rows  # a shared bucket never gives more


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("local", [True, True, False]), ("allow", [True] * 3), ("reject", [False] * 3)],
)
def test_unreachable_redis_follows_on_unavailable(mode: str, expected: list[bool]) -> None:
    """With Redis unreachable: local falls back to an in-process bucket, allow admits,
    reject refuses; none raises."""
    limiter = RedisRateLimiter(
        "api",
        rate=0.001,
        burst=2,
        client=dead_client(),
        on_unavailable=mode,  # type: ignore[arg-type]
    )
    assert [limiter.try_acquire() for _ in range(3)] == expected
    assert limiter.stats()["redis_unavailable_total"] == 3
    if mode == "reject":
        with pytest.raises(RateLimitedError):
            limiter.acquire()


def test_redis_dying_mid_run_falls_back() -> None:
    """A server killed while in use: the limiter keeps answering from its local fallback."""
    server = RedisServer()
    client = redis_client(server.url)
    limiter = RedisRateLimiter("api", rate=1000.0, burst=1000, client=client)
    assert limiter.try_acquire()
    server.stop()
    results = [limiter.try_acquire() for _ in range(50)]
    assert all(results)
    assert limiter.stats()["redis_unavailable_total"] == 50
    client.close()


def test_invalid_configuration(client: redis.Redis) -> None:
    """Bad settings name their field, as for the in-process limiter."""
    with pytest.raises(ConfigError, match=r"RateLimiter\.rate"):
        RedisRateLimiter("api", rate=-1.0, client=client)
    with pytest.raises(ConfigError, match=r"RedisRateLimiter\.on_unavailable"):
        RedisRateLimiter("api", rate=1.0, client=client, on_unavailable="panic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"RedisRateLimiter\.client"):
        RedisRateLimiter("api", rate=1.0)


# ---------------------------------------------------------------------------- breaker


def shared_breaker(client: redis.Redis, prefix: str, **config: object) -> RedisCircuitBreaker:
    settings: dict[str, object] = {
        "minimum_calls": 4,
        "failure_rate_threshold": 0.5,
        "open_timeout": 0.3,
        "sync_interval": 0.0,
    }
    settings.update(config)
    return RedisCircuitBreaker("svc", client=client, key_prefix=prefix, **settings)  # type: ignore[arg-type]


def fail(breaker: RedisCircuitBreaker) -> None:
    with pytest.raises(ConnectionError), breaker.guard():
        raise ConnectionError


def test_failures_in_one_instance_open_the_other(client: redis.Redis, prefix: str) -> None:
    """Instance A's failures open the breaker; instance B, sharing it, rejects at once."""
    events: list[Event] = []
    first = shared_breaker(client, prefix)
    second = shared_breaker(client, prefix, listeners=[events.append])
    assert second.call(lambda: "ok") == "ok"
    for _ in range(3):
        fail(first)  # the third makes 3 failures in 4 shared calls: open
    assert first.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        second.call(lambda: "never")
    assert 0.0 < caught.value.remaining <= 0.3
    assert any(isinstance(e, BreakerStateChanged) and e.target is BreakerState.OPEN for e in events)


def test_half_open_probes_are_limited_across_instances(client: redis.Redis, prefix: str) -> None:
    """One probe slot is one slot for all instances; a successful probe closes it for all."""
    first = shared_breaker(client, prefix, half_open_max_probes=1)
    second = shared_breaker(client, prefix, half_open_max_probes=1)
    for _ in range(4):
        fail(first)
    time.sleep(0.35)  # the shared open timeout runs on Redis's clock
    probe = first.guard()
    probe.__enter__()
    with pytest.raises(CircuitOpenError) as caught, second.guard():
        pass
    assert caught.value.remaining == 0.0
    probe.__exit__(None, None, None)
    assert second.state is BreakerState.CLOSED
    assert second.call(lambda: 1) == 1


def test_closed_successes_are_batched(client: redis.Redis, prefix: str) -> None:
    """With sync_interval > 0, successes ride along with later round trips, and none are lost."""
    breaker = shared_breaker(client, prefix, sync_interval=60.0, minimum_calls=1000)
    for _ in range(100):
        breaker.call(lambda: None)
    fail(breaker)
    stats = breaker.stats()
    assert stats["requests_total"] == 101
    assert stats["failures_total"] == 1
    assert stats["window_calls"] == 101


def test_manual_control_is_shared(client: redis.Redis, prefix: str) -> None:
    """force_open in one instance rejects in another; reset closes both."""
    first = shared_breaker(client, prefix)
    second = shared_breaker(client, prefix)
    first.force_open()
    with pytest.raises(CircuitOpenError):
        second.call(lambda: None)
    first.reset()
    assert second.call(lambda: 5) == 5


def test_async_shared_breaker(redis_server: RedisServer, prefix: str) -> None:
    """The async path (redis.asyncio) opens and rejects like the sync one."""

    async def scenario() -> None:
        async_client = redis.asyncio.Redis.from_url(redis_server.url)
        breaker = RedisCircuitBreaker(
            "svc",
            async_client=async_client,
            key_prefix=prefix,
            minimum_calls=2,
            sync_interval=0.0,
        )

        @breaker
        async def down() -> None:
            raise ConnectionError

        for _ in range(2):
            with pytest.raises(ConnectionError):
                await down()
        with pytest.raises(CircuitOpenError):
            await down()
        await async_client.aclose()

    asyncio.run(scenario())


def test_processes_share_one_breaker(redis_server: RedisServer, prefix: str) -> None:
    """A breaker opened by one OS process rejects calls in another."""
    opener = textwrap.dedent(
        f"""
        import redis
        from swarmguard.resilience.redis_backend import RedisCircuitBreaker
        client = redis.Redis.from_url({redis_server.url!r})
        breaker = RedisCircuitBreaker("svc", client=client, key_prefix={prefix!r},
                                      minimum_calls=3, open_timeout=60, sync_interval=0)
        for _ in range(3):
            try:
                with breaker.guard():
                    raise ConnectionError
            except ConnectionError:
                pass
        print(breaker.state.name)
        """
    )
    checker = opener.replace("for _ in range(3):", "for _ in range(0):").replace(
        "print(breaker.state.name)",
        "try:\n    breaker.call(print, 'ran')\nexcept Exception as e:\n    print(type(e).__name__)",
    )
    first = subprocess.run(
        [sys.executable, "-c", opener], capture_output=True, text=True, timeout=60, check=True
    )
    second = subprocess.run(
        [sys.executable, "-c", checker], capture_output=True, text=True, timeout=60, check=True
    )
    assert first.stdout.strip() == "OPEN"
    assert second.stdout.strip() == "CircuitOpenError"


@pytest.mark.parametrize("mode", ["local", "allow", "reject"])
def test_breaker_with_unreachable_redis(mode: str) -> None:
    """Redis down: local uses an in-process breaker, allow admits, reject raises CircuitOpenError;
    nothing else escapes."""
    breaker = RedisCircuitBreaker(
        "svc",
        client=dead_client(),
        on_unavailable=mode,
        minimum_calls=3,  # type: ignore[arg-type]
    )
    if mode == "reject":
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        return
    assert breaker.call(lambda: 3) == 3
    for _ in range(2):
        fail(breaker)  # with the success: 2 failures in 3 calls opens a local breaker
    if mode == "local":
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        assert breaker.local.state is BreakerState.OPEN
    else:
        assert breaker.call(lambda: 4) == 4
    assert breaker.stats()["redis_unavailable_total"] >= 3


def test_manager_exports_shared_breakers_and_limiters(client: redis.Redis, prefix: str) -> None:
    """Redis-backed primitives register, compose and export metrics like in-process ones."""
    manager = ResilienceManager()
    breaker = manager.add_circuit_breaker(shared_breaker(client, prefix))
    limiter = manager.add_rate_limiter(
        RedisRateLimiter("shared_api", rate=100.0, client=client, key_prefix=prefix)
    )
    policy = manager.register_policy("p", circuit_breaker="svc", rate_limiter="shared_api")
    assert policy(lambda: 7)() == 7
    registry = CollectorRegistry()
    manager.register_metrics(registry)
    text = generate_latest(registry).decode()
    assert 'resilience_circuit_breaker_requests_total{service="svc"} 1.0' in text
    assert 'resilience_rate_limiter_requests_total{service="shared_api"} 1.0' in text
    assert breaker.stats()["requests_total"] == 1
    assert limiter.stats()["requests_total"] == 1
