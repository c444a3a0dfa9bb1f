"""The double-sign guard: the brief's per-view signing rules, kept across a restart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.consensus.signing import SigningGuard, WouldEquivocate
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_PROPOSE, PHASE_VOTE

A, B = b"a" * 32, b"b" * 32


def test_one_proposal_per_view() -> None:
    guard = SigningGuard(5)
    guard.sign(5, 0, PHASE_PROPOSE, A)
    guard.sign(5, 0, PHASE_PROPOSE, A)  # the same bytes again: a re-send
    with pytest.raises(WouldEquivocate, match="proposed another"):
        guard.sign(5, 0, PHASE_PROPOSE, B)
    guard.sign(5, 1, PHASE_PROPOSE, B)
    with pytest.raises(WouldEquivocate):
        guard.sign(5, 2, PHASE_PROPOSE, NIL)


def test_votes_value_then_nil_but_never_nil_then_value() -> None:
    guard = SigningGuard(5)
    guard.sign(5, 0, PHASE_VOTE, A)
    with pytest.raises(WouldEquivocate, match="another value"):
        guard.sign(5, 0, PHASE_VOTE, B)
    guard.sign(5, 0, PHASE_VOTE, NIL)  # rule 7
    guard.sign(5, 0, PHASE_VOTE, NIL)  # the same bytes again
    guard.sign(5, 1, PHASE_VOTE, NIL)  # rule 5
    with pytest.raises(WouldEquivocate, match="no value vote may follow"):
        guard.sign(5, 1, PHASE_VOTE, A)


def test_one_final_per_view_nil_included() -> None:
    guard = SigningGuard(5)
    guard.sign(5, 0, PHASE_FINAL, NIL)
    guard.sign(5, 0, PHASE_FINAL, NIL)
    with pytest.raises(WouldEquivocate, match="another Final"):
        guard.sign(5, 0, PHASE_FINAL, A)
    guard.sign(5, 1, PHASE_FINAL, A)
    with pytest.raises(WouldEquivocate, match="another Final"):
        guard.sign(5, 1, PHASE_FINAL, NIL)


def test_other_heights_are_refused() -> None:
    guard = SigningGuard(5)
    with pytest.raises(WouldEquivocate, match="not the current height"):
        guard.sign(4, 0, PHASE_VOTE, A)
    guard.advance(6)
    with pytest.raises(WouldEquivocate):
        guard.sign(5, 0, PHASE_VOTE, A)
    with pytest.raises(ValueError):
        guard.advance(6)
    with pytest.raises(ValueError):
        guard.check(6, 0, 9, A)


def test_a_restart_keeps_every_refusal() -> None:
    guard = SigningGuard(9)
    guard.sign(9, 0, PHASE_PROPOSE, A)
    guard.sign(9, 0, PHASE_VOTE, A)
    guard.sign(9, 1, PHASE_VOTE, NIL)
    guard.sign(9, 1, PHASE_FINAL, NIL)
    restarted = SigningGuard.decode(guard.encode())
    assert restarted.encode() == guard.encode()
    for phase, view, value in (
        (PHASE_PROPOSE, 0, B),
        (PHASE_VOTE, 0, B),
        (PHASE_VOTE, 1, A),
        (PHASE_FINAL, 1, A),
    ):
        with pytest.raises(WouldEquivocate):
            restarted.sign(9, view, phase, value)


def test_decoding_is_strict() -> None:
    guard = SigningGuard(3)
    guard.sign(3, 2, PHASE_VOTE, A)
    data = guard.encode()
    entry = 1 + 8 + 4
    for bad, message in (
        (b"\x02" + data[1:], "unknown version"),
        (data + b"\x00", "trailing"),
        (data[:-1], "exceeds the data"),
        (data[: entry + 8] + b"\x00" + data[entry + 9 :], "flags"),
        (data[: entry + 8] + b"\x10" + data[entry + 9 :], "flags"),
        (data[: entry + 8] + b"\x03" + data[entry + 9 :], "proposal does not match"),
        (data[:-1] + b"\x01", "final does not match"),
        (b"\x01" + bytes(8) + bytes(4), "height 0"),
    ):
        with pytest.raises(CodecError, match=message):
            SigningGuard.decode(bad)


OPERATIONS = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from([PHASE_PROPOSE, PHASE_VOTE, PHASE_FINAL]),
        st.sampled_from([A, B, NIL]),
    ),
    max_size=40,
)


@given(OPERATIONS)
def test_never_two_conflicting_signatures(operations: list[tuple[int, int, bytes]]) -> None:
    """Whatever is asked, with restarts in between, the signed set never holds evidence."""
    guard = SigningGuard(1)
    signed: set[tuple[int, int, bytes]] = set()
    nil_voted: set[int] = set()
    for step, (view, phase, value) in enumerate(operations):
        try:
            guard.sign(1, view, phase, value)
        except WouldEquivocate:
            continue
        if phase == PHASE_VOTE:
            assert value == NIL or view not in nil_voted  # never a value vote after ⊥
            if value == NIL:
                nil_voted.add(view)
        signed.add((view, phase, value))
        if step % 3 == 0:
            guard = SigningGuard.decode(guard.encode())
    for view in range(4):
        proposals = {v for (k, p, v) in signed if k == view and p == PHASE_PROPOSE}
        values = {v for (k, p, v) in signed if k == view and p == PHASE_VOTE and v != NIL}
        finals = {v for (k, p, v) in signed if k == view and p == PHASE_FINAL}
        assert len(proposals) <= 1
        assert len(values) <= 1
        assert len(finals) <= 1
        assert NIL not in proposals


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(blob: bytes) -> None:
    try:
        SigningGuard.decode(blob)
    except CodecError:
        pass
