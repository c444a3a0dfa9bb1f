"""The brief's two named regressions, scheduled message by message (sim.script).

Each is played twice: against the real replica, where it must end with one decided block, and
against the mutant that breaks the rule the scenario is about, where the same schedule must end
in a fork. The second run is what shows the scenario really attacks that rule."""

from __future__ import annotations

from swarmguard.consensus.messages import Proposal
from swarmguard.consensus.replica import Message, Timer
from swarmguard.consensus.sync import BlockReply, BlockRequest
from swarmguard.sim.mutants import replica_class
from swarmguard.sim.script import Script
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_VOTE, SignedVote

BYZANTINE = 1  # the leader of height 1, view 0 ((height + view) % 4)


def votes(view: int) -> object:
    def which(message: Message) -> bool:
        return (
            isinstance(message, SignedVote) and message.phase == PHASE_VOTE and message.view == view
        )

    return which


def proposals(script: Script, sender: int, view: int) -> list[Proposal]:
    return [m for _, m in script.outbox[sender] if isinstance(m, Proposal) and m.view == view]


def view_one_with_the_byzantine_vote(s: Script, proposal: Proposal, side: tuple[int, int]) -> None:
    """View 1 among two honest replicas that hold ``proposal`` and the Byzantine validator,
    which Votes and Finals for it: three of four, enough for a slow commit."""
    for r in side:
        s.inject(r, s.vote(BYZANTINE, 1, 1, PHASE_VOTE, proposal.block_hash))
        s.inject(r, s.vote(BYZANTINE, 1, 1, PHASE_FINAL, proposal.block_hash))
    for _ in range(3):
        s.deliver(side[0], side[1])
        s.deliver(side[1], side[0])


def equivocating_leader_then_partition(mutant: str | None) -> Script:
    """n = 4, F = 1. The Byzantine leader of view 0 proposes a to r0 and r2 and b to r3. r0 sees
    three a-votes (its own, r2's and the leader's); r2 and r3, cut off from r0, see a, b and a
    Byzantine ⊥ vote, vote ⊥ (rule 7), time out with Final ⊥ and move on together; in view 1
    r2 leads the partition {r2, r3} plus the Byzantine validator."""
    s = Script([1, 1, 1, 1], {BYZANTINE}, replica_class(mutant))
    a, b = s.proposal(BYZANTINE, 1, 0, "a"), s.proposal(BYZANTINE, 1, 0, "b")
    s.inject(0, a)
    s.inject(2, a)
    s.inject(3, b)
    s.deliver(2, 0, votes(0))
    s.inject(0, s.vote(BYZANTINE, 1, 0, PHASE_VOTE, a.block_hash))
    for r, other in ((2, 3), (3, 2)):
        s.deliver(other, r, votes(0))
        s.inject(r, s.vote(BYZANTINE, 1, 0, PHASE_VOTE, NIL))
    for r, other in ((2, 3), (3, 2)):
        s.deliver(other, r, votes(0))
    for r in (2, 3):
        s.fire(r, 1, 0, Timer.FINAL_NIL)
        s.inject(r, s.vote(BYZANTINE, 1, 0, PHASE_FINAL, NIL))
    for _ in range(2):
        s.deliver(3, 2)
        s.deliver(2, 3)
    (proposal,) = proposals(s, 2, 1)
    view_one_with_the_byzantine_vote(s, proposal, (2, 3))
    return s


def test_equivocating_leader_fast_commit_and_partition_is_safe() -> None:
    s = equivocating_leader_then_partition(None)
    assert 0 not in s.decided  # three votes are not a fast commit: it needs all the power
    assert len(s.forks(1)) == 1  # r2 and r3 decided, on one block


def test_the_reports_fast_path_forks_on_the_same_schedule() -> None:
    s = equivocating_leader_then_partition("fast-commit-2f1")
    assert len(s.forks(1)) == 2, s.decided


