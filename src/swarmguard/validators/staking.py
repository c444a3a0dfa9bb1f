"""The staking state machine: validators, delegations as shares, unbonding, redelegation,
slashing, jail, and the active set chosen at epoch boundaries.

Rules (docs/validators.md explains each; the property tests attack them):

1. Determinism: integers only, no clock and no randomness of its own; block height and time come
   in through ``begin_block``. Every method validates its whole input before it changes anything,
   so a refused transaction (``StakingError``) leaves the state exactly as it was.
2. Supply: tokens are liquid (``balances``), bonded (``Validator.tokens``) or unbonding (entry
   balances). Every operation moves tokens between these; only slashing removes tokens, and it
   adds them to ``burned``. So ``total_supply() + burned`` never changes.
3. Shares: a delegation is a number of a validator's shares, worth ``shares * tokens / total
   shares``. Slashing lowers ``tokens``, so every delegator loses the same fraction. Every
   conversion rounds in the pool's favour (fewer shares in, fewer tokens out), so no sequence of
   operations lets anyone take out more than they put in.
4. Unbonding: undelegated tokens wait ``unbonding_time`` seconds of block time in an entry, then
   become liquid. At most ``max_entries`` entries per (delegator, validator).
5. Redelegation moves bonded tokens between validators at once, but the entry stays
   ``unbonding_time``: it remains slashable for the source's earlier infractions, and while it is
   immature its destination cannot be redelegated from by the same delegator (no "hopping" away
   from a slash). At most ``max_entries`` per (delegator, source, destination).
6. Slashing for an infraction at height ``h`` burns the infraction's fraction of the validator's
   bonded tokens and of every unbonding or redelegation entry from it that started at or after
   ``h``, and jails it; the most severe infraction also tombstones the consensus key forever.
7. The active set (what consensus uses) changes only at epoch boundaries: the ``max_validators``
   validators with most bonded tokens among those not jailed, not tombstoned and holding at least
   ``min_self_bond`` of their own, ties broken by address.
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import PPM, Infraction, StakingParams
from .tracked import Tracked

__all__ = [
    "ADDRESS_BYTES",
    "SHARES_PER_TOKEN",
    "RedelegationEntry",
    "Staking",
    "StakingError",
    "UnbondingEntry",
    "Validator",
]

ADDRESS_BYTES = 20
KEY_BYTES = 32
SHARES_PER_TOKEN = 1_000_000
"""Shares minted per token by a validator's first delegation: precision for later conversions."""
AMOUNT_MAX = 2**64 - 1
"""Every token amount fits in 64 bits; shares in 128 (SHARES_PER_TOKEN < 2^64)."""


class StakingError(ValueError):
    """A staking transaction is invalid; the state was not changed."""


@dataclass(slots=True)
class Validator:
    """A registered validator, keyed by its operator address."""

    operator: bytes
    consensus_key: bytes
    vrf_key: bytes
    commission_ppm: int
    tokens: int = 0
    shares: int = 0
    jailed: bool = False
    jailed_until: int = 0
    tombstoned: bool = False


@dataclass(slots=True)
class UnbondingEntry:
    """Tokens on their way out of a validator; slashable for infractions before ``creation``."""

    delegator: bytes
    validator: bytes
    creation_height: int
    completion_time: int
    initial_balance: int
    balance: int


@dataclass(slots=True)
class RedelegationEntry:
    """A completed move of bonded tokens, kept until mature so it can still be slashed."""

    delegator: bytes
    source: bytes
    destination: bytes
    creation_height: int
    completion_time: int
    initial_balance: int
    shares: int
    """Destination shares the move minted (the most a slash can take back from them)."""


