"""Authenticated application state: a compact sparse Merkle tree with (non-)inclusion proofs.

Keys are placed by ``path = SHA-256(key)``: bit ``i`` (most significant first) chooses the side at
depth ``i``. The root is defined by the key set alone, whatever the order of updates (keep in
sync with docs/storage.md, "Application state"):

    H(empty subtree)          = 32 zero bytes
    H(subtree with one leaf)  = SHA-256(0x00 || path || SHA-256(value))    (at any depth)
    H(subtree with 2+ leaves) = SHA-256(0x01 || H(left half) || H(right half))

A subtree with a single leaf *is* that leaf, so the tree is about log2(n) deep, not 256, and an
update rehashes only the nodes on its key's path. Nodes are immutable and shared between
versions, so the root of every past version stays readable (a consistent view for snapshots)
while new versions are built.

Proofs list the sibling hashes from the root down to where the key's search ends. Inclusion ends
at the key's leaf. Non-inclusion ends at an empty subtree, or at the one leaf of another key that
shares the key's path so far (so the key, were it present, would be in that subtree).
``verify_inclusion`` and ``verify_non_inclusion`` are pure functions for light clients.
"""

from __future__ import annotations

import gc
import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer

__all__ = [
    "EMPTY",
    "StateProof",
    "StateProofError",
    "StateTree",
    "path_of",
    "verify_inclusion",
    "verify_non_inclusion",
]

EMPTY = bytes(32)
DEPTH_MAX = 256
PROOF_VERSION = 1
_LEAF = b"\x00"
_NODE = b"\x01"


class StateProofError(ValueError):
    """A state proof does not verify."""


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a whole tree is built: its leaves, nodes and
    the (path, value) list they come from hold bytes and each other as a tree, never a cycle,
    yet a million of them trigger full collections that took two thirds of the build (25.3 s
    against 9.2 s) and nine tenths of reading the values from the store (8.9 s against 1.0).
    A collector that was off stays off; the pause is process-wide but only delays collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def path_of(key: bytes) -> bytes:
    """Where ``key`` lives in the tree (what ``items`` yields for it)."""
    return _sha(key)


def _bit(path: bytes, depth: int) -> int:
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def _leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    return _sha(_LEAF + path + value_hash)


@dataclass(frozen=True, slots=True)
class _Leaf:
    path: bytes
    value: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class _Node:
    left: _Leaf | _Node | None
    right: _Leaf | _Node | None
    hash: bytes


_Tree = _Leaf | _Node | None


def _hash(tree: _Tree) -> bytes:
    return EMPTY if tree is None else tree.hash


def _join(left: _Tree, right: _Tree) -> _Tree:
    """The subtree with these halves, compressed: an empty half next to a leaf lifts the leaf."""
    if left is None and right is None:
        return None
    if left is None and isinstance(right, _Leaf):
        return right
    if right is None and isinstance(left, _Leaf):
        return left
    return _Node(left, right, _sha(_NODE + _hash(left) + _hash(right)))


def _set(tree: _Tree, leaf: _Leaf, depth: int) -> _Tree:
    if tree is None:
        return leaf
    if isinstance(tree, _Leaf):
        if tree.path == leaf.path:
            return leaf
        return _split(tree, leaf, depth)
    if _bit(leaf.path, depth):
        return _join(tree.left, _set(tree.right, leaf, depth + 1))
    return _join(_set(tree.left, leaf, depth + 1), tree.right)


def _split(existing: _Leaf, added: _Leaf, depth: int) -> _Tree:
    """Two leaves in one subtree: descend until their paths differ."""
    if depth >= DEPTH_MAX:
        raise ValueError("two keys hash to the same path")  # a SHA-256 collision
    a, b = _bit(existing.path, depth), _bit(added.path, depth)
    if a != b:
        return _join(existing, added) if a == 0 else _join(added, existing)
    inner = _split(existing, added, depth + 1)
    return _join(inner, None) if a == 0 else _join(None, inner)


def _delete(tree: _Tree, path: bytes, depth: int) -> _Tree:
    if tree is None:
        return None
    if isinstance(tree, _Leaf):
        return None if tree.path == path else tree
    if _bit(path, depth):
        return _join(tree.left, _delete(tree.right, path, depth + 1))
    return _join(_delete(tree.left, path, depth + 1), tree.right)


