"""Errors of the storage package (shared by the engines and the block store)."""

from __future__ import annotations

__all__ = ["CorruptStore", "StoreError", "StoreVersionError"]


class StoreError(Exception):
    """The store refused an operation, or its engine failed."""


class StoreVersionError(StoreError):
    """The store on disk has a schema version this code does not know."""


class CorruptStore(StoreError):
    """Stored data failed a checksum, does not decode, or the engine found a damaged page."""
