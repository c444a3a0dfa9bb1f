"""The built-in ledger application: genesis, transfers with nonces, staking that changes the
validator set, evidence, proofs, determinism and state sync."""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from swarmguard.crypto import SigningKey, ecvrf
from swarmguard.crypto.hashing import address_of
from swarmguard.node.abci import BlockRequest, ChunkOutcome
from swarmguard.node.ledger import Code, LedgerApp
from swarmguard.node.transactions import (
    CreateValidator,
    Delegate,
    Redelegate,
    SubmitEvidence,
    Transaction,
    Transfer,
    Undelegate,
)
from swarmguard.storage.snapshots import SnapshotError
from swarmguard.storage.state_tree import StateProof, StateTree, path_of, verify_inclusion
from swarmguard.validators.evidence import PHASE_VOTE, DoubleVoteEvidence, sign_vote

from .test_chain import ALICE, BOB, CONSENSUS, OPERATORS, VRF_SECRETS
from .test_chain import genesis as chain_genesis

CHAIN = "swarm-test"


def address(key: SigningKey) -> bytes:
    return address_of(key.public_key.raw)


def genesis(epoch_length: int = 2) -> bytes:
    return chain_genesis(epoch_length=epoch_length)


def started(**kwargs: int) -> LedgerApp:
    app = LedgerApp(CHAIN, **kwargs)
    app.init_chain(genesis())
    return app


def block(app: LedgerApp, *transactions: bytes) -> list[int]:
    height = app.height + 1
    signers = tuple(k.public_key.raw for k in CONSENSUS)
    result = app.finalize_block(
        BlockRequest(
            height,
            1_000 + height,
            transactions,
            CONSENSUS[0].public_key.raw,
            signers,
            last_validators=signers,
        )
    )
    app.commit()
    return [r.code for r in result.results]


def tx(key: SigningKey, nonce: int, body: object) -> bytes:
    return Transaction.sign(key, CHAIN, nonce, body).encode()  # type: ignore[arg-type]


def balance(app: LedgerApp, key: SigningKey) -> int:
    result = app.query("account", address(key))
    return int.from_bytes(result.value[:8], "big") if result.code == Code.OK else 0


def test_genesis_sets_accounts_and_the_validator_set_deterministically() -> None:
    one, two = LedgerApp(CHAIN), LedgerApp(CHAIN)
    result = one.init_chain(genesis())
    root, updates = result.app_hash, result.validator_updates or ()
    assert two.init_chain(genesis()).app_hash == root == one.info().app_hash
    assert sorted(u.consensus_key for u in updates) == sorted(k.public_key.raw for k in CONSENSUS)
    assert {u.power for u in updates} == {100_000}
    assert balance(one, OPERATORS[0]) == 900_000  # the self-bond left the liquid balance
    with pytest.raises(ValueError, match="genesis"):
        LedgerApp(CHAIN).init_chain(b'{"accounts": 5}')


def test_transfers_nonces_and_the_check_state() -> None:
    app = started()
    bob = address(BOB)
    first, second = tx(ALICE, 0, Transfer(bob, 10)), tx(ALICE, 1, Transfer(bob, 20))
    assert app.check_tx(second).code == Code.BAD_NONCE  # out of order
    assert app.check_tx(first).ok
    assert app.check_tx(second).ok  # the check state counts the pending one
    assert app.check_tx(first).code == Code.BAD_NONCE  # a replay
    assert app.check_tx(tx(ALICE, 2, Transfer(bob, 10**9))).code == Code.INSUFFICIENT_FUNDS
    assert app.check_tx(b"\1garbage").code == Code.MALFORMED
    forged = Transaction(ALICE.public_key.raw, 2, Transfer(bob, 1), bytes(64)).encode()
    assert app.check_tx(forged).code == Code.BAD_SIGNATURE
    assert block(app, first, second) == [Code.OK, Code.OK]
    assert balance(app, BOB) == 30
    assert balance(app, ALICE) == 1_000_000 - 30
    assert block(app, first) == [Code.BAD_NONCE]  # replayed in a block: skipped


