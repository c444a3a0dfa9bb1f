"""The double-sign guard: what this replica has signed in its current height, and what it may
still sign without contradicting itself, across restarts.

The brief's rules fix what one replica may sign in one (height, view): one Propose, at most one
Vote for a value and only if it has not voted ⊥ (rule 2), one Vote for ⊥ (rules 5 and 7), and
one Final (rule 3 or 6). The guard is that table, checked before every signature; the node
persists ``encode()`` before the signed message leaves (the core emits the record as an output
and the message after it), and a restarted replica reloads it with ``decode``. Re-signing exactly
what was signed before is allowed: Ed25519 is deterministic, so it is the same signature.

Heights below the guard's height are finished; nothing is signed for them again. Persisted
format, version 1::

    version u8 | height u64 | count u32 | entries, strictly increasing view:
        view u64 | flags u8 | proposal (32) | vote (32) | final (32)

with flags bit 0 = proposed, 1 = voted a value, 2 = voted ⊥, 3 = sent a Final; fields whose bit
is clear are all zero, and no other bit may be set, so one record has one encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmguard.codec import CodecError, Reader, Writer
from swarmguard.validators.evidence import NIL, PHASE_FINAL, PHASE_PROPOSE, PHASE_VOTE

__all__ = ["GUARD_VERSION", "VIEWS_MAX", "SigningGuard", "WouldEquivocate"]

GUARD_VERSION = 1
VIEWS_MAX = 100_000
"""The most views one height's record holds (Δ grows per failed view, so this is years)."""
_PROPOSED, _VOTED, _NIL_VOTED, _FINAL = 1, 2, 4, 8
_ENTRY_BYTES = 8 + 1 + 32 * 3


class WouldEquivocate(Exception):
    """Signing this would contradict something this replica signed before."""


@dataclass(slots=True)
class _View:
    proposal: bytes | None = None
    vote: bytes | None = None
    nil_vote: bool = False
    final: bytes | None = None


@dataclass(slots=True)
class SigningGuard:
    """What this replica signed at ``height``, by view."""

    height: int = 1
    _views: dict[int, _View] = field(default_factory=dict)

    def advance(self, height: int) -> None:
        """Move to a later height (after deciding the current one); the old record is dropped."""
        if height <= self.height:
            raise ValueError(f"height {height} is not after {self.height}")
        self.height, self._views = height, {}

    def check(self, height: int, view: int, phase: int, value: bytes) -> None:
        """Raise WouldEquivocate unless signing (height, view, phase, value) is consistent."""
        if height != self.height:
            raise WouldEquivocate(f"height {height} is not the current height {self.height}")
        entry = self._views.get(view, _View())
        if phase == PHASE_PROPOSE:
            if value == NIL or entry.proposal not in (None, value):
                raise WouldEquivocate(f"already proposed another block in view {view}")
        elif phase == PHASE_VOTE:
            if value == NIL:
                return  # rules 5 and 7: a ⊥ vote is allowed once, and again is the same bytes
            if entry.nil_vote:
                raise WouldEquivocate(f"voted ⊥ in view {view}; no value vote may follow")
            if entry.vote not in (None, value):
                raise WouldEquivocate(f"already voted another value in view {view}")
        elif phase == PHASE_FINAL:
            if entry.final not in (None, value):
                raise WouldEquivocate(f"already sent another Final in view {view}")
        else:
            raise ValueError(f"unknown phase {phase}")

    def sign(self, height: int, view: int, phase: int, value: bytes) -> None:
        """Check, then record the signature about to be made (persist ``encode()`` before it
        leaves the process)."""
        self.check(height, view, phase, value)
        if view not in self._views and len(self._views) >= VIEWS_MAX:
            raise WouldEquivocate(f"more than {VIEWS_MAX} views at height {height}")
        entry = self._views.setdefault(view, _View())
        if phase == PHASE_PROPOSE:
            entry.proposal = value
        elif phase == PHASE_VOTE and value == NIL:
            entry.nil_vote = True
        elif phase == PHASE_VOTE:
            entry.vote = value
        else:
            entry.final = value

    def signed(self) -> list[tuple[int, int, bytes]]:
        """The Votes and Finals recorded at this height as (view, phase, value), by view: what
        a restarted replica signs again (the same bytes) and re-sends, since whatever it sent
        before the crash may never have arrived and it may not sign anything else there."""
        found = []
        for view in sorted(self._views):
            entry = self._views[view]
            if entry.vote is not None:
                found.append((view, PHASE_VOTE, entry.vote))
            if entry.nil_vote:
                found.append((view, PHASE_VOTE, NIL))
            if entry.final is not None:
                found.append((view, PHASE_FINAL, entry.final))
        return found

    def encode(self) -> bytes:
        out = Writer()
        out.uint(GUARD_VERSION, 1)
        out.uint(self.height, 8)
        out.uint(len(self._views), 4)
        for view in sorted(self._views):
            entry = self._views[view]
            flags = (
                (_PROPOSED if entry.proposal is not None else 0)
                | (_VOTED if entry.vote is not None else 0)
                | (_NIL_VOTED if entry.nil_vote else 0)
                | (_FINAL if entry.final is not None else 0)
            )
            out.uint(view, 8)
            out.uint(flags, 1)
            for value in (entry.proposal, entry.vote, entry.final):
                out.fixed(value if value is not None else NIL, 32)
        return out.getvalue()

    @staticmethod
    def decode(data: bytes) -> SigningGuard:
        reader = Reader(data, "signing record")
        reader.version(GUARD_VERSION)
        height = reader.uint(8, "height")
        if height < 1:
            raise CodecError("signing record: height 0")
        count = reader.count(_ENTRY_BYTES, "views")
        if count > VIEWS_MAX:
            raise CodecError(f"signing record: {count} views exceed {VIEWS_MAX}")
        views: dict[int, _View] = {}
        previous = -1
        for _ in range(count):
            view = reader.uint(8, "view")
            if view <= previous:
                raise CodecError("signing record: views not strictly increasing")
            previous = view
            flags = reader.uint(1, "flags")
            if flags & ~(_PROPOSED | _VOTED | _NIL_VOTED | _FINAL) or not flags:
                raise CodecError(f"signing record: flags {flags:#x} invalid")
            proposal, vote = reader.fixed(32, "proposal"), reader.fixed(32, "vote")
            final = reader.fixed(32, "final")
            entry = _View(nil_vote=bool(flags & _NIL_VOTED))
            for bit, value, name in ((_PROPOSED, proposal, "proposal"), (_VOTED, vote, "vote")):
                if bool(flags & bit) != (value != NIL):
                    raise CodecError(f"signing record: {name} does not match its flag")
            if not flags & _FINAL and final != NIL:
                raise CodecError("signing record: final does not match its flag")
            entry.proposal = proposal if flags & _PROPOSED else None
            entry.vote = vote if flags & _VOTED else None
            entry.final = final if flags & _FINAL else None
            views[view] = entry
        reader.finish()
        return SigningGuard(height, views)
