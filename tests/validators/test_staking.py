"""The staking rules (staking.py's docstring), unit by unit and under random operation sequences."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from swarmguard.codec import CodecError
from swarmguard.validators.params import Infraction, StakingParams
from swarmguard.validators.snapshot import decode_state, encode_state, state_hash
from swarmguard.validators.staking import Staking, StakingError
from swarmguard.validators.tracked import Tracked

CHAIN = "swarm-test"
DAY = 86_400


def addr(n: int) -> bytes:
    return n.to_bytes(20, "big")


def key(n: int) -> bytes:
    return (1000 + n).to_bytes(32, "big")


def fresh(**params: int) -> Staking:
    state = Staking(StakingParams(**params), {addr(i): 1_000_000 for i in range(1, 9)})
    state.begin_block(1, 1_000)
    return state


def test_delegators_share_a_slash_proportionally() -> None:
    """A 20% slash lowers every delegator's stake by 20%, self-bond included."""
    state = fresh()
    state.create_validator(addr(1), key(1), key(101), 50_000, 100_000)
    state.delegate(addr(2), addr(1), 300_000)
    state.delegate(addr(3), addr(1), 600_000)
    state.begin_block(2, 1_005)
    burned = state.slash(addr(1), 1, Infraction.DOUBLE_VOTE)
    assert burned == 200_000
    assert state.delegation_tokens(addr(1), addr(1)) == 80_000
    assert state.delegation_tokens(addr(2), addr(1)) == 240_000
    assert state.delegation_tokens(addr(3), addr(1)) == 480_000
    assert state.validators[addr(1)].jailed


def test_unbonding_waits_and_stays_slashable() -> None:
    """Unbonded tokens arrive after unbonding_time; until then a slash for an earlier infraction
    reaches them, and one for a later infraction does not."""
    state = fresh()
    state.create_validator(addr(1), key(1), key(101), 0, 100_000)
    state.delegate(addr(2), addr(1), 500_000)
    state.begin_block(2, 1_010)
    state.undelegate(addr(2), addr(1), 200_000)
    assert state.balances[addr(2)] == 500_000
    state.begin_block(3, 1_020)
    state.slash(addr(1), 2, Infraction.INVALID_PROPOSAL)  # 5%, infraction at the entry's height
    assert state.unbonding[0].balance == 190_000
    state.slash(addr(1), 3, Infraction.INVALID_PROPOSAL)  # after the entry started: untouched
    assert state.unbonding[0].balance == 190_000
    state.begin_block(4, 1_010 + 21 * DAY - 1)
    assert len(state.unbonding) == 1
    state.begin_block(5, 1_010 + 21 * DAY)
    assert state.unbonding == []
    assert state.balances[addr(2)] == 500_000 + 190_000


def test_repeated_slashes_never_overdraw_an_entry() -> None:
    """Three 50% slashes of the same entry take it to zero, never below."""
    state = fresh()
    state.create_validator(addr(1), key(1), key(101), 0, 100_000)
    state.delegate(addr(2), addr(1), 100_000)
    state.begin_block(2, 1_010)
    state.undelegate(addr(2), addr(1), 80_000)
    state.begin_block(3, 1_020)
    for _ in range(3):
        state.slash(addr(1), 2, Infraction.REPEATED_EQUIVOCATION)
    assert state.unbonding[0].balance == 0
    assert state.total_supply() + state.burned == 8 * 1_000_000


def test_redelegation_is_instant_tracked_and_no_hopping() -> None:
    """Redelegated stake moves at once, stays slashable for the source, and cannot hop on."""
    state = fresh()
    for n in (1, 2, 3):
        state.create_validator(addr(n), key(n), key(100 + n), 0, 100_000)
    state.delegate(addr(4), addr(1), 400_000)
    state.begin_block(2, 1_100)
    moved = state.redelegate(addr(4), addr(1), addr(2), None)
    assert moved == 400_000
    assert state.delegation_tokens(addr(4), addr(2)) == 400_000
    with pytest.raises(StakingError, match="hopping"):
        state.redelegate(addr(4), addr(2), addr(3), 1_000)
    state.begin_block(3, 1_200)
    state.slash(addr(1), 2, Infraction.DOUBLE_VOTE)  # source misbehaved at height 2
    assert state.delegation_tokens(addr(4), addr(2)) == 320_000
    state.begin_block(4, 1_100 + 21 * DAY)
    state.redelegate(addr(4), addr(2), addr(3), 1_000)  # mature: allowed


