"""Shared checks for strict decoders: malformed input is a CodecError and nothing else, and
whatever decodes re-encodes to the same bytes (one encoding per value)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from swarmguard.codec import CodecError


def check_one_changed_byte(
    data: st.DataObject,
    encoded: bytes,
    decode: Callable[[bytes], Any],
    encode: Callable[[Any], bytes],
) -> None:
    """Change one byte of ``encoded``: decoding fails cleanly or gives the same bytes back."""
    changed = bytearray(encoded)
    position = data.draw(st.integers(0, len(changed) - 1))
    changed[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode(bytes(changed))
    except CodecError:
        return
    assert encode(decoded) == bytes(changed)


def check_garbage(blob: bytes, decode: Callable[[bytes], Any]) -> None:
    try:
        decode(blob)
    except CodecError:
        pass
