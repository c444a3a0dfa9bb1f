"""The network-health monitor: Δ follows measured delay, grows after failures, stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard.consensus.health import Fault, HealthConfig, HealthMonitor


def test_initial_delta_before_any_sample() -> None:
    assert HealthMonitor().delta == HealthConfig().delta_initial


def test_delta_tracks_a_steady_delay() -> None:
    monitor = HealthMonitor()
    for _ in range(200):
        monitor.observe_delay(0.025)
    assert monitor.delta == pytest.approx(0.05, abs=1e-6)  # srtt 25 ms, deviation ~0: the floor
    for _ in range(200):
        monitor.observe_delay(0.2)
    assert monitor.delta == pytest.approx(0.2, rel=0.01)


def test_jitter_widens_delta() -> None:
    steady, jittery = HealthMonitor(), HealthMonitor()
    for i in range(400):
        steady.observe_delay(0.1)
        jittery.observe_delay(0.05 if i % 2 else 0.15)
    assert jittery.delta > steady.delta * 1.5


def test_failed_views_grow_delta_past_the_measured_value_until_a_decision() -> None:
    monitor = HealthMonitor()
    for _ in range(100):
        monitor.observe_delay(0.1)
    measured = monitor.delta
    for failures in range(1, 6):
        monitor.view_failed()
        assert monitor.delta == pytest.approx(measured * 1.5**failures)
    monitor.decided()
    assert monitor.delta == pytest.approx(measured)


def test_outliers_cannot_stretch_the_measured_delta_past_its_ceiling() -> None:
    monitor = HealthMonitor()
    for _ in range(50):
        monitor.observe_delay(0.02)
    monitor.observe_delay(30.0)  # a withheld message released long after it was sent
    assert monitor.delta == HealthConfig().delta_ceiling
    for _ in range(60):
        monitor.observe_delay(0.02)  # the estimate forgets it within a few dozen samples
    assert monitor.delta < 0.1
    monitor.observe_delay(30.0)
    monitor.view_failed()  # failed views still grow Δ past the ceiling
    assert monitor.delta == pytest.approx(HealthConfig().delta_ceiling * 1.5)


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError):
        HealthConfig(delta_initial=3.0, delta_ceiling=2.0)


def test_delta_is_bounded_after_any_outage() -> None:
    monitor = HealthMonitor()
    for _ in range(10_000):
        monitor.view_failed()
    assert monitor.delta == HealthConfig().delta_max
    monitor.observe_delay(1e9)
    assert monitor.delta == HealthConfig().delta_max


def test_negative_delay_from_skew_is_not_a_crash() -> None:
    monitor = HealthMonitor()
    monitor.observe_delay(-3.0)
    assert monitor.delta == HealthConfig().delta_floor


def test_loss_estimate() -> None:
    monitor = HealthMonitor()
    for _ in range(100):
        monitor.observe_view(expected=10, received=7)
    assert monitor.loss == pytest.approx(0.3, abs=1e-3)
    monitor.observe_view(expected=10, received=12)  # duplicates do not make loss negative
    assert 0 <= monitor.loss < 0.3
    with pytest.raises(ValueError):
        monitor.observe_view(expected=0, received=0)


def test_faults_are_counted_per_validator() -> None:
    monitor = HealthMonitor()
    monitor.record_fault(2, Fault.EQUIVOCATION)
    monitor.record_fault(2, Fault.INVALID_SIGNATURE)
    monitor.record_fault(5, Fault.INVALID_PROPOSAL)
    assert monitor.fault_count(2) == 2
    assert monitor.fault_count(5) == 1
    assert monitor.fault_count(0) == 0


def test_config_is_checked() -> None:
    for bad in (
        {"delta_floor": 0.0},
        {"delta_floor": 1.0, "delta_initial": 0.5},
        {"delta_max": 0.1},
        {"growth": 0.9},
        {"loss_alpha": 0.0},
    ):
        with pytest.raises(ValueError):
            HealthConfig(**bad)  # type: ignore[arg-type]


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=50), st.integers(0, 500))
def test_delta_always_within_bounds(delays: list[float], failures: int) -> None:
    monitor = HealthMonitor()
    for delay in delays:
        monitor.observe_delay(delay)
    for _ in range(failures):
        monitor.view_failed()
    config = monitor.config
    assert config.delta_floor <= monitor.delta <= config.delta_max
