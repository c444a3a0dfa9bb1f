"""RFC 9162 trees: the accumulator against the RFC's recursive definitions, the RFC's
verification algorithms, and tampered or out-of-range proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.storage.merkle import (
    MerkleAccumulator,
    ProofError,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)

# --- RFC 9162 section 2.1, transcribed literally (recursive, slow, obviously right) ----------


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return h(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return h(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


LEAVES = [f"block {i}".encode() for i in range(41)]


@pytest.fixture(scope="module")
def accumulator() -> MerkleAccumulator:
    tree = MerkleAccumulator()
    tree.extend(LEAVES)
    return tree


def test_roots_match_the_definition(accumulator: MerkleAccumulator) -> None:
    """Every prefix's root equals MTH, and merkle_root of a list agrees."""
    for size in range(len(LEAVES) + 1):
        assert accumulator.root(size) == mth(LEAVES[:size])
        assert merkle_root(LEAVES[:size]) == mth(LEAVES[:size])


def test_inclusion_proofs_match_the_definition_and_verify(accumulator: MerkleAccumulator) -> None:
    """For every (index, size): the proof is PATH exactly, and the RFC's verifier accepts it."""
    for size in range(1, len(LEAVES) + 1):
        root = accumulator.root(size)
        for index in range(size):
            proof = accumulator.inclusion_proof(index, size)
            assert proof == path(index, LEAVES[:size])
            verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, root)


def test_consistency_proofs_match_the_definition_and_verify(
    accumulator: MerkleAccumulator,
) -> None:
    """For every first <= second: the proof is PROOF exactly, and the RFC's verifier accepts."""
    for second in range(1, len(LEAVES) + 1):
        for first in range(1, second + 1):
            proof = accumulator.consistency_proof(first, second)
            assert proof == subproof(first, LEAVES[:second], True)
            verify_consistency(
                first, second, accumulator.root(first), accumulator.root(second), proof
            )


def test_tampered_inclusion_proofs_fail(accumulator: MerkleAccumulator) -> None:
    """A changed sibling, leaf, index, size or root, or a proof cut or padded, fails."""
    size, index = 37, 21
    root = accumulator.root(size)
    proof = accumulator.inclusion_proof(index, size)
    leaf = leaf_hash(LEAVES[index])
    bad = [
        (leaf, index, size, [bytes(32), *proof[1:]], root),
        (leaf_hash(b"other"), index, size, proof, root),
        (leaf, index + 1, size, proof, root),
        # Another path shape fails; a size of the same shape (38 for leaf 21) verifies, since
        # RFC 9162 binds the size to the root in a signed tree head, not through the path.
        (leaf, index, 22, proof, root),
        (leaf, index, size, proof, accumulator.root(size - 1)),
        (leaf, index, size, proof[:-1], root),
        (leaf, index, size, [*proof, bytes(32)], root),
        (leaf, size, size, proof, root),
        (leaf, index, size, [b"short", *proof[1:]], root),
    ]
    for case in bad:
        with pytest.raises(ProofError):
            verify_inclusion(*case)


def test_tampered_consistency_proofs_fail(accumulator: MerkleAccumulator) -> None:
    """A changed node or root, swapped sizes, or a cut proof fails."""
    first, second = 13, 40
    proof = accumulator.consistency_proof(first, second)
    roots = accumulator.root(first), accumulator.root(second)
    for case in [
        (first, second, roots[0], roots[1], [bytes(32), *proof[1:]]),
        (first, second, roots[1], roots[1], proof),
        (first, second, roots[0], roots[0], proof),
        (first + 1, second, roots[0], roots[1], proof),
        (first, second, roots[0], roots[1], proof[:-1]),
        (second, first, roots[1], roots[0], proof),
        (0, second, roots[0], roots[1], proof),
        (first, first, roots[0], roots[0], proof),
    ]:
        with pytest.raises(ProofError):
            verify_consistency(*case)
    verify_consistency(first, first, roots[0], roots[0], [])


def test_out_of_range_requests_are_refused(accumulator: MerkleAccumulator) -> None:
    """Proofs and roots beyond the tree raise ProofError instead of guessing."""
    with pytest.raises(ProofError):
        accumulator.inclusion_proof(41, 41)
    with pytest.raises(ProofError):
        accumulator.inclusion_proof(0, 42)
    with pytest.raises(ProofError):
        accumulator.consistency_proof(0, 5)
    with pytest.raises(ProofError):
        accumulator.consistency_proof(6, 5)
    with pytest.raises(ProofError):
        accumulator.root(42)
    with pytest.raises(ValueError):
        MerkleAccumulator().append_hash(b"short")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_large_trees_agree_with_list_roots(size: int, data: st.DataObject) -> None:
    """Random sizes up to 3,000: roots, and random proofs verify."""
    items = [i.to_bytes(4, "big") for i in range(size)]
    tree = MerkleAccumulator()
    tree.extend(items)
    assert tree.root() == merkle_root(items)
    index = data.draw(st.integers(0, size - 1))
    verify_inclusion(leaf_hash(items[index]), index, size, tree.inclusion_proof(index), tree.root())
    first = data.draw(st.integers(1, size))
    verify_consistency(first, size, tree.root(first), tree.root(), tree.consistency_proof(first))