@dataclass(frozen=True, slots=True)
class StateProof:
    """Siblings from the root down, and where the search ended.

    ``leaf_path``/``leaf_value_hash`` describe the leaf the search ended at (None: an empty
    subtree). For an inclusion proof it is the key's own leaf.
    """

    siblings: tuple[bytes, ...]
    leaf_path: bytes | None
    leaf_value_hash: bytes | None

    def encode(self) -> bytes:
        """Version 1: ``version u8 | siblings u16 | 32 bytes each | has leaf u8 | [path (32) |
        value hash (32)]`` (what a query answer carries to a light client)."""
        out = Writer()
        out.uint(PROOF_VERSION, 1)
        out.uint(len(self.siblings), 2)
        for sibling in self.siblings:
            out.fixed(sibling, 32)
        out.boolean(self.leaf_path is not None)
        if self.leaf_path is not None:
            out.fixed(self.leaf_path, 32)
            out.fixed(self.leaf_value_hash or b"", 32)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> StateProof:
        reader = Reader(data, "state proof")
        reader.version(PROOF_VERSION)
        count = reader.uint(2, "siblings")
        if count > DEPTH_MAX:
            raise CodecError(f"state proof: {count} siblings exceed the depth {DEPTH_MAX}")
        siblings = tuple(reader.fixed(32, "sibling") for _ in range(count))
        leaf_path = leaf_value_hash = None
        if reader.boolean("has leaf"):
            leaf_path, leaf_value_hash = reader.fixed(32, "leaf path"), reader.fixed(32, "hash")
        reader.finish()
        return StateProof(siblings, leaf_path, leaf_value_hash)


class StateTree:
    """One version of the state; ``apply`` returns the next version (this one stays valid)."""

    __slots__ = ("_root", "_size")

    def __init__(self) -> None:
        self._root: _Tree = None
        self._size = 0

    @classmethod
    def from_leaves(cls, leaves: Iterable[tuple[bytes, bytes]]) -> StateTree:
        """Build a version from (path, value) pairs in strictly increasing path order, as a
        snapshot or a store scan lists them; raises ValueError on anything else."""
        with _collector_paused():
            return cls._from_sorted(leaves if isinstance(leaves, list) else list(leaves))

    @classmethod
    def _from_sorted(cls, leaves: Sequence[tuple[bytes, bytes]]) -> StateTree:
        previous = b""
        for path, _ in leaves:
            if len(path) != 32 or path <= previous:
                raise ValueError("leaves must have 32-byte paths in strictly increasing order")
            previous = path

        paths = [path for path, _ in leaves]

        def build(low: int, high: int, depth: int) -> _Tree:
            if low == high:
                return None
            if high - low == 1:
                path, value = leaves[low]
                return _Leaf(path, value, _leaf_hash(path, _sha(value)))
            # The leaves of [low, high) share their first ``depth`` bits; the right half starts
            # at the first path >= that prefix, then a 1, then zeros (a C bisection).
            shift = 255 - depth
            prefix = int.from_bytes(paths[low], "big") >> shift | 1
            first = bisect_left(paths, (prefix << shift).to_bytes(32, "big"), low, high)
            return _join(build(low, first, depth + 1), build(first, high, depth + 1))

        version = cls()
        version._root = build(0, len(leaves), 0)
        version._size = len(leaves)
        return version

    @property
    def root(self) -> bytes:
        """The state root committed in block headers."""
        return _hash(self._root)

    def __len__(self) -> int:
        return self._size

    def get(self, key: bytes) -> bytes | None:
        path = _sha(key)
        tree = self._root
        depth = 0
        while isinstance(tree, _Node):
            tree = tree.right if _bit(path, depth) else tree.left
            depth += 1
        if isinstance(tree, _Leaf) and tree.path == path:
            return tree.value
        return None

    def apply(self, writes: Mapping[bytes, bytes | None]) -> StateTree:
        """A new version with ``writes`` applied (None deletes); costs O(keys x depth), or
        O(keys) on an empty tree (a genesis), which is built bottom-up in one pass."""
        if self._root is None and len(writes) > 1:
            with _collector_paused():
                return StateTree.from_leaves(
                    sorted((_sha(key), value) for key, value in writes.items() if value is not None)
                )
        root = self._root
        size = self._size
        for key, value in sorted(writes.items()):
            path = _sha(key)
            present = self._contains(root, path)
            if value is None:
                if present:
                    root = _delete(root, path, 0)
                    size -= 1
            else:
                root = _set(root, _Leaf(path, value, _leaf_hash(path, _sha(value))), 0)
                size += 0 if present else 1
        version = StateTree()
        version._root = root
        version._size = size
        return version

    @staticmethod
    def _contains(tree: _Tree, path: bytes) -> bool:
        depth = 0
        while isinstance(tree, _Node):
            tree = tree.right if _bit(path, depth) else tree.left
            depth += 1
        return isinstance(tree, _Leaf) and tree.path == path

    def prove(self, key: bytes) -> StateProof:
        """A proof of the key's value, or of its absence."""
        path = _sha(key)
        siblings: list[bytes] = []
        tree = self._root
        depth = 0
        while isinstance(tree, _Node):
            if _bit(path, depth):
                siblings.append(_hash(tree.left))
                tree = tree.right
            else:
                siblings.append(_hash(tree.right))
                tree = tree.left
            depth += 1
        if tree is None:
            return StateProof(tuple(siblings), None, None)
        return StateProof(tuple(siblings), tree.path, _sha(tree.value))

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        """(path, value) of every leaf, in path order (for snapshots)."""
        stack: list[_Tree] = [self._root]
        while stack:
            tree = stack.pop()
            if isinstance(tree, _Leaf):
                yield tree.path, tree.value
            elif isinstance(tree, _Node):
                stack.append(tree.right)
                stack.append(tree.left)


