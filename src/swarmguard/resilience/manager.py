"""ResilienceManager: one registry of named primitives, built in code or from a TOML/dict config.

The manager owns no global state: create one per application (or per tenant), register
primitives by name, compose them into policies, and read aggregated stats (JSON) or Prometheus
metrics from it. The config format is documented in docs/resilience.md ("Configuration")::

    [circuit_breakers.validator_rpc]
    failure_rate_threshold = 0.3
    window = 60

    [rate_limiters.block_proposals]
    rate = 10.0
    burst = 100

    [bulkheads.block_verification]
    max_concurrent = 50
    max_queue = 20

    [retries.rpc]
    attempts = 3
    budget = { ratio = 0.2 }

    [policies.rpc]
    circuit_breaker = "validator_rpc"
    rate_limiter = "block_proposals"
    bulkhead = "block_verification"
    retry = "rpc"
    timeout = 2.0
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigError
from ._protocols import BreakerLike, KeyedLimiterLike, LimiterLike
from .breaker import CircuitBreaker
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .metrics import ResilienceCollector
from .policy import Policy
from .ratelimit import KeyedRateLimiter, RateLimiter
from .retry import Retry
from .timeout import Timeout

__all__ = ["ResilienceManager"]

T = TypeVar("T")
B = TypeVar("B", bound=BreakerLike)
L = TypeVar("L", bound=LimiterLike)
K = TypeVar("K", bound=KeyedLimiterLike)

_SECTIONS = (
    "circuit_breakers",
    "rate_limiters",
    "keyed_rate_limiters",
    "bulkheads",
    "retries",
    "timeouts",
    "policies",
)
_POLICY_FIELDS = ("circuit_breaker", "rate_limiter", "bulkhead", "retry", "timeout")


class ResilienceManager:
    """Named breakers, limiters, bulkheads, retries, timeouts and the policies built from them.

    Args:
        clock: Default time source for every primitive the manager creates.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerLike] = {}
        self._limiters: dict[str, LimiterLike] = {}
        self._keyed_limiters: dict[str, KeyedLimiterLike] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._retries: dict[str, Retry] = {}
        self._timeouts: dict[str, Timeout] = {}
        self._policies: dict[str, Policy] = {}

    # ------------------------------------------------------------------ registration

    def _add(self, table: dict[str, Any], kind: str, name: str, item: T) -> T:
        with self._lock:
            if name in table:
                raise ConfigError(f"{kind}.{name}", "is already registered")
            table[name] = item
        return item

    def add_circuit_breaker(self, breaker: B) -> B:
        """Register a breaker built elsewhere (e.g. a RedisCircuitBreaker)."""
        return self._add(self._breakers, "circuit_breakers", breaker.name, breaker)

    def register_circuit_breaker(self, name: str, **config: Any) -> CircuitBreaker:
        """Create and register a breaker; ``config`` are CircuitBreaker's keyword arguments."""
        config.setdefault("clock", self.clock)
        return self.add_circuit_breaker(CircuitBreaker(name, **config))

    def add_rate_limiter(self, limiter: L) -> L:
        """Register a limiter built elsewhere (e.g. a RedisRateLimiter)."""
        return self._add(self._limiters, "rate_limiters", limiter.name, limiter)

    def register_rate_limiter(self, name: str, **config: Any) -> RateLimiter:
        """Create and register a token bucket; ``config`` are RateLimiter's keyword arguments."""
        config.setdefault("clock", self.clock)
        return self.add_rate_limiter(RateLimiter(name, **config))

    def add_keyed_rate_limiter(self, limiter: K) -> K:
        """Register a keyed limiter built elsewhere (e.g. a RedisKeyedRateLimiter)."""
        return self._add(self._keyed_limiters, "keyed_rate_limiters", limiter.name, limiter)

    def register_keyed_rate_limiter(self, name: str, **config: Any) -> KeyedRateLimiter:
        """Create and register a per-key limiter."""
        config.setdefault("clock", self.clock)
        return self.add_keyed_rate_limiter(KeyedRateLimiter(name, **config))

    def add_bulkhead(self, bulkhead: Bulkhead) -> Bulkhead:
        """Register a bulkhead built elsewhere."""
        return self._add(self._bulkheads, "bulkheads", bulkhead.name, bulkhead)

    def register_bulkhead(self, name: str, **config: Any) -> Bulkhead:
        """Create and register a bulkhead; ``config`` are Bulkhead's keyword arguments."""
        config.setdefault("clock", self.clock)
        return self.add_bulkhead(Bulkhead(name, **config))

    def add_retry(self, retry: Retry) -> Retry:
        """Register a retry policy built elsewhere."""
        return self._add(self._retries, "retries", retry.name, retry)

    def register_retry(self, name: str, **config: Any) -> Retry:
        """Create and register a retry policy; ``budget`` may be a RetryBudget or a dict."""
        config.setdefault("clock", self.clock)
        budget = config.get("budget")
        if isinstance(budget, Mapping):
            config["budget"] = RetryBudget(clock=config["clock"], **budget)
        return self.add_retry(Retry(name, **config))

    def add_timeout(self, timeout: Timeout) -> Timeout:
        """Register a timeout policy built elsewhere."""
        return self._add(self._timeouts, "timeouts", timeout.name, timeout)

    def register_timeout(self, name: str, timeout: float, **config: Any) -> Timeout:
        """Create and register a timeout policy."""
        config.setdefault("clock", self.clock)
        return self.add_timeout(Timeout(timeout, name=name, **config))

    def register_policy(
        self,
        name: str,
        *,
        circuit_breaker: str | BreakerLike | None = None,
        rate_limiter: str | LimiterLike | None = None,
        bulkhead: str | Bulkhead | None = None,
        retry: str | Retry | None = None,
        timeout: str | float | Timeout | None = None,
        **layers: Any,
    ) -> Policy:
        """Compose registered (by name) or given primitives into a named :class:`Policy`.

        ``timeout`` may also be a number of seconds. Extra keyword arguments (``fallback``,
        ``hedge``) are passed to Policy as they are.
        """
        timeout_layer: str | Timeout | None
        if isinstance(timeout, str | Timeout) or timeout is None:
            timeout_layer = timeout
        else:
            timeout_layer = Timeout(timeout, name=name, clock=self.clock)
        policy = Policy(
            name,
            circuit_breaker=self._lookup(self._breakers, "circuit_breaker", circuit_breaker),
            rate_limiter=self._lookup(self._limiters, "rate_limiter", rate_limiter),
            bulkhead=self._lookup(self._bulkheads, "bulkhead", bulkhead),
            retry=self._lookup(self._retries, "retry", retry),
            timeout=self._lookup(self._timeouts, "timeout", timeout_layer),
            **layers,
        )
        return self._add(self._policies, "policies", name, policy)

    @staticmethod
    def _lookup(table: Mapping[str, T], field: str, value: str | T | None) -> T | None:
        if isinstance(value, str):
            if value not in table:
                raise ConfigError(f"Policy.{field}", f"no {field} named {value!r} is registered")
            return table[value]
        return value

    # ------------------------------------------------------------------ lookup

    @property
    def circuit_breakers(self) -> Mapping[str, BreakerLike]:
        """Registered breakers by name (read-only view)."""
        return MappingProxyType(self._breakers)

    @property
    def rate_limiters(self) -> Mapping[str, LimiterLike]:
        """Registered token buckets by name (read-only view)."""
        return MappingProxyType(self._limiters)

    @property
    def keyed_rate_limiters(self) -> Mapping[str, KeyedLimiterLike]:
        """Registered keyed limiters by name (read-only view)."""
        return MappingProxyType(self._keyed_limiters)

    @property
    def bulkheads(self) -> Mapping[str, Bulkhead]:
        """Registered bulkheads by name (read-only view)."""
        return MappingProxyType(self._bulkheads)

    @property
    def retries(self) -> Mapping[str, Retry]:
        """Registered retry policies by name (read-only view)."""
        return MappingProxyType(self._retries)

    @property
    def timeouts(self) -> Mapping[str, Timeout]:
        """Registered timeout policies by name (read-only view)."""
        return MappingProxyType(self._timeouts)

    @property
    def policies(self) -> Mapping[str, Policy]:
        """Registered composed policies by name (read-only view)."""
        return MappingProxyType(self._policies)

    # ------------------------------------------------------------------ observability

    def stats(self) -> dict[str, Any]:
        """Every primitive's stats, grouped by kind (JSON-ready)."""
        return {
            "circuit_breakers": {n: b.stats() for n, b in list(self._breakers.items())},
            "rate_limiters": {n: r.stats() for n, r in list(self._limiters.items())},
            "keyed_rate_limiters": {n: r.stats() for n, r in list(self._keyed_limiters.items())},
            "bulkheads": {n: b.stats() for n, b in list(self._bulkheads.items())},
            "retries": {n: r.stats() for n, r in list(self._retries.items())},
            "timeouts": {n: t.stats() for n, t in list(self._timeouts.items())},
            "policies": {n: repr(p) for n, p in list(self._policies.items())},
        }

    def stats_json(self, indent: int | None = None) -> str:
        """:meth:`stats` as a JSON document."""
        return json.dumps(self.stats(), indent=indent, sort_keys=True)

    def collector(self) -> ResilienceCollector:
        """A Prometheus collector over this manager (register it with any registry)."""
        return ResilienceCollector(self)

    def register_metrics(self, registry: CollectorRegistry | None = None) -> ResilienceCollector:
        """Register this manager's collector with ``registry`` (default: the global one)."""
        if registry is None:
            from prometheus_client import REGISTRY  # noqa: PLC0415 - the process-wide default

            registry = REGISTRY
        collector = self.collector()
        registry.register(collector)
        return collector

    # ------------------------------------------------------------------ configuration

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, clock: Clock = SYSTEM_CLOCK
    ) -> ResilienceManager:
        """Build a manager from a dict shaped like the TOML format in this module's docstring."""
        manager = cls(clock=clock)
        unknown = set(config) - set(_SECTIONS)
        if unknown:
            raise ConfigError(
                sorted(unknown)[0], f"unknown section (known: {', '.join(_SECTIONS)})"
            )
        builders: dict[str, Callable[..., Any]] = {
            "circuit_breakers": manager.register_circuit_breaker,
            "rate_limiters": manager.register_rate_limiter,
            "keyed_rate_limiters": manager.register_keyed_rate_limiter,
            "bulkheads": manager.register_bulkhead,
            "retries": manager.register_retry,
            "timeouts": manager.register_timeout,
            "policies": manager.register_policy,
        }
        for section in _SECTIONS:
            entries = config.get(section, {})
            if not isinstance(entries, Mapping):
                raise ConfigError(section, "must be a table of named entries")
            for name, fields in entries.items():
                manager._build(section, builders[section], name, fields)
        return manager

    @staticmethod
    def _build(section: str, builder: Callable[..., Any], name: str, fields: Any) -> None:
        path = f"{section}.{name}"
        if not isinstance(fields, Mapping):
            raise ConfigError(path, "must be a table of fields")
        if section == "policies":
            extra = set(fields) - set(_POLICY_FIELDS)
            if extra:
                raise ConfigError(f"{path}.{sorted(extra)[0]}", "unknown field")
        if "clock" in fields:
            raise ConfigError(f"{path}.clock", "cannot be set from a config file")
        try:
            builder(name, **fields)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error.field}", str(error).split(": ", 1)[-1]) from None
        except TypeError as error:
            # An unknown keyword argument: name it rather than leak a Python signature error.
            raise ConfigError(path, f"invalid fields: {error}") from None

    @classmethod
    def from_toml(cls, path: str | Path, *, clock: Clock = SYSTEM_CLOCK) -> ResilienceManager:
        """Build a manager from a TOML file."""
        with Path(path).open("rb") as handle:
            try:
                config = tomllib.load(handle)
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(str(path), f"is not valid TOML: {error}") from None
        return cls.from_config(config, clock=clock)
