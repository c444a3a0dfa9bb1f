"""The leader's batcher: cut a block when it is full (transactions or bytes) or when the oldest
waiting transaction has waited ``timeout``, whichever comes first.

Sans-IO: time comes in as the caller's ``now`` (seconds, any monotonic origin); ``deadline()``
tells the caller when to come back. Transactions keep their arrival order; one larger than a
whole batch is refused at once rather than blocking the queue, and the queue itself is bounded
(``pending_max``), so a flood is refused at the door instead of growing memory.

Every validator queues every transaction (any of them may lead next), but only the leader's
batch is taken out: the others learn from ``live`` (the node: "still in my mempool") that a
transaction left in someone else's block, and drop it from the front of the queue, so their
``ready`` and ``deadline`` are about transactions that still wait.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmguard.consensus.messages import BLOCK_BYTES_MAX

__all__ = ["BatchConfig", "Batcher", "Refused"]


class Refused(ValueError):
    """A transaction the batcher will not queue (too large, or the queue is full)."""


@dataclass(frozen=True, slots=True)
class BatchConfig:
    max_transactions: int = 1_000
    max_bytes: int = 1024 * 1024
    timeout: float = 0.05
    """Seconds the oldest transaction may wait for a batch to fill."""
    pending_max: int = 100_000
    """Transactions waiting at most; more are refused."""
    empty_block_after: float = 0.4
    """Seconds a leader with no ready batch waits after entering its view before proposing what
    it has (maybe nothing), whatever ``timeout`` says. The view timers start after this wait
    (``Replica.proposal_allowance``), so it also lengthens every view: keep it short."""

    def __post_init__(self) -> None:
        if self.max_transactions < 1 or self.pending_max < self.max_transactions:
            raise ValueError("need 1 <= max_transactions <= pending_max")
        if not 0 < self.max_bytes <= BLOCK_BYTES_MAX // 2:
            raise ValueError(f"max_bytes must be in (0, {BLOCK_BYTES_MAX // 2}]")
        if self.timeout < 0:
            raise ValueError("timeout must be >= 0")
        if self.empty_block_after < 0:
            raise ValueError("empty_block_after must be >= 0")


@dataclass(slots=True)
class Batcher:
    config: BatchConfig = field(default_factory=BatchConfig)
    live: Callable[[bytes], bool] | None = None
    """Whether a queued transaction still waits for a block (None: all do until taken)."""
    _pending: deque[tuple[bytes, float]] = field(default_factory=deque)
    _pending_bytes: int = 0

    def _prune(self) -> None:
        """Drop transactions that no longer wait from the front of the queue."""
        live, pending = self.live, self._pending
        if live is None:
            return
        while pending and not live(pending[0][0]):
            self._pending_bytes -= len(pending.popleft()[0])

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, transaction: bytes, now: float) -> None:
        """Queue a transaction that arrived at ``now``; raises Refused."""
        if len(transaction) > self.config.max_bytes:
            raise Refused(f"{len(transaction)} bytes exceed a batch ({self.config.max_bytes})")
        if len(self._pending) >= self.config.pending_max:
            self._prune()
        if len(self._pending) >= self.config.pending_max:
            raise Refused(f"{self.config.pending_max} transactions already waiting")
        self._pending.append((transaction, now))
        self._pending_bytes += len(transaction)

    def deadline(self) -> float | None:
        """When the oldest waiting transaction's timeout expires (None: nothing waits)."""
        self._prune()
        if not self._pending:
            return None
        return self._pending[0][1] + self.config.timeout

    def ready(self, now: float) -> bool:
        """Whether a batch should be cut now: full, or the oldest transaction has waited enough."""
        self._prune()
        if not self._pending:
            return False
        config = self.config
        full = (
            len(self._pending) >= config.max_transactions or self._pending_bytes >= config.max_bytes
        )
        return full or now >= self._pending[0][1] + config.timeout

    def take(self, now: float, *, force: bool = False) -> list[bytes]:
        """Cut the next batch if ``ready(now)`` (or ``force``: the leader must propose now, e.g.
        on entering its view): the oldest transactions that fit both limits, in arrival order."""
        self._prune()
        if not (force or self.ready(now)):
            return []
        batch: list[bytes] = []
        size = 0
        while self._pending and len(batch) < self.config.max_transactions:
            transaction = self._pending[0][0]
            if size + len(transaction) > self.config.max_bytes:
                break
            self._pending.popleft()
            batch.append(transaction)
            size += len(transaction)
        self._pending_bytes -= size
        return batch
