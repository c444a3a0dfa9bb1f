"""The storage engine interface, and its LMDB (default) and SQLite implementations.

The block store needs only ordered byte keys in atomic, durable write transactions and consistent
read transactions: ``get``, ``put``, ``delete`` and an ordered prefix ``scan``. Both engines
provide that; docs/storage.md records why LMDB is the default (measured: equal median commits,
a much shorter tail for large blocks, faster reads) and when SQLite is the better choice (other
processes can read while the node writes; no extra dependency).

A write transaction commits durably when its ``with`` block ends normally and is rolled back
entirely when the block raises. Engine failures surface as the store's own errors: a damaged page
(LMDB's MDB_CORRUPTED, SQLite's "malformed") as ``CorruptStore``, anything else as ``StoreError``
(probed: bit flips in the data files were reported, never crashed the process).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import lmdb

from .errors import CorruptStore, StoreError

__all__ = ["Engine", "EngineTransaction", "LmdbEngine", "SqliteEngine"]


class EngineTransaction(Protocol):
    """One transaction: a consistent view, and (in a write transaction) changes."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with ``prefix``, in key order."""
        ...


class Engine(Protocol):
    """An embedded, transactional, crash-safe ordered key-value store."""

    def read(self) -> AbstractContextManager[EngineTransaction]: ...

    def write(self) -> AbstractContextManager[EngineTransaction]: ...

    def close(self) -> None: ...

    def disk_bytes(self) -> int:
        """Bytes the engine's files take on disk."""
        ...


_LMDB_CORRUPTION = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.BadRslotError)


@contextmanager
def _lmdb_errors() -> Iterator[None]:
    try:
        yield
    except _LMDB_CORRUPTION as error:
        raise CorruptStore(f"LMDB: {error}") from None
    except lmdb.Error as error:
        raise StoreError(f"LMDB: {error}") from None


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError) and "malformed" not in str(error):
            raise StoreError(f"SQLite: {error}") from None
        raise CorruptStore(f"SQLite: {error}") from None


class _LmdbTransaction:
    __slots__ = ("_txn",)

    def __init__(self, txn: lmdb.Transaction) -> None:
        self._txn = txn

    def get(self, key: bytes) -> bytes | None:
        value = self._txn.get(key)
        return None if value is None else bytes(value)

    def put(self, key: bytes, value: bytes) -> None:
        self._txn.put(key, value)

    def delete(self, key: bytes) -> None:
        self._txn.delete(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        cursor = self._txn.cursor()
        if not cursor.set_range(prefix):
            return
        for key, value in cursor:
            if not bytes(key).startswith(prefix):
                return
            yield bytes(key), bytes(value)


class LmdbEngine:
    """LMDB with durable commits (``sync`` and ``metasync``): copy-on-write, so a crash leaves
    exactly the last committed transaction."""

    def __init__(self, path: str | Path, *, map_size: int = 64 * 2**30) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self._path = Path(path)
        self._env = lmdb.open(str(path), map_size=map_size, sync=True, metasync=True)

    @contextmanager
    def read(self) -> Iterator[EngineTransaction]:
        with _lmdb_errors(), self._env.begin() as txn:
            yield _LmdbTransaction(txn)

    @contextmanager
    def write(self) -> Iterator[EngineTransaction]:
        with _lmdb_errors(), self._env.begin(write=True) as txn:
            yield _LmdbTransaction(txn)

    def close(self) -> None:
        self._env.close()

    def disk_bytes(self) -> int:
        return sum(item.stat().st_size for item in self._path.iterdir())


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


class _SqliteTransaction:
    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def get(self, key: bytes) -> bytes | None:
        row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, key: bytes, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def delete(self, key: bytes) -> None:
        self._db.execute("DELETE FROM kv WHERE k = ?", (key,))

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        end = _prefix_end(prefix)
        if end is None:
            rows = self._db.execute("SELECT k, v FROM kv WHERE k >= ? ORDER BY k", (prefix,))
        else:
            rows = self._db.execute(
                "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k", (prefix, end)
            )
        for key, value in rows.fetchall():
            yield bytes(key), bytes(value)


class SqliteEngine:
    """SQLite in WAL mode with ``synchronous=FULL``: durable commits, readers never blocked."""

    def __init__(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self._path = Path(path)
        self._db = sqlite3.connect(
            self._path / "store.sqlite", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    @contextmanager
    def read(self) -> Iterator[EngineTransaction]:
        with _sqlite_errors():
            self._db.execute("BEGIN")
            try:
                yield _SqliteTransaction(self._db)
            finally:
                self._db.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[EngineTransaction]:
        with _sqlite_errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def disk_bytes(self) -> int:
        return sum(item.stat().st_size for item in self._path.iterdir())