def test_entry_limits() -> None:
    """At most max_entries unbonding entries per (delegator, validator)."""
    state = fresh(max_entries=2)
    state.create_validator(addr(1), key(1), key(101), 0, 100_000)
    state.delegate(addr(2), addr(1), 1_000)
    state.undelegate(addr(2), addr(1), 10)
    state.undelegate(addr(2), addr(1), 10)
    with pytest.raises(StakingError, match="limit"):
        state.undelegate(addr(2), addr(1), 10)


def test_tombstone_is_forever() -> None:
    """The most severe infraction tombstones: no unjail, no delegations, key never reusable."""
    state = fresh()
    state.create_validator(addr(1), key(1), key(101), 0, 100_000)
    state.begin_block(2, 2_000)
    state.slash(addr(1), 1, Infraction.REPEATED_EQUIVOCATION)
    assert state.validators[addr(1)].tokens == 50_000
    with pytest.raises(StakingError, match="tombstoned"):
        state.unjail(addr(1))
    with pytest.raises(StakingError, match="tombstoned"):
        state.delegate(addr(2), addr(1), 10)
    with pytest.raises(StakingError, match="tombstoned"):
        state.create_validator(addr(2), key(1), key(102), 0, 100_000)


def test_unjail_needs_the_cooldown_and_self_bond() -> None:
    """Unjail fails before the jail time ends and without enough self-bond."""
    state = fresh(min_self_bond=60_000)
    state.create_validator(addr(1), key(1), key(101), 0, 100_000)
    state.begin_block(2, 2_000)
    state.slash(addr(1), 2, Infraction.DOWNTIME)
    with pytest.raises(StakingError, match="jailed until"):
        state.unjail(addr(1))
    state.begin_block(3, 2_000 + 600)
    state.undelegate(addr(1), addr(1), 50_000)
    with pytest.raises(StakingError, match="self-bond"):
        state.unjail(addr(1))
    state.delegate(addr(1), addr(1), 20_000)
    state.unjail(addr(1))
    assert not state.validators[addr(1)].jailed


def test_active_set_changes_only_at_epoch_boundaries() -> None:
    """The top max_validators by stake, recomputed only every epoch_length blocks."""
    state = fresh(max_validators=2, epoch_length=3)
    for n, bond in ((1, 100_000), (2, 300_000), (3, 200_000)):
        state.create_validator(addr(n), key(n), key(100 + n), 0, bond)
    assert state.end_block() is None  # height 1
    state.begin_block(2, 1_001)
    assert state.end_block() is None
    state.begin_block(3, 1_002)
    assert state.end_block() == (addr(2), addr(3))
    state.slash(addr(2), 3, Infraction.DOWNTIME)  # jailed mid-epoch...
    state.begin_block(4, 1_003)
    assert state.end_block() is None
    assert state.active == (addr(2), addr(3))  # ...still active until the boundary
    state.begin_block(5, 1_004)
    state.end_block()
    state.begin_block(6, 1_005)
    assert state.end_block() == (addr(1), addr(3))


def test_refused_transactions_change_nothing() -> None:
    """Every refused transaction leaves the encoded state identical."""
    state = fresh()
    state.create_validator(addr(1), key(1), key(101), 0, 100_000)
    before = encode_state(state)
    attempts = [
        lambda: state.delegate(addr(2), addr(1), 10**7),  # more than the balance
        lambda: state.delegate(addr(2), addr(9), 10),  # no such validator
        lambda: state.undelegate(addr(2), addr(1), 5),  # no delegation
        lambda: state.undelegate(addr(1), addr(1), 10**6),  # more than the delegation
        lambda: state.redelegate(addr(1), addr(1), addr(1), 5),  # same validator
        lambda: state.create_validator(addr(1), key(2), key(102), 0, 10),  # exists
        lambda: state.create_validator(addr(2), key(1), key(102), 0, 10),  # key in use
        lambda: state.create_validator(addr(2), key(2), key(102), 2_000_000, 10),  # commission
        lambda: state.unjail(addr(1)),  # not jailed
        lambda: state.slash(addr(1), 5, Infraction.DOWNTIME),  # future infraction
        lambda: state.begin_block(3, 2_000),  # skipped a height
        lambda: state.delegate(addr(2), addr(1), 0),  # zero amount
    ]
    for attempt in attempts:
        with pytest.raises(StakingError):
            attempt()
        assert encode_state(state) == before


