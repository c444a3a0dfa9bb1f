"""The built-in application: accounts, signed transfers, and staking through the validator
manager, so a chain's validator set really comes from stake.

State (every entry a leaf of the sparse Merkle tree, whose root is the app hash):

- ``b"account:" + address`` -> ``address (20) | balance u64 | nonce u64``: one per account
  with a balance or a used nonce, provable to a light client by ``query("account", address)``;
- ``b"delegation:" + delegator + validator`` -> ``delegator | validator | shares u128``;
- ``b"block_time:" + height u64`` -> ``height u64 | time u64``: the evidence window's times;
- ``b"validators"`` -> ``ValidatorManager.encode(apart=True)``: the rest of the validator
  manager (validators, unbonding, reputation, downtime, evidence);
- ``b"leader_reputation"`` -> the ``reputation`` answer as it was before the last block ran:
  what that height's leader schedule drew with. The next block's ``last_commit`` may show a
  later view, and the node then names that height's failed leaders from it; kept in state, so
  a restarted or state-synced node names the same ones.

Balances, delegations and block times live in the manager while running and are stored as
their own leaves. A block rewrites only the leaves of the entries it changed (the manager's
``Tracked`` dicts and the consumed nonces say which), never all of them: its cost grows with the
tree's depth, not with the number of accounts, delegations or heights in the evidence window.
Values are self-describing (leaves are told apart by length), so a snapshot's leaves alone
rebuild the application.

Transactions (``node.transactions``) are executed in block order. One that does not decode or
is not signed makes ``process_proposal`` refuse the whole block (an honest leader never includes
one: ``check_tx`` refused it). One whose nonce is not the sender's next is skipped with a code
and changes nothing. Otherwise the nonce is consumed whatever happens next (as Cosmos does, so a
failed transaction cannot be replayed later), and a refusal by the staking rules is recorded in
the block's results with its reason, leaving no other trace (the rules check before they write).

``check_tx`` keeps CometBFT's "check state": the next nonce per account counting what the
mempool already holds, reset to the committed nonces at every commit; the mempool then re-checks
what it still holds, in order.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from swarmguard.codec import CodecError
from swarmguard.crypto import ecvrf
from swarmguard.crypto.hashing import ADDRESS_BYTES
from swarmguard.node.abci import (
    BlockRequest,
    CheckResult,
    ChunkOutcome,
    FinalizedBlock,
    Info,
    QueryResult,
    Snapshot,
    TxResult,
    ValidatorUpdate,
)
from swarmguard.node.transactions import (
    CreateValidator,
    Delegate,
    Redelegate,
    SubmitEvidence,
    Transaction,
    Transfer,
    Undelegate,
    Unjail,
)
from swarmguard.storage.snapshots import Manifest, Restorer, SnapshotError, create_snapshot
from swarmguard.storage.state_tree import StateTree, path_of
from swarmguard.validators.manager import ValidatorManager
from swarmguard.validators.params import StakingParams

_OK = CheckResult()
"""The one success result (immutable): not built anew for every transaction and re-check."""

__all__ = ["Code", "LedgerApp"]

VERSION = "swarmguard-ledger/2"
_ACCOUNT = b"account:"
_DELEGATION = b"delegation:"
_BLOCK_TIME = b"block_time:"
_VALIDATORS = b"validators"
_LEADER_REPUTATION = b"leader_reputation"
SNAPSHOT_FORMAT = 1
VERIFIED_KEPT = 100_000
"""Encoded transactions whose signature verified, remembered so it is checked once."""


class Code:
    """Result codes of check_tx, finalize_block and query (0 is success)."""

    OK = 0
    MALFORMED = 1
    BAD_SIGNATURE = 2
    BAD_NONCE = 3
    INSUFFICIENT_FUNDS = 4
    REFUSED = 5  # the staking rules refused it (the log says why)
    NOT_FOUND = 6
    UNKNOWN_PATH = 7


@dataclass(frozen=True, slots=True)
class _Account:
    balance: int
    nonce: int


def _account_value(address: bytes, account: _Account) -> bytes:
    return address + account.balance.to_bytes(8, "big") + account.nonce.to_bytes(8, "big")


def _delegation_value(pair: tuple[bytes, bytes], shares: int) -> bytes:
    return pair[0] + pair[1] + shares.to_bytes(16, "big")


def _block_time_value(height: int, time: int) -> bytes:
    return height.to_bytes(8, "big") + time.to_bytes(8, "big")


def _parse_account(value: bytes) -> tuple[bytes, _Account]:
    if len(value) != ADDRESS_BYTES + 16:
        raise CodecError("account entry: wrong length")
    balance = int.from_bytes(value[20:28], "big")
    return value[:20], _Account(balance, int.from_bytes(value[28:], "big"))


class LedgerApp:
    """The built-in ledger (see the module docstring); implements ``abci.Application``."""

    def __init__(self, chain_id: str, *, snapshot_interval: int = 0, snapshots_kept: int = 2):
        self.chain_id = chain_id
        self.snapshot_interval = snapshot_interval
        self.snapshots_kept = snapshots_kept
        self.manager: ValidatorManager | None = None
        self.nonces: dict[bytes, int] = {}
        self.height = 0
        self.tree = StateTree()
        self._nonces_changed: set[bytes] = set()  # since the last finalize_block
        self._check_nonces: dict[bytes, int] = {}
        self._pending: tuple[int, StateTree] | None = None
        self._snapshots: dict[int, tuple[Manifest, list[bytes]]] = {}
        self._restorer: Restorer | None = None
        self._verified: OrderedDict[bytes, Transaction] = OrderedDict()

    # -- genesis and start-up --------------------------------------------------------------

    def info(self) -> Info:
        return Info(self.height, self.tree.root, VERSION)

    def init_chain(self, app_state: bytes) -> FinalizedBlock:
        """``app_state`` is JSON: {"accounts": [{"address": hex, "balance": int}],
        "validators": [{"operator": hex, "consensus_key": hex, "vrf_key": hex,
        "self_bond": int, "commission_ppm": int}], "staking": {StakingParams fields}}."""
        try:
            document = json.loads(app_state)
            params = StakingParams(**document.get("staking", {}))
            balances = {
                bytes.fromhex(a["address"]): int(a["balance"]) for a in document["accounts"]
            }
            manager = ValidatorManager(self.chain_id, params, balances)
            for v in document["validators"]:
                ecvrf.check_public_key(bytes.fromhex(v["vrf_key"]))
                manager.staking.create_validator(
                    bytes.fromhex(v["operator"]),
                    bytes.fromhex(v["consensus_key"]),
                    bytes.fromhex(v["vrf_key"]),
                    int(v.get("commission_ppm", 0)),
                    int(v["self_bond"]),
                )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"genesis app_state: {error}") from None
        manager.end_block()  # height 0 is an epoch boundary: the genesis set becomes active
        self.manager = manager
        updates = self._validator_set()
        writes = self._changed_writes()  # every entry is new: the accounts, the self-bonds
        writes[_VALIDATORS] = manager.encode(apart=True)
        self.tree = StateTree().apply(writes)
        self._check_nonces = {}
        return FinalizedBlock((), self.tree.root, writes, updates)

    def _validator_set(self) -> tuple[ValidatorUpdate, ...]:
        manager = self._manager()
        validators = manager.staking.validators
        return tuple(
            ValidatorUpdate(validators[op].consensus_key, validators[op].vrf_key, power)
            for op, power in sorted(manager.epoch_power.items())
        )

    def _manager(self) -> ValidatorManager:
        if self.manager is None:
            raise RuntimeError("the chain has not been initialised (init_chain or a snapshot)")
        return self.manager

    # -- the mempool ---------------------------------------------------------------------

    def next_nonce(self, address: bytes) -> int:
        """The nonce ``check_tx`` expects next from ``address`` (pending ones counted)."""
        return self._check_nonces.get(address, self.nonces.get(address, 0))

    def check_tx(self, transaction: bytes) -> CheckResult:
        try:
            tx = self._verified_tx(transaction)
        except CodecError as error:
            return CheckResult(Code.MALFORMED, str(error))
        if tx is None:
            return CheckResult(Code.BAD_SIGNATURE, "the signature does not verify")
        address = tx.address
        expected = self._check_nonces.get(address, self.nonces.get(address, 0))
        if tx.nonce != expected:
            return CheckResult(Code.BAD_NONCE, f"nonce {tx.nonce}, expected {expected}")
        body = tx.body
        if isinstance(body, Transfer | Delegate):
            balance = self._manager().staking.balances.get(address, 0)
            if balance < body.amount:
                return CheckResult(Code.INSUFFICIENT_FUNDS, f"balance {balance}")
        self._check_nonces[address] = expected + 1
        return _OK

    def _verified_tx(self, encoded: bytes) -> Transaction | None:
        """Decoded, and its signature verified, once per transaction, not once per step:
        check_tx, the re-check, process_proposal and finalize_block see the same bytes, and a
        signature that verified once always will. (Only successes are remembered, by the exact
        encoding, in bounded memory.) None: not signed; raises CodecError."""
        tx = self._verified.get(encoded)
        if tx is not None:
            return tx
        tx = Transaction.decode(encoded)
        if not tx.is_signed(self.chain_id, encoded):
            return None
        self._verified[encoded] = tx
        if len(self._verified) > VERIFIED_KEPT:
            self._verified.popitem(last=False)
        return tx

    # -- blocks ----------------------------------------------------------------------------

    def prepare_proposal(
        self, height: int, transactions: Sequence[bytes], max_bytes: int
    ) -> list[bytes]:
        taken, size = [], 0
        for transaction in transactions:
            if size + len(transaction) > max_bytes:
                break
            taken.append(transaction)
            size += len(transaction)
        return taken

    def process_proposal(self, height: int, transactions: Sequence[bytes]) -> bool:
        for transaction in transactions:
            try:
                if self._verified_tx(transaction) is None:
                    return False
            except CodecError:
                return False
        return True

    def finalize_block(self, request: BlockRequest) -> FinalizedBlock:
        manager = self._manager()
        if request.height != self.height + 1:
            raise ValueError(f"expected height {self.height + 1}, got {request.height}")
        leader_reputation = self._reputation()  # what this height's leaders were drawn with
        manager.begin_block(request.height, request.time)
        results = tuple(self._execute(transaction) for transaction in request.transactions)
        operators = {v.consensus_key: op for op, v in manager.staking.validators.items()}
        manager.record_block(
            operators.get(request.proposer, b""),
            [operators[key] for key in request.signers if key in operators],
            failed_leaders=[operators[k] for k in request.failed_proposers if k in operators],
            eligible=[operators[k] for k in request.last_validators if k in operators],
        )
        active = manager.end_block()
        writes = self._changed_writes()
        writes[_VALIDATORS] = manager.encode(apart=True)
        writes[_LEADER_REPUTATION] = leader_reputation
        tree = self.tree.apply(writes)
        self._pending = (request.height, tree)
        updates = self._validator_set() if active is not None else None
        return FinalizedBlock(results, tree.root, writes, updates)

    def _changed_writes(self) -> dict[bytes, bytes | None]:
        """The leaves of the entries changed since the last call (accounts' balances and
        nonces, delegations, recent block times), and only those: never a pass over every
        account, every delegation or the whole evidence window."""
        manager = self._manager()
        balances, nonces = manager.staking.balances, self.nonces
        delegations, times = manager.staking.delegations, manager.block_times
        changed: dict[bytes, bytes | None] = {}
        for address in balances.take_changed() | self._nonces_changed:
            value = None
            if address in balances or address in nonces:
                account = _Account(balances.get(address, 0), nonces.get(address, 0))
                value = _account_value(address, account)
            changed[_ACCOUNT + address] = value
        self._nonces_changed = set()
        for pair in delegations.take_changed():
            shares = delegations.get(pair)
            value = None if shares is None else _delegation_value(pair, shares)
            changed[_DELEGATION + pair[0] + pair[1]] = value
        for height in times.take_changed():
            time = times.get(height)
            value = None if time is None else _block_time_value(height, time)
            changed[_BLOCK_TIME + height.to_bytes(8, "big")] = value
        tree = self.tree  # an entry changed back within the block has nothing to write
        return {key: value for key, value in changed.items() if value != tree.get(key)}

    def _execute(self, transaction: bytes) -> TxResult:
        try:
            tx = self._verified_tx(transaction)
        except CodecError as error:
            return TxResult(Code.MALFORMED, str(error))
        if tx is None:
            return TxResult(Code.BAD_SIGNATURE, "the signature does not verify")
        address = tx.address
        if tx.nonce != self.nonces.get(address, 0):
            return TxResult(
                Code.BAD_NONCE, f"nonce {tx.nonce}, expected {self.nonces.get(address, 0)}"
            )
        self.nonces[address] = tx.nonce + 1  # consumed, whatever the rules say next
        self._nonces_changed.add(address)
        manager = self._manager()
        staking = manager.staking
        body = tx.body
        try:
            if isinstance(body, Transfer):
                staking.transfer(address, body.to, body.amount)
            elif isinstance(body, CreateValidator):
                ecvrf.check_public_key(body.vrf_key)  # else it could never lead: refused here
                staking.create_validator(
                    address, body.consensus_key, body.vrf_key, body.commission_ppm, body.self_bond
                )
            elif isinstance(body, Delegate):
                staking.delegate(address, body.operator, body.amount)
            elif isinstance(body, Undelegate):
                staking.undelegate(address, body.operator, body.amount or None)
            elif isinstance(body, Redelegate):
                staking.redelegate(address, body.source, body.destination, body.amount)
            elif isinstance(body, Unjail):
                manager.unjail(address)
            elif isinstance(body, SubmitEvidence):
                manager.submit_evidence(body.evidence)
        except ValueError as error:  # StakingError, InvalidEvidence, InvalidProof: refused
            return TxResult(Code.REFUSED, str(error))
        return _OK

    def commit(self) -> None:
        if self._pending is None:
            raise RuntimeError("commit without a finalized block")
        self.height, self.tree = self._pending
        self._pending = None
        self._check_nonces = {}
        if self.snapshot_interval and self.height % self.snapshot_interval == 0:
            self._snapshots[self.height] = create_snapshot(self.tree, self.chain_id, self.height)
            for old in sorted(self._snapshots)[: -self.snapshots_kept]:
                del self._snapshots[old]

    # -- queries ---------------------------------------------------------------------------

    def query(self, path: str, data: bytes, *, prove: bool = False) -> QueryResult:
        """Paths: ``account`` (data: a 20-byte address) -> ``balance u64 | nonce u64``, with a
        state proof of the account leaf (or of its absence) against this height's app hash;
        ``validators`` -> the set for the next height, ``(consensus key (32) | power u64)*``
        by key (the node reads it back after a restart); ``reputation`` -> ``threshold u32 |
        (consensus key (32) | score u32)*`` in parts per million, what the leader schedule
        of the next height draws with; ``leader_reputation`` -> the same as it was for the last
        committed height (empty before the first block); ``vrf_key`` (data: a consensus key)
        -> the VRF key its validator registered, what the node checks a proposal's seed proof
        with."""
        if path == "reputation":
            return QueryResult(Code.OK, self._reputation(), height=self.height)
        if path == "leader_reputation":
            stored = self.tree.get(_LEADER_REPUTATION) or b""
            return QueryResult(Code.OK, stored, height=self.height)
        if path == "vrf_key":
            for validator in self._manager().staking.validators.values():
                if validator.consensus_key == data:
                    return QueryResult(Code.OK, validator.vrf_key, height=self.height)
            return QueryResult(Code.NOT_FOUND, log="no validator has this key", height=self.height)
        if path == "validators":
            members = sorted(self._validator_set(), key=lambda u: u.consensus_key)
            encoded = b"".join(u.consensus_key + u.power.to_bytes(8, "big") for u in members)
            return QueryResult(Code.OK, encoded, height=self.height)
        if path != "account":
            return QueryResult(Code.UNKNOWN_PATH, log=f"unknown path {path!r}", height=self.height)
        if len(data) != ADDRESS_BYTES:
            return QueryResult(Code.MALFORMED, log="an address is 20 bytes", height=self.height)
        key = _ACCOUNT + data
        value = self.tree.get(key)
        proof = self.tree.prove(key).encode() if prove else b""
        if value is None:
            return QueryResult(Code.NOT_FOUND, b"", proof, self.height, "no such account")
        return QueryResult(Code.OK, value[20:], proof, self.height)

    # -- state sync ------------------------------------------------------------------------

    def list_snapshots(self) -> list[Snapshot]:
        return [
            Snapshot(height, SNAPSHOT_FORMAT, len(chunks), manifest.state_root, manifest.encode())
            for height, (manifest, chunks) in sorted(self._snapshots.items())
        ]

    def load_snapshot_chunk(self, height: int, format: int, chunk: int) -> bytes | None:
        found = self._snapshots.get(height)
        if found is None or format != SNAPSHOT_FORMAT or not 0 <= chunk < len(found[1]):
            return None
        return found[1][chunk]

    def offer_snapshot(self, snapshot: Snapshot, app_hash: bytes) -> bool:
        """Accept a snapshot whose manifest (its metadata) matches the trusted app hash."""
        if snapshot.format != SNAPSHOT_FORMAT:
            return False
        try:
            manifest = Manifest.decode(snapshot.metadata)
            if manifest.chain_id != self.chain_id or manifest.height != snapshot.height:
                return False
            self._restorer = Restorer(manifest, app_hash)
        except (CodecError, SnapshotError):
            return False
        return True

    def apply_snapshot_chunk(self, index: int, chunk: bytes) -> ChunkOutcome:
        restorer = self._restorer
        if restorer is None:
            return ChunkOutcome.REJECT_SNAPSHOT
        try:
            restorer.add_chunk(index, chunk)
        except SnapshotError:
            return ChunkOutcome.RETRY
        if restorer.missing():
            return ChunkOutcome.ACCEPT
        try:
            self.load_state(restorer.finish(), restorer.manifest.height)
        except (SnapshotError, CodecError, ValueError):
            self._restorer = None
            return ChunkOutcome.REJECT_SNAPSHOT
        self._restorer = None
        return ChunkOutcome.ACCEPT

    def _reputation(self) -> bytes:
        manager = self._manager()
        keys = {op: v.consensus_key for op, v in manager.staking.validators.items()}
        scores = sorted((keys[op], manager.reputation.score(op)) for op in manager.epoch_power)
        threshold = manager.params.reputation_threshold_ppm.to_bytes(4, "big")
        return threshold + b"".join(k + s.to_bytes(4, "big") for k, s in scores)

    def load_state(self, tree: StateTree, height: int) -> None:
        """Rebuild from stored entries (a restart, or a restored snapshot). Every leaf must be
        one of the known kinds, under its own key, and not empty (the application never writes
        one): anything else would be a second encoding of the same state."""
        blob = tree.get(_VALIDATORS)
        if blob is None:
            raise SnapshotError("the snapshot has no validator state")
        manager = ValidatorManager.decode(self.chain_id, blob)
        staking = manager.staking
        if staking.balances or staking.delegations or manager.block_times:
            raise SnapshotError(
                "the validator state holds balances, delegations or block times, which "
                f"{VERSION} keeps as leaves of their own (state written by an earlier version)"
            )
        nonces: dict[bytes, int] = {}
        special = {path_of(_VALIDATORS), path_of(_LEADER_REPUTATION)}
        for path, value in tree.items():
            if path in special:
                continue
            if len(value) == ADDRESS_BYTES + 16:
                address, account = _parse_account(value)
                key = _ACCOUNT + address
                if not account.balance and not account.nonce:
                    raise SnapshotError("an account leaf is empty")
                if account.balance:
                    staking.balances[address] = account.balance
                if account.nonce:
                    nonces[address] = account.nonce
            elif len(value) == 2 * ADDRESS_BYTES + 16:
                key = _DELEGATION + value[:40]
                shares = int.from_bytes(value[40:], "big")
                if not shares:
                    raise SnapshotError("a delegation leaf is empty")
                staking.delegations[(value[:20], value[20:40])] = shares
            elif len(value) == 16:
                key = _BLOCK_TIME + value[:8]
                manager.block_times[int.from_bytes(value[:8], "big")] = int.from_bytes(
                    value[8:], "big"
                )
            else:
                raise SnapshotError(f"a state leaf of {len(value)} bytes is of no known kind")
            if path != path_of(key):
                raise SnapshotError("a state leaf is not under its own key")
        for entries in (staking.balances, staking.delegations, manager.block_times):
            entries.take_changed()  # they are in the tree already
        self.manager, self.tree, self.height = manager, tree, height
        self.nonces = nonces
        self._nonces_changed = set()
        self._check_nonces = {}
        self._pending = None
