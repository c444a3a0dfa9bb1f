"""The demo's five scenarios, run for real, with the invariants the report promises."""

from __future__ import annotations

import json
from typing import Any

import pytest

from swarmguard import cli


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    from swarmguard.demos import resilience_demo  # noqa: PLC0415

    lines: list[str] = []
    return resilience_demo.main(seed=11, printer=lines.append)


def test_breaker_contains_the_cascade_and_recovers(results: dict[str, Any]) -> None:
    """The breaker opens during the outage, sheds most of it, and closes after recovery."""
    cascade = results["cascading_failure"]
    assert "CLOSED -> OPEN" in cascade["transitions"]
    assert cascade["transitions"][-1] == "HALF_OPEN -> CLOSED"
    assert cascade["final_state"] == "CLOSED"
    assert cascade["rejected_fast"] > 50
    assert cascade["reached_downstream"] + cascade["rejected_fast"] == cascade["requests"]


def test_limiter_shapes_the_burst(results: dict[str, Any]) -> None:
    """Exactly the burst goes at once; the rest is paced at no more than the rate."""
    burst = results["burst_traffic"]
    assert burst["admitted_at_once"] == 50
    assert burst["admitted_at_once"] + burst["admitted_after_waiting"] + burst["rejected"] == 300
    assert burst["achieved_rate"] <= burst["configured_rate"] * 1.05
    assert burst["admitted_after_waiting"] >= 90  # ~0.5 s x 200/s


def test_bulkheads_isolate_the_healthy_service(results: dict[str, Any]) -> None:
    """A hung dependency's bulkhead fills; the healthy one completes every call; nothing leaks."""
    isolation = results["resource_isolation"]
    assert isolation["fast_completed"] == 60
    assert isolation["fast_rejected"] == 0
    assert isolation["slow_completed"] + isolation["slow_rejected"] == 60
    assert isolation["slow_rejected"] >= 50
    assert isolation["leaked_permits"] == 0


def test_retries_absorb_transient_failures(results: dict[str, Any]) -> None:
    """Outcomes add up, and every delay lies within +-25% of its 10 or 20 ms base."""
    retry = results["retries_with_jitter"]
    total = retry["succeeded_first_time"] + retry["succeeded_after_retry"] + retry["failed"]
    assert total == retry["requests"]
    assert retry["failed"] < 20
    assert all(0.0075 - 1e-9 <= d <= 0.025 + 1e-9 for d in retry["delays"])


def test_combined_load_counts_add_up(results: dict[str, Any]) -> None:
    """500 requests end in exactly one of five outcomes; no permit leaks; 20% < threshold."""
    load = results["combined_load"]
    outcomes = ("succeeded", "failed", "breaker_blocked", "rate_limited", "bulkhead_full")
    assert sum(load[name] for name in outcomes) == load["requests"] == 500
    assert load["succeeded"] > 100
    assert load["leaked_permits"] == 0
    assert load["breaker_state"] == "CLOSED"
    assert 0.0 <= load["p50_ms"] <= load["p99_ms"]


def test_cli_runs_the_demo_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`swarmguard demo resilience --json` exits 0 and ends with the results as JSON."""
    assert cli.main(["demo", "resilience", "--seed", "3", "--json"]) == 0
    output = capsys.readouterr().out
    assert "Combined load test" in output
    document = json.loads(output[output.index("{\n") :])
    assert document["combined_load"]["requests"] == 500
