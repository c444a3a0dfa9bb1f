"""Rule 2's check: which ⊥ certificates a proposal in view k needs beside its value certificate.

A proposal Propose(k, x, C) is safe to vote for only if nothing ranked above C and below view k
could hide a commit of another value. Every certificate slot in that range must therefore be
covered by a ⊥ certificate of the same slot: (l, Fast) by Fast-Cert(l, ⊥), (l, Slow) by
Slow-Cert(l, ⊥). Written as one range, the brief's three cases (C fast, C slow, no C) are

    slots strictly above rank(C) (or from (0, Fast) when there is no C) and below (k, Fast).

For C = Fast-Cert(k', x) that is Slow-Cert(k', ⊥) and both ⊥ certificates of every view between;
for C = Slow-Cert(k', x) only the views between. Ranking by view alone would drop the
(k', Slow) slot, which is one of the broken rules the simulator must catch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from swarmguard.consensus.tally import CertificateRank, Kind

__all__ = ["is_justified", "missing_nil_certificates", "required_nil_certificates"]


def required_nil_certificates(
    view: int, certificate: CertificateRank | None
) -> Iterator[CertificateRank]:
    """The ⊥ certificate slots (in rank order) that a proposal in ``view`` backed by C needs."""
    if view < 0:
        raise ValueError(f"view {view} is negative")
    if certificate is None:
        start = CertificateRank(0, Kind.FAST.value)
    else:
        if not 0 <= certificate.view < view:
            raise ValueError(f"a certificate from view {certificate.view} cannot justify {view}")
        start = _next(certificate)
    slot = start
    while slot.view < view:
        yield slot
        slot = _next(slot)


def missing_nil_certificates(
    view: int, certificate: CertificateRank | None, held: Collection[CertificateRank]
) -> list[CertificateRank]:
    """The required ⊥ certificate slots not in ``held`` (empty: the proposal is justified)."""
    return [slot for slot in required_nil_certificates(view, certificate) if slot not in held]


def is_justified(
    view: int, certificate: CertificateRank | None, held: Collection[CertificateRank]
) -> bool:
    """Rule 2's certificate condition: ``certificate`` is older than ``view`` and no gap is open."""
    if certificate is not None and not 0 <= certificate.view < view:
        return False
    return not missing_nil_certificates(view, certificate, held)


def _next(slot: CertificateRank) -> CertificateRank:
    if slot.kind == Kind.FAST.value:
        return CertificateRank(slot.view, Kind.SLOW.value)
    return CertificateRank(slot.view + 1, Kind.FAST.value)