def test_a_refused_transaction_consumes_its_nonce_and_nothing_else() -> None:
    app = started()
    before = balance(app, ALICE)
    too_much = tx(ALICE, 0, Transfer(address(BOB), 10**7))
    assert block(app, too_much) == [Code.REFUSED]
    assert balance(app, ALICE) == before
    nonce = int.from_bytes(app.query("account", address(ALICE)).value[8:], "big")
    assert nonce == 1
    assert block(app, too_much) == [Code.BAD_NONCE]  # it cannot come back


def test_process_proposal_refuses_undecodable_or_unsigned_transactions() -> None:
    app = started()
    good = tx(ALICE, 0, Transfer(address(BOB), 1))
    assert app.process_proposal(1, [good])
    assert not app.process_proposal(1, [good, b"junk"])
    unsigned = Transaction(ALICE.public_key.raw, 0, Transfer(address(BOB), 1), bytes(64))
    assert not app.process_proposal(1, [unsigned.encode()])
    assert app.prepare_proposal(1, [good, good], len(good)) == [good]


def test_staking_changes_the_validator_set_at_the_epoch_boundary() -> None:
    app = started()  # epochs of 2 blocks
    newcomer = SigningKey(b"n" * 32)
    create = tx(
        ALICE, 0, CreateValidator(newcomer.public_key.raw, ecvrf.public_key(b"v" * 32), 0, 500_000)
    )
    result = app.finalize_block(BlockRequest(1, 1_001, (create,), CONSENSUS[0].public_key.raw))
    app.commit()
    assert [r.code for r in result.results] == [Code.OK]
    assert result.validator_updates is None  # height 1: not a boundary
    result = app.finalize_block(BlockRequest(2, 1_002, (), CONSENSUS[0].public_key.raw))
    app.commit()
    assert result.validator_updates is not None
    powers = {u.consensus_key: u.power for u in result.validator_updates}
    assert powers[newcomer.public_key.raw] == 500_000
    assert len(powers) == 5
    # Delegating to it raises its power at the next boundary.
    assert block(app, tx(BOB, 0, Delegate(address(ALICE), 1))) == [Code.REFUSED]  # Bob is broke
    assert block(app, tx(OPERATORS[1], 0, Delegate(address(ALICE), 1_000))) == [Code.OK]


def test_double_signing_evidence_slashes_and_removes_the_validator() -> None:
    app = started()  # epochs of 2 blocks
    offender = CONSENSUS[2]
    evidence = DoubleVoteEvidence.of(
        sign_vote(offender, CHAIN, 1, 0, PHASE_VOTE, b"x" * 32),
        sign_vote(offender, CHAIN, 1, 0, PHASE_VOTE, b"y" * 32),
    )
    assert block(app) == []
    assert block(app, tx(BOB, 0, SubmitEvidence(evidence))) == [Code.OK]  # anyone may submit
    result = app.finalize_block(BlockRequest(3, 1_003, (), CONSENSUS[0].public_key.raw))
    app.commit()
    result = app.finalize_block(BlockRequest(4, 1_004, (), CONSENSUS[0].public_key.raw))
    app.commit()
    assert result.validator_updates is not None
    assert offender.public_key.raw not in {u.consensus_key for u in result.validator_updates}
    assert block(app, tx(BOB, 1, SubmitEvidence(evidence))) == [Code.REFUSED]  # only once


def test_account_queries_prove_against_the_app_hash() -> None:
    app = started()
    block(app, tx(ALICE, 0, Transfer(address(BOB), 77)))
    result = app.query("account", address(BOB), prove=True)
    assert result.code == Code.OK
    assert result.height == 1
    proof = StateProof.decode(result.proof)
    verify_inclusion(
        app.info().app_hash, b"account:" + address(BOB), address(BOB) + result.value, proof
    )
    assert app.query("account", b"\0" * 20, prove=True).code == Code.NOT_FOUND
    assert app.query("nothing", b"").code == Code.UNKNOWN_PATH