def test_snapshot_round_trip_and_rejections() -> None:
    """decode(encode(s)) encodes identically; truncation, trailing bytes, bad versions and
    unsorted collections are refused."""
    state = fresh()
    state.create_validator(addr(1), key(1), key(101), 7, 100_000)
    state.delegate(addr(2), addr(1), 1_000)
    state.undelegate(addr(2), addr(1), 100)
    encoded = encode_state(state)
    assert encode_state(decode_state(encoded)) == encoded
    assert state_hash(decode_state(encoded), CHAIN) == state_hash(state, CHAIN)
    with pytest.raises(CodecError, match="truncated"):
        decode_state(encoded[:-1])
    with pytest.raises(CodecError, match="trailing"):
        decode_state(encoded + b"\x00")
    with pytest.raises(CodecError, match="version"):
        decode_state(b"\x00\x02" + encoded[2:])
    with pytest.raises(CodecError):
        decode_state(b"\xff" * 40)


OPS = st.one_of(
    st.tuples(st.just("create"), st.integers(1, 6), st.integers(1, 300_000)),
    st.tuples(st.just("delegate"), st.integers(1, 8), st.integers(1, 6), st.integers(1, 300_000)),
    st.tuples(st.just("undelegate"), st.integers(1, 8), st.integers(1, 6), st.integers(0, 300_000)),
    st.tuples(
        st.just("redelegate"),
        st.integers(1, 8),
        st.integers(1, 6),
        st.integers(1, 6),
        st.integers(0, 300_000),
    ),
    st.tuples(st.just("slash"), st.integers(1, 6), st.sampled_from(list(Infraction))),
    st.tuples(st.just("unjail"), st.integers(1, 6)),
    st.tuples(st.just("transfer"), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2_000_000)),
    st.tuples(st.just("block"), st.integers(0, 30 * DAY)),
)

INITIAL = {addr(i): 1_000_000 for i in range(1, 9)}


def apply(state: Staking, op: tuple[object, ...]) -> None:
    """Apply one random operation (raises StakingError when the state machine refuses it)."""
    kind, args = op[0], op[1:]
    if kind == "create":
        n, bond = args
        state.create_validator(addr(n), key(n), key(100 + n), 0, bond)  # type: ignore[arg-type, operator]
    elif kind == "delegate":
        delegator, operator, amount = args
        state.delegate(addr(delegator), addr(operator), amount)  # type: ignore[arg-type]
    elif kind == "undelegate":
        delegator, operator, amount = args
        state.undelegate(addr(delegator), addr(operator), amount or None)  # type: ignore[arg-type]
    elif kind == "redelegate":
        delegator, source, destination, amount = args
        state.redelegate(
            addr(delegator),  # type: ignore[arg-type]
            addr(source),  # type: ignore[arg-type]
            addr(destination),  # type: ignore[arg-type]
            amount or None,  # type: ignore[arg-type]
        )
    elif kind == "slash":
        operator, infraction = args
        state.slash(addr(operator), max(1, state.height - 1), infraction)  # type: ignore[arg-type]
    elif kind == "unjail":
        state.unjail(addr(args[0]))  # type: ignore[arg-type]
    elif kind == "transfer":
        sender, recipient, amount = args
        state.transfer(addr(sender), addr(recipient), amount)  # type: ignore[arg-type]
    else:
        state.begin_block(state.height + 1, state.time + args[0])  # type: ignore[operator]
        state.end_block()


