"""The guard record file: the newest complete record survives reopening, and a torn or
corrupted newest record gives way to the one before it (never to garbage)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.node.guardfile import GuardFile


def test_records_alternate_and_the_newest_is_loaded(tmp_path: Path) -> None:
    guard = GuardFile(tmp_path)
    assert guard.load() is None
    for record in (b"first", b"second, longer", b"3rd"):
        guard.save(record)
    guard.close()
    reopened = GuardFile(tmp_path)
    assert reopened.load() == b"3rd"  # a shorter record over a longer one reads back exactly
    reopened.save(b"fourth")
    reopened.close()
    assert GuardFile(tmp_path).load() == b"fourth"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_damaged_newest_record_falls_back_to_the_previous(
    tmp_path_factory: object, data: st.DataObject
) -> None:
    directory = Path(tmp_path_factory.mktemp("guard"))  # type: ignore[attr-defined]
    guard = GuardFile(directory)
    guard.save(b"older record")
    guard.save(b"newest record")
    guard.close()
    newest = directory / "guard.1"
    raw = bytearray(newest.read_bytes())
    if data.draw(st.booleans()):  # torn: only a prefix reached the disk
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:  # one byte changed
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= data.draw(st.integers(1, 255))
    newest.write_bytes(bytes(raw))
    assert GuardFile(directory).load() == b"older record"