def test_replicas_agree_block_by_block() -> None:
    apps = [started(), started()]
    for n in range(6):
        transactions = (tx(ALICE, n, Transfer(address(BOB), n + 1)),)
        hashes = set()
        for app in apps:
            block(app, *transactions)
            hashes.add(app.info().app_hash)
        assert len(hashes) == 1


def test_a_new_node_restores_a_snapshot_and_continues_identically() -> None:
    source = started(snapshot_interval=2)
    for n in range(4):
        block(source, tx(ALICE, n, Transfer(address(BOB), 5)))
    _, newest = source.list_snapshots()
    assert newest.height == 4
    joiner = LedgerApp(CHAIN)
    assert not joiner.offer_snapshot(newest, b"\0" * 32)  # not the trusted app hash
    assert joiner.offer_snapshot(newest, source.info().app_hash)
    for index in range(newest.chunks):
        chunk = source.load_snapshot_chunk(newest.height, newest.format, index)
        assert chunk is not None
        assert joiner.apply_snapshot_chunk(index, b"bad" + chunk) is ChunkOutcome.RETRY
        assert joiner.apply_snapshot_chunk(index, chunk) is ChunkOutcome.ACCEPT
    assert joiner.info() == source.info()
    for app in (source, joiner):
        block(app, tx(ALICE, 4, Transfer(address(BOB), 1)))
    assert joiner.info() == source.info()
    assert balance(joiner, BOB) == 21


def test_a_signature_is_verified_once_across_check_proposal_and_execution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = started()
    calls = []
    original = Transaction.is_signed

    def counting(self: Transaction, chain_id: str, encoded: bytes | None = None) -> bool:
        calls.append(self.nonce)
        return original(self, chain_id, encoded)

    monkeypatch.setattr(Transaction, "is_signed", counting)
    good = tx(ALICE, 0, Transfer(address(BOB), 1))
    assert app.check_tx(good).ok
    assert app.process_proposal(1, [good])
    assert block(app, good) == [Code.OK]
    assert calls == [0]  # once
    forged = Transaction(ALICE.public_key.raw, 1, Transfer(address(BOB), 1), bytes(64)).encode()
    assert app.check_tx(forged).code == Code.BAD_SIGNATURE
    assert app.check_tx(forged).code == Code.BAD_SIGNATURE  # failures are never remembered
    assert calls == [0, 1, 1]


def test_only_validators_of_the_signing_set_are_observed() -> None:
    """A validator chosen at a boundary signs two heights later: until its key is in the
    previous height's set (``last_validators``) its missing signature is not a miss, so its
    reputation stays untouched; once it is, a missing signature counts."""
    app = started()  # epochs of 2 blocks
    newcomer = SigningKey(b"n" * 32)
    create = tx(
        ALICE, 0, CreateValidator(newcomer.public_key.raw, ecvrf.public_key(b"v" * 32), 0, 500_000)
    )
    assert block(app, create) == [Code.OK]
    block(app)  # height 2: a boundary, the newcomer is in the active set from here
    manager = app.manager
    operator = address(ALICE)
    assert operator in manager.staking.active
    block(app)  # signers and last_validators: the genesis four
    assert manager.reputation.score(operator) == 1_000_000
    old = tuple(k.public_key.raw for k in CONSENSUS)
    app.finalize_block(
        BlockRequest(
            4,
            1_004,
            (),
            CONSENSUS[0].public_key.raw,
            old,
            last_validators=(*old, newcomer.public_key.raw),
        )
    )
    app.commit()
    assert manager.reputation.score(operator) < 1_000_000


