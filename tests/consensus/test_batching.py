"""The batcher cuts on size, bytes or timeout, whichever first, and bounds what it holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard.consensus.batching import BatchConfig, Batcher, Refused


def test_cut_on_transaction_count() -> None:
    batcher = Batcher(BatchConfig(max_transactions=3, timeout=10.0))
    for i in range(4):
        batcher.add(b"t%d" % i, now=0.0)
    assert batcher.ready(0.0)
    assert batcher.take(0.0) == [b"t0", b"t1", b"t2"]
    assert not batcher.ready(0.0)
    assert batcher.take(0.0) == []


def test_cut_on_bytes() -> None:
    batcher = Batcher(BatchConfig(max_bytes=10, timeout=10.0))
    batcher.add(b"x" * 6, 0.0)
    assert not batcher.ready(0.0)
    batcher.add(b"y" * 6, 0.0)
    assert batcher.ready(0.0)
    assert batcher.take(0.0) == [b"x" * 6]  # the second does not fit: it waits
    assert batcher.deadline() == 10.0


def test_cut_on_timeout_of_the_oldest() -> None:
    batcher = Batcher(BatchConfig(timeout=0.05))
    assert batcher.deadline() is None
    batcher.add(b"a", 1.0)
    batcher.add(b"b", 1.03)
    assert batcher.deadline() == pytest.approx(1.05)
    assert not batcher.ready(1.04)
    assert batcher.take(1.04) == []
    assert batcher.take(1.05) == [b"a", b"b"]


def test_force_takes_what_is_there() -> None:
    batcher = Batcher()
    assert batcher.take(0.0, force=True) == []
    batcher.add(b"a", 0.0)
    assert batcher.take(0.0, force=True) == [b"a"]


def test_refusals() -> None:
    batcher = Batcher(BatchConfig(max_transactions=2, max_bytes=4, pending_max=3))
    with pytest.raises(Refused, match="exceed a batch"):
        batcher.add(b"12345", 0.0)
    for _ in range(3):
        batcher.add(b"1", 0.0)
    with pytest.raises(Refused, match="already waiting"):
        batcher.add(b"1", 0.0)
    assert len(batcher) == 3


def test_config_is_checked() -> None:
    for bad in (
        {"max_transactions": 0},
        {"max_transactions": 10, "pending_max": 5},
        {"max_bytes": 0},
        {"max_bytes": 1 << 40},
        {"timeout": -1.0},
    ):
        with pytest.raises(ValueError):
            BatchConfig(**bad)  # type: ignore[arg-type]


@given(st.lists(st.binary(min_size=0, max_size=20), max_size=60), st.integers(1, 8))
def test_batches_respect_limits_and_order(transactions: list[bytes], most: int) -> None:
    batcher = Batcher(BatchConfig(max_transactions=most, max_bytes=32, timeout=0.0))
    for t in transactions:
        batcher.add(t, 0.0)
    out: list[bytes] = []
    while len(batcher):
        batch = batcher.take(1.0)
        assert batch
        assert len(batch) <= most
        assert sum(map(len, batch)) <= 32
        out.extend(batch)
    assert out == transactions
