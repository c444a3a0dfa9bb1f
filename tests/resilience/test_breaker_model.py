"""The circuit breaker against an independent reference model of its documented rules.

Goal: catch any divergence between the rules in breaker.py's docstring and the optimised
implementation (ring of time buckets, lock-free success counters, cached fast paths).
Method: Hypothesis drives the real breaker and a naive model (a plain list of timestamped calls)
through random sequences of calls, overlapping guarded blocks (so probes overlap and outlive
their half-open period), slow calls, ignored errors and clock jumps, and compares the state,
the window's counts and every admit/reject decision after each step. Times are multiples of
1/4 s and a bucket is 1 s wide, so bucket arithmetic is exact in binary floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swarmguard.resilience import BreakerState, CircuitBreaker, CircuitOpenError
from swarmguard.resilience.breaker import _BreakerGuard
from swarmguard.resilience.testing import ManualClock

WINDOW = 8.0
BUCKETS = 8
SLOW = 1.0
OPEN_TIMEOUT = 3.0


class Boom(Exception):
    """A failure of the protected call."""


class Ignored(Exception):
    """An error the breaker is told to ignore."""


@dataclass
class Model:
    """The rules, written as plainly as possible."""

    threshold: float
    slow_threshold: float
    minimum: int
    max_probes: int
    successes_needed: int
    state: str = "closed"
    open_until: float = 0.0
    generation: int = 0
    probes: int = 0
    probe_successes: int = 0
    calls: list[tuple[int, bool, bool]] = field(default_factory=list)  # (epoch, failed, slow)

    @staticmethod
    def epoch(now: float) -> int:
        return math.floor(now * BUCKETS / WINDOW)

    def window(self, now: float) -> list[tuple[int, bool, bool]]:
        current = self.epoch(now)
        return [c for c in self.calls if current - BUCKETS < c[0] <= current]

    def observe(self, now: float) -> str:
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
            self.generation += 1
            self.probes = 0
            self.probe_successes = 0
        return self.state

    def admit(self, now: float) -> tuple[str, int] | float:
        """("closed", 0) / ("probe", generation), or the remaining time of a rejection."""
        state = self.observe(now)
        if state == "closed":
            return ("closed", 0)
        if state == "half_open":
            if self.probes >= self.max_probes:
                return 0.0
            self.probes += 1
            return ("probe", self.generation)
        return self.open_until - now

    def open(self, now: float) -> None:
        self.state = "open"
        self.open_until = now + OPEN_TIMEOUT

    def record(self, admission: tuple[str, int], start: float, end: float, outcome: str) -> None:
        slow = outcome != "ignored" and end - start >= SLOW
        failed = outcome == "failure"
        kind, generation = admission
        if kind == "probe" and self.state == "half_open" and generation == self.generation:
            self.probes -= 1
            if outcome != "ignored":
                if failed or slow:
                    self.open(end)
                else:
                    self.probe_successes += 1
                    if self.probe_successes >= self.successes_needed:
                        self.state = "closed"
                        self.calls = []
        if outcome == "ignored":
            return
        self.calls.append((self.epoch(end), failed, slow))
        if kind == "closed" and self.state == "closed" and (failed or slow):
            window = self.window(end)
            calls = len(window)
            failures = sum(1 for c in window if c[1])
            slows = sum(1 for c in window if c[2])
            if calls >= self.minimum and (
                failures >= self.threshold * calls or slows >= self.slow_threshold * calls
            ):
                self.open(end)


OUTCOMES = st.sampled_from(["success", "failure", "slow", "ignored"])


class BreakerMachine(RuleBasedStateMachine):
    """Random schedules against the real breaker and the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(start=1024.0)
        self.model: Model | None = None
        self.breaker: CircuitBreaker | None = None
        self.open_guards: list[tuple[_BreakerGuard, tuple[str, int], float]] = []

    @precondition(lambda self: self.breaker is None)
    @rule(
        threshold=st.sampled_from([0.25, 0.5, 1.0]),
        slow_threshold=st.sampled_from([0.5, 1.0]),
        minimum=st.integers(1, 6),
        max_probes=st.integers(1, 3),
        successes_needed=st.integers(1, 3),
    )
    def create(
        self,
        threshold: float,
        slow_threshold: float,
        minimum: int,
        max_probes: int,
        successes_needed: int,
    ) -> None:
        self.breaker = CircuitBreaker(
            "model",
            failure_rate_threshold=threshold,
            window=WINDOW,
            buckets=BUCKETS,
            minimum_calls=minimum,
            slow_call_duration=SLOW,
            slow_call_rate_threshold=slow_threshold,
            open_timeout=OPEN_TIMEOUT,
            half_open_max_probes=max_probes,
            half_open_successes=successes_needed,
            ignore=Ignored,
            clock=self.clock,
        )
        self.model = Model(threshold, slow_threshold, minimum, max_probes, successes_needed)

    @precondition(lambda self: self.breaker is not None)
    @rule(quarters=st.integers(0, 20))
    def advance(self, quarters: int) -> None:
        self.clock.advance(quarters / 4)

    def _run_body(self, outcome: str) -> None:
        if outcome == "slow":
            self.clock.advance(SLOW)
        if outcome == "failure":
            raise Boom
        if outcome == "ignored":
            raise Ignored

    @precondition(lambda self: self.breaker is not None)
    @rule(outcome=OUTCOMES)
    def call(self, outcome: str) -> None:
        assert self.breaker is not None
        assert self.model is not None
        start = self.clock.now()
        expected = self.model.admit(start)

        @self.breaker
        def body() -> None:
            self._run_body(outcome)

        try:
            body()
        except CircuitOpenError as error:
            assert isinstance(expected, float), f"rejected, model admitted as {expected}"
            assert error.remaining == expected
            return
        except (Boom, Ignored):
            pass
        assert not isinstance(expected, float), f"admitted, model rejected ({expected})"
        self.model.record(expected, start, self.clock.now(), outcome)

    @precondition(lambda self: self.breaker is not None and len(self.open_guards) < 4)
    @rule()
    def enter_guard(self) -> None:
        assert self.breaker is not None
        assert self.model is not None
        start = self.clock.now()
        expected = self.model.admit(start)
        guard = self.breaker.guard()
        try:
            guard.__enter__()
        except CircuitOpenError as error:
            assert isinstance(expected, float)
            assert error.remaining == expected
            return
        assert not isinstance(expected, float)
        self.open_guards.append((guard, expected, start))

    @precondition(lambda self: bool(self.open_guards))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "ignored"]))
    def exit_guard(self, data: st.DataObject, outcome: str) -> None:
        assert self.model is not None
        index = data.draw(st.integers(0, len(self.open_guards) - 1))
        guard, admission, start = self.open_guards.pop(index)
        error = {"success": None, "failure": Boom(), "ignored": Ignored()}[outcome]
        guard.__exit__(type(error) if error else None, error, None)
        self.model.record(admission, start, self.clock.now(), outcome)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if self.breaker is None or self.model is None:
            return
        now = self.clock.now()
        expected = self.model.observe(now)
        assert self.breaker.state.name.lower() == expected
        stats = self.breaker.stats()
        window = self.model.window(now)
        assert stats["window_calls"] == len(window)
        assert stats["window_failures"] == sum(1 for c in window if c[1])
        assert stats["window_slow_calls"] == sum(1 for c in window if c[2])
        if expected == "half_open":
            assert self.breaker._half_open_probes == self.model.probes


TestBreakerAgainstModel = BreakerMachine.TestCase
TestBreakerAgainstModel.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


def test_model_states_cover_the_machine() -> None:
    """The model names every automatic state the breaker can reach."""
    automatic = {BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN}
    assert {s.name.lower() for s in automatic} == {"closed", "open", "half_open"}
