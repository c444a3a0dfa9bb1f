"""The shared reader's version check, which every versioned format starts with."""

from __future__ import annotations

import pytest

from swarmguard.codec import CodecError, Reader


def test_version_accepts_only_the_expected_one() -> None:
    Reader(b"\x03", "thing").version(3)
    Reader(b"\x00\x07", "thing").version(7, width=2)
    with pytest.raises(CodecError, match="thing: unknown version 4"):
        Reader(b"\x04", "thing").version(3)
    with pytest.raises(CodecError, match="truncated"):
        Reader(b"", "thing").version(1)
