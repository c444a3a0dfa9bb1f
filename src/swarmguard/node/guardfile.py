"""The double-sign guard's record on disk: one ``fdatasync`` per record, never a torn record.

The node writes the guard's record (``SigningGuard.encode``) before it sends anything the record
covers, so this write is on the path of every vote. Two files take the records in turn, each
overwritten in place from offset 0 and synced once (``fdatasync``): a crash in the middle of a
write can tear only the file being written, and the other one holds the record before it, which
is the right state to restart from, since nothing the torn record covered was sent yet (sending
waits for the sync). Replacing one file by rename instead costs two syncs (the file, then its
directory) and three more system calls.

Frame, version 1::

    magic "SGGF" | version u8 | sequence u64 | length u32 | crc32 u32 | record (length bytes)

The CRC covers sequence, length and record; bytes after the record (left by a longer earlier
one) are ignored. At start-up the valid frame with the highest sequence wins.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

__all__ = ["GUARD_FILE_VERSION", "GuardFile"]

GUARD_FILE_VERSION = 1
_MAGIC = b"SGGF"
_HEAD = struct.Struct(">4sBQII")  # magic, version, sequence, length, crc


class GuardFile:
    """Two record files under ``directory`` (``<name>.0``, ``<name>.1``), written in turn."""

    def __init__(self, directory: Path, name: str = "guard") -> None:
        self._paths = (directory / f"{name}.0", directory / f"{name}.1")
        created = not all(path.exists() for path in self._paths)
        self._descriptors = [os.open(p, os.O_RDWR | os.O_CREAT, 0o600) for p in self._paths]
        if created:  # the new names themselves must survive a crash
            directory_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(directory_fd)
            finally:
                os.close(directory_fd)
        self._record: bytes | None = None
        self._sequence, self._slot = 0, 0
        valid = []
        for slot, descriptor in enumerate(self._descriptors):
            frame = self._read(descriptor)
            if frame is not None:
                valid.append((frame[0], slot, frame[1]))
        if valid:
            self._sequence, slot, self._record = max(valid)
            self._slot = 1 - slot  # the next record goes over the older one

    @staticmethod
    def _read(descriptor: int) -> tuple[int, bytes] | None:
        data = os.pread(descriptor, os.fstat(descriptor).st_size, 0)
        if len(data) < _HEAD.size:
            return None
        magic, version, sequence, length, crc = _HEAD.unpack_from(data)
        record = data[_HEAD.size : _HEAD.size + length]
        if magic != _MAGIC or version != GUARD_FILE_VERSION or len(record) != length:
            return None
        if zlib.crc32(data[5 : 5 + 12] + record) != crc:
            return None
        return sequence, record

    def load(self) -> bytes | None:
        """The newest complete record (None: nothing was ever saved)."""
        return self._record

    def save(self, record: bytes) -> None:
        """Write ``record`` durably; returns once it is on disk."""
        self._sequence += 1
        fields = struct.pack(">QI", self._sequence, len(record))
        head = _HEAD.pack(_MAGIC, GUARD_FILE_VERSION, self._sequence, len(record), 0)
        frame = head[:-4] + zlib.crc32(fields + record).to_bytes(4, "big") + record
        descriptor = self._descriptors[self._slot]
        os.pwrite(descriptor, frame, 0)
        os.fdatasync(descriptor)
        self._record = record
        self._slot = 1 - self._slot

    def close(self) -> None:
        for descriptor in self._descriptors:
            os.close(descriptor)
        self._descriptors = []
