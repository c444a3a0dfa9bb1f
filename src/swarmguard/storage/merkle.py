"""RFC 9162 Merkle trees: roots, an append-only history accumulator, and proofs.

Hashing is RFC 9162 section 2.1 exactly (SHA-256), whose one-byte prefixes separate the two kinds
of preimage, so a leaf can never pass for an interior node (keep in sync with docs/storage.md)::

    MTH({})        = SHA-256()
    leaf hash      = SHA-256(0x00 || data)
    interior node  = SHA-256(0x01 || left || right)
    MTH(D[n])      = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n

Proofs are RFC 9162's audit paths (2.1.3) and consistency proofs (2.1.4), in the RFC's order, so
any RFC 9162 verifier accepts them; ``verify_inclusion`` and ``verify_consistency`` are the RFC's
verification algorithms, pure functions a light client can run without the store. Leaf indices
start at 0, as in the RFC.

The accumulator keeps every complete subtree: level ``k`` holds, contiguously, the roots of the
aligned subtrees of ``2^k`` leaves (32 bytes each, about 64 bytes per leaf in all). Appending
hashes the leaf and then each newly completed subtree: amortised two hashes per leaf, never a
rebuild. A proof reads O(log n) stored nodes plus the roots of the incomplete right edge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "HASH_BYTES",
    "MerkleAccumulator",
    "ProofError",
    "leaf_hash",
    "list_inclusion_proof",
    "merkle_root",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_BYTES = 32
RANGE_CACHE_MAX = 4096
"""Memoised hashes of incomplete ranges (the right edge of past and present sizes)."""
_LEAF = b"\x00"
_NODE = b"\x01"
_EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256  # one global lookup on the append path instead of two


class ProofError(ValueError):
    """A proof does not verify, or a request for one is out of range."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash."""
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return hashlib.sha256(_NODE + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf data (e.g. a block's transactions)."""
    if not leaves:
        return _EMPTY_ROOT
    sha256, node = _sha256, _NODE
    level = [sha256(_LEAF + item).digest() for item in leaves]
    # Pairing from the left and carrying an odd last hash up a level builds the same tree as
    # RFC 9162's split at the largest power of two below the size, in O(n) with no recursion.
    while len(level) > 1:
        paired = [
            sha256(node + left + right).digest()
            for left, right in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def list_inclusion_proof(items: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 9162 audit path of ``items[index]`` in the tree of ``items`` (e.g. a transaction
    in its block, checked against the header's transactions root with ``verify_inclusion``)."""
    tree = MerkleAccumulator()
    tree.extend(items)
    return tree.inclusion_proof(index)


class MerkleAccumulator:
    """An append-only RFC 9162 tree over leaf data (e.g. block hashes), with proofs."""

    __slots__ = ("_levels", "_ranges", "_size")

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        # Hashes of ranges that are not a stored complete subtree. A range's hash never changes
        # once all its leaves exist (the tree only grows), so entries never go stale.
        self._ranges: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> int:
        """Add a leaf; returns its index. Amortised two SHA-256 per leaf."""
        node = _sha256(_LEAF + data).digest()
        levels = self._levels
        index = self._size
        levels[0] += node
        position = index
        level = 0
        while position & 1:  # a right child completes its parent subtree
            offset = (position - 1) << 5  # * HASH_BYTES
            node = _sha256(_NODE + levels[level][offset : offset + 32] + node).digest()
            level += 1
            position >>= 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += node
        self._size = index + 1
        return index

    def append_hash(self, leaf: bytes) -> int:
        """Add a leaf given its RFC 9162 leaf hash (e.g. when restoring from storage)."""
        if len(leaf) != HASH_BYTES:
            raise ValueError(f"a leaf hash is {HASH_BYTES} bytes")
        index = self._size
        levels = self._levels
        levels[0] += leaf
        node = leaf
        position = index
        level = 0
        while position & 1:  # a right child completes its parent subtree
            row = levels[level]
            offset = (position - 1) * HASH_BYTES
            node = hashlib.sha256(_NODE + row[offset : offset + HASH_BYTES] + node).digest()
            level += 1
            position >>= 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += node
        self._size = index + 1
        return index

    def _node(self, level: int, position: int) -> bytes:
        offset = position * HASH_BYTES
        return bytes(self._levels[level][offset : offset + HASH_BYTES])

    def _subtree(self, start: int, size: int) -> bytes:
        """MTH(D[start:start+size]) for a range that ends at or before the current size.

        A range starting at a multiple of its power-of-two size is stored; any other range is a
        complete left part plus a smaller range, as in RFC 9162's definition.
        """
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            return self._node(level, start >> level)
        cached = self._ranges.get((start, size))
        if cached is not None:
            return cached
        k = _split(size)
        level = k.bit_length() - 1
        value = node_hash(self._node(level, start >> level), self._subtree(start + k, size - k))
        if len(self._ranges) >= RANGE_CACHE_MAX:
            self._ranges.clear()
        self._ranges[(start, size)] = value
        return value

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (default: all)."""
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise ProofError(f"size {size} is not in 0..{self._size}")
        return _EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self._size:
            raise ProofError(f"leaf {index} is not in 0..{self._size - 1}")
        return self._node(0, index)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size]): the audit path, nearest sibling first."""
        size = self._size if size is None else size
        if not 0 <= index < size <= self._size:
            raise ProofError(f"no leaf {index} in a tree of {size}")
        levels = self._levels
        path: list[bytes] = []
        start = 0
        while size > 1:
            k = 1 << ((size - 1).bit_length() - 1)  # _split(size), inlined on this hot loop
            if index < k:
                rest = size - k
                if rest & (rest - 1):
                    path.append(self._subtree(start + k, rest))
                else:  # a stored complete subtree: read it directly
                    level = rest.bit_length() - 1
                    offset = ((start + k) >> level) << 5
                    path.append(bytes(levels[level][offset : offset + 32]))
                size = k
            else:
                level = k.bit_length() - 1
                offset = (start >> level) << 5
                path.append(bytes(levels[level][offset : offset + 32]))
                start, index, size = start + k, index - k, size - k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(first, D[0:second]): proves the first tree is a prefix of the second."""
        second = self._size if second is None else second
        if not 0 < first <= second <= self._size:
            raise ProofError(f"no consistency proof from {first} to {second}")
        levels = self._levels
        proof: list[bytes] = []
        start, m, n, complete = 0, first, second, True
        while m != n:
            k = 1 << ((n - 1).bit_length() - 1)
            if m <= k:
                rest = n - k
                if rest & (rest - 1):
                    proof.append(self._subtree(start + k, rest))
                else:
                    level = rest.bit_length() - 1
                    offset = ((start + k) >> level) << 5
                    proof.append(bytes(levels[level][offset : offset + 32]))
                n = k
            else:
                level = k.bit_length() - 1
                offset = (start >> level) << 5
                proof.append(bytes(levels[level][offset : offset + 32]))
                start, m, n, complete = start + k, m - k, n - k, False
        if not complete:
            proof.append(self._subtree(start, m))
        proof.reverse()
        return proof

    def extend(self, items: Iterable[bytes]) -> None:
        """Append many leaves (the loop of :meth:`append`, without a call per leaf)."""
        levels = self._levels
        bottom = levels[0]
        index = self._size
        for data in items:
            node = _sha256(_LEAF + data).digest()
            bottom += node
            position = index
            level = 0
            while position & 1:
                offset = (position - 1) << 5
                node = _sha256(_NODE + levels[level][offset : offset + 32] + node).digest()
                level += 1
                position >>= 1
                if level == len(levels):
                    levels.append(bytearray())
                levels[level] += node
            index += 1
            self._size = index


def _check_hashes(name: str, hashes: Sequence[bytes]) -> None:
    for value in hashes:
        if len(value) != HASH_BYTES:
            raise ProofError(f"{name} holds a value that is not {HASH_BYTES} bytes")


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of
    ``size`` leaves whose root is ``root``. Raises ProofError if not.

    ``size`` and ``root`` must come together from a trusted source (a committed header): the path
    binds the size only through its shape, exactly as in RFC 9162.
    """
    _check_hashes("the path", [*path, leaf, root])
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise ProofError("the path is too long")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the path is too short")
    if result != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: check that the tree of ``first`` leaves with ``first_root`` is a prefix
    of the tree of ``second`` leaves with ``second_root``. Raises ProofError if not."""
    _check_hashes("the proof", [*proof, first_root, second_root])
    if not 0 < first <= second:
        raise ProofError(f"no consistency between sizes {first} and {second}")
    if first == second:
        if proof or first_root != second_root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        raise ProofError("the consistency proof is empty")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_hash = second_hash = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            first_hash = node_hash(node, first_hash)
            second_hash = node_hash(node, second_hash)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            second_hash = node_hash(second_hash, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if first_hash != first_root or second_hash != second_root:
        raise ProofError("the consistency proof does not lead to both roots")
