"""The application interface, shaped like CometBFT's ABCI++ so its users feel at home.

An application is an in-process Python object with these methods; the node calls them from one
task, never concurrently, in this order for each height::

    prepare_proposal (leader only) -> process_proposal (everyone, before voting)
    -> finalize_block (once decided) -> commit

plus ``check_tx`` for the mempool at any time between blocks, ``query`` for clients, ``info``
at start-up (to find where the application stands) and ``init_chain`` once, at genesis.

The contract the node relies on:

- Determinism: ``process_proposal``, ``finalize_block`` and the ``app_hash`` they lead to depend
  only on the chain so far and the block. Every honest node must get the same answers.
- ``finalize_block`` returns the block's effects without making them durable; ``writes`` lists
  every state entry that changed (key -> value, None for deleted), and the node stores them
  atomically with the block, then calls ``commit``. The stored entries are the application's
  whole state: after a restart the node hands them back (``load_state``), so an application
  keeps nothing that is not in its writes.
- ``check_tx`` may keep a scratch state of its own (CometBFT's "check state", e.g. pending
  nonces); the node calls it again for every transaction left in the mempool after each commit.

The snapshot calls follow ABCI's state sync: a serving node lists and loads chunks; a joining
node is offered a snapshot and applies its chunks, then checks the app hash against the light
client's header before it joins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from swarmguard.storage.state_tree import StateTree

__all__ = [
    "Application",
    "BlockRequest",
    "CheckResult",
    "ChunkOutcome",
    "FinalizedBlock",
    "Info",
    "QueryResult",
    "Snapshot",
    "TxResult",
    "ValidatorUpdate",
]

OK = 0


@dataclass(frozen=True, slots=True)
class Info:
    height: int  # the last height the application committed (0: none yet)
    app_hash: bytes
    version: str


@dataclass(frozen=True, slots=True)
class ValidatorUpdate:
    """A member of the validator set chosen by the application (power 0 removes one)."""

    consensus_key: bytes
    vrf_key: bytes
    power: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    code: int = OK
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.code == OK


TxResult = CheckResult
"""A transaction's outcome in a block: a failed one is still in the block, with its code."""


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """What ``finalize_block`` is told about a decided block."""

    height: int
    time: int  # seconds, the block's time (the proposer's clock, checked by the validators)
    transactions: tuple[bytes, ...]
    proposer: bytes  # the proposer's consensus key
    signers: tuple[bytes, ...] = ()  # consensus keys in the previous height's commit
    failed_proposers: tuple[bytes, ...] = ()
    """Consensus keys that led views of the previous height before the one that decided it
    (from ``last_commit``), other than its proposer: they failed to get a block decided."""
    last_validators: tuple[bytes, ...] = ()
    """Consensus keys of the previous height's set: who could have signed ``signers``' commit
    (the set an application chose takes effect two heights later, so this is not always the
    application's current one). Empty at height 1."""


@dataclass(frozen=True, slots=True)
class FinalizedBlock:
    results: tuple[TxResult, ...]
    app_hash: bytes
    writes: Mapping[bytes, bytes | None] = field(default_factory=dict)
    validator_updates: tuple[ValidatorUpdate, ...] | None = None  # None: the set is unchanged


@dataclass(frozen=True, slots=True)
class QueryResult:
    code: int
    value: bytes = b""
    proof: bytes = b""  # empty unless asked for
    height: int = 0
    log: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    height: int
    format: int
    chunks: int
    hash: bytes
    metadata: bytes = b""


class ChunkOutcome(Enum):
    ACCEPT = "accept"
    RETRY = "retry"  # ask for this chunk again (from another peer)
    REJECT_SNAPSHOT = "reject_snapshot"  # give up on this snapshot; try another


class Application(Protocol):
    def info(self) -> Info: ...

    def init_chain(self, app_state: bytes) -> FinalizedBlock:
        """Genesis: the application's part of the genesis file. The result's ``app_hash`` and
        ``writes`` are the genesis state (stored with block 1), ``validator_updates`` the set of
        height 1, ``results`` empty."""
        ...

    def load_state(self, state: StateTree, height: int) -> None:
        """Start over from the state the node stored at ``height`` (a restart, or after state
        sync): the entries are exactly those ``init_chain`` and ``finalize_block`` wrote."""
        ...

    def check_tx(self, transaction: bytes) -> CheckResult: ...

    def prepare_proposal(
        self, height: int, transactions: Sequence[bytes], max_bytes: int
    ) -> list[bytes]:
        """The leader's chance to reorder, drop or add transactions (within ``max_bytes``)."""
        ...

    def process_proposal(self, height: int, transactions: Sequence[bytes]) -> bool:
        """Accept a proposed block for voting (False: this replica refuses to vote for it)."""
        ...

    def finalize_block(self, request: BlockRequest) -> FinalizedBlock: ...

    def commit(self) -> None: ...

    def query(self, path: str, data: bytes, *, prove: bool = False) -> QueryResult: ...

    def list_snapshots(self) -> list[Snapshot]: ...

    def load_snapshot_chunk(self, height: int, format: int, chunk: int) -> bytes | None: ...

    def offer_snapshot(self, snapshot: Snapshot, app_hash: bytes) -> bool: ...

    def apply_snapshot_chunk(self, index: int, chunk: bytes) -> ChunkOutcome: ...