def slow_leader_and_nil_votes(mutant: str | None) -> Script:
    """The scenario that broke an earlier wording of rule 2. The view-0 leader (Byzantine) is
    slow: r0 and r2 time out with Vote(0, ⊥) and only then receive a; r3 votes a at once and
    sees four a-votes. r0 and r2 never see each other's vote for a, time out with Final ⊥, and
    with the Byzantine Final ⊥ hold both ⊥ certificates; r2, leading view 1 and holding no
    value certificate, proposes b."""
    s = Script([1, 1, 1, 1], {BYZANTINE}, replica_class(mutant))
    a = s.proposal(BYZANTINE, 1, 0, "a")
    for r in (0, 2):
        s.fire(r, 1, 0, Timer.VOTE_NIL)
        s.inject(r, a)
    s.inject(3, a)
    s.deliver(0, 3, votes(0))
    s.deliver(2, 3, votes(0))
    s.inject(3, s.vote(BYZANTINE, 1, 0, PHASE_VOTE, a.block_hash))
    for r, other in ((0, 2), (2, 0)):
        s.deliver(other, r, lambda m: isinstance(m, SignedVote) and m.block_hash == NIL)
        s.fire(r, 1, 0, Timer.FINAL_NIL)
        s.inject(r, s.vote(BYZANTINE, 1, 0, PHASE_FINAL, NIL))
    for r, other in ((0, 2), (2, 0)):
        s.deliver(other, r, lambda m: isinstance(m, SignedVote) and m.phase == PHASE_FINAL)
    for r in (0, 2):
        s.inject(r, s.vote(BYZANTINE, 1, 0, PHASE_VOTE, NIL))
    found = proposals(s, 2, 1)
    if found:
        (proposal,) = found
        s.inject(0, proposal)
        view_one_with_the_byzantine_vote(s, proposal, (0, 2))
    return s


def test_value_vote_after_nil_is_refused_so_the_scenario_is_safe() -> None:
    s = slow_leader_and_nil_votes(None)
    assert 3 not in s.decided  # r0 and r2 did not vote a after ⊥: no fast commit
    assert len(s.forks(1)) <= 1


def test_a_value_vote_after_nil_forks_on_the_same_schedule() -> None:
    s = slow_leader_and_nil_votes("vote-after-nil")
    assert len(s.forks(1)) == 2, s.decided


def view_ranked_certificates(mutant: str | None) -> Script:
    """Fast-Cert(0, x) and Slow-Cert(0, y) in one view (the Byzantine leader proposes x to r2
    and y to r0 and r3, and votes for both); r3 slow-commits y unseen by r2, which then leads
    view 1. Ranked by view only, Fast-Cert(0, x) is as good as Slow-Cert(0, y), and x is the
    smaller hash, so x gets proposed without the Slow-Cert(0, ⊥) that rule 2 asks for."""
    s = Script([1, 1, 1, 1], {BYZANTINE}, replica_class(mutant))
    labels = [f"x{i}" for i in range(20)]
    x = s.proposal(BYZANTINE, 1, 0, labels[0])
    y = next(
        p
        for p in (s.proposal(BYZANTINE, 1, 0, label) for label in labels[1:])
        if p.block_hash > x.block_hash
    )
    s.inject(2, x)
    s.inject(0, y)
    s.inject(3, y)
    for r in (0, 2, 3):
        s.inject(r, s.vote(BYZANTINE, 1, 0, PHASE_VOTE, x.block_hash))
        s.inject(r, s.vote(BYZANTINE, 1, 0, PHASE_VOTE, y.block_hash))
    s.deliver(0, 3, votes(0))
    s.deliver(3, 0, votes(0))
    s.deliver(0, 3, lambda m: isinstance(m, SignedVote) and m.phase == PHASE_FINAL)
    s.inject(3, s.vote(BYZANTINE, 1, 0, PHASE_FINAL, y.block_hash))
    s.deliver(0, 2)  # r0's votes, final and the rule 8 pair that took it to view 1
    s.deliver(2, 0, lambda m: isinstance(m, BlockRequest))  # r2 asks for y's block
    s.deliver(0, 2, lambda m: isinstance(m, BlockReply))
    (proposal,) = proposals(s, 2, 1)
    s.inject(0, proposal)
    view_one_with_the_byzantine_vote(s, proposal, (0, 2))
    return s


def test_certificates_ranked_fast_below_slow_keep_the_slow_commit() -> None:
    s = view_ranked_certificates(None)
    assert s.decided.get(3, {}).get(1) is not None  # r3 slow-committed y
    assert len(s.forks(1)) == 1


def test_ranking_by_view_only_forks_on_the_same_schedule() -> None:
    s = view_ranked_certificates("rank-by-view")
    assert len(s.forks(1)) == 2, s.decided
