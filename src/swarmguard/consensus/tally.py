"""Vote accounting for one (height, view): thresholds in voting power, certificates, commits.

The thresholds are the consensus brief's (../shared/spec/consensus-protocol.md), in voting power
(stake), never in node counts. With N the total power of the height's validator set and P the
fast-path slack (0 by default), F is the largest Byzantine power tolerated, the largest F with
N >= 3F + 2P + 1 (keep in sync with docs/consensus.md, "Thresholds"):

    Fast-Cert(k, x), Fast-Cert(k, ⊥)    Votes (for x, for ⊥)  >= N - 2F - P
    Slow-Cert(k, x)                     Votes for x           >= N - F - P
    Slow-Cert(k, ⊥)                     Finals for ⊥          >= N - F - P
    fast commit of x                    Votes for x           >= N - P
    slow commit of x                    Finals for x          >= N - F - P

What a replica may send in one view: at most one Vote for a value and at most one Vote for ⊥
(rule 7 allows both, so that pair is *not* equivocation), and one Final (value or ⊥). Two Votes
for different values, or two different Finals (⊥ included), are equivocation: the tally reports
it (the caller turns the pair into evidence) and still counts the second message toward its own
value. A certificate is a set of signatures, and a Byzantine validator's signature is in every
certificate it signed for: the safety argument already charges F in each of two conflicting
certificates, so counting it is exactly what the thresholds assume; and refusing to count it
would leave this replica unable to see a certificate every other replica holds (a liveness bug
the simulator found: twin leaders split a view and one replica never saw the Slow-Cert).
``VALUES_PER_VALIDATOR_MAX`` bounds what one key can make the tally store. Exact duplicates are
ignored; a validator's power counts at most once toward "Votes received" (rule 7).

Certificates are ranked by view, then Fast < Slow within a view (``CertificateRank``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_VOTE

__all__ = [
    "VALUES_PER_VALIDATOR_MAX",
    "Accepted",
    "CertificateRank",
    "Kind",
    "Thresholds",
    "ViewTally",
]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Power thresholds for one validator set (``total`` = N, ``faults`` = F, ``slack`` = P)."""

    total: int
    faults: int
    slack: int = 0

    @classmethod
    def for_powers(cls, powers: Sequence[int], slack: int = 0) -> Thresholds:
        """The thresholds of a validator set: F is the largest with N >= 3F + 2P + 1."""
        if not powers or any(p <= 0 for p in powers):
            raise ValueError("a validator set needs positive voting powers")
        total = sum(powers)
        if slack < 0 or total < 2 * slack + 1:
            raise ValueError(f"slack {slack} is impossible with total power {total}")
        faults = (total - 2 * slack - 1) // 3
        return cls(total, faults, slack)

    def __post_init__(self) -> None:
        if self.total < 3 * self.faults + 2 * self.slack + 1:
            raise ValueError("thresholds need N >= 3F + 2P + 1")

    @property
    def fast_certificate(self) -> int:
        return self.total - 2 * self.faults - self.slack

    @property
    def slow_certificate(self) -> int:
        return self.total - self.faults - self.slack

    @property
    def fast_commit(self) -> int:
        return self.total - self.slack

    @property
    def slow_commit(self) -> int:
        return self.total - self.faults - self.slack


class Kind(Enum):
    FAST = 0
    SLOW = 1


@dataclass(frozen=True, slots=True, order=True)
class CertificateRank:
    """Certificates compare by view, then Fast < Slow: (k, Fast) < (k, Slow) < (k + 1, Fast)."""

    view: int
    kind: int  # Kind.value, so that ordering is plain tuple ordering


class Accepted(Enum):
    """What the tally did with a message."""

    COUNTED = "counted"
    DUPLICATE = "duplicate"
    EQUIVOCATION = "equivocation"
    UNKNOWN_VALIDATOR = "unknown_validator"


VALUES_PER_VALIDATOR_MAX = 4
"""Distinct values (Votes, and separately Finals) counted for one validator in one view; an
honest validator sends one, an equivocating leader's halves make two."""


