"""ValidatorManager: staking, downtime, reputation, evidence and leader selection as one
deterministic state machine, driven block by block (the node issue feeds it from blocks).

Per block: ``begin_block(height, time)``; staking transactions (``manager.staking.<tx>``, but
``manager.unjail``, which also restores leader eligibility);
``record_block(proposer, signers, proposal_on_time)``; evidence (``submit_evidence``); then
``end_block()``, which at an epoch boundary returns the new active set and rebuilds the leader
schedule. ``state_hash()`` covers everything that affects later decisions.

Evidence rules (docs/validators.md, "Slashing"): a double vote by an active or former validator's
consensus key is accepted once (deduplicated by its hash), only if its height is neither in the
future nor older than ``evidence_max_age_blocks`` blocks and ``evidence_max_age_time`` seconds,
and never against a tombstoned validator (it has already lost everything it can lose). A first
double vote is DOUBLE_VOTE (20%, jail); a validator already slashed for one, or one of a group
whose equivocations at one height add up to a third of the active stake, gets
REPEATED_EQUIVOCATION (50% and tombstoned), the latter applied to every member of the group.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.crypto import Domain, digest

from .downtime import DowntimeTracker, SigningWindow
from .election import LeaderSchedule, ScheduledValidator
from .evidence import DoubleVoteEvidence, InvalidEvidence
from .params import Infraction, StakingParams
from .reputation import Reputation
from .snapshot import decode_state, encode_state
from .staking import Staking
from .tracked import Tracked

__all__ = ["MANAGER_SNAPSHOT_VERSION", "ValidatorManager"]

MANAGER_SNAPSHOT_VERSION = 1


class ValidatorManager:
    """The validator manager's whole state and its block-by-block transitions."""

    def __init__(self, chain_id: str, params: StakingParams, balances: dict[bytes, int]) -> None:
        self.chain_id = chain_id
        self.params = params
        self.staking = Staking(params, balances)
        self.reputation = Reputation(params.reputation_alpha_ppm)
        self.downtime = DowntimeTracker(params.signed_blocks_window, params.min_signed_ppm)
        self.block_times: Tracked[int, int] = Tracked()
        """Block time of each recent height (kept for the evidence age limit; tracked, as it
        holds up to ``evidence_max_age_blocks`` entries)."""
        self._times_from: int | None = None  # no height below this one is in block_times
        self.seen_evidence: dict[bytes, int] = {}
        """Evidence hash -> height of the equivocation (pruned past the age limit)."""
        self.equivocations: dict[int, set[bytes]] = {}
        """Height -> operators proven to have equivocated at it (for coordinated attacks)."""
        self.double_voters: set[bytes] = set()
        self.epoch_power: dict[bytes, int] = {}
        """Voting power of each active validator, fixed at the epoch boundary: what consensus
        and leader selection use until the next boundary, whatever happens to stake meanwhile."""
        self.schedule: LeaderSchedule | None = None

    # ------------------------------------------------------------------ blocks

    def begin_block(self, height: int, time: int) -> None:
        self.staking.begin_block(height, time)
        self.block_times[height] = time
        oldest = height - self.params.evidence_max_age_blocks
        if self._times_from is None:  # once after a start: the window is contiguous from here
            self._times_from = min(self.block_times)
        for old in range(self._times_from, oldest):  # one height per block, not a scan
            self.block_times.pop(old, None)
        self._times_from = max(self._times_from, oldest)
        self.seen_evidence = {k: h for k, h in self.seen_evidence.items() if h >= oldest}
        self.equivocations = {h: s for h, s in self.equivocations.items() if h >= oldest}

    def end_block(self) -> tuple[bytes, ...] | None:
        """At an epoch boundary: the new active set (and a new leader schedule)."""
        active = self.staking.end_block()
        if active is not None:
            validators = self.staking.validators
            self.epoch_power = {op: validators[op].tokens for op in active}
            self.schedule = self._schedule()
        return active

    def _schedule(self) -> LeaderSchedule | None:
        if not self.epoch_power:
            return None
        return LeaderSchedule(
            self.chain_id,
            [
                ScheduledValidator(op, power, self._eligibility(op))
                for op, power in sorted(self.epoch_power.items())
            ],
            reputation_threshold=self.params.reputation_threshold_ppm,
        )

    def _eligibility(self, operator: bytes) -> int:
        """The reputation leader selection sees: 0 while jailed (a jailed validator keeps its
        voting power until the epoch ends, but is never drawn to lead)."""
        if self.staking.validators[operator].jailed:
            return 0
        return self.reputation.score(operator)

    def _refresh(self, operator: bytes) -> None:
        if self.schedule is not None and operator in self.epoch_power:
            self.schedule.set_reputation(operator, self._eligibility(operator))

    def unjail(self, operator: bytes) -> None:
        """Unjail (the staking rules apply); it may lead again at once."""
        self.staking.unjail(operator)
        self._refresh(operator)

    def record_block(
        self,
        proposer: bytes,
        signers: Iterable[bytes],
        *,
        proposal_on_time: bool = True,
        failed_leaders: Iterable[bytes] = (),
        eligible: Iterable[bytes] | None = None,
    ) -> list[bytes]:
        """Account one committed block: downtime windows and reputation of the active set.
        ``failed_leaders`` led the views of this height before the deciding one (read from the
        commit certificate's view): their reputation drops to 0 (``Reputation.penalise``).
        ``eligible``: the operators who were in the set whose commit ``signers`` come from
        (None: the whole active set); only they are observed, since a validator that joined
        the active set after that height could not have signed.

        Returns the validators jailed for downtime by this block.
        """
        signed = set(signers)
        for operator in failed_leaders:
            if operator in self.staking.validators:
                self.reputation.penalise(operator)
        jailed = []
        observed = self.staking.active
        if eligible is not None:
            members = set(eligible)
            observed = tuple(operator for operator in observed if operator in members)
        for operator in observed:
            did_sign = operator in signed
            on_time = did_sign and (operator != proposer or proposal_on_time)
            self.reputation.observe(operator, on_time)
            validator = self.staking.validators[operator]
            if self.downtime.observe(operator, did_sign) and not validator.jailed:
                self.staking.slash(operator, self.staking.height, Infraction.DOWNTIME)
                self.downtime.reset(operator)
                jailed.append(operator)
            self._refresh(operator)
        return jailed

    def leader(self, seed: bytes, view: int) -> bytes:
        """The leader of the height whose VRF seed is ``seed``, at ``view``."""
        if self.schedule is None:
            raise RuntimeError("no active set yet: the first epoch boundary has not passed")
        return self.schedule.leader(seed, view)

    # ------------------------------------------------------------------ evidence

    def _operator_of(self, consensus_key: bytes) -> bytes:
        for operator, validator in self.staking.validators.items():
            if validator.consensus_key == consensus_key:
                return operator
        raise InvalidEvidence("the key belongs to no validator")

    def submit_evidence(self, evidence: DoubleVoteEvidence) -> Infraction:
        """Verify and apply double-vote evidence; returns the infraction it was punished as."""
        evidence.verify(self.chain_id)
        height = evidence.height
        if height > self.staking.height:
            raise InvalidEvidence("evidence from the future")
        if height < self.staking.height - self.params.evidence_max_age_blocks:
            raise InvalidEvidence("evidence older than the age limit (blocks)")
        when = self.block_times.get(height)
        if when is None or self.staking.time - when > self.params.evidence_max_age_time:
            raise InvalidEvidence("evidence older than the age limit (time)")
        key = evidence.hash(self.chain_id)
        if key in self.seen_evidence:
            raise InvalidEvidence("duplicate evidence")
        operator = self._operator_of(evidence.first.consensus_key)
        if self.staking.validators[operator].tombstoned:
            raise InvalidEvidence("the validator is already tombstoned")
        self.seen_evidence[key] = height
        group = self.equivocations.setdefault(height, set())
        group.add(operator)
        if self._coordinated(group):
            for member in sorted(group):
                if not self.staking.validators[member].tombstoned:
                    self.staking.slash(member, height, Infraction.REPEATED_EQUIVOCATION)
                    self._refresh(member)
            return Infraction.REPEATED_EQUIVOCATION
        infraction = (
            Infraction.REPEATED_EQUIVOCATION
            if operator in self.double_voters
            else Infraction.DOUBLE_VOTE
        )
        self.double_voters.add(operator)
        self.staking.slash(operator, height, infraction)
        self._refresh(operator)
        return infraction

    def _coordinated(self, group: set[bytes]) -> bool:
        """Whether the equivocators of one height hold a third of the epoch's voting power."""
        power = self.epoch_power
        total = sum(power.values())
        involved = sum(power.get(op, 0) for op in group)
        return total > 0 and 3 * involved >= total

    def report_invalid_proposal(self, operator: bytes, height: int) -> None:
        """Slash a proposer whose signed block consensus found invalid (it verified that)."""
        self.staking.slash(operator, height, Infraction.INVALID_PROPOSAL)
        self._refresh(operator)

    # ------------------------------------------------------------------ state

    def encode(self, *, apart: bool = False) -> bytes:
        """Canonical snapshot: the staking state, then reputation, downtime and evidence.
        ``apart=True`` leaves out (as empty lists) the three collections that grow with users
        and with history: balances, delegations and recent block times, for an application
        that stores each of their entries as a leaf of its own (the built-in ledger), so that
        what it writes per block does not grow with them; ``Tracked.take_changed`` tells it
        which entries a block changed."""
        out = Writer()
        out.uint(MANAGER_SNAPSHOT_VERSION, 2)
        out.blob(encode_state(self.staking, apart=apart), 1 << 30)
        out.uint(len(self.reputation.scores), 4)
        for operator in sorted(self.reputation.scores):
            out.fixed(operator, 20)
            out.uint(self.reputation.scores[operator], 4)
        out.uint(len(self.epoch_power), 4)
        for operator in sorted(self.epoch_power):
            out.fixed(operator, 20)
            out.uint(self.epoch_power[operator], 8)
        out.uint(len(self.downtime.windows), 4)
        for operator in sorted(self.downtime.windows):
            window = self.downtime.windows[operator]
            out.fixed(operator, 20)
            out.uint(window.missed, (self.downtime.window + 7) // 8)
            for value in (window.index, window.observed, window.missed_count):
                out.uint(value, 4)
        times = {} if apart else self.block_times
        out.uint(len(times), 4)
        for height in sorted(times):
            out.uint(height, 8)
            out.uint(times[height], 8)
        out.uint(len(self.seen_evidence), 4)
        for key in sorted(self.seen_evidence):
            out.fixed(key, 32)
            out.uint(self.seen_evidence[key], 8)
        out.uint(len(self.equivocations), 4)
        for height in sorted(self.equivocations):
            out.uint(height, 8)
            members = sorted(self.equivocations[height])
            out.uint(len(members), 4)
            for operator in members:
                out.fixed(operator, 20)
        out.uint(len(self.double_voters), 4)
        for operator in sorted(self.double_voters):
            out.fixed(operator, 20)
        return out.getvalue()

    def state_hash(self) -> bytes:
        """The hash every node must agree on after the same blocks."""
        return digest(Domain.STATE, self.encode(), chain_id=self.chain_id)

    @classmethod
    def decode(cls, chain_id: str, data: bytes) -> ValidatorManager:
        """Rebuild a manager from :meth:`encode` (refusing any non-canonical input)."""
        reader = Reader(data, "validator manager snapshot")
        version = reader.uint(2, "version")
        if version != MANAGER_SNAPSHOT_VERSION:
            raise CodecError(f"validator manager snapshot: unsupported version {version}")
        staking = decode_state(reader.blob(1 << 30, "staking"))
        manager = cls(chain_id, staking.params, {})
        manager.staking = staking
        for _ in range(reader.count(24, "reputation")):
            operator = reader.fixed(20, "operator")  # (a subscript target is read after the value)
            manager.reputation.scores[operator] = reader.uint(4, "score")
        for _ in range(reader.count(28, "epoch power")):
            operator = reader.fixed(20, "operator")
            manager.epoch_power[operator] = reader.uint(8, "power")
        size = manager.downtime.window
        width = (size + 7) // 8
        for _ in range(reader.count(32 + width, "downtime")):
            operator = reader.fixed(20, "operator")
            missed = reader.uint(width, "window")
            index, observed, count = (reader.uint(4, f) for f in ("index", "observed", "missed"))
            if (
                missed >> size
                or index >= size
                or observed > size
                or count != bin(missed).count("1")
            ):
                raise CodecError("validator manager snapshot: inconsistent signing window")
            manager.downtime.windows[operator] = SigningWindow(missed, index, observed, count)
        for _ in range(reader.count(16, "block times")):
            height = reader.uint(8, "height")
            manager.block_times[height] = reader.uint(8, "time")
        for _ in range(reader.count(40, "evidence")):
            key = reader.fixed(32, "evidence hash")
            manager.seen_evidence[key] = reader.uint(8, "height")
        for _ in range(reader.count(12, "equivocations")):
            height = reader.uint(8, "height")
            members = {reader.fixed(20, "operator") for _ in range(reader.count(20, "members"))}
            manager.equivocations[height] = members
        for _ in range(reader.count(20, "double voters")):
            manager.double_voters.add(reader.fixed(20, "operator"))
        reader.finish()
        if manager.encode() != data:
            raise CodecError("validator manager snapshot: not in canonical form")
        manager.schedule = manager._schedule()
        return manager
