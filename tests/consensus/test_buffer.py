"""Future-height messages are kept within their bounds and released on arrival at the height."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard.consensus.buffer import FutureBuffer


def test_keeps_the_next_heights_and_releases_in_order() -> None:
    buffer: FutureBuffer[str] = FutureBuffer(height=10, heights_ahead=2)
    assert buffer.add(11, 0, "a")
    assert buffer.add(12, 1, "b")
    assert buffer.add(11, 2, "c")
    assert not buffer.add(13, 0, "too far")
    assert not buffer.add(10, 0, "current")
    assert not buffer.add(9, 0, "past")
    assert buffer.dropped == 3
    assert buffer.advance(11) == [(0, "a"), (2, "c")]
    assert buffer.add(13, 0, "now in range")
    assert buffer.advance(13) == [(0, "now in range")]  # height 12's messages were skipped
    assert len(buffer) == 0
    with pytest.raises(ValueError):
        buffer.advance(13)


def test_one_sender_cannot_fill_it() -> None:
    buffer: FutureBuffer[int] = FutureBuffer(height=1, per_sender=3)
    assert [buffer.add(2, 7, n) for n in range(5)] == [True, True, True, False, False]
    assert buffer.add(2, 8, 0)
    buffer.advance(2)
    assert buffer.add(3, 7, 0)  # released messages free the sender's quota


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 5)), max_size=200),
    st.integers(1, 10),
)
def test_bounds_always_hold(arrivals: list[tuple[int, int]], per_sender: int) -> None:
    buffer: FutureBuffer[None] = FutureBuffer(height=5, heights_ahead=4, per_sender=per_sender)
    for height, sender in arrivals:
        buffer.add(height, sender, None)
    assert len(buffer) <= 6 * per_sender
    assert len(buffer) + buffer.dropped == len(arrivals)
