"""Composition order, the manager's registry and config, JSON stats and Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from swarmguard.resilience import (
    BreakerState,
    Bulkhead,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    Fallback,
    Policy,
    RateLimitedError,
    RateLimiter,
    ResilienceManager,
    Retry,
    RetryBudget,
    Timeout,
)
from swarmguard.resilience.testing import ManualClock

CONFIG = """
[circuit_breakers.validator_rpc]
failure_rate_threshold = 0.3
window = 60
minimum_calls = 5
open_timeout = 10

[rate_limiters.block_proposals]
rate = 10.0
burst = 100

[keyed_rate_limiters.per_client]
rate = 1.0
burst = 5
max_keys = 1000

[bulkheads.block_verification]
max_concurrent = 50
max_queue = 20
queue_timeout = 0.5

[retries.rpc]
attempts = 3
initial_delay = 0.05
budget = { ratio = 0.2, min_retries_per_second = 5 }

[policies.rpc]
circuit_breaker = "validator_rpc"
rate_limiter = "block_proposals"
bulkhead = "block_verification"
retry = "rpc"
timeout = 2.0
"""


def test_layers_run_in_the_documented_order(clock: ManualClock) -> None:
    """fallback -> retry -> breaker -> limiter -> bulkhead -> timeout, outermost first."""
    policy = Policy(
        "p",
        timeout=Timeout(1.0, clock=clock),
        bulkhead=Bulkhead("b", max_concurrent=1, clock=clock),
        rate_limiter=RateLimiter("r", rate=1.0, clock=clock),
        circuit_breaker=CircuitBreaker("c", clock=clock),
        retry=Retry("t", clock=clock),
        fallback=Fallback(lambda exc: None),
    )
    kinds = [type(layer).__name__ for layer in policy.layers()]
    assert kinds == ["Fallback", "Retry", "CircuitBreaker", "RateLimiter", "Bulkhead", "Timeout"]
    assert "Fallback(fallback) -> Retry(t)" in repr(policy)


def test_retries_pass_through_breaker_and_limiter(clock: ManualClock) -> None:
    """Each attempt is counted by the breaker and takes a token; an open breaker ends retrying."""
    breaker = CircuitBreaker("c", minimum_calls=4, failure_rate_threshold=0.5, clock=clock)
    limiter = RateLimiter("r", rate=1000.0, burst=1000, clock=clock)
    bulkhead = Bulkhead("b", max_concurrent=1, clock=clock)
    policy = Policy(
        "p",
        retry=Retry("t", attempts=10, initial_delay=0.0, max_delay=0.0, clock=clock),
        circuit_breaker=breaker,
        rate_limiter=limiter,
        bulkhead=bulkhead,
    )
    attempts = 0

    @policy
    def down() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError

    with pytest.raises(CircuitOpenError):
        down()
    assert attempts == 4  # the 4th failure opened the breaker; the 5th attempt was rejected
    assert breaker.state is BreakerState.OPEN
    assert limiter.stats()["requests_total"] == 4  # the rejected attempt spent no token
    assert bulkhead.active == 0


def test_rate_limited_call_takes_no_bulkhead_permit(clock: ManualClock) -> None:
    """A call the limiter rejects never reaches the bulkhead."""
    bulkhead = Bulkhead("b", max_concurrent=5, clock=clock)
    policy = Policy(
        "p", rate_limiter=RateLimiter("r", rate=1.0, burst=1, clock=clock), bulkhead=bulkhead
    )
    wrapped = policy(lambda: "ok")
    assert wrapped() == "ok"
    with pytest.raises(RateLimitedError):
        wrapped()
    assert bulkhead.stats()["admitted_total"] == 1


def test_async_policy(clock: ManualClock) -> None:
    """A composed policy wraps coroutines too, and call_async works without decorating."""
    policy = Policy(
        "p",
        retry=Retry("t", attempts=3, clock=clock),
        circuit_breaker=CircuitBreaker("c", clock=clock),
        bulkhead=Bulkhead("b", max_concurrent=2, clock=clock),
    )
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise ConnectionError
        return "ok"

    assert asyncio.run(policy.call_async(flaky)) == "ok"
    assert calls == 2


def test_manager_from_toml(tmp_path: Path, clock: ManualClock) -> None:
    """A TOML file builds every primitive and the composed policy, with the clock injected."""
    path = tmp_path / "resilience.toml"
    path.write_text(CONFIG)
    manager = ResilienceManager.from_toml(path, clock=clock)
    breaker = manager.circuit_breakers["validator_rpc"]
    assert breaker.failure_rate_threshold == 0.3
    assert breaker.clock is clock
    assert manager.rate_limiters["block_proposals"].burst == 100
    assert manager.keyed_rate_limiters["per_client"].max_keys == 1000
    assert manager.bulkheads["block_verification"].max_queue == 20
    retry = manager.retries["rpc"]
    assert isinstance(retry.budget, RetryBudget)
    policy = manager.policies["rpc"]
    assert policy.circuit_breaker is breaker
    assert policy.timeout is not None
    assert policy.timeout.timeout == 2.0
    assert policy(lambda: 42)() == 42


def test_manager_in_code() -> None:
    """The report's registration calls work in code, and duplicates are refused."""
    manager = ResilienceManager()
    manager.register_circuit_breaker("validator_rpc", failure_rate_threshold=0.3)
    manager.register_rate_limiter("block_proposals", rate=10.0, burst=100)
    manager.register_bulkhead("block_verification", max_concurrent=50, max_queue=20)
    manager.register_retry("rpc", attempts=3)
    policy = manager.register_policy(
        "rpc",
        circuit_breaker="validator_rpc",
        rate_limiter="block_proposals",
        bulkhead="block_verification",
        retry="rpc",
    )
    assert policy.rate_limiter is manager.rate_limiters["block_proposals"]
    with pytest.raises(ConfigError, match=r"circuit_breakers\.validator_rpc"):
        manager.register_circuit_breaker("validator_rpc")
    with pytest.raises(ConfigError, match="no bulkhead named 'missing'"):
        manager.register_policy("bad", bulkhead="missing")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"breakers": {}}, "unknown section"),
        (
            {"circuit_breakers": {"x": {"failure_rate_threshold": 2.0}}},
            r"circuit_breakers\.x: CircuitBreaker\.failure_rate_threshold",
        ),
        ({"circuit_breakers": {"x": {"failure_treshold": 0.5}}}, r"circuit_breakers\.x"),
        ({"rate_limiters": {"x": {"rate": -1}}}, r"rate_limiters\.x: RateLimiter\.rate"),
        ({"bulkheads": {"x": {"max_concurrent": 0}}}, r"Bulkhead\.max_concurrent"),
        ({"retries": {"x": {"budget": {"ratio": 5}}}}, r"RetryBudget\.ratio"),
        ({"policies": {"p": {"breaker": "x"}}}, r"policies\.p\.breaker"),
        ({"policies": {"p": {"retry": "nope"}}}, "no retry named 'nope'"),
        ({"circuit_breakers": {"x": 5}}, r"circuit_breakers\.x"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config: dict[str, object], message: str) -> None:
    """Every config error names where it is."""
    with pytest.raises(ConfigError, match=message):
        ResilienceManager.from_config(config)


