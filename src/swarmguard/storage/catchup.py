"""Block headers, and verification of a range of blocks for catch-up, sequential or parallel.

Header, version 4 (keep in sync with docs/storage.md, "Headers")::

    version u8 | height u64 | time u64 | previous_hash (32) | transactions_root (32)
    | state_root (32) | validators_hash (32) | next_validators_hash (32) | proposer (20)
    | last_commit_hash (32) | seed (64) | seed_proof (80)

``seed`` is this height's leader-draw seed and ``seed_proof`` the proposer's ECVRF proof whose
output is the next height's (``validators.election``: the proposer cannot choose it, so cannot
grind the next leader the way it could a seed taken from the block hash). The node checks that
each header's ``seed`` is the output of the proof in the header before it (``node.chain``).

``next_validators_hash`` names the set of the next height, so a header certified by its own set
vouches for its successor set: that chain of certified hand-overs is what a node with only the
genesis set can follow to trust a later height (state sync). Version 2 lacked it; chains made
with version 2 headers are not readable by this version.

``last_commit_hash`` binds the previous height's commit certificate the block carries
(``Block.last_commit``; ``commit_hash``), so every node reads the same signers for it.

A block's hash is ``digest(BLOCK_HEADER, header bytes, chain_id)``. Verifying a block checks that
its header decodes and names the block's height and the set it is verified against, that
``transactions_root`` is the RFC 9162 root of its transactions, and that its commit
certificate is for this height and hash and carries enough voting power of valid signatures.
Verifying a range also checks that each header's ``previous_hash`` is the hash of the block
before it.

The per-block checks are independent, and the expensive one (Ed25519, about 55 us a signature) does
not speed up with threads in CPython, so ``verify_range(..., processes=N)`` spreads contiguous
slices over worker processes; the links between blocks, cheap, are checked afterwards in order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import Domain, digest
from swarmguard.validators.certificate import CertificateError, CommitCertificate
from swarmguard.validators.sets import validators_hash

from .blockstore import Block
from .merkle import merkle_root

__all__ = ["HEADER_VERSION", "CatchUpError", "Header", "commit_hash", "verify_range"]

HEADER_VERSION = 4
SEED_BYTES = 64
"""An ECVRF output (``beta``): what a header's ``seed`` holds."""
SEED_PROOF_BYTES = 80


def commit_hash(chain_id: str, certificate: bytes) -> bytes:
    """What a header's ``last_commit_hash`` is for an encoded certificate (all zero for none:
    height 1 has no previous commit)."""
    if not certificate:
        return bytes(32)
    return digest(Domain.COMMIT_CERTIFICATE, certificate, chain_id=chain_id)


class CatchUpError(ValueError):
    """A block in the range does not verify; the message names the height and the reason."""


@dataclass(frozen=True, slots=True)
class Header:
    """What a block commits to (the fields consensus agrees on)."""

    height: int
    time: int
    previous_hash: bytes
    transactions_root: bytes
    state_root: bytes
    validators_hash: bytes  # this height's set (chain.validators_hash)
    next_validators_hash: bytes  # the next height's set
    proposer: bytes
    last_commit_hash: bytes = bytes(32)  # commit_hash of the previous height's certificate
    seed: bytes = bytes(SEED_BYTES)  # this height's leader-draw seed
    seed_proof: bytes = bytes(SEED_PROOF_BYTES)  # the proposer's VRF proof of the next seed

    def encode(self) -> bytes:
        out = Writer()
        out.uint(HEADER_VERSION, 1)
        out.uint(self.height, 8)
        out.uint(self.time, 8)
        for value in (
            self.previous_hash,
            self.transactions_root,
            self.state_root,
            self.validators_hash,
            self.next_validators_hash,
        ):
            out.fixed(value, 32)
        out.fixed(self.proposer, 20)
        out.fixed(self.last_commit_hash, 32)
        out.fixed(self.seed, SEED_BYTES)
        out.fixed(self.seed_proof, SEED_PROOF_BYTES)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> Header:
        reader = Reader(data, "header")
        reader.version(HEADER_VERSION)
        header = Header(
            reader.uint(8, "height"),
            reader.uint(8, "time"),
            reader.fixed(32, "previous_hash"),
            reader.fixed(32, "transactions_root"),
            reader.fixed(32, "state_root"),
            reader.fixed(32, "validators_hash"),
            reader.fixed(32, "next_validators_hash"),
            reader.fixed(20, "proposer"),
            reader.fixed(32, "last_commit_hash"),
            reader.fixed(SEED_BYTES, "seed"),
            reader.fixed(SEED_PROOF_BYTES, "seed_proof"),
        )
        reader.finish()
        return header

    def hash(self, chain_id: str) -> bytes:
        return digest(Domain.BLOCK_HEADER, self.encode(), chain_id=chain_id)


