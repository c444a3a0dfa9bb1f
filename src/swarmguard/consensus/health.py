"""Network-health monitor: message latency and loss, per-validator faults, and the view timer Δ.

Δ only ever affects liveness: a Δ too small makes views fail, a Δ too large makes a dead leader
cost more. Safety never reads it. The estimator is RFC 6298's (TCP's retransmission timer) applied
to one-way message delays: a smoothed delay ``srtt`` and its mean deviation ``rttvar``, with
``Δ = clamp(srtt + 4 * rttvar, floor, ceiling)``: the configured bounds keep a burst of
outliers (a partition healing, a peer releasing withheld messages) from stretching the timers,
and the re-send timer with them, by more than the operator allows. After consecutive failed
views Δ grows geometrically past the ceiling: a Δ capped below the real latency would make every
view fail. ``delta_max`` is only the named limit that keeps that number finite.

Sans-IO: samples and view outcomes come in from the caller; nothing here reads a clock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["Fault", "HealthConfig", "HealthMonitor"]


class Fault(Enum):
    """Misbehaviour the core can attribute to one validator."""

    EQUIVOCATION = "equivocation"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_PROPOSAL = "invalid_proposal"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Bounds of the monitor (seconds)."""

    delta_floor: float = 0.05
    """Δ never drops below this, however fast the network looks."""
    delta_initial: float = 0.5
    """Δ before the first latency sample."""
    delta_ceiling: float = 2.0
    """The measured Δ never exceeds this (failed views still grow it, up to ``delta_max``)."""
    delta_max: float = 60.0
    """The named limit on Δ after any number of failed views."""
    growth: float = 1.5
    """Δ's factor per consecutive failed view."""
    loss_alpha: float = 0.125
    """Weight of the newest view in the loss estimate."""

    def __post_init__(self) -> None:
        if not 0 < self.delta_floor <= self.delta_initial <= self.delta_ceiling <= self.delta_max:
            raise ValueError("need 0 < delta_floor <= delta_initial <= delta_ceiling <= delta_max")
        if self.growth < 1:
            raise ValueError("growth must be >= 1")
        if not 0 < self.loss_alpha <= 1:
            raise ValueError("loss_alpha must be in (0, 1]")


@dataclass(slots=True)
class HealthMonitor:
    """Latency, loss and fault accounting for one replica, and the Δ it implies."""

    config: HealthConfig = field(default_factory=HealthConfig)
    srtt: float | None = None
    rttvar: float = 0.0
    loss: float = 0.0
    failed_views: int = 0
    faults: Counter[tuple[int, Fault]] = field(default_factory=Counter)

    def observe_delay(self, seconds: float) -> None:
        """A message's one-way delay (sent-at stamp to arrival, both from the caller's clock)."""
        if seconds < 0:
            seconds = 0.0  # clock skew between replicas: count it as instantaneous
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - seconds)
            self.srtt = 0.875 * self.srtt + 0.125 * seconds

    def observe_view(self, expected: int, received: int) -> None:
        """Messages a finished view should have brought and how many did (the loss estimate)."""
        if expected <= 0 or not received >= 0:
            raise ValueError("expected must be positive and received non-negative")
        lost = max(0, expected - received) / expected
        self.loss += self.config.loss_alpha * (lost - self.loss)

    def view_failed(self) -> None:
        """A view ended without a decision (timeout or ⊥ certificates): Δ grows."""
        self.failed_views += 1

    def decided(self) -> None:
        """A height was decided: Δ returns to the measured value."""
        self.failed_views = 0

    def record_fault(self, validator: int, fault: Fault) -> None:
        self.faults[validator, fault] += 1

    def fault_count(self, validator: int) -> int:
        """All faults attributed to ``validator`` (reputation and metrics read this)."""
        return sum(n for (index, _), n in self.faults.items() if index == validator)

    @property
    def delta(self) -> float:
        """Δ for the next view timers (T = 2Δ for Vote(⊥), 3Δ for Final(⊥))."""
        config = self.config
        if self.srtt is None:
            measured = config.delta_initial
        else:
            estimate = self.srtt + 4 * self.rttvar
            measured = min(max(config.delta_floor, estimate), config.delta_ceiling)
        # Grow by repeated multiplication up to the limit, so a long outage cannot overflow.
        delta = measured
        for _ in range(self.failed_views):
            if delta >= config.delta_max:
                break
            delta *= config.growth
        return min(delta, config.delta_max)
