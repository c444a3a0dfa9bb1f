"""The compact sparse Merkle tree: its root against the definition, persistence of versions,
and inclusion / non-inclusion proofs (valid and tampered)."""

from __future__ import annotations

import gc
import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmguard.codec import CodecError
from swarmguard.storage.state_tree import (
    EMPTY,
    StateProof,
    StateProofError,
    StateTree,
    verify_inclusion,
    verify_non_inclusion,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def bit(path: bytes, depth: int) -> int:
    return (path[depth // 8] >> (7 - depth % 8)) & 1


def definition_root(items: dict[bytes, bytes]) -> bytes:
    """The module docstring's definition, written recursively over the whole key set."""
    leaves = [(sha(key), sha(value)) for key, value in items.items()]

    def root(subset: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if not subset:
            return EMPTY
        if len(subset) == 1:
            path, value_hash = subset[0]
            return sha(b"\x00" + path + value_hash)
        left = [leaf for leaf in subset if bit(leaf[0], depth) == 0]
        right = [leaf for leaf in subset if bit(leaf[0], depth) == 1]
        return sha(b"\x01" + root(left, depth + 1) + root(right, depth + 1))

    return root(leaves, 0)


WRITES = st.lists(
    st.dictionaries(
        st.binary(min_size=1, max_size=3),
        st.one_of(st.none(), st.binary(max_size=8)),
        max_size=12,
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(WRITES)
def test_root_matches_the_definition_and_versions_persist(batches: list[dict]) -> None:
    """After any batches of writes and deletes, the root is the definition's over the final key
    set, and every earlier version still has its own root and values."""
    tree = StateTree()
    model: dict[bytes, bytes] = {}
    versions = []
    for batch in batches:
        tree = tree.apply(batch)
        for key, value in batch.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        versions.append((tree, dict(model)))
        assert tree.root == definition_root(model)
        assert len(tree) == len(model)
    for version, snapshot in versions:
        assert version.root == definition_root(snapshot)
        for key, value in snapshot.items():
            assert version.get(key) == value


def test_a_one_pass_build_leaves_the_garbage_collector_as_it_found_it() -> None:
    """The build pauses the cyclic collector (a tree has no cycles) and restores its state."""
    leaves = sorted((sha(b"%d" % i), b"v") for i in range(100))
    assert gc.isenabled()
    StateTree.from_leaves(leaves)
    assert gc.isenabled()
    gc.disable()
    try:
        StateTree.from_leaves(leaves)
        assert not gc.isenabled()
    finally:
        gc.enable()


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.binary(min_size=1, max_size=3), st.one_of(st.none(), st.binary(max_size=8)), max_size=40
    )
)
def test_a_tree_built_in_one_pass_is_the_tree_built_key_by_key(writes: dict) -> None:
    """An empty tree takes a batch (a genesis) in one bottom-up pass; the version it gives
    has the same root, size, values, proofs and later updates as one built key by key."""
    bulk = StateTree().apply(writes)
    single = StateTree()
    for key, value in writes.items():
        single = single.apply({key: value})
    assert (bulk.root, len(bulk), list(bulk.items())) == (
        single.root,
        len(single),
        list(single.items()),
    )
    for key in writes:
        assert bulk.prove(key) == single.prove(key)
    more = {key + b"+": b"v" for key in writes} | dict.fromkeys(list(writes)[:3])
    assert bulk.apply(more).root == single.apply(more).root


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=1, max_size=4), st.binary(max_size=8), max_size=40),
    st.lists(st.binary(min_size=1, max_size=4), max_size=10),
)
def test_proofs_verify(items: dict[bytes, bytes], probes: list[bytes]) -> None:
    """Every present key has an inclusion proof, every absent key a non-inclusion proof."""
    tree = StateTree().apply(items)
    for key, value in items.items():
        verify_inclusion(tree.root, key, value, tree.prove(key))
        encoded = tree.prove(key).encode()  # what a query answer carries
        assert StateProof.decode(encoded) == tree.prove(key)
        assert StateProof.decode(encoded).encode() == encoded
        with pytest.raises(StateProofError):
            verify_non_inclusion(tree.root, key, tree.prove(key))
    for key in probes:
        if key not in items:
            proof = tree.prove(key)
            verify_non_inclusion(tree.root, key, proof)
            with pytest.raises(StateProofError):
                verify_inclusion(tree.root, key, b"anything", proof)


def test_tampered_proofs_fail() -> None:
    """Changed siblings, values, terminals or roots are refused."""
    items = {f"account {i}".encode(): f"balance {i}".encode() for i in range(200)}
    tree = StateTree().apply(items)
    key, value = b"account 7", b"balance 7"
    proof = tree.prove(key)
    assert proof.siblings
    flipped = (bytes(32), *proof.siblings[1:])
    for bad_root, bad_value, bad_proof in [
        (tree.root, value, replace(proof, siblings=flipped)),
        (tree.root, b"balance 8", proof),
        (EMPTY, value, proof),
        (tree.root, value, replace(proof, siblings=proof.siblings[:-1])),
        (tree.root, value, replace(proof, siblings=(*proof.siblings, bytes(32)))),
    ]:
        with pytest.raises(StateProofError):
            verify_inclusion(bad_root, key, bad_value, bad_proof)
    absent = tree.prove(b"nobody")
    verify_non_inclusion(tree.root, b"nobody", absent)
    if absent.leaf_path is not None:
        with pytest.raises(StateProofError):
            verify_non_inclusion(tree.root, b"nobody", replace(absent, leaf_value_hash=bytes(32)))
    with pytest.raises(StateProofError):
        verify_non_inclusion(tree.root, b"nobody", replace(absent, siblings=flipped))


def test_a_misplaced_terminal_leaf_is_named() -> None:
    """Another key's leaf offered as the end of a non-inclusion proof, off the key's path, is
    refused with a precise message."""
    items = {f"k{i}".encode(): b"v" for i in range(50)}
    tree = StateTree().apply(items)
    present = b"k1"
    proof = tree.prove(present)
    assert proof.siblings
    first_bit = sha(present)[0] >> 7
    absent = next(
        key
        for key in (f"other {i}".encode() for i in range(1000))
        if key not in items and sha(key)[0] >> 7 != first_bit
    )
    with pytest.raises(StateProofError, match="not where the key would be"):
        verify_non_inclusion(tree.root, absent, proof)


def test_updates_share_untouched_subtrees() -> None:
    """A new version reuses every subtree off the updated key's path (cost ~ keys touched), and
    the old version is untouched."""
    key = b"\x00\x00\x00\x05"
    base = StateTree().apply({i.to_bytes(4, "big"): b"v" for i in range(2000)})
    after = base.apply({key: b"changed"})
    assert base.get(key) == b"v"
    assert after.get(key) == b"changed"
    off_path = "left" if sha(key)[0] >> 7 else "right"
    assert getattr(base._root, off_path) is getattr(after._root, off_path)
    assert base.root != after.root


@given(st.binary(max_size=200))
def test_proof_decoding_never_crashes(blob: bytes) -> None:
    try:
        StateProof.decode(blob)
    except CodecError:
        pass