def _address(field: str, value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != ADDRESS_BYTES:
        raise StakingError(f"{field} must be {ADDRESS_BYTES} bytes")
    return value


def _amount(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= AMOUNT_MAX:
        raise StakingError(f"{field} must be an int in 1..2^64-1, got {value!r}")
    return value


class Staking:
    """The state and its transactions. Drive it with begin_block / transactions / end_block."""

    def __init__(self, params: StakingParams, balances: dict[bytes, int]) -> None:
        self.params = params
        self.height = 0
        self.time = 0
        self.balances: Tracked[bytes, int] = Tracked()
        """Liquid tokens by address (tracked: an application stores the ones a block changed)."""
        for address, amount in balances.items():
            self.balances[_address("genesis address", address)] = _amount("balance", amount)
        self.validators: dict[bytes, Validator] = {}
        self.delegations: Tracked[tuple[bytes, bytes], int] = Tracked()
        """Shares by (delegator, validator), tracked like ``balances``."""
        self.unbonding: list[UnbondingEntry] = []
        self.redelegations: list[RedelegationEntry] = []
        self.active: tuple[bytes, ...] = ()
        self.burned = 0
        self.retired_keys: set[bytes] = set()
        """Consensus keys of tombstoned validators: never usable again."""

    # ------------------------------------------------------------------ blocks

    def begin_block(self, height: int, time: int) -> None:
        """Enter block ``height`` with block time ``time``; pays out matured entries."""
        if height != self.height + 1:
            raise StakingError(f"expected height {self.height + 1}, got {height}")
        if time < self.time:
            raise StakingError(f"block time went backwards: {time} < {self.time}")
        self.height, self.time = height, time
        still: list[UnbondingEntry] = []
        for entry in self.unbonding:
            if entry.completion_time <= time:
                if entry.balance:
                    self.balances[entry.delegator] = (
                        self.balances.get(entry.delegator, 0) + entry.balance
                    )
            else:
                still.append(entry)
        self.unbonding = still
        self.redelegations = [r for r in self.redelegations if r.completion_time > time]

    def end_block(self) -> tuple[bytes, ...] | None:
        """At an epoch boundary, choose and return the new active set; otherwise None."""
        if self.height % self.params.epoch_length:
            return None
        candidates = [
            v
            for v in self.validators.values()
            if not v.jailed
            and not v.tombstoned
            and v.tokens > 0
            and self.self_bond(v.operator) >= self.params.min_self_bond
        ]
        candidates.sort(key=lambda v: (-v.tokens, v.operator))
        self.active = tuple(sorted(v.operator for v in candidates[: self.params.max_validators]))
        return self.active

    # ------------------------------------------------------------------ share arithmetic

    def _validator(self, operator: bytes) -> Validator:
        validator = self.validators.get(_address("validator", operator))
        if validator is None:
            raise StakingError(f"no validator {operator.hex()}")
        return validator

    @staticmethod
    def _shares_for(validator: Validator, amount: int) -> int:
        """Shares minted for ``amount`` new tokens (rounded down: the pool keeps the dust)."""
        if validator.shares == 0:
            return amount * SHARES_PER_TOKEN
        if validator.tokens == 0:
            raise StakingError("the validator has been slashed to zero: it takes no delegations")
        return amount * validator.shares // validator.tokens

    @staticmethod
    def _value(validator: Validator, shares: int) -> int:
        """Tokens that ``shares`` are worth (rounded down)."""
        if validator.shares == 0:
            return 0
        return shares * validator.tokens // validator.shares

    @staticmethod
    def _shares_needed(validator: Validator, amount: int) -> int:
        """Shares to burn to take out ``amount`` tokens (rounded up: the pool keeps the dust)."""
        if validator.tokens == 0:
            raise StakingError("the validator holds no tokens")
        return -(-amount * validator.shares // validator.tokens)

    def delegation_tokens(self, delegator: bytes, operator: bytes) -> int:
        """What a delegation is worth now, in tokens."""
        shares = self.delegations.get((delegator, operator), 0)
        return self._value(self.validators[operator], shares) if shares else 0

    def self_bond(self, operator: bytes) -> int:
        """Tokens the operator has delegated to its own validator."""
        return self.delegation_tokens(operator, operator)

    def _bond(self, delegator: bytes, validator: Validator, amount: int) -> int:
        shares = self._shares_for(validator, amount)
        if shares == 0:
            raise StakingError(f"{amount} tokens buy no shares of this validator: too small")
        validator.tokens += amount
        validator.shares += shares
        key = (delegator, validator.operator)
        self.delegations[key] = self.delegations.get(key, 0) + shares
        return shares

    def _unbond(self, delegator: bytes, validator: Validator, amount: int | None) -> int:
        """Burn the delegator's shares for ``amount`` tokens (None: all); returns the tokens."""
        key = (delegator, validator.operator)
        held = self.delegations.get(key, 0)
        if held == 0:
            raise StakingError("no delegation to this validator")
        if amount is None:
            shares, tokens = held, self._value(validator, held)
        else:
            shares, tokens = self._shares_needed(validator, amount), amount
            if shares > held:
                raise StakingError(
                    f"the delegation is worth {self._value(validator, held)} tokens, not {amount}"
                )
        if tokens == 0:
            raise StakingError("the delegation is worth no tokens")
        validator.tokens -= tokens
        validator.shares -= shares
        if held == shares:
            del self.delegations[key]
        else:
            self.delegations[key] = held - shares
        return tokens

    def _spend(self, address: bytes, amount: int) -> None:
        if self.balances.get(address, 0) < amount:
            raise StakingError(f"balance {self.balances.get(address, 0)} is below {amount}")
        self.balances[address] -= amount
        if not self.balances[address]:
            del self.balances[address]

    # ------------------------------------------------------------------ transactions

    def transfer(self, sender: bytes, recipient: bytes, amount: int) -> None:
        """Move liquid tokens between accounts (supply unchanged; refused without a trace)."""
        _address("sender", sender)
        _address("recipient", recipient)
        _amount("amount", amount)
        if self.balances.get(recipient, 0) + amount > AMOUNT_MAX and sender != recipient:
            raise StakingError("the recipient's balance would exceed the amount limit")
        self._spend(sender, amount)
        self.balances[recipient] = self.balances.get(recipient, 0) + amount

    def create_validator(
        self,
        operator: bytes,
        consensus_key: bytes,
        vrf_key: bytes,
        commission_ppm: int,
        self_bond: int,
    ) -> None:
        """Register a validator with its keys, commission and first self-bond."""
        _address("operator", operator)
        if operator in self.validators:
            raise StakingError(f"validator {operator.hex()} already exists")
        for field, key in (("consensus_key", consensus_key), ("vrf_key", vrf_key)):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise StakingError(f"{field} must be {KEY_BYTES} bytes")
        in_use = {v.consensus_key for v in self.validators.values()} | self.retired_keys
        if consensus_key in in_use:
            raise StakingError("this consensus key is in use or tombstoned")
        if isinstance(commission_ppm, bool) or not 0 <= commission_ppm <= PPM:
            raise StakingError(f"commission_ppm must be in 0..{PPM}")
        _amount("self_bond", self_bond)
        if self_bond < self.params.min_self_bond:
            raise StakingError(f"self_bond must be >= {self.params.min_self_bond}")
        self._spend(operator, self_bond)
        validator = Validator(operator, consensus_key, vrf_key, commission_ppm)
        self.validators[operator] = validator
        self._bond(operator, validator, self_bond)

    def update_validator(self, operator: bytes, *, commission_ppm: int) -> None:
        """Change a validator's commission."""
        validator = self._validator(operator)
        if isinstance(commission_ppm, bool) or not 0 <= commission_ppm <= PPM:
            raise StakingError(f"commission_ppm must be in 0..{PPM}")
        validator.commission_ppm = commission_ppm

    def delegate(self, delegator: bytes, operator: bytes, amount: int) -> None:
        """Bond ``amount`` liquid tokens to a validator."""
        _address("delegator", delegator)
        _amount("amount", amount)
        validator = self._validator(operator)
        if validator.tombstoned:
            raise StakingError("the validator is tombstoned")
        if self.balances.get(delegator, 0) < amount:
            raise StakingError(f"balance {self.balances.get(delegator, 0)} is below {amount}")
        if self._shares_for(validator, amount) == 0:
            raise StakingError(f"{amount} tokens buy no shares of this validator: too small")
        self._spend(delegator, amount)
        self._bond(delegator, validator, amount)

    def undelegate(self, delegator: bytes, operator: bytes, amount: int | None) -> int:
        """Start unbonding ``amount`` tokens (None: the whole delegation); returns the amount."""
        _address("delegator", delegator)
        if amount is not None:
            _amount("amount", amount)
        validator = self._validator(operator)
        pending = sum(
            1 for e in self.unbonding if e.delegator == delegator and e.validator == operator
        )
        if pending >= self.params.max_entries:
            raise StakingError(f"{pending} unbonding entries pending: the limit")
        tokens = self._unbond(delegator, validator, amount)
        self.unbonding.append(
            UnbondingEntry(
                delegator,
                operator,
                self.height,
                self.time + self.params.unbonding_time,
                tokens,
                tokens,
            )
        )
        return tokens

    def redelegate(
        self, delegator: bytes, source: bytes, destination: bytes, amount: int | None
    ) -> int:
        """Move bonded tokens from one validator to another at once; returns the amount."""
        _address("delegator", delegator)
        if amount is not None:
            _amount("amount", amount)
        if source == destination:
            raise StakingError("source and destination are the same validator")
        source_validator = self._validator(source)
        destination_validator = self._validator(destination)
        if destination_validator.tombstoned:
            raise StakingError("the destination is tombstoned")
        if any(r.delegator == delegator and r.destination == source for r in self.redelegations):
            raise StakingError("tokens redelegated to the source are not mature yet: no hopping")
        pending = sum(
            1
            for r in self.redelegations
            if (r.delegator, r.source, r.destination) == (delegator, source, destination)
        )
        if pending >= self.params.max_entries:
            raise StakingError(f"{pending} redelegation entries pending: the limit")
        # Check that the move can complete before changing anything.
        held = self.delegations.get((delegator, source), 0)
        tokens = self._value(source_validator, held) if amount is None else amount
        if held == 0 or tokens == 0:
            raise StakingError("no delegation to the source")
        if amount is not None and self._shares_needed(source_validator, amount) > held:
            raise StakingError("the delegation is worth less than the amount")
        if self._shares_for(destination_validator, tokens) == 0:
            raise StakingError("the amount buys no shares of the destination")
        moved = self._unbond(delegator, source_validator, amount)
        shares = self._bond(delegator, destination_validator, moved)
        self.redelegations.append(
            RedelegationEntry(
                delegator,
                source,
                destination,
                self.height,
                self.time + self.params.unbonding_time,
                moved,
                shares,
            )
        )
        return moved

    def unjail(self, operator: bytes) -> None:
        """Leave jail: only after the jail time, with enough self-bond, never if tombstoned."""
        validator = self._validator(operator)
        if not validator.jailed:
            raise StakingError("the validator is not jailed")
        if validator.tombstoned:
            raise StakingError("the validator is tombstoned: it can never unjail")
        if self.time < validator.jailed_until:
            raise StakingError(f"jailed until block time {validator.jailed_until}")
        if self.self_bond(operator) < self.params.min_self_bond:
            raise StakingError(f"self-bond below {self.params.min_self_bond}")
        validator.jailed = False

    # ------------------------------------------------------------------ slashing

    def slash(self, operator: bytes, infraction_height: int, infraction: Infraction) -> int:
        """Apply rule 6 for an infraction at ``infraction_height``; returns the tokens burned.

        The caller (evidence handling, the downtime tracker) has verified the infraction.
        """
        validator = self._validator(operator)
        if not 0 < infraction_height <= self.height:
            raise StakingError(f"infraction height {infraction_height} is not in the past")
        fraction = self.params.slash_ppm(infraction)
        burned = 0
        for entry in self.unbonding:
            if entry.validator == operator and entry.creation_height >= infraction_height:
                cut = min(entry.balance, entry.initial_balance * fraction // PPM)
                entry.balance -= cut
                burned += cut
        for move in self.redelegations:
            if move.source == operator and move.creation_height >= infraction_height:
                burned += self._slash_redelegation(move, fraction)
        cut = validator.tokens * fraction // PPM
        validator.tokens -= cut
        burned += cut
        self.burned += burned
        validator.jailed = True
        jail_time = (
            self.params.downtime_jail_time
            if infraction is Infraction.DOWNTIME
            else self.params.misbehaviour_jail_time
        )
        validator.jailed_until = max(validator.jailed_until, self.time + jail_time)
        if infraction is Infraction.REPEATED_EQUIVOCATION:
            validator.tombstoned = True
            self.retired_keys.add(validator.consensus_key)
        return burned

    def _slash_redelegation(self, move: RedelegationEntry, fraction: int) -> int:
        """Burn ``fraction`` of a redelegation's initial tokens from its destination shares."""
        destination = self.validators[move.destination]
        key = (move.delegator, move.destination)
        held = self.delegations.get(key, 0)
        target = move.initial_balance * fraction // PPM
        if target == 0 or held == 0 or destination.tokens == 0:
            return 0
        shares = min(held, move.shares, self._shares_needed(destination, target))
        tokens = min(self._value(destination, shares), destination.tokens)
        destination.shares -= shares
        destination.tokens -= tokens
        move.shares -= shares
        if held == shares:
            del self.delegations[key]
        else:
            self.delegations[key] = held - shares
        return tokens

    # ------------------------------------------------------------------ accounting

    def total_supply(self) -> int:
        """Liquid + bonded + unbonding tokens (rule 2: plus ``burned`` it never changes)."""
        return (
            sum(self.balances.values())
            + sum(v.tokens for v in self.validators.values())
            + sum(e.balance for e in self.unbonding)
        )