def test_a_validator_whose_vrf_key_no_proof_could_verify_under_is_refused() -> None:
    """Its proposals could never prove their seed; the registration is refused (nonce used,
    nothing else written), in a transaction and in a genesis file alike. The node reads a
    registered key back with ``query("vrf_key", consensus key)``."""
    app = started()
    newcomer = SigningKey(b"n" * 32)
    small_order = bytes(32)  # y = 0: a point of order 4
    create = tx(ALICE, 0, CreateValidator(newcomer.public_key.raw, small_order, 0, 500_000))
    assert block(app, create) == [Code.REFUSED]
    assert app.query("vrf_key", newcomer.public_key.raw).code == Code.NOT_FOUND
    registered = app.query("vrf_key", CONSENSUS[0].public_key.raw)
    assert registered.code == Code.OK
    assert registered.value == ecvrf.public_key(VRF_SECRETS[0])
    document = json.loads(genesis())
    document["validators"][0]["vrf_key"] = small_order.hex()
    with pytest.raises(ValueError, match="genesis app_state: .*small order"):
        LedgerApp(CHAIN).init_chain(json.dumps(document).encode())


# -- the accounts a block writes ---------------------------------------------------------

SPENDERS = [ALICE, BOB, *OPERATORS, SigningKey(b"c" * 32)]
"""Accounts that sign; Bob and the last start without funds (their first spends fail)."""
_OPERATIONS = st.tuples(
    st.sampled_from(["transfer", "all", "delegate", "undelegate", "redelegate"]),
    st.integers(0, len(SPENDERS) - 1),
    st.integers(0, len(SPENDERS) + 2),  # beyond the spenders: fresh addresses
    st.integers(1, 400_000),
)


def _leaves(app: LedgerApp) -> dict[str, dict[bytes, bytes]]:
    """The committed tree's leaves by kind (told apart by length, as the ledger does)."""
    kinds: dict[str, dict[bytes, bytes]] = {"account": {}, "delegation": {}, "time": {}}
    special = {path_of(b"validators"), path_of(b"leader_reputation")}
    for path, value in app.tree.items():
        if path not in special:
            kind, cut = {36: ("account", 20), 56: ("delegation", 40), 16: ("time", 8)}[len(value)]
            kinds[kind][value[:cut]] = value[cut:]
    return kinds


def _expected(app: LedgerApp) -> dict[str, dict[bytes, bytes]]:
    """Every entry there is, from the application's own state, not from what it wrote."""
    assert app.manager is not None
    staking, nonces = app.manager.staking, app.nonces
    return {
        "account": {
            a: staking.balances.get(a, 0).to_bytes(8, "big") + nonces.get(a, 0).to_bytes(8, "big")
            for a in staking.balances.keys() | nonces.keys()
        },
        "delegation": {d + v: s.to_bytes(16, "big") for (d, v), s in staking.delegations.items()},
        "time": {
            h.to_bytes(8, "big"): t.to_bytes(8, "big") for h, t in app.manager.block_times.items()
        },
    }


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_OPERATIONS, max_size=6), min_size=1, max_size=12))
def test_the_tree_holds_exactly_the_state_though_a_block_writes_only_its_changes(
    blocks: list[list[tuple[str, int, int, int]]],
) -> None:
    """Only changed entries are written per block (so a block's cost grows neither with the
    number of accounts and delegations nor with the evidence window), yet after every block the
    tree's leaves are exactly the ledger's accounts, delegations and recent block times:
    transfers, spending a whole balance, delegating, undelegating, redelegating, unbonding paid
    out by block time (``begin_block``) and heights leaving the window all reach it. A ledger
    rebuilt from the tree (a restart) continues with the same hash."""
    app = LedgerApp(CHAIN)
    app.init_chain(chain_genesis(epoch_length=2, unbonding_time=5, evidence_max_age_blocks=3))
    fresh = [bytes([90 + i]) * 20 for i in range(3)]
    for operations in blocks:
        transactions = []
        for kind, sender, target, amount in operations:
            key = SPENDERS[sender]
            nonce = app.next_nonce(address(key))
            to = address(SPENDERS[target]) if target < len(SPENDERS) else fresh[target - 8]
            assert app.manager is not None
            held = app.manager.staking.balances.get(address(key), 0)
            body: object = {
                "transfer": Transfer(to, amount),
                "all": Transfer(to, max(held, 1)),
                "delegate": Delegate(address(OPERATORS[target % 4]), amount),
                "undelegate": Undelegate(address(OPERATORS[target % 4]), 0),
                "redelegate": Redelegate(
                    address(OPERATORS[target % 4]), address(OPERATORS[(target + 1) % 4]), amount
                ),
            }[kind]
            encoded = tx(key, nonce, body)
            if app.check_tx(encoded).ok:
                transactions.append(encoded)
        codes = block(app, *transactions)
        event(f"executed {sum(code == Code.OK for code in codes) > 0}")
        assert _leaves(app) == _expected(app)
        assert app.manager is not None
        assert app.tree.get(b"validators") == app.manager.encode(apart=True)
        assert len(app.manager.block_times) <= 4  # the evidence window: a leaf in, one out
        restarted = LedgerApp(CHAIN)
        restarted.load_state(app.tree, app.height)
        assert restarted.info() == app.info()
        assert restarted.manager is not None
        assert restarted.manager.encode() == app.manager.encode()  # everything included
        assert restarted.nonces == app.nonces
    for replica in (app, restarted):  # one more block each: the same hash
        block(replica, tx(ALICE, replica.next_nonce(address(ALICE)), Transfer(fresh[0], 1)))
    assert restarted.info() == app.info()


