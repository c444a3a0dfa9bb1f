"""The shared reader's version and kind checks, which every versioned format starts with."""

from __future__ import annotations

from enum import IntEnum

import pytest

from swarmguard.codec import CodecError, Reader


def test_version_accepts_only_the_expected_one() -> None:
    Reader(b"\x03", "thing").version(3)
    Reader(b"\x00\x07", "thing").version(7, width=2)
    with pytest.raises(CodecError, match="thing: unknown version 4"):
        Reader(b"\x04", "thing").version(3)
    with pytest.raises(CodecError, match="truncated"):
        Reader(b"", "thing").version(1)


class Shape(IntEnum):
    SQUARE = 1
    CIRCLE = 4


def test_kind_gives_a_member_or_refuses() -> None:
    assert Reader(b"\x04", "thing").kind(Shape) is Shape.CIRCLE
    for tag in (b"\x00", b"\x02", b"\xff"):
        with pytest.raises(CodecError, match=f"thing: unknown kind {tag[0]}"):
            Reader(tag, "thing").kind(Shape)
    with pytest.raises(CodecError, match="unknown shape 3"):
        Reader(b"\x03", "thing").kind(Shape, "shape")
    with pytest.raises(CodecError, match="truncated"):
        Reader(b"", "thing").kind(Shape)
