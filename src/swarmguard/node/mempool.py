"""The mempool: transactions admitted for the coming blocks, bounded, deduplicated, re-checked.

Admission runs the cheapest refusals first, so a flood costs as little as possible:

1. size: larger than ``max_transaction_bytes`` -> TOO_LARGE;
2. duplicate: its hash is in the pool, or was committed recently (a bounded cache of
   ``seen_max`` hashes, so gossip echoes of a committed transaction are not re-admitted) ->
   DUPLICATE; refused transactions are not cached, since a later state may admit them;
3. rate: the submitting client's token bucket (``KeyedRateLimiter`` of the resilience library;
   a validator relaying gossip is one client, with its own larger budget) -> RATE_LIMITED;
4. room: the pool would exceed ``max_transactions`` or ``max_bytes`` -> FULL;
5. the application's check (ABCI's CheckTx) against the latest committed state -> REJECTED.

Eviction: none. A full pool refuses newcomers, first come, first served, as CometBFT's FIFO
mempool does: with no fees there is no priority to evict by, and evicting the oldest would let a
flood push out transactions that have waited longest. Blocks make room: ``update`` removes what a
block committed and re-checks the rest against the new state (a transfer whose nonce the block
used is gone at once), in arrival order.

``reap`` hands the oldest transactions to a proposal without removing them: they leave when a
block commits them, so a proposal that fails loses nothing.

Gossip carries admitted transactions to the other validators in batches (``encode_gossip``):
one frame for everything admitted in one turn of the event loop, since per-frame work (a read,
a dispatch, a TLS record) costs more than the transactions' bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from swarmguard.codec import Reader, Writer
from swarmguard.crypto.hashing import Domain, hasher
from swarmguard.resilience import SYSTEM_CLOCK, Clock, KeyedRateLimiter

__all__ = [
    "GOSSIP_VERSION",
    "Admission",
    "Mempool",
    "MempoolConfig",
    "Relay",
    "decode_gossip",
    "encode_gossip",
]

GOSSIP_VERSION = 1
_U32_MAX = (1 << 32) - 1

Check = Callable[[bytes], str | None]
"""The application's check of one transaction: None to admit, or the reason to refuse."""


class Admission(Enum):
    ACCEPTED = "accepted"
    TOO_LARGE = "too_large"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"
    FULL = "full"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    max_transactions: int = 50_000
    max_bytes: int = 64 * 1024 * 1024
    max_transaction_bytes: int = 64 * 1024
    client_rate: float = 200.0
    """Transactions per second one client may submit (its bucket refills at this rate)."""
    client_burst: float = 400.0
    relay_rate: float = 20_000.0
    """The same for a validator relaying gossip: it carries many clients' transactions."""
    seen_max: int = 200_000
    """Hashes of recently committed transactions kept to refuse echoes."""

    def __post_init__(self) -> None:
        if min(self.max_transactions, self.max_bytes, self.max_transaction_bytes) < 1:
            raise ValueError("mempool limits must be positive")
        if self.max_transaction_bytes > self.max_bytes:
            raise ValueError("max_transaction_bytes exceeds max_bytes")
        if min(self.client_rate, self.client_burst, self.relay_rate) <= 0 or self.seen_max < 1:
            raise ValueError("rates, burst and seen_max must be positive")


@dataclass(frozen=True, slots=True)
class Relay:
    """The client key of a validator relaying gossip (its own, larger rate budget)."""

    validator: int


