"""Retry budget: retries limited to a fraction of recent calls.

Per-call retry limits cannot stop a storm: with 3 attempts per call, an outage triples the load on
the failing service exactly when it can least take it. A budget shared by all calls caps the
*ratio* instead. Over a rolling window of ``window`` seconds::

    retries allowed = min_retries_per_second * window + ratio * calls in the window

(keep in sync with docs/resilience.md, "Retry budget"). The floor lets a quiet client still retry;
the ratio bounds the extra load to ``ratio`` (0.2 = at most 20% more requests) however bad the
outage. The idea and the defaults follow Finagle's and Envoy's retry budgets.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock

__all__ = ["RetryBudget"]


class RetryBudget:
    """A thread-safe budget shared by every call of one (or several) retry policies.

    Args:
        ratio: Retries allowed per call in the window, in [0, 1].
        min_retries_per_second: Retries always allowed per second, whatever the traffic.
        window: Length of the rolling window in seconds.
        buckets: Number of time buckets the window is split into.
        clock: Time source; inject a ManualClock in tests.
    """

    __slots__ = (
        "_bucket_calls",
        "_bucket_epoch",
        "_bucket_retries",
        "_buckets",
        "_current_epoch",
        "_denied",
        "_inverse_width",
        "_lock",
        "_now",
        "min_retries_per_second",
        "ratio",
        "window",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries_per_second: float = 10.0,
        window: v.Seconds = 10.0,
        buckets: int = 10,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.ratio = v.unit_interval("RetryBudget.ratio", ratio)
        self.min_retries_per_second = v.non_negative(
            "RetryBudget.min_retries_per_second", min_retries_per_second
        )
        self.window = v.positive("RetryBudget.window", window)
        self._buckets = v.count("RetryBudget.buckets", buckets, 1, 1000)
        self._inverse_width = self._buckets / self.window
        self._now = clock.now
        self._lock = threading.Lock()
        self._bucket_epoch = [-1] * self._buckets
        self._bucket_calls = [0] * self._buckets
        self._bucket_retries = [0] * self._buckets
        self._current_epoch = -1
        self._denied = 0

    def _slot(self) -> tuple[int, int]:
        """The current bucket's slot and epoch, clearing it if it is reused (lock held)."""
        epoch = int(self._now() * self._inverse_width)
        slot = epoch % self._buckets
        if self._bucket_epoch[slot] != epoch:
            self._bucket_epoch[slot] = epoch
            self._bucket_calls[slot] = 0
            self._bucket_retries[slot] = 0
        return slot, epoch

    def deposit(self) -> None:
        """Count one call (a first attempt)."""
        with self._lock:
            slot, _ = self._slot()
            self._bucket_calls[slot] += 1

    def try_withdraw(self) -> bool:
        """Spend one retry if the budget allows it."""
        with self._lock:
            slot, epoch = self._slot()
            calls = retries = 0
            for index in range(self._buckets):
                if epoch - self._buckets < self._bucket_epoch[index] <= epoch:
                    calls += self._bucket_calls[index]
                    retries += self._bucket_retries[index]
            allowed = self.min_retries_per_second * self.window + self.ratio * calls
            if retries + 1 > allowed:
                self._denied += 1
                return False
            self._bucket_retries[slot] += 1
            return True

    def stats(self) -> dict[str, Any]:
        """Calls and retries in the current window, and retries denied since creation."""
        with self._lock:
            _, epoch = self._slot()
            calls = retries = 0
            for index in range(self._buckets):
                if epoch - self._buckets < self._bucket_epoch[index] <= epoch:
                    calls += self._bucket_calls[index]
                    retries += self._bucket_retries[index]
            return {"window_calls": calls, "window_retries": retries, "denied_total": self._denied}