def _fold(path: bytes, terminal: bytes, siblings: tuple[bytes, ...]) -> bytes:
    if len(siblings) > DEPTH_MAX:
        raise StateProofError("the proof is deeper than any tree")
    current = terminal
    for depth in range(len(siblings) - 1, -1, -1):
        sibling = siblings[depth]
        if len(sibling) != 32:
            raise StateProofError("a sibling is not 32 bytes")
        if _bit(path, depth):
            current = _sha(_NODE + sibling + current)
        else:
            current = _sha(_NODE + current + sibling)
    return current


def _shares_prefix(a: bytes, b: bytes, bits: int) -> bool:
    return all(_bit(a, i) == _bit(b, i) for i in range(bits))


def verify_inclusion(root: bytes, key: bytes, value: bytes, proof: StateProof) -> None:
    """Check that ``key`` has ``value`` under ``root``; raises StateProofError if not."""
    path = _sha(key)
    if proof.leaf_path != path or proof.leaf_value_hash != _sha(value):
        raise StateProofError("the proof is not about this key and value")
    if _fold(path, _leaf_hash(path, _sha(value)), proof.siblings) != root:
        raise StateProofError("the inclusion proof does not lead to the root")


def verify_non_inclusion(root: bytes, key: bytes, proof: StateProof) -> None:
    """Check that ``key`` is absent under ``root``; raises StateProofError if not."""
    path = _sha(key)
    depth = len(proof.siblings)
    if proof.leaf_path is None:
        terminal = EMPTY
        if proof.leaf_value_hash is not None:
            raise StateProofError("an empty terminal carries no value")
    else:
        if proof.leaf_path == path:
            raise StateProofError("the proof shows the key present")
        if proof.leaf_value_hash is None or len(proof.leaf_value_hash) != 32:
            raise StateProofError("the terminal leaf needs a 32-byte value hash")
        # Implied by domain separation (a leaf hash cannot stand where a node hash is), but
        # checked first so that a misplaced terminal gets a precise error.
        if not _shares_prefix(proof.leaf_path, path, depth):
            raise StateProofError("the terminal leaf is not where the key would be")
        terminal = _leaf_hash(proof.leaf_path, proof.leaf_value_hash)
    if _fold(path, terminal, proof.siblings) != root:
        raise StateProofError("the non-inclusion proof does not lead to the root")
