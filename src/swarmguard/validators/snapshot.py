"""Canonical, versioned encoding of the whole staking state, and the state hash.

Layout, version 1 (keep in sync with docs/validators.md, "Snapshot format"); integers are
big-endian, u64 unless noted; collections are a u32 count then items in the order given:

    version u16 | params (each StakingParams field as u64, in declaration order)
    height | time | burned
    balances        sorted by address:   address(20) amount
    validators      sorted by operator:  operator(20) consensus_key(32) vrf_key(32)
                                         commission_ppm(u32) tokens shares(u128)
                                         jailed(bool) jailed_until tombstoned(bool)
    delegations     sorted by (delegator, validator): delegator(20) validator(20) shares(u128)
    unbonding       in creation order:   delegator(20) validator(20) creation_height
                                         completion_time initial_balance balance
    redelegations   in creation order:   delegator(20) source(20) destination(20)
                                         creation_height completion_time initial_balance
                                         shares(u128)
    active set      sorted:              operator(20)
    retired keys    sorted:              key(32)

Sorted collections must be strictly increasing on decode, so each state has exactly one
encoding; ``state_hash`` is the domain-separated SHA-256 of it.
"""

from __future__ import annotations

from dataclasses import fields

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import Domain, digest

from .params import StakingParams
from .staking import (
    ADDRESS_BYTES,
    KEY_BYTES,
    RedelegationEntry,
    Staking,
    UnbondingEntry,
    Validator,
)

__all__ = ["SNAPSHOT_VERSION", "decode_state", "encode_state", "state_hash"]

SNAPSHOT_VERSION = 1
_PARAMS = tuple(spec.name for spec in fields(StakingParams))
"""The parameters' names in declaration order (``astuple`` deep-copies: slow per block)."""


def encode_state(state: Staking, *, apart: bool = False) -> bytes:
    """The canonical encoding of ``state``; ``apart=True``: with empty balance and delegation
    lists (for an application that stores each of their entries itself)."""
    out = Writer()
    out.uint(SNAPSHOT_VERSION, 2)
    for name in _PARAMS:
        out.uint(getattr(state.params, name), 8)
    for value in (state.height, state.time, state.burned):
        out.uint(value, 8)
    listed = {} if apart else state.balances
    out.uint(len(listed), 4)
    for address in sorted(listed):
        out.fixed(address, ADDRESS_BYTES)
        out.uint(listed[address], 8)
    out.uint(len(state.validators), 4)
    for operator in sorted(state.validators):
        v = state.validators[operator]
        out.fixed(v.operator, ADDRESS_BYTES)
        out.fixed(v.consensus_key, KEY_BYTES)
        out.fixed(v.vrf_key, KEY_BYTES)
        out.uint(v.commission_ppm, 4)
        out.uint(v.tokens, 8)
        out.uint(v.shares, 16)
        out.boolean(v.jailed)
        out.uint(v.jailed_until, 8)
        out.boolean(v.tombstoned)
    delegations = {} if apart else state.delegations
    out.uint(len(delegations), 4)
    for delegator, operator in sorted(delegations):
        out.fixed(delegator, ADDRESS_BYTES)
        out.fixed(operator, ADDRESS_BYTES)
        out.uint(delegations[(delegator, operator)], 16)
    out.uint(len(state.unbonding), 4)
    for e in state.unbonding:
        out.fixed(e.delegator, ADDRESS_BYTES)
        out.fixed(e.validator, ADDRESS_BYTES)
        for value in (e.creation_height, e.completion_time, e.initial_balance, e.balance):
            out.uint(value, 8)
    out.uint(len(state.redelegations), 4)
    for r in state.redelegations:
        for address in (r.delegator, r.source, r.destination):
            out.fixed(address, ADDRESS_BYTES)
        for value in (r.creation_height, r.completion_time, r.initial_balance):
            out.uint(value, 8)
        out.uint(r.shares, 16)
    out.uint(len(state.active), 4)
    for operator in sorted(state.active):
        out.fixed(operator, ADDRESS_BYTES)
    out.uint(len(state.retired_keys), 4)
    for key in sorted(state.retired_keys):
        out.fixed(key, KEY_BYTES)
    return out.getvalue()