def test_a_block_writes_only_its_accounts_however_many_there_are() -> None:
    """10,000 accounts: a transfer writes two account leaves and its height's time, and the
    validator state it rewrites each block holds no balances (it was 28 bytes per account)."""
    document = json.loads(chain_genesis(epoch_length=2))
    document["accounts"] += [
        {"address": i.to_bytes(20, "big").hex(), "balance": 1} for i in range(1, 10_001)
    ]
    app = LedgerApp(CHAIN)
    app.init_chain(json.dumps(document).encode())
    writes = app.finalize_block(
        BlockRequest(1, 1_001, (tx(ALICE, 0, Transfer(address(BOB), 5)),), b"p" * 32)
    ).writes
    app.commit()
    assert set(writes) == {
        b"account:" + address(ALICE),
        b"account:" + address(BOB),
        b"block_time:" + (1).to_bytes(8, "big"),
        b"validators",
        b"leader_reputation",
    }
    assert len(writes[b"validators"] or b"") < 2_000
    assert len(_leaves(app)["account"]) == len(_expected(app)["account"]) == 10_000 + 6


def test_state_with_entries_outside_their_leaves_is_refused() -> None:
    """The validator state leaf carries no balances, delegations or block times, and every
    other leaf is a known kind under its own key and not empty: anything else would be a
    second encoding of the same state."""
    app = started()
    block(app)
    assert app.manager is not None
    whole = app.tree.apply({b"validators": app.manager.encode()})
    with pytest.raises(SnapshotError, match="an earlier version"):
        LedgerApp(CHAIN).load_state(whole, app.height)
    bob = b"account:" + address(BOB)
    for writes, error in [
        ({bob: address(BOB) + bytes(16)}, "account leaf is empty"),
        ({bob: address(ALICE) + bytes(15) + b"\1"}, "not under its own key"),
        ({b"delegation:" + bytes(40): bytes(56)}, "delegation leaf is empty"),
        ({b"block_time:" + bytes(8): (1).to_bytes(8, "big") * 2}, "not under its own key"),
        ({b"other": b"x"}, "of no known kind"),
    ]:
        with pytest.raises(SnapshotError, match=error):
            LedgerApp(CHAIN).load_state(app.tree.apply(writes), app.height)
    LedgerApp(CHAIN).load_state(app.tree, app.height)  # the tree as written loads
    assert isinstance(app.tree, StateTree)
