"""A validator set as headers commit to it: (consensus key, power) by key, canonically encoded.

Encoding::

    count u32 | (consensus key (32) | power u64)*     keys sorted and distinct, powers > 0

``validators_hash`` is the SHA-256 of that encoding: a header's ``validators_hash`` (the set
that signs its height) and ``next_validators_hash`` (the set after it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from swarmguard.codec import CodecError, Reader, Writer

__all__ = [
    "SLACK_PPM_LIMIT",
    "VALIDATORS_MAX",
    "decode_validators",
    "encode_validators",
    "fast_path_slack",
    "read_validators",
    "validators_hash",
    "write_validators",
]

VALIDATORS_MAX = 10_000
"""Members a decoded set may have (a bound for decoders, far above any real set)."""

Validators = Sequence[tuple[bytes, int]]

SLACK_PPM_LIMIT = 500_000
"""The fast-path slack is a share of the set's power below one half (N >= 2P + 1)."""


def fast_path_slack(validators: Validators, slack_ppm: int) -> int:
    """The fast-path slack P of a set, in power: ``slack_ppm`` millionths of its total, rounded
    down (a chain parameter, the same on every node). P lets the fast path commit without the
    slowest P of power, at the price of tolerating less: F = (N - 2P - 1) // 3. With seven equal
    validators, 142,858 ppm is one of them (F drops from two to one)."""
    if not 0 <= slack_ppm < SLACK_PPM_LIMIT:
        raise ValueError(f"fast-path slack {slack_ppm} ppm: 0 <= ppm < {SLACK_PPM_LIMIT}")
    return sum(power for _, power in validators) * slack_ppm // 1_000_000


def write_validators(out: Writer, validators: Validators) -> None:
    out.uint(len(validators), 4)
    for key, power in validators:
        out.fixed(key, 32)
        out.uint(power, 8)


def encode_validators(validators: Validators) -> bytes:
    out = Writer()
    write_validators(out, validators)
    return out.getvalue()


def read_validators(reader: Reader) -> list[tuple[bytes, int]]:
    """A canonical set from ``reader``; CodecError for anything else."""
    count = reader.count(40, "validator count")
    if not 1 <= count <= VALIDATORS_MAX:
        raise CodecError(f"validators: {count} members (1-{VALIDATORS_MAX})")
    members = [(reader.fixed(32, "consensus key"), reader.uint(8, "power")) for _ in range(count)]
    keys = [key for key, _ in members]
    if keys != sorted(set(keys)) or any(power == 0 for _, power in members):
        raise CodecError("validators: keys must be distinct and sorted, powers above zero")
    return members


def decode_validators(data: bytes) -> list[tuple[bytes, int]]:
    reader = Reader(data, "validators")
    members = read_validators(reader)
    reader.finish()
    return members


def validators_hash(validators: Validators) -> bytes:
    """The hash a header commits to for a set."""
    return hashlib.sha256(encode_validators(validators)).digest()
