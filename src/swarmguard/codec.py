"""Canonical binary encoding: one encoding per value, every length checked on decode.

Integers are fixed-width big-endian, booleans exactly 0 or 1, variable-length byte strings a u32
length then the bytes (with a caller-given maximum), sequences a u32 count then the items. Fixed
widths make every value's encoding unique; the reader refuses short input, values out of range,
lengths over their maximum and trailing bytes, with a ``CodecError`` naming what it was reading.
Formats built on it (state snapshots, later blocks and messages) start with their own version.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

__all__ = ["CodecError", "Reader", "Writer"]

_Kind = TypeVar("_Kind", bound=IntEnum)


class CodecError(ValueError):
    """Malformed encoded data: short, oversized, out of range, or with trailing bytes."""


class Writer:
    """Appends canonical encodings to a buffer."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def uint(self, value: int, width: int) -> None:
        """An unsigned integer in exactly ``width`` bytes, big-endian."""
        if value < 0 or value >= 1 << (8 * width):
            raise CodecError(f"{value} does not fit in {width} bytes")
        self._parts.append(value.to_bytes(width, "big"))

    def boolean(self, value: bool) -> None:
        self._parts.append(b"\x01" if value else b"\x00")

    def fixed(self, value: bytes, length: int) -> None:
        """Exactly ``length`` bytes, no length prefix."""
        if len(value) != length:
            raise CodecError(f"expected {length} bytes, got {len(value)}")
        self._parts.append(value)

    def blob(self, value: bytes, maximum: int) -> None:
        """A u32 length, then the bytes."""
        if len(value) > maximum:
            raise CodecError(f"{len(value)} bytes exceed the maximum {maximum}")
        self.uint(len(value), 4)
        self._parts.append(value)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads canonical encodings back, refusing anything malformed."""

    __slots__ = ("_data", "_offset", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data if type(data) is bytes else bytes(data)  # slices of bytes are bytes
        self._offset = 0
        self.what = what

    def _take(self, count: int, field: str) -> bytes:
        start = self._offset
        end = start + count
        if end > len(self._data):
            raise CodecError(f"{self.what}: truncated while reading {field}")
        self._offset = end
        return self._data[start:end]

    def uint(self, width: int, field: str) -> int:
        start = self._offset
        end = start + width
        if end > len(self._data):
            raise CodecError(f"{self.what}: truncated while reading {field}")
        self._offset = end
        return int.from_bytes(self._data[start:end], "big")

    def version(self, expected: int, width: int = 1) -> None:
        """Read a format's leading version number and refuse any other than ``expected``."""
        found = self.uint(width, "version")
        if found != expected:
            raise CodecError(f"{self.what}: unknown version {found}")

    def kind(self, kinds: type[_Kind], field: str = "kind") -> _Kind:
        """A u8 naming a member of ``kinds`` (a format's message or body kinds); any other
        value is refused, so dispatch on the result needs no fallback."""
        tag = self.uint(1, field)
        try:
            return kinds(tag)
        except ValueError:
            raise CodecError(f"{self.what}: unknown {field} {tag}") from None

    def boolean(self, field: str) -> bool:
        byte = self._take(1, field)[0]
        if byte > 1:
            raise CodecError(f"{self.what}: {field} is {byte}, not a boolean (0 or 1)")
        return byte == 1

    def fixed(self, length: int, field: str) -> bytes:
        return self._take(length, field)

    def blob(self, maximum: int, field: str) -> bytes:
        length = self.uint(4, field)
        if length > maximum:
            raise CodecError(f"{self.what}: {field} length {length} exceeds {maximum}")
        return self._take(length, field)

    def count(self, item_bytes_min: int, field: str) -> int:
        """A u32 item count, checked against the bytes left (so no huge allocation follows)."""
        value = self.uint(4, field)
        if value * item_bytes_min > len(self._data) - self._offset:
            raise CodecError(f"{self.what}: {field} count {value} exceeds the data")
        return value

    def finish(self) -> None:
        """Refuse trailing bytes."""
        if self._offset != len(self._data):
            extra = len(self._data) - self._offset
            raise CodecError(f"{self.what}: {extra} trailing bytes")
