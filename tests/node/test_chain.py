"""Consensus, the ledger and the block store together: four replicas on an in-memory network,
each with its own LMDB store, mempool and application, agree on blocks that move balances, carry
the previous commit, and survive a restart."""

from __future__ import annotations

import asyncio
import heapq
import json
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from swarmguard.consensus.replica import (
    Action,
    Broadcast,
    Decide,
    Message,
    Replica,
    SendTo,
    SetTimer,
    Timer,
)
from swarmguard.crypto import PublicKey, SigningKey, ecvrf
from swarmguard.crypto.hashing import address_of
from swarmguard.node.abci import BlockRequest, FinalizedBlock, ValidatorUpdate
from swarmguard.node.blocksync import (
    HANDOVERS_PER_REPLY,
    BlocksPruned,
    BlocksRequest,
    HandoversRequest,
    Status,
    Syncer,
    SyncError,
)
from swarmguard.node.chain import Chain
from swarmguard.node.handover import Handover, HandoverError, follow
from swarmguard.node.ledger import Code, LedgerApp
from swarmguard.node.mempool import Admission, Mempool
from swarmguard.node.statesync import StateSyncer, TrustExpired, TrustPoint
from swarmguard.node.transactions import CreateValidator, Delegate, Transaction, Transfer
from swarmguard.storage.blockstore import Block, BlockStore
from swarmguard.storage.catchup import CatchUpError, Header, commit_hash, verify_range
from swarmguard.storage.snapshots import SnapshotError
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.election import genesis_seed, vrf_input
from swarmguard.validators.evidence import PHASE_VOTE
from swarmguard.validators.sets import validators_hash

CHAIN = "swarm-chain"
PERIOD = 14 * 86400  # a trust period (seconds)
OPERATORS = [SigningKey(bytes([40 + i]) * 32) for i in range(4)]
CONSENSUS = [SigningKey(bytes([50 + i]) * 32) for i in range(4)]
VRF_SECRETS = [bytes([60 + i]) * 32 for i in range(4)]
NEWCOMER_VRF = ecvrf.public_key(b"v" * 32)
ALICE, BOB = SigningKey(b"a" * 32), SigningKey(b"b" * 32)


def genesis(**staking: int) -> bytes:
    return json.dumps(
        {
            "staking": staking,
            "accounts": [
                {"address": address_of(k.public_key.raw).hex(), "balance": 1_000_000}
                for k in (*OPERATORS, ALICE)
            ],
            "validators": [
                {
                    "operator": address_of(op.public_key.raw).hex(),
                    "consensus_key": cons.public_key.raw.hex(),
                    "vrf_key": ecvrf.public_key(VRF_SECRETS[i]).hex(),
                    "self_bond": 100_000,
                }
                for i, (op, cons) in enumerate(zip(OPERATORS, CONSENSUS, strict=True))
            ],
        }
    ).encode()


