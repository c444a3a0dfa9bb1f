"""The mempool's admission order, limits, dedup, re-check and reap, and its invariants under
random operation sequences (checked against a plain model)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from swarmguard.node.mempool import Admission, Mempool, MempoolConfig, Relay
from swarmguard.resilience.testing import ManualClock

CHAIN = "swarm-test"


def pool(check: object = None, **config: float) -> tuple[Mempool, ManualClock]:
    clock = ManualClock()
    checker = check if callable(check) else (lambda tx: None)
    return Mempool(CHAIN, checker, MempoolConfig(**config), clock=clock), clock  # type: ignore[arg-type]


def test_admission_refuses_cheapest_first() -> None:
    refused_by_app: list[bytes] = []

    def check(tx: bytes) -> str | None:
        refused_by_app.append(tx)
        return "bad nonce" if tx.startswith(b"bad") else None

    mempool, _ = pool(check, max_transaction_bytes=10, max_transactions=3, max_bytes=100)
    assert mempool.add(b"x" * 11, "c") is Admission.TOO_LARGE
    assert mempool.add(b"tx1", "c") is Admission.ACCEPTED
    assert mempool.add(b"tx1", "c") is Admission.DUPLICATE
    assert mempool.add(b"bad", "c") is Admission.REJECTED
    assert mempool.last_reason == "bad nonce"
    assert mempool.add(b"tx2", "c") is Admission.ACCEPTED
    assert mempool.add(b"tx3", "c") is Admission.ACCEPTED
    assert mempool.add(b"tx4", "c") is Admission.FULL
    # The application only ever saw what passed the cheap checks.
    assert refused_by_app == [b"tx1", b"bad", b"tx2", b"tx3"]
    assert mempool.outcomes[Admission.ACCEPTED] == 3


def test_a_client_is_rate_limited_and_relays_have_their_own_budget() -> None:
    mempool, clock = pool(client_rate=2, client_burst=2)
    assert [mempool.add(b"a%d" % i, "alice") for i in range(3)] == [
        Admission.ACCEPTED,
        Admission.ACCEPTED,
        Admission.RATE_LIMITED,
    ]
    assert mempool.add(b"b0", "bob") is Admission.ACCEPTED  # per client
    assert mempool.add(b"r0", Relay(1)) is Admission.ACCEPTED  # gossip is not alice's budget
    clock.advance(0.5)
    assert mempool.add(b"a3", "alice") is Admission.ACCEPTED  # the bucket refilled one token


def test_a_batch_pays_one_token_per_transaction_all_at_once_or_one_by_one() -> None:
    mempool, clock = pool(client_rate=4, client_burst=4)
    admitted = mempool.add_many([b"a0", b"a1", b"a2"], "alice")
    assert [a for a, _ in admitted] == [Admission.ACCEPTED] * 3  # paid at once: 3 of 4 tokens
    admitted = mempool.add_many([b"a3", b"a4", b"a5"], "alice")  # cannot pay for all three
    assert [a for a, _ in admitted] == [
        Admission.ACCEPTED,
        Admission.RATE_LIMITED,
        Admission.RATE_LIMITED,
    ]
    clock.advance(10)
    admitted = mempool.add_many([b"x%d" % i for i in range(6)], "alice")  # over the burst
    assert [a for a, _ in admitted].count(Admission.ACCEPTED) == 4
    rejecting, _ = pool(check=lambda tx: "no" if tx == b"bad" else None)
    assert rejecting.add_many([b"ok", b"bad"], "bob") == [
        (Admission.ACCEPTED, ""),
        (Admission.REJECTED, "no"),
    ]


def test_reap_is_oldest_first_within_limits_and_removes_nothing() -> None:
    mempool, _ = pool()
    for i in range(10):
        mempool.add(b"tx-%02d" % i, "c")
    assert mempool.reap(3, 1000) == [b"tx-00", b"tx-01", b"tx-02"]
    assert mempool.reap(100, 12) == [b"tx-00", b"tx-01"]  # 6 bytes each
    assert len(mempool) == 10


def test_a_block_removes_what_it_committed_and_the_recheck_what_it_invalidated() -> None:
    spent: set[bytes] = set()
    mempool, _ = pool(lambda tx: "spent" if tx[:1] in spent else None)
    for tx in (b"a1", b"b1", b"a2", b"c1"):
        assert mempool.add(tx, "c") is Admission.ACCEPTED
    spent.add(b"a")  # the block below used account a's nonce
    assert mempool.update([b"b1"]) == 2  # a1 and a2 fail the re-check
    assert mempool.reap(10, 100) == [b"c1"]
    assert mempool.bytes == 2
    assert mempool.add(b"b1", "c") is Admission.DUPLICATE  # a gossip echo of a committed one
    spent.clear()
    assert mempool.add(b"a1", "c") is Admission.ACCEPTED  # refused ones are not cached


class MempoolModel(RuleBasedStateMachine):
    """Random adds, checks that flip, and blocks: the pool always equals the model's list."""

    def __init__(self) -> None:
        super().__init__()
        self.invalid: set[bytes] = set()
        self.mempool, _ = pool(
            lambda tx: "invalid" if tx in self.invalid else None,
            max_transactions=8,
            max_bytes=40,
            max_transaction_bytes=6,
            client_rate=1e9,
            client_burst=1e9,
            seen_max=5,
        )
        self.model: list[bytes] = []
        self.committed: list[bytes] = []  # most recent last; the model of the seen cache

    transactions = st.binary(min_size=1, max_size=8)

    @rule(tx=transactions)
    def add(self, tx: bytes) -> None:
        outcome = self.mempool.add(tx, "client")
        if len(tx) > 6:
            expected = Admission.TOO_LARGE
        elif tx in self.model or tx in self.committed[-5:]:
            expected = Admission.DUPLICATE
        elif len(self.model) >= 8 or sum(map(len, self.model)) + len(tx) > 40:
            expected = Admission.FULL
        elif tx in self.invalid:
            expected = Admission.REJECTED
        else:
            expected = Admission.ACCEPTED
            self.model.append(tx)
        assert outcome is expected

    @rule(tx=transactions)
    def invalidate(self, tx: bytes) -> None:
        self.invalid.add(tx)

    @rule(data=st.data())
    def commit_block(self, data: st.DataObject) -> None:
        block = data.draw(
            st.lists(st.sampled_from(self.model), unique=True) if self.model else st.just([])
        )
        self.mempool.update(block)
        for tx in block:
            self.committed = [t for t in self.committed if t != tx] + [tx]
        self.model = [tx for tx in self.model if tx not in block and tx not in self.invalid]

    @invariant()
    def pool_matches_the_model(self) -> None:
        assert self.mempool.reap(100, 10_000) == self.model
        assert len(self.mempool) <= 8
        assert self.mempool.bytes == sum(map(len, self.model)) <= 40


TestMempoolModel = MempoolModel.TestCase
TestMempoolModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