@dataclass(slots=True)
class _Validator:
    value_votes: list[bytes] = field(default_factory=list)  # the first is the one it "meant"
    nil_vote: bool = False
    finals: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class ViewTally:
    """Votes and Finals of one (height, view), by validator index."""

    powers: Sequence[int]
    thresholds: Thresholds
    height: int = 1
    view: int = 0
    _validators: dict[int, _Validator] = field(default_factory=dict)
    # (phase, value) -> {index: signature}: what certificates are built from
    _signatures: dict[tuple[int, bytes], dict[int, bytes]] = field(default_factory=dict)
    _vote_power: dict[bytes, int] = field(default_factory=dict)  # value (or NIL) -> power
    _final_power: dict[bytes, int] = field(default_factory=dict)
    _voted_power: int = 0  # power of validators that sent at least one Vote
    # The most power any one value (never ⊥) holds: the rules ask "does any value reach T?"
    # after every message, and the answer is almost always no.
    _vote_top: int = 0
    _final_top: int = 0

    def _slot(self, index: int) -> _Validator | None:
        if not 0 <= index < len(self.powers):
            return None
        return self._validators.setdefault(index, _Validator())

    def has_voted(self, index: int) -> bool:
        """Whether ``index`` sent any Vote (value or ⊥) in this view."""
        slot = self._validators.get(index)
        return slot is not None and (bool(slot.value_votes) or slot.nil_vote)

    def has_nil_vote(self, index: int) -> bool:
        slot = self._validators.get(index)
        return slot is not None and slot.nil_vote

    def has_final(self, index: int) -> bool:
        slot = self._validators.get(index)
        return slot is not None and bool(slot.finals)

    def holds(self, index: int, phase: int, value: bytes, signature: bytes) -> bool:
        """Whether exactly this signed message is counted already (a forwarded certificate
        repeats signatures we checked: no need to check them twice)."""
        return self._signatures.get((phase, value), {}).get(index) == signature

    def first_message(self, index: int, phase: int) -> tuple[bytes, bytes] | None:
        """(value, signature) of the value Vote (``PHASE_VOTE``) or the Final (``PHASE_FINAL``)
        counted for ``index``: the first half of an equivocation pair."""
        slot = self._validators.get(index)
        if slot is None:
            return None
        values = slot.value_votes if phase == PHASE_VOTE else slot.finals
        if not values:
            return None
        return values[0], self._signatures[phase, values[0]][index]

    def add_vote(self, index: int, value: bytes, signature: bytes = b"") -> Accepted:
        """Count ``Vote(k, value)`` (``NIL`` for ⊥) from validator ``index``, whose signature
        the caller has checked (kept for certificates; empty when none are needed)."""
        slot = self._slot(index)
        if slot is None:
            return Accepted.UNKNOWN_VALIDATOR
        first_vote = not slot.value_votes and not slot.nil_vote
        accepted = Accepted.COUNTED
        if value == NIL:
            if slot.nil_vote:
                return Accepted.DUPLICATE
            slot.nil_vote = True
        else:
            if value in slot.value_votes:
                return Accepted.DUPLICATE
            if slot.value_votes:
                accepted = Accepted.EQUIVOCATION  # two values in one view
                if len(slot.value_votes) >= VALUES_PER_VALIDATOR_MAX:
                    return accepted
            slot.value_votes.append(value)
        power = self.powers[index]
        total = self._vote_power[value] = self._vote_power.get(value, 0) + power
        if value != NIL and total > self._vote_top:
            self._vote_top = total
        self._signatures.setdefault((PHASE_VOTE, value), {})[index] = signature
        if first_vote:
            self._voted_power += power
        return accepted

    def add_final(self, index: int, value: bytes, signature: bytes = b"") -> Accepted:
        """Count ``Final(k, value)`` (``NIL`` for ⊥) from validator ``index`` (see add_vote)."""
        slot = self._slot(index)
        if slot is None:
            return Accepted.UNKNOWN_VALIDATOR
        if value in slot.finals:
            return Accepted.DUPLICATE
        accepted = Accepted.EQUIVOCATION if slot.finals else Accepted.COUNTED  # ⊥ included
        if len(slot.finals) >= VALUES_PER_VALIDATOR_MAX:
            return accepted
        slot.finals.append(value)
        total = self._final_power[value] = self._final_power.get(value, 0) + self.powers[index]
        if value != NIL and total > self._final_top:
            self._final_top = total
        self._signatures.setdefault((PHASE_FINAL, value), {})[index] = signature
        return accepted

    @staticmethod
    def _value_reaching(power: dict[bytes, int], top: int, threshold: int) -> bytes | None:
        """The smallest value (never ⊥) whose power reaches ``threshold``, for determinism;
        ``top`` is the most any value holds."""
        if top < threshold:
            return None
        return min((v for v, p in power.items() if v != NIL and p >= threshold), default=None)

    def fast_certificate(self) -> bytes | None:
        """A value with a Fast-Cert in this view, if any (the smallest if several)."""
        threshold = self.thresholds.fast_certificate
        return self._value_reaching(self._vote_power, self._vote_top, threshold)

    def slow_certificate(self) -> bytes | None:
        """The value with a Slow-Cert in this view, if any."""
        threshold = self.thresholds.slow_certificate
        return self._value_reaching(self._vote_power, self._vote_top, threshold)

    def nil_fast_certificate(self) -> bool:
        return self._vote_power.get(NIL, 0) >= self.thresholds.fast_certificate

    def nil_slow_certificate(self) -> bool:
        return self._final_power.get(NIL, 0) >= self.thresholds.slow_certificate

    def fast_commit(self) -> bytes | None:
        """The value fast-committed in this view (Votes from power >= N - P), if any."""
        return self._value_reaching(self._vote_power, self._vote_top, self.thresholds.fast_commit)

    def slow_commit(self) -> bytes | None:
        """The value slow-committed in this view (Finals from power >= N - F - P), if any."""
        threshold = self.thresholds.slow_commit
        return self._value_reaching(self._final_power, self._final_top, threshold)

    def vote_powers(self) -> dict[bytes, int]:
        """Power of the Votes counted for each value (``NIL`` for ⊥)."""
        return dict(self._vote_power)

    @property
    def voted_power(self) -> int:
        """The power of the validators that sent at least one Vote (value or ⊥)."""
        return self._voted_power

    def no_fast_certificate_possible(self) -> bool:
        """Rule 7's trigger: Votes from power >= N - F, and no Fast-Cert for any value."""
        return (
            self._voted_power >= self.thresholds.total - self.thresholds.faults
            and self.fast_certificate() is None
        )

    def certificate(self, phase: int, value: bytes) -> CommitCertificate:
        """Every counted signature of ``phase`` (VOTE or FINAL) for ``value`` as one certificate:
        the Fast/Slow/⊥ certificates rule 8 forwards and the commit proof stored with a block.
        The caller asks once the matching threshold is met."""
        signatures = self._signatures.get((phase, value), {})
        if any(not signature for signature in signatures.values()):
            raise ValueError("a counted message was added without its signature")
        ordered = tuple(sorted(signatures.items()))
        return CommitCertificate(self.height, self.view, value, ordered, phase)