def test_bad_toml_is_refused(tmp_path: Path) -> None:
    """A file that is not TOML gives a ConfigError naming the file."""
    path = tmp_path / "bad.toml"
    path.write_text("[circuit_breakers\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ResilienceManager.from_toml(path)


def test_stats_json_aggregates_everything(clock: ManualClock) -> None:
    """stats_json() is one JSON document with every primitive's counters."""
    manager = ResilienceManager.from_config(
        {
            "circuit_breakers": {"a": {}},
            "rate_limiters": {"r": {"rate": 5.0}},
            "bulkheads": {"b": {"max_concurrent": 3}},
        },
        clock=clock,
    )
    manager.rate_limiters["r"].try_acquire()
    document = json.loads(manager.stats_json())
    assert document["circuit_breakers"]["a"]["state"] == "closed"
    assert document["rate_limiters"]["r"]["requests_total"] == 1
    assert document["bulkheads"]["b"]["max_concurrent"] == 3


def test_prometheus_series(clock: ManualClock) -> None:
    """The report's series are exposed, labelled by service, with live values."""
    manager = ResilienceManager(clock=clock)
    breaker = manager.register_circuit_breaker("validator_rpc", minimum_calls=2)
    limiter = manager.register_rate_limiter("block_proposals", rate=1.0, burst=1)
    bulkhead = manager.register_bulkhead("block_verification", max_concurrent=7)
    manager.register_retry("rpc")
    manager.register_timeout("rpc_call", 1.0)
    registry = CollectorRegistry()
    manager.register_metrics(registry)

    for _ in range(2):
        with pytest.raises(ConnectionError), breaker.guard():
            raise ConnectionError
    limiter.try_acquire()
    limiter.try_acquire()
    bulkhead.acquire()

    text = generate_latest(registry).decode()
    expected = [
        'resilience_circuit_breaker_state{service="validator_rpc"} 1.0',
        'resilience_circuit_breaker_requests_total{service="validator_rpc"} 2.0',
        'resilience_circuit_breaker_failures_total{service="validator_rpc"} 2.0',
        'resilience_rate_limiter_requests_total{service="block_proposals"} 2.0',
        'resilience_rate_limiter_rejections_total{service="block_proposals"} 1.0',
        'resilience_bulkhead_current{service="block_verification"} 1.0',
        'resilience_bulkhead_max_concurrent{service="block_verification"} 7.0',
        'resilience_retry_retries_total{service="rpc"} 0.0',
        'resilience_timeout_timeouts_total{service="rpc_call"} 0.0',
    ]
    for line in expected:
        assert line in text, line
    bulkhead.release()


def test_the_guides_toml_example_builds(clock: ManualClock) -> None:
    """The TOML example in docs/resilience.md is valid configuration."""
    guide = (Path(__file__).parents[2] / "docs" / "resilience.md").read_text()
    block = guide.split("```toml\n", 1)[1].split("```", 1)[0]
    manager = ResilienceManager.from_config(tomllib.loads(block), clock=clock)
    policy = manager.policies["rpc"]
    assert [type(layer).__name__ for layer in policy.layers()] == [
        "Retry",
        "CircuitBreaker",
        "RateLimiter",
        "Bulkhead",
        "Timeout",
    ]
    assert manager.timeouts["rpc_call"].timeout == 2.0