def _verify_slice(
    chain_id: str,
    encoded_blocks: Sequence[bytes],
    validators: Sequence[tuple[bytes, int]],
    slack: int,
) -> list[tuple[bytes, bytes]]:
    """Check each block on its own; returns (previous_hash, hash) per block for the link check."""
    links = []
    set_hash = validators_hash(validators)
    for encoded in encoded_blocks:
        try:
            block = Block.decode(encoded)
            header = Header.decode(block.header)
        except CodecError as error:
            raise CatchUpError(f"undecodable block: {error}") from None
        height = block.height
        if header.height != height:
            raise CatchUpError(f"block {height}: its header says height {header.height}")
        if header.validators_hash != set_hash:
            raise CatchUpError(f"block {height}: its header names another validator set")
        if merkle_root(list(block.transactions)) != header.transactions_root:
            raise CatchUpError(f"block {height}: transactions do not match the header's root")
        if commit_hash(chain_id, block.last_commit) != header.last_commit_hash:
            raise CatchUpError(f"block {height}: its last commit does not match the header")
        block_hash = digest(Domain.BLOCK_HEADER, block.header, chain_id=chain_id)
        try:
            certificate = CommitCertificate.decode(block.certificate)
        except CodecError as error:
            raise CatchUpError(f"block {height}: {error}") from None
        if certificate.height != height or certificate.block_hash != block_hash:
            raise CatchUpError(f"block {height}: the certificate is for another block")
        try:
            certificate.verify(chain_id, validators, slack)
        except CertificateError as error:
            raise CatchUpError(f"block {height}: {error}") from None
        links.append((header.previous_hash, block_hash))
    return links


def verify_range(
    chain_id: str,
    blocks: Sequence[Block],
    previous_hash: bytes,
    validators: Sequence[tuple[bytes, int]],
    *,
    slack: int = 0,
    processes: int = 1,
    slice_size: int | None = None,
    executor: Executor | None = None,
) -> list[bytes]:
    """Verify consecutive ``blocks`` following a block whose hash is ``previous_hash``; returns
    their hashes. ``validators`` are (consensus key, power) by index, for the whole range, and
    ``slack`` is the chain's fast-path slack P (with the set's power, it sets the commit
    thresholds). ``executor``: a pool of ``processes`` workers to run the slices in (a node
    keeps one for a whole sync) instead of new processes. Raises CatchUpError for the first
    (lowest) block that fails."""
    for offset, block in enumerate(blocks[1:], start=1):
        if block.height != blocks[offset - 1].height + 1:
            raise CatchUpError(f"block {block.height} does not follow {blocks[offset - 1].height}")
    encoded = [block.encode() for block in blocks]
    if slice_size is None:
        # Several equal slices per worker, so no worker idles while another finishes a tail.
        slice_size = max(50, -(-len(encoded) // (max(processes, 1) * 8)))
    slices = [encoded[i : i + slice_size] for i in range(0, len(encoded), slice_size)]
    links: list[tuple[bytes, bytes]] = []
    if len(slices) == 1 or (executor is None and processes <= 1):
        for piece in slices:
            links.extend(_verify_slice(chain_id, piece, validators, slack))
    elif executor is not None:
        links = _verify_slices(executor, chain_id, slices, validators, slack)
    else:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            links = _verify_slices(pool, chain_id, slices, validators, slack)
    expected = previous_hash
    hashes = []
    for block, (previous, block_hash) in zip(blocks, links, strict=True):
        if previous != expected:
            raise CatchUpError(f"block {block.height}: previous_hash does not link")
        hashes.append(block_hash)
        expected = block_hash
    return hashes


def _verify_slices(
    executor: Executor,
    chain_id: str,
    slices: list[list[bytes]],
    validators: Sequence[tuple[bytes, int]],
    slack: int,
) -> list[tuple[bytes, bytes]]:
    futures = [
        executor.submit(_verify_slice, chain_id, piece, validators, slack) for piece in slices
    ]
    links: list[tuple[bytes, bytes]] = []
    for future in futures:  # in order, so the lowest failing block is reported
        links.extend(future.result())
    return links


def default_processes() -> int:
    """All cores (catch-up is the node's only job while it runs)."""
    return os.cpu_count() or 1