class StakingMachine(RuleBasedStateMachine):
    """Random operations on two replicas; the invariants of staking.py hold after each."""

    def __init__(self) -> None:
        super().__init__()
        self.replicas = [Staking(StakingParams(epoch_length=3), dict(INITIAL)) for _ in range(2)]
        for replica in self.replicas:
            replica.begin_block(1, 1_000)
        self.supply = sum(INITIAL.values())
        self.received: dict[bytes, int] = {}  # net tokens transferred to each address

    @rule(op=OPS)
    def step(self, op: tuple[object, ...]) -> None:
        outcomes = []
        prices = {
            operator: (v.tokens, v.shares)
            for operator, v in self.replicas[0].validators.items()
            if v.shares
        }
        for replica in self.replicas:
            before = encode_state(replica)
            try:
                apply(replica, op)
            except StakingError:
                assert encode_state(replica) == before  # refused: no trace at all
                outcomes.append(False)
            else:
                outcomes.append(True)
        assert outcomes[0] == outcomes[1]
        if op[0] == "transfer" and outcomes[0]:
            _, sender, recipient, amount = op
            for address, change in ((addr(sender), -amount), (addr(recipient), amount)):  # type: ignore[arg-type, operator]
                self.received[address] = self.received.get(address, 0) + change
        if op[0] != "slash":
            # Rounding always favours the pool: nothing but a slash lowers a share's price.
            for operator, (tokens, shares) in prices.items():
                after = self.replicas[0].validators[operator]
                if after.shares:
                    assert after.tokens * shares >= tokens * after.shares, operator.hex()

    @invariant()
    def supply_is_conserved_except_by_slashing(self) -> None:
        state = self.replicas[0]
        assert state.total_supply() + state.burned == self.supply

    @invariant()
    def shares_and_tokens_are_consistent(self) -> None:
        state = self.replicas[0]
        for operator, validator in state.validators.items():
            held = [s for (d, v), s in state.delegations.items() if v == operator]
            assert sum(held) == validator.shares
            assert sum(state._value(validator, s) for s in held) <= validator.tokens
            assert validator.tokens >= 0
            assert validator.shares >= 0
        assert all(e.balance >= 0 for e in state.unbonding)

    @invariant()
    def nobody_owns_more_than_they_brought(self) -> None:
        state = self.replicas[0]
        for address in {*INITIAL, *self.received}:
            owned = state.balances.get(address, 0)
            owned += sum(state.delegation_tokens(address, op) for op in state.validators)
            owned += sum(e.balance for e in state.unbonding if e.delegator == address)
            assert owned <= INITIAL.get(address, 0) + self.received.get(address, 0)

    @invariant()
    def replicas_agree(self) -> None:
        first, second = self.replicas
        assert state_hash(first, CHAIN) == state_hash(second, CHAIN)
        encoded = encode_state(first)
        assert encode_state(decode_state(encoded)) == encoded


TestStakingInvariants = StakingMachine.TestCase
TestStakingInvariants.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_transfers_move_liquid_tokens_only() -> None:
    state = fresh()
    state.transfer(addr(1), addr(20), 400_000)
    assert state.balances[addr(1)] == 600_000
    assert state.balances[addr(20)] == 400_000
    with pytest.raises(StakingError):
        state.transfer(addr(1), addr(20), 600_001)
    state.transfer(addr(1), addr(20), 600_000)
    assert addr(1) not in state.balances  # an emptied account leaves no entry
    with pytest.raises(StakingError):
        state.transfer(addr(20), addr(1), 0)


def test_a_tracked_dict_remembers_every_key_any_change_touched() -> None:
    """What an application writes per block comes from here, so every way a dict can change
    must be recorded (a missed one would leave a stored entry stale)."""
    balances: Tracked[bytes, int] = Tracked({addr(1): 5, addr(9): 1})
    del balances[addr(9)]  # before anyone asked: nothing is kept
    assert balances._changed is None
    assert balances.take_changed() == {addr(1)}  # the first call: everything held
    assert balances.take_changed() == set()
    balances[addr(2)] = 7
    del balances[addr(1)]
    balances.pop(addr(2))
    balances.pop(addr(3), 0)
    balances.setdefault(addr(4), 1)
    balances.update({addr(5): 1})
    balances |= {addr(6): 2}
    assert balances.take_changed() == {addr(i) for i in range(1, 7)}
    balances.popitem()
    balances.clear()
    assert balances.take_changed() == {addr(4), addr(5), addr(6)}
    assert balances == {}
    balances[addr(7)] = 3
    for twin in (copy.deepcopy(balances), pickle.loads(pickle.dumps(balances))):
        assert isinstance(twin, Tracked)
        assert twin == balances == {addr(7): 3}
        assert twin.take_changed() == {addr(7)}
    _ = balances.get(addr(7)), balances[addr(7)], addr(7) in balances  # reads record nothing
    assert balances.take_changed() == {addr(7)}
    assert balances.take_changed() == set()


def test_staking_changes_reach_the_changed_sets() -> None:
    """Transfers, delegation, undelegation, and unbonding paid out at maturity by
    ``begin_block``."""
    state = fresh(unbonding_time=10)
    state.create_validator(addr(1), key(1), key(101), 0, 100)
    state.balances.take_changed()
    state.delegations.take_changed()
    state.transfer(addr(2), addr(30), 7)
    state.delegate(addr(3), addr(1), 50)
    assert state.balances.take_changed() == {addr(2), addr(30), addr(3)}
    assert state.delegations.take_changed() == {(addr(3), addr(1))}
    state.undelegate(addr(3), addr(1), None)
    assert state.balances.take_changed() == set()  # unbonding: not liquid yet
    assert state.delegations.take_changed() == {(addr(3), addr(1))}
    assert (addr(3), addr(1)) not in state.delegations
    state.begin_block(2, 1_020)
    assert state.balances.take_changed() == {addr(3)}