class Mempool:
    def __init__(
        self,
        chain_id: str,
        check: Check,
        config: MempoolConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.chain_id = chain_id
        self._hash = hasher(Domain.TRANSACTION, chain_id=chain_id)
        self.config = config = config or MempoolConfig()
        self._check = check
        self._pool: OrderedDict[bytes, bytes] = OrderedDict()  # hash -> transaction, in order
        self._keys: dict[bytes, bytes] = {}  # transaction -> hash, for the pool's transactions
        self._bytes = 0
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._clients = KeyedRateLimiter(
            "mempool-clients", rate=config.client_rate, burst=config.client_burst, clock=clock
        )
        self._relays = KeyedRateLimiter(
            "mempool-relays", rate=config.relay_rate, burst=config.relay_rate, clock=clock
        )
        self.outcomes: dict[Admission, int] = dict.fromkeys(Admission, 0)
        self.last_reason = ""

    @property
    def limiters(self) -> tuple[KeyedRateLimiter, KeyedRateLimiter]:
        """The per-client and per-relay rate limiters (for metrics)."""
        return self._clients, self._relays

    def hash(self, transaction: bytes) -> bytes:
        """The transaction's id (the block store indexes transactions by the same hash); looked
        up rather than computed for a transaction in the pool."""
        key = self._keys.get(transaction)
        if key is None:
            key = self._hash(transaction)
        return key

    def add(self, transaction: bytes, client: Hashable) -> Admission:
        """Admit ``transaction`` from ``client`` (an address, an API key, or a ``Relay``)."""
        admission = self._admit(transaction, client)
        self.outcomes[admission] += 1
        return admission

    def add_many(
        self, transactions: Sequence[bytes], client: Hashable
    ) -> list[tuple[Admission, str]]:
        """``add`` for each of a batch from one client, in order, with the reason of each
        rejection. The client's bucket is asked once for the whole batch (one token each);
        only if it cannot pay for all of them is each asked for on its own."""
        limiter = self._relays if isinstance(client, Relay) else self._clients
        count = len(transactions)
        paid = 1 < count <= limiter.burst and limiter.try_acquire(client, count)
        results = []
        for transaction in transactions:
            admission = self._admit(transaction, client, paid=paid)
            self.outcomes[admission] += 1
            reason = self.last_reason if admission is Admission.REJECTED else ""
            results.append((admission, reason))
        return results

    def _admit(self, transaction: bytes, client: Hashable, *, paid: bool = False) -> Admission:
        config = self.config
        if len(transaction) > config.max_transaction_bytes:
            return Admission.TOO_LARGE
        key = self.hash(transaction)
        if key in self._pool or key in self._seen:
            return Admission.DUPLICATE
        limiter = self._relays if isinstance(client, Relay) else self._clients
        if not paid and not limiter.try_acquire(client):
            return Admission.RATE_LIMITED
        if (
            len(self._pool) >= config.max_transactions
            or self._bytes + len(transaction) > config.max_bytes
        ):
            return Admission.FULL
        reason = self._check(transaction)
        if reason is not None:
            self.last_reason = reason  # not remembered: a later state may admit the same bytes
            return Admission.REJECTED
        self._pool[key] = transaction
        self._keys[transaction] = key
        self._bytes += len(transaction)
        return Admission.ACCEPTED

    def reap(self, max_transactions: int, max_bytes: int) -> list[bytes]:
        """The oldest transactions that fit both limits, left in the pool until committed."""
        taken: list[bytes] = []
        size = 0
        for transaction in self._pool.values():
            if len(taken) >= max_transactions or size + len(transaction) > max_bytes:
                break
            taken.append(transaction)
            size += len(transaction)
        return taken

    def update(self, committed: Iterable[bytes], check: Check | None = None) -> int:
        """A block committed ``committed``: drop them, then re-check what is left with
        ``check`` (the application's check against the new state; default: the pool's own).
        Returns how many transactions the re-check removed."""
        for transaction in committed:
            key = self.hash(transaction)
            removed = self._pool.pop(key, None)
            if removed is not None:
                self._bytes -= len(removed)
                del self._keys[removed]
            self._remember(key)
        check = check or self._check
        dropped = 0
        for key, transaction in list(self._pool.items()):
            if check(transaction) is not None:
                del self._pool[key]
                del self._keys[transaction]
                self._bytes -= len(transaction)
                dropped += 1
        return dropped

    def _remember(self, key: bytes) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self.config.seen_max:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pool)

    def holds(self, transaction: bytes) -> bool:
        """Whether ``transaction`` (its bytes) waits in the pool."""
        return transaction in self._keys

    def __contains__(self, transaction_hash: object) -> bool:
        return transaction_hash in self._pool

    @property
    def bytes(self) -> int:
        return self._bytes


def encode_gossip(transactions: Sequence[bytes]) -> bytes:
    """A gossip batch: ``version u8 | count u32 | (length u32 | transaction)*``."""
    writer = Writer()
    writer.uint(GOSSIP_VERSION, 1)
    writer.uint(len(transactions), 4)
    for transaction in transactions:
        writer.blob(transaction, _U32_MAX)
    return writer.getvalue()


def decode_gossip(payload: bytes) -> list[bytes]:
    """The transactions of a gossip batch; raises CodecError. (Sizes are the mempool's to judge:
    one oversized transaction is refused there and spoils nothing else.)"""
    reader = Reader(payload, "gossip batch")
    reader.version(GOSSIP_VERSION)
    count = reader.count(4, "transactions")
    transactions = [reader.blob(_U32_MAX, "transaction") for _ in range(count)]
    reader.finish()
    return transactions
