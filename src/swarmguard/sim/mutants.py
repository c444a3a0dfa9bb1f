"""Deliberately broken replicas: each breaks one safety rule of the brief, so the simulator can
show it finds the bug. A checker that cannot catch a known-unsafe protocol proves nothing.

Never used outside the simulator (``swarmguard sim run --mutant NAME``, the mutant tests). Each
is the smallest override of one ``Replica`` hook:

- ``fast-commit-2f1``: fast commit on Votes from N - F power (the original report's fast path:
  "skip Prepare, commit on 2f+1") instead of N - P.
- ``latest-votes``: a leader justifies its proposal by the latest value Votes it saw, and
  replicas vote for any proposal the leader signed, with no certificate check (rule 2 dropped).
- ``rule7-slow``: rule 7 read as "no Slow-Cert" instead of "no Fast-Cert".
- ``rank-by-view``: certificates ranked by view only, so a Fast-Cert(k, x) justifies x without
  Slow-Cert(k, ⊥), and a leader may pick a view's Fast-Cert over its Slow-Cert.
- ``vote-after-nil``: a replica that voted ⊥ in a view may still vote for a value in it (its
  double-sign guard, which refuses that too, is loosened to match).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from swarmguard.consensus.messages import Proposal, ProposalError
from swarmguard.consensus.replica import Action, Replica, _Height
from swarmguard.consensus.signing import SigningGuard
from swarmguard.consensus.tally import CertificateRank, Kind, Thresholds, ViewTally
from swarmguard.crypto import PublicKey
from swarmguard.validators.certificate import CommitCertificate
from swarmguard.validators.evidence import NIL, PHASE_VOTE

__all__ = ["MUTANTS", "replica_class"]


class _ReportThresholds(Thresholds):
    @property
    def fast_commit(self) -> int:
        return self.total - self.faults  # 2f + 1 of 3f + 1


class FastCommitOn2F1(Replica):
    def _new_height(self, height: int, now: float) -> _Height:
        state = super()._new_height(height, now)
        powers = [power for _, power in self.validators(height)]
        state.thresholds = _ReportThresholds.for_powers(powers)
        return state


class LatestVotes(Replica):
    def _check_proposal(self, proposal: Proposal, state: _Height) -> None:
        if proposal.proposer != self.leader(self.height, proposal.view):
            raise ProposalError("not the leader")
        key = self.validators(self.height)[proposal.proposer][0]
        if not PublicKey(key).is_valid(
            proposal.vote(key).sign_bytes(self.chain_id), proposal.signature
        ):
            raise ProposalError("bad signature")

    def _best_value_certificate(self, view: int) -> tuple[Kind, CommitCertificate] | None:
        state = self._height()
        for earlier in sorted((v for v in state.tallies if v < view), reverse=True):
            tally = state.tallies[earlier]
            powers = tally.vote_powers()
            values = [v for v in powers if v != NIL]
            if values:
                latest = max(values, key=lambda v: (powers[v], v))
                return Kind.FAST, tally.certificate(PHASE_VOTE, latest)
        return None


class Rule7NoSlowCert(Replica):
    def _rule_7(self, view: int, tally: ViewTally, now: float) -> list[Action]:
        enough = tally.voted_power >= tally.thresholds.total - tally.thresholds.faults
        if tally.has_nil_vote(self.index) or not enough or tally.slow_certificate() is not None:
            return []
        return self._sign(view, PHASE_VOTE, NIL, now)


class RankByView(Replica):
    def _check_proposal(self, proposal: Proposal, state: _Height) -> None:
        held = self._held_nil_slots(state)
        if proposal.certificate is not None:
            # (k, Fast) ranks like (k, Slow): the Slow-⊥ slot of C's view is never asked for.
            held.add(CertificateRank(proposal.certificate[1].view, Kind.SLOW.value))
        proposal.verify(
            self.chain_id,
            self.validators(self.height),
            state.thresholds,
            self.leader(self.height, proposal.view),
            held,
        )

    def _best_value_certificate(self, view: int) -> tuple[Kind, CommitCertificate] | None:
        state = self._height()
        for earlier in sorted((v for v in state.tallies if v < view), reverse=True):
            tally = state.tallies[earlier]
            for kind, value in ((Kind.FAST, tally.fast_certificate()), (Kind.SLOW, None)):
                if value is not None:
                    return kind, tally.certificate(PHASE_VOTE, value)
        return None


class _GuardAllowingValueAfterNil(SigningGuard):
    """The double-sign guard refuses a value Vote after ⊥ too (defence in depth), so the
    mutant has to break it as well."""

    def check(self, height: int, view: int, phase: int, value: bytes) -> None:
        entry = self._views.get(view)
        fresh = entry is not None and entry.vote is None and height == self.height
        if phase == PHASE_VOTE and value != NIL and fresh:
            return
        super().check(height, view, phase, value)


@dataclass(slots=True)
class VoteAfterNil(Replica):
    def __post_init__(self) -> None:
        guard = _GuardAllowingValueAfterNil(self.guard.height)
        guard._views = self.guard._views
        self.guard = guard

    def _may_vote(self, tally: ViewTally) -> bool:
        return tally.first_message(self.index, PHASE_VOTE) is None


MUTANTS: dict[str, type[Replica]] = {
    "fast-commit-2f1": FastCommitOn2F1,
    "latest-votes": LatestVotes,
    "rule7-slow": Rule7NoSlowCert,
    "rank-by-view": RankByView,
    "vote-after-nil": VoteAfterNil,
}


def replica_class(mutant: str | None) -> Callable[..., Replica]:
    """The replica to simulate: the real one, or the named mutant (KeyError if unknown)."""
    return Replica if mutant is None else MUTANTS[mutant]