class Cluster:
    def __init__(self, tmp: Path, **staking: int) -> None:
        self.tmp = tmp
        self.genesis = genesis(**staking)
        self.now = 1_000.0
        self.queue: deque[tuple[int, int, Message]] = deque()
        self.timers: list[tuple[float, int, int, int, int, Timer]] = []
        self.seq = 0
        self.chains = [self._chain(i) for i in range(4)]
        keys = [key for key, _ in self.chains[0].validators(1)]
        self.index = [keys.index(k.public_key.raw) for k in CONSENSUS]  # node -> validator
        self.replicas = [
            Replica(
                CHAIN,
                self.index[i],
                CONSENSUS[i],
                self.chains[i].validators,
                lambda height, view: (height + view) % 4,
                self.chains[i],
            )
            for i in range(4)
        ]
        self.keys = [k.public_key.raw for k in CONSENSUS]

    def _chain(self, i: int) -> Chain:
        app = LedgerApp(CHAIN)
        result = app.init_chain(self.genesis)
        mempool = Mempool(CHAIN, lambda tx: None if app.check_tx(tx).ok else "refused")
        return Chain(
            CHAIN,
            app,
            BlockStore(self.tmp / f"node{i}", CHAIN),
            mempool,
            genesis=result,
            genesis_time=1_000,
            proposer_key=CONSENSUS[i].public_key.raw,
            vrf_secret=VRF_SECRETS[i],
            clock=lambda: self.now,
        )

    def apply(self, node: int, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                self.queue.extend(
                    (node, other, action.message) for other in range(4) if other != node
                )
            elif isinstance(action, SendTo):
                key = self.chains[node].validators(self.replicas[node].height)[action.validator][0]
                if key in self.keys:
                    self.queue.append((node, self.keys.index(key), action.message))
            elif isinstance(action, SetTimer):
                self.seq += 1
                entry = (action.at, self.seq, node, action.height, action.view, action.timer)
                heapq.heappush(self.timers, entry)
            elif isinstance(action, Decide):
                pass

    def run(self, heights: int) -> None:
        for node, replica in enumerate(self.replicas):
            if replica._state is None:
                self.apply(node, replica.start(self.now))
        for _ in range(100_000):
            if all(chain.store.height >= heights for chain in self.chains):
                return
            if self.queue:
                sender, receiver, message = self.queue.popleft()
                members = [
                    k for k, _ in self.chains[receiver].validators(self.replicas[receiver].height)
                ]
                index = members.index(self.keys[sender]) if self.keys[sender] in members else -1
                actions = self.replicas[receiver].on_message(index, message, self.now)
                self.apply(receiver, actions)
            elif self.timers:
                at, _, node, height, view, timer = heapq.heappop(self.timers)
                self.now = max(self.now, at)
                self.apply(node, self.replicas[node].on_timer(height, view, timer, self.now))
        raise AssertionError(f"stuck at {[c.store.height for c in self.chains]}")

    def submit(self, transaction: bytes) -> None:
        for chain in self.chains:  # what gossip will do
            assert chain.mempool.add(transaction, "client") is Admission.ACCEPTED


def test_four_nodes_agree_on_blocks_that_move_balances(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    bob = address_of(BOB.public_key.raw)
    for nonce in range(5):
        cluster.submit(Transaction.sign(ALICE, CHAIN, nonce, Transfer(bob, 100)).encode())
    cluster.run(heights=4)
    hashes = {
        tuple(c.store.block_hash(c.store.block(h)) for h in range(1, 5)) for c in cluster.chains
    }  # type: ignore[arg-type]
    assert len(hashes) == 1  # one chain
    assert {c.app.info().app_hash for c in cluster.chains} == {cluster.chains[0].app_hash}
    for chain in cluster.chains:
        assert chain.store.state_root == chain.app.info().app_hash  # the store holds the state
        balance = chain.app.query("account", bob)
        assert balance.code == Code.OK
        assert int.from_bytes(balance.value[:8], "big") == 500
        assert len(chain.mempool) == 0
    # Every block after the first carries the previous commit, bound by its header.
    store = cluster.chains[0].store
    for height in range(2, 5):
        block = store.block(height)
        assert block is not None
        last = CommitCertificate.decode(block.last_commit)
        assert last.height == height - 1
        assert Header.decode(block.header).last_commit_hash == commit_hash(CHAIN, block.last_commit)
    # And the stored range verifies for a node catching up.
    blocks = [store.block(h) for h in range(1, 5)]
    validators = cluster.chains[0].validators(1)
    verify_range(CHAIN, blocks, bytes(32), validators)  # type: ignore[arg-type]


def test_a_tampered_proposal_is_refused(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    chain = cluster.chains[1]
    block_hash, block = chain.propose(1, [])
    assert chain.validate(1, block_hash, block)
    assert not chain.validate(1, block_hash, block + b"\0")
    assert not chain.validate(2, block_hash, block)  # another height
    other = cluster.chains[2]
    assert other.validate(1, block_hash, block)  # a peer agrees
    cluster.now += 3_600  # a proposal from an hour ago is fine; one from the future is not
    assert other.validate(1, block_hash, block)
    future_hash, future = chain.propose(1, [])
    cluster.now -= 3_600
    assert not other.validate(1, future_hash, future)


def test_each_header_proves_the_next_seed_under_its_proposers_vrf_key(tmp_path: Path) -> None:
    """The leader seed of height h + 1 is the output of the VRF proof in header h, proven by
    h's proposer with the key it registered over (seed of h, h + 1): the proposer has one valid
    proof, so no choice of transactions or order moves the next leader. A restarted node reads
    the seed back from its last header."""
    cluster = Cluster(tmp_path)
    cluster.run(heights=5)
    store = cluster.chains[0].store
    seed = genesis_seed(CHAIN)
    for height in range(1, 6):
        header = Header.decode(store.block(height).header)  # type: ignore[union-attr]
        assert header.seed == seed
        proposer = [address_of(k.public_key.raw) for k in CONSENSUS].index(header.proposer)
        vrf_key = ecvrf.public_key(VRF_SECRETS[proposer])
        seed = ecvrf.verify(vrf_key, header.seed_proof, vrf_input(CHAIN, seed, height + 1))
    assert {chain.seed for chain in cluster.chains} == {seed}
    cluster.chains[3].store.close()
    assert cluster._chain(3).seed == seed


def test_a_proposal_with_another_seed_or_seed_proof_is_refused(tmp_path: Path) -> None:
    """A proposer grinding for a better next leader has nothing to choose from: a valid proof
    over another input, another validator's proof, no proof, or another seed for this height
    are all refused."""
    cluster = Cluster(tmp_path)
    chain, peer = cluster.chains[1], cluster.chains[2]
    block_hash, data = chain.propose(1, [])
    assert peer.validate(1, block_hash, data)
    block = Block.decode(data)
    header = Header.decode(block.header)

    def forged(**fields: bytes) -> tuple[bytes, bytes]:
        changed = replace(header, **fields)
        encoded = Block(1, changed.encode(), block.transactions, last_commit=block.last_commit)
        return changed.hash(CHAIN), encoded.encode()

    own, other = ecvrf.VrfSecretKey(VRF_SECRETS[1]), ecvrf.VrfSecretKey(VRF_SECRETS[2])
    for fields in (
        {"seed_proof": own.prove(vrf_input(CHAIN, header.seed, 3))},  # another input
        {"seed_proof": other.prove(vrf_input(CHAIN, header.seed, 2))},  # another key
        {"seed_proof": bytes(80)},
        {"seed": bytes(64)},
    ):
        assert not peer.validate(1, *forged(**fields)), fields
    assert peer.validate(1, block_hash, data)


def test_a_validator_without_a_vrf_key_proposes_what_the_others_refuse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A validator whose home lacks ``vrf_key.json`` cannot prove the next seed: it says so,
    and its proposal carries no valid proof, which the others refuse (for them it is a leader
    that is down; they change view)."""
    cluster = Cluster(tmp_path)
    app = LedgerApp(CHAIN)
    result = app.init_chain(cluster.genesis)
    keyless = Chain(
        CHAIN,
        app,
        BlockStore(tmp_path / "keyless", CHAIN),
        Mempool(CHAIN, lambda tx: None),
        genesis=result,
        genesis_time=1_000,
        proposer_key=CONSENSUS[1].public_key.raw,
        vrf_secret=None,
        clock=lambda: cluster.now,
    )
    block_hash, data = keyless.propose(1, [])
    assert "no vrf_key.json" in caplog.text
    assert not cluster.chains[2].validate(1, block_hash, data)
    assert cluster.chains[2].validate(1, *cluster.chains[1].propose(1, []))


def test_a_seed_proof_from_an_earlier_height_is_refused(tmp_path: Path) -> None:
    """A proof is valid for one input (seed, height): its proposer cannot reuse the proof it
    made for height 1 (which every node verified or made, and may remember) at height 2 to
    pick between its outputs."""
    cluster = Cluster(tmp_path)
    cluster.run(heights=1)
    at_one = [chain for chain in cluster.chains if chain.store.height == 1]
    first = Header.decode(at_one[0].store.block(1).header)  # type: ignore[union-attr]
    proposers = [address_of(k.public_key.raw) for k in CONSENSUS]
    chain = cluster.chains[proposers.index(first.proposer)]
    peer = next(other for other in at_one if other is not chain)
    block_hash, data = chain.propose(2, [])
    assert peer.validate(2, block_hash, data)
    block = Block.decode(data)
    header = replace(Header.decode(block.header), seed_proof=first.seed_proof)
    replayed = Block(2, header.encode(), block.transactions, last_commit=block.last_commit)
    assert not peer.validate(2, header.hash(CHAIN), replayed.encode())


def test_a_proposals_last_commit_skips_only_the_signatures_the_node_committed_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validator has verified every signature of the certificate it committed the last block
    with; a proposal's last commit is checked in full except for exactly those (same height,
    view, phase, block, signer and signature bytes), so a forged signature still fails."""
    cluster = Cluster(tmp_path)
    cluster.run(heights=3)
    height = min(chain.store.height for chain in cluster.chains)
    proposer, peer = [chain for chain in cluster.chains if chain.store.height == height][:2]
    block_hash, data = proposer.propose(height + 1, [])
    block = Block.decode(data)
    theirs = CommitCertificate.decode(block.last_commit)
    mine = CommitCertificate.decode(peer.last_certificate)
    checked: list[bytes] = []
    real = PublicKey.is_valid
    monkeypatch.setattr(
        PublicKey, "is_valid", lambda self, m, s: checked.append(s) or real(self, m, s)
    )
    assert peer.validate(height + 1, block_hash, data)
    same = (mine.view, mine.phase) == (theirs.view, theirs.phase)
    counted = set(mine.signatures) if same else set()
    assert checked == [s for pair in theirs.signatures if pair not in counted for _, s in [pair]]
    for index in range(len(theirs.signatures)):
        signatures = list(theirs.signatures)
        signatures[index] = (signatures[index][0], bytes(64))
        forged = replace(theirs, signatures=tuple(signatures)).encode()
        header = replace(Header.decode(block.header), last_commit_hash=commit_hash(CHAIN, forged))
        bad = Block(height + 1, header.encode(), block.transactions, last_commit=forged)
        assert not peer.validate(height + 1, header.hash(CHAIN), bad.encode()), index


def test_block_sync_follows_the_seeds_and_stops_where_they_diverge(tmp_path: Path) -> None:
    """A node catching up takes each certified block's seed proof without verifying it again
    (its signers did) and ends with the seed the others have; a block whose seed is not the
    one its chain computes stops the sync, as a diverged state does."""
    cluster = Cluster(tmp_path)
    cluster.run(heights=4)
    source = cluster.chains[0].store
    follower = Cluster(tmp_path / "follower").chains[0]
    syncer = Syncer(follower, follower.store, lambda peer, message: None)
    for height in (1, 2, 3):
        syncer._execute(source.block(height))  # type: ignore[arg-type]
    assert follower.seed == Header.decode(source.block(4).header).seed  # type: ignore[union-attr]
    follower.seed = bytes(64)
    with pytest.raises(SyncError, match="block 4 carries leader seed .* has diverged"):
        syncer._execute(source.block(4))  # type: ignore[arg-type]
    assert follower.store.height == 3


def test_a_restarted_node_resumes_from_its_store(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    cluster.submit(
        Transaction.sign(ALICE, CHAIN, 0, Transfer(address_of(BOB.public_key.raw), 7)).encode()
    )
    cluster.run(heights=3)
    chain = cluster.chains[3]
    app_hash, last_hash = chain.app_hash, chain.last_hash
    chain.store.close()
    reopened = cluster._chain(3)  # a fresh process: new app, store reopened
    assert reopened.app_hash == app_hash == reopened.app.info().app_hash
    assert reopened.last_hash == last_hash
    assert reopened.app.info().height == 3


def test_validator_set_changes_take_effect_two_heights_later_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    """A validator joins at an epoch boundary (epochs of 2 blocks) with a little stake, so the
    four running nodes keep their quorum. The set chosen while height b executes signs from
    b + 2; header b + 1 names it (``next_validators_hash``) and the nodes record the hand-over,
    which ``follow`` accepts from the genesis set; a restarted node knows the new set from its
    store, and indices shift correctly for everyone."""
    cluster = Cluster(tmp_path, epoch_length=2)
    newcomer = SigningKey(b"n" * 32)
    join = CreateValidator(newcomer.public_key.raw, NEWCOMER_VRF, 0, 1_000)
    cluster.submit(Transaction.sign(ALICE, CHAIN, 0, join).encode())
    cluster.run(heights=6)
    chain = cluster.chains[3]
    current = chain.validators(chain.store.height + 1)
    assert newcomer.public_key.raw in {key for key, _ in current}
    assert len(current) == 5
    handovers = chain.handovers(0)
    assert [h.height for h in handovers] == [4]  # chosen at height 2 (a boundary), from 4
    assert chain.validators(3) == chain.validators(1) != chain.validators(4) == current
    sets = follow(CHAIN, chain.validators(1), handovers)
    assert sets == [(1, chain.validators(1)), (4, current)]
    for height in range(1, chain.store.height + 1):
        header = Header.decode(chain.store.block(height).header)  # type: ignore[union-attr]
        assert header.validators_hash == validators_hash(chain.validators(height))
        assert header.next_validators_hash == validators_hash(chain.validators(height + 1))
    assert all(other.handovers(0) == handovers for other in cluster.chains)
    chain.store.close()
    chain = cluster._chain(3)
    assert chain.validators(chain.store.height + 1) == current
    assert chain.validators(3) != current
    assert chain.handovers(0) == handovers
    assert chain.handovers(4) == []


def _with_a_newcomer(tmp_path: Path, heights: int) -> Cluster:
    """Four nodes, epochs of 2 blocks; Alice registers a validator with a little stake at
    height 1 (chosen at the boundary at 2, signing from 4); run to ``heights``."""
    cluster = Cluster(tmp_path, epoch_length=2)
    newcomer = SigningKey(b"n" * 32)
    join = CreateValidator(newcomer.public_key.raw, NEWCOMER_VRF, 0, 1_000)
    cluster.submit(Transaction.sign(ALICE, CHAIN, 0, join).encode())
    cluster.run(heights=heights)
    return cluster


def test_block_sync_asks_only_peers_that_still_hold_the_heights(tmp_path: Path) -> None:
    """Peers announce their stored range (``Status`` height and base): block sync asks for
    heights only peers that have not pruned them, and when every peer ahead has, it stops with
    ``BlocksPruned`` (the node then turns to state sync) instead of asking in vain."""
    cluster = Cluster(tmp_path)
    cluster.run(heights=2)
    chain = cluster.chains[0]
    sent: list[tuple[int, object]] = []
    syncer = Syncer(
        chain, chain.store, lambda p, m: sent.append((p, m)), timeout=0.05, pruned_wait=0.5
    )
    syncer.on_message(1, Status(500, 100))  # pruned below 100
    syncer.on_message(2, Status(90, 1))  # holds 1..90
    asyncio.run(syncer._fetch_window())
    assert sent == [(2, BlocksRequest(3, 64))]
    sent.clear()
    syncer.on_message(2, Status(90, 50))  # now pruned too

    async def run() -> float:
        started = asyncio.get_running_loop().time()
        with pytest.raises(BlocksPruned, match="no peer holds height 3 any more"):
            await asyncio.wait_for(syncer.run(), 5)
        return asyncio.get_running_loop().time() - started

    assert 0.5 <= asyncio.run(run()) < 2.0  # after pruned_wait, not at once, not never
    assert sent == []
    assert not syncer.running


def test_a_block_request_never_swallows_its_tasks_cancellation(tmp_path: Path) -> None:
    """Cancelling the task that waits for a reply (the node stops) cancels it; a request whose
    future the run cancelled (the run ended) is just unanswered; so is one that times out."""
    chain = Cluster(tmp_path).chains[0]
    syncer = Syncer(chain, chain.store, lambda p, m: None, timeout=0.2)

    async def main() -> None:
        waiting = asyncio.create_task(syncer.fetch(1, BlocksRequest(1, 1)))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        answered = asyncio.create_task(syncer.fetch(1, BlocksRequest(1, 1)))
        await asyncio.sleep(0.01)
        syncer._waiting[1][1].cancel()  # what run() does to what is left when it ends
        assert await answered is None
        assert await syncer.fetch(1, BlocksRequest(1, 1)) is None  # no reply within 0.2 s

    asyncio.run(main())


def test_hand_overs_that_do_not_follow_are_refused(tmp_path: Path) -> None:
    """``follow`` believes a hand-over only with the trusted set's certificate over a header
    naming the trusted set and the new one: each forgery below is refused."""
    cluster = _with_a_newcomer(tmp_path, heights=5)
    chain = cluster.chains[0]
    genesis = chain.validators(1)
    (real,) = chain.handovers(0)
    other = [(SigningKey(bytes([i]) * 32).public_key.raw, 10) for i in range(1, 5)]
    other.sort()
    stranger_block = chain.store.block(2)
    assert stranger_block is not None
    forgeries = {
        "another set": replace(real, validators=tuple(other)),
        "another header": replace(real, header=stranger_block.header),
        "no signatures": replace(
            real,
            certificate=replace(CommitCertificate.decode(real.certificate), signatures=()).encode(),
        ),
        "wrong height": replace(real, height=real.height + 1),
    }
    for name, forged in forgeries.items():
        with pytest.raises(HandoverError):
            follow(CHAIN, genesis, [forged])
        assert Handover.decode(forged.encode()) == forged, name
    with pytest.raises(HandoverError):  # trusting the new set already: not a hand-over from it
        follow(CHAIN, list(real.validators), [real])
    with pytest.raises(HandoverError):
        follow(CHAIN, genesis, [real, real])
    # From a set already trusted at a later height (a node's own chain): the same checks.
    later = follow(CHAIN, genesis, [real], since=real.height - 1)
    assert later == [(real.height - 1, genesis), (real.height, list(real.validators))]
    with pytest.raises(HandoverError, match="not after"):
        follow(CHAIN, genesis, [real], since=real.height)


def test_hand_overs_are_checked_with_the_chains_fast_path_slack(tmp_path: Path) -> None:
    """A fast commit with one vote short: not a commit on a chain without slack, a commit on
    one whose slack is one of the four validators (``follow``'s ``slack_ppm``)."""
    cluster = _with_a_newcomer(tmp_path, heights=5)
    chain = cluster.chains[0]
    (real,) = chain.handovers(0)
    certificate = CommitCertificate.decode(real.certificate)
    assert certificate.phase == PHASE_VOTE  # every vote arrived: a fast commit
    short = replace(certificate, signatures=certificate.signatures[:3])
    handover = replace(real, certificate=short.encode())
    assert follow(CHAIN, chain.validators(1), [handover], slack_ppm=250_000)[-1][0] == 4
    with pytest.raises(HandoverError):
        follow(CHAIN, chain.validators(1), [handover])


def test_state_sync_trusts_a_later_height_only_through_the_hand_overs(tmp_path: Path) -> None:
    """The snapshot check of a new node that knows only the genesis set: blocks at and around
    the change verify with the hand-over, and are refused without it (a peer withholding it)."""
    cluster = _with_a_newcomer(tmp_path, heights=8)
    chain = cluster.chains[1]
    syncer = StateSyncer(
        CHAIN,
        chain.validators(1),
        Syncer(chain, chain.store, lambda peer, message: None),
        lambda peer, message: None,
        lambda message: None,
    )
    sets = follow(CHAIN, chain.validators(1), chain.handovers(0))
    for height in (2, 3, 4, 6):
        block, after = chain.store.block(height), chain.store.block(height + 1)
        assert block is not None
        assert after is not None
        root = Header.decode(after.header).state_root
        assert syncer._check(block, after, sets) == root
        if height >= 3:  # from here the blocks involve the new set
            with pytest.raises((SnapshotError, CatchUpError)):
                syncer._check(block, after, follow(CHAIN, chain.validators(1), []))
        with pytest.raises((SnapshotError, CatchUpError)):
            syncer._check(block, chain.store.block(height + 2), sets)  # type: ignore[arg-type]


def test_leaders_are_the_managers_draw_and_skip_low_reputation(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    draws = [[chain.leader(1, view) for view in range(40)] for chain in cluster.chains]
    assert all(draw == draws[0] for draw in draws)  # every node draws the same
    assert len(set(draws[0])) == 4  # equal stakes: everyone leads sometimes
    cluster.run(heights=1)
    operator = address_of(OPERATORS[2].public_key.raw)
    for chain in cluster.chains:
        manager = chain.app.manager  # type: ignore[attr-defined]
        manager.reputation.penalise(operator)  # as a failed turn would, in committed state
    skipped = cluster.chains[0].validators(2).index((CONSENSUS[2].public_key.raw, 100_000))
    assert skipped not in {cluster.chains[0].leader(2, view) for view in range(40)}


def test_failed_leaders_are_named_alike_by_running_and_restarted_nodes(tmp_path: Path) -> None:
    """A block whose last_commit shows view 3 names the leaders of views 0-2 of the previous
    height (but not its proposer): the same keys on a node that ran through that height and on
    one restarted after it, since both rebuild the schedule from committed inputs; the draws
    are the ones the height's leader function gave while it was being decided."""
    cluster = Cluster(tmp_path)
    cluster.run(heights=1)
    drawn = [
        cluster.chains[0].validators(2)[cluster.chains[0].leader(2, view)][0] for view in range(3)
    ]
    cluster.run(heights=2)
    proposer = Header.decode(cluster.chains[0].store.block(2).header).proposer  # type: ignore[union-attr]
    expected = tuple(dict.fromkeys(key for key in drawn if address_of(key) != proposer))
    named = [chain._failed_leaders(2, 3) for chain in cluster.chains]
    cluster.chains[3].store.close()
    restarted = cluster._chain(3)
    assert named == [expected] * 4
    assert restarted._failed_leaders(2, 3) == expected
    assert restarted.app.query("leader_reputation", b"").value == (
        cluster.chains[0].app.query("leader_reputation", b"").value
    )


def test_the_ledger_penalises_failed_proposers(tmp_path: Path) -> None:
    """finalize_block with failed_proposers drops their reputation to 0, so the next height's
    schedule skips them; a block without them leaves the score as it was."""
    cluster = Cluster(tmp_path)
    cluster.run(heights=1)
    app = cluster.chains[0].app
    failing = CONSENSUS[1].public_key.raw

    def score() -> int:
        answer = app.query("reputation", b"").value
        scores = {answer[i : i + 32]: answer[i + 32 : i + 36] for i in range(4, len(answer), 36)}
        return int.from_bytes(scores[failing], "big")

    before = score()
    assert before > 0
    app.finalize_block(BlockRequest(2, 1_001, (), CONSENSUS[0].public_key.raw, (), (failing,)))
    app.commit()
    assert score() == 0
    assert app.query("leader_reputation", b"").value[4:] != app.query("reputation", b"").value[4:]


def test_hand_overs_are_served_and_fetched_page_by_page(tmp_path: Path) -> None:
    """An operator adds to its stake every epoch (2 blocks), so the set changes at every
    boundary: more hand-overs than one reply holds. A new node's state syncer reads them all
    from a peer's block-sync answers, page by page, in order, and ``follow`` accepts the lot."""
    cluster = Cluster(tmp_path, epoch_length=2)
    operator = OPERATORS[0]
    changes = HANDOVERS_PER_REPLY + 6
    for nonce in range(changes):
        more = Delegate(address_of(operator.public_key.raw), 1)
        cluster.submit(Transaction.sign(operator, CHAIN, nonce, more).encode())
        cluster.run(heights=2 * nonce + 2)
        if nonce == 10:
            assert len(cluster.chains[2].handovers(0)) >= 9  # read once here, then kept
    cluster.run(heights=2 * changes + 3)
    chain = cluster.chains[2]
    held = chain.handovers(0)
    assert held == [Handover.decode(value) for _, value in chain.store.records(b"vhand:")]
    assert len(held) >= changes > HANDOVERS_PER_REPLY
    syncer = Syncer(chain, chain.store, lambda peer, message: None)
    first = syncer.answer_handovers(HandoversRequest(0))
    assert len(first.items) == HANDOVERS_PER_REPLY

    async def fetch() -> list[Handover] | None:
        loop = asyncio.get_running_loop()

        def peer_answers(peer: int, message: object) -> None:
            assert isinstance(message, HandoversRequest)
            reply = syncer.answer_handovers(message)
            loop.call_soon(state_syncer.on_message, peer, reply)

        state_syncer = StateSyncer(
            CHAIN, chain.validators(1), syncer, peer_answers, lambda message: None
        )
        return await state_syncer._fetch_handovers(7)

    fetched = asyncio.run(fetch())
    assert fetched == held
    sets = follow(CHAIN, chain.validators(1), held)
    assert [since for since, _ in sets[1:]] == [h.height for h in held]
    assert sets[-1][1] == chain.validators(chain.store.height + 1)


def test_a_trusted_header_anchors_state_sync(tmp_path: Path) -> None:
    """With ``trust`` set, a peer's answers count only if its block at the trusted height is
    the trusted header, signed by the set the hand-overs give for that height (after a set
    change here): the right hash passes, any other is refused, as is a height the peer lacks."""
    cluster = _with_a_newcomer(tmp_path, heights=10)
    chain = cluster.chains[1]
    server = Syncer(chain, chain.store, lambda peer, message: None)
    answered = [
        Block.decode(encoded).height for encoded in server.answer(BlocksRequest(3, 64)).blocks
    ]
    assert answered == list(range(3, chain.store.height + 1))  # consecutive, as far as held
    assert server.answer(BlocksRequest(chain.store.height + 1, 5)).blocks == ()

    def snapshot_check(trust: tuple[int, bytes], *, now: float = 0.0) -> bytes:
        async def run() -> bytes:
            loop = asyncio.get_running_loop()

            def answer(peer: int, message: object) -> None:
                assert isinstance(message, BlocksRequest | HandoversRequest)
                reply = (
                    server.answer(message)
                    if isinstance(message, BlocksRequest)
                    else server.answer_handovers(message)
                )
                target = fetcher if isinstance(message, BlocksRequest) else states
                loop.call_soon(target.on_message, peer, reply)

            fetcher = Syncer(chain, chain.store, answer, timeout=1.0)
            states = StateSyncer(
                CHAIN,
                chain.validators(1),
                fetcher,
                answer,
                lambda m: None,
                trust=trust,
                trust_period=PERIOD if now else 0,
                clock=lambda: now,
            )
            block, root, _ = await states._trusted_block(6, [3])
            assert block.height == 6
            return root

        return asyncio.run(run())

    trusted = chain.store.block_hash(chain.store.block(5))  # type: ignore[arg-type]
    assert chain.validators(5) != chain.validators(1)  # the anchor sits after the change
    expected = Header.decode(chain.store.block(7).header).state_root  # type: ignore[union-attr]
    assert snapshot_check((5, trusted)) == expected
    for trust in ((5, bytes(32)), (4, trusted), (500, trusted)):
        with pytest.raises(SnapshotError):
            snapshot_check(trust)
    # The trusted header's block time starts its trust period: within it, the same answers
    # pass; past it, no peer can help (not a per-peer refusal: TrustExpired ends state sync).
    anchor_time = Header.decode(chain.store.block(5).header).time  # type: ignore[union-attr]
    assert snapshot_check((5, trusted), now=anchor_time + PERIOD - 1) == expected
    with pytest.raises(TrustExpired, match="trusted header 5 is .* beyond"):
        snapshot_check((5, trusted), now=anchor_time + PERIOD)


def test_genesis_is_a_trust_point_only_within_the_trust_period() -> None:
    """Without a trusted header, state sync follows from genesis only while genesis is younger
    than the trust period (its sets may have unbonded since); a trusted header, or no period
    (chains without stake), lifts that."""

    def syncer(**options: Any) -> StateSyncer:
        unused = cast(Syncer, object())  # never asked: the check comes before any fetch
        return StateSyncer(
            CHAIN, [], unused, lambda p, m: None, lambda m: None, clock=lambda: 10**9, **options
        )

    with pytest.raises(TrustExpired, match=r"genesis is 1\.2 days old, beyond .* \(1\.0 days\)"):
        syncer(trust_period=86400, genesis_time=10**9 - 100_000).check_genesis()
    syncer(trust_period=86400, genesis_time=10**9 - 80_000).check_genesis()
    syncer(trust_period=0, genesis_time=0).check_genesis()
    syncer(trust_period=86400, genesis_time=0, trust=(5, bytes(32))).check_genesis()
    with pytest.raises(TrustExpired):  # run() checks it too, before asking anyone
        asyncio.run(syncer(trust_period=86400, genesis_time=0).run())
    # A node that fell behind trusts its own last block instead of genesis: its age counts,
    # unless a trusted header newer than it is configured (that one is checked when fetched).
    own = TrustPoint(501, [], 10**9 - 100_000)
    with pytest.raises(TrustExpired, match="this node's block 500 is 1.2 days old"):
        asyncio.run(syncer(trust_period=86400, genesis_time=10**9).run(own))
    with pytest.raises(TrustExpired, match="this node's block 500"):  # an older anchor: ignored
        asyncio.run(syncer(trust_period=86400, trust=(400, bytes(32))).run(own))


def test_an_application_naming_a_key_twice_is_refused(tmp_path: Path) -> None:
    key = CONSENSUS[0].public_key.raw
    twice = (ValidatorUpdate(key, b"v" * 32, 10), ValidatorUpdate(key, b"v" * 32, 20))
    app = LedgerApp(CHAIN)
    with pytest.raises(ValueError, match="at most once"):
        Chain(
            CHAIN,
            app,
            BlockStore(tmp_path / "store", CHAIN),
            Mempool(CHAIN, lambda tx: None),
            genesis=FinalizedBlock((), bytes(32), {}, twice),
            genesis_time=1_000,
            proposer_key=key,
            vrf_secret=None,
            clock=lambda: 1_000.0,
        )