def state_hash(state: Staking, chain_id: str) -> bytes:
    """The 32-byte hash every node must agree on after the same transactions."""
    return digest(Domain.STATE, encode_state(state), chain_id=chain_id)


def _increasing(previous: object, current: object, what: str, reader: Reader) -> None:
    if previous is not None and not previous < current:  # type: ignore[operator]
        raise CodecError(f"{reader.what}: {what} not in strictly increasing order")


def decode_state(data: bytes) -> Staking:
    """Rebuild a state from its encoding; raises CodecError on anything non-canonical."""
    r = Reader(data, "staking snapshot")
    version = r.uint(2, "version")
    if version != SNAPSHOT_VERSION:
        raise CodecError(f"staking snapshot: unsupported version {version}")
    try:
        params = StakingParams(*(r.uint(8, spec.name) for spec in fields(StakingParams)))
    except ValueError as error:
        raise CodecError(f"staking snapshot: {error}") from None
    state = Staking(params, {})
    state.height, state.time, state.burned = (r.uint(8, f) for f in ("height", "time", "burned"))
    previous: object = None
    for _ in range(r.count(28, "balances")):
        address, amount = r.fixed(ADDRESS_BYTES, "address"), r.uint(8, "amount")
        _increasing(previous, address, "balances", r)
        previous = address
        state.balances[address] = amount
    previous = None
    for _ in range(r.count(131, "validators")):
        v = Validator(
            r.fixed(ADDRESS_BYTES, "operator"),
            r.fixed(KEY_BYTES, "consensus_key"),
            r.fixed(KEY_BYTES, "vrf_key"),
            r.uint(4, "commission_ppm"),
            r.uint(8, "tokens"),
            r.uint(16, "shares"),
            r.boolean("jailed"),
            r.uint(8, "jailed_until"),
            r.boolean("tombstoned"),
        )
        _increasing(previous, v.operator, "validators", r)
        previous = v.operator
        state.validators[v.operator] = v
    previous = None
    for _ in range(r.count(56, "delegations")):
        key = (r.fixed(ADDRESS_BYTES, "delegator"), r.fixed(ADDRESS_BYTES, "validator"))
        _increasing(previous, key, "delegations", r)
        previous = key
        state.delegations[key] = r.uint(16, "shares")
    for _ in range(r.count(72, "unbonding")):
        delegator, operator = (
            r.fixed(ADDRESS_BYTES, "delegator"),
            r.fixed(ADDRESS_BYTES, "validator"),
        )
        creation, completion = r.uint(8, "creation_height"), r.uint(8, "completion_time")
        initial, balance = r.uint(8, "initial_balance"), r.uint(8, "balance")
        state.unbonding.append(
            UnbondingEntry(delegator, operator, creation, completion, initial, balance)
        )
    for _ in range(r.count(100, "redelegations")):
        delegator, source = r.fixed(ADDRESS_BYTES, "delegator"), r.fixed(ADDRESS_BYTES, "source")
        destination = r.fixed(ADDRESS_BYTES, "destination")
        creation, completion = r.uint(8, "creation_height"), r.uint(8, "completion_time")
        initial, shares = r.uint(8, "initial_balance"), r.uint(16, "shares")
        state.redelegations.append(
            RedelegationEntry(delegator, source, destination, creation, completion, initial, shares)
        )
    active = []
    previous = None
    for _ in range(r.count(ADDRESS_BYTES, "active set")):
        operator = r.fixed(ADDRESS_BYTES, "operator")
        _increasing(previous, operator, "active set", r)
        previous = operator
        active.append(operator)
    state.active = tuple(active)
    previous = None
    for _ in range(r.count(KEY_BYTES, "retired keys")):
        key_bytes = r.fixed(KEY_BYTES, "key")
        _increasing(previous, key_bytes, "retired keys", r)
        previous = key_bytes
        state.retired_keys.add(key_bytes)
    r.finish()
    return state
