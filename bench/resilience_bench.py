"""Resilience benchmark: SwarmGuard against the peer libraries, side by side in one run.

Method (docs/benchmarks.md repeats it):
- Every case has contestants: ours, the peers the issue names, and floors (a bare call, a bare
  lock). Each sample times one batch of calls with ``perf_counter_ns`` and divides by the batch
  size; batch sizes are calibrated per contestant to ~50 us so timer cost is negligible.
- Samples are interleaved: in each round every contestant takes a few samples, in a rotated
  order, so machine noise hits all libraries alike. P50 and P99 are over the samples.
- Ratios are reported against the fastest peer of the case and against the floors, in the same
  run; targets are checked on the P50 ratio.

Run: ``bash scripts/bench.sh`` (or ``python bench/resilience_bench.py --quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import platform
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import aiobreaker
import aiolimiter
import backoff
import circuitbreaker
import limits
import limits.storage
import limits.strategies
import nopanic
import purgatory
import pybreaker
import pyrate_limiter
import stamina
import tenacity
import throttled

from _harness import (
    LOOP,
    Case,
    Contestant,
    async_runner,
    measure,
    render_case,
    summarise,
    sync_catching_runner,
    sync_runner,
)
from swarmguard.resilience import (
    Bulkhead,
    CircuitBreaker,
    KeyedRateLimiter,
    Policy,
    RateLimiter,
    Retry,
)


def noop() -> None:
    return None


async def anoop() -> None:
    return None


# ---------------------------------------------------------------------------- cases


def floors() -> list[Contestant]:
    lock = threading.Lock()

    def bare_lock() -> None:
        with lock:
            pass

    return [
        Contestant("floor: bare call", "floor", sync_runner(noop)),
        Contestant("floor: bare lock", "floor", sync_runner(bare_lock)),
    ]


def async_floors() -> list[Contestant]:
    return [Contestant("floor: await bare coroutine", "floor", async_runner(anoop))]


def case_breaker_closed_sync() -> Case:
    ours = CircuitBreaker("bench")(noop)
    pyb = pybreaker.CircuitBreaker()(noop)
    cb = circuitbreaker.CircuitBreaker()(noop)
    aio = aiobreaker.CircuitBreaker()
    factory = purgatory.SyncCircuitBreakerFactory()
    purg = factory("bench")(noop)
    nop = nopanic.circuit_breaker()(noop)
    return Case(
        "breaker_closed_sync",
        "Circuit breaker, CLOSED, successful sync call (decorated no-op)",
        0.5,
        [
            Contestant("swarmguard", "ours", sync_runner(ours)),
            Contestant("pybreaker", "peer", sync_runner(pyb)),
            Contestant("circuitbreaker", "peer", sync_runner(cb)),
            Contestant("aiobreaker (.call)", "peer", sync_runner(lambda: aio.call(noop))),
            Contestant("purgatory", "peer", sync_runner(purg)),
            Contestant("nopanic", "peer", sync_runner(nop)),
            *floors(),
        ],
    )


def case_breaker_closed_async() -> Case:
    ours = CircuitBreaker("bench")(anoop)
    aio = aiobreaker.CircuitBreaker()
    factory = purgatory.AsyncCircuitBreakerFactory()
    purg = factory("bench")(anoop)
    cb = circuitbreaker.CircuitBreaker()(anoop)
    nop = nopanic.circuit_breaker()(anoop)
    return Case(
        "breaker_closed_async",
        "Circuit breaker, CLOSED, successful async call",
        0.5,
        [
            Contestant("swarmguard", "ours", async_runner(ours)),
            Contestant("aiobreaker", "peer", async_runner(lambda: aio.call_async(anoop))),
            Contestant("purgatory", "peer", async_runner(purg)),
            Contestant("circuitbreaker", "peer", async_runner(cb)),
            Contestant("nopanic", "peer", async_runner(nop)),
            *async_floors(),
        ],
    )


def failing() -> None:
    raise ValueError("down")


def open_breakers() -> dict[str, Callable[[], Any]]:
    """One always-open breaker per library, around a function that would fail."""
    ours_breaker = CircuitBreaker("bench", open_timeout=1e9)
    ours_breaker.force_open()
    ours = ours_breaker(failing)
    pyb_breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=1e9)
    pyb = pyb_breaker(failing)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=10**9)(failing)
    aio = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=datetime.timedelta(days=1))
    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=1, default_ttl=1e9)
    purg = factory("bench-open")(failing)
    nop_breaker = nopanic.circuit_breaker(reset_timeout=1e9)
    nop_breaker.force_open()
    nop = nop_breaker(failing)
    for func in (pyb, cb, lambda: aio.call(failing), purg):
        for _ in range(3):
            with contextlib.suppress(Exception):
                func()
    return {
        "swarmguard": ours,
        "pybreaker": pyb,
        "circuitbreaker": cb,
        "aiobreaker (.call)": lambda: aio.call(failing),
        "purgatory": purg,
        "nopanic": nop,
    }


def case_breaker_open() -> Case:
    breakers = open_breakers()
    return Case(
        "breaker_open_reject",
        "Circuit breaker, OPEN: rejecting a call (raise + catch)",
        0.5,
        [
            Contestant(name, "ours" if name == "swarmguard" else "peer", sync_catching_runner(f))
            for name, f in breakers.items()
        ]
        + [Contestant("floor: raise+catch ValueError", "floor", sync_catching_runner(failing))],
    )


def case_limiter_try() -> Case:
    ours = RateLimiter("bench", rate=1e12, burst=1e12)
    nop = nopanic.rate_limit(1e12, max_wait=0)
    pyrate = pyrate_limiter.Limiter(pyrate_limiter.Rate(10**12, pyrate_limiter.Duration.SECOND))
    storage = limits.storage.MemoryStorage()
    fixed = limits.strategies.FixedWindowRateLimiter(storage)
    moving = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(10**9)
    thr = throttled.Throttled(
        key="bench",
        using=throttled.RateLimiterType.TOKEN_BUCKET.value,
        quota=throttled.per_sec(10**9, burst=10**9),
    )

    def nop_guard() -> None:
        with nop.guard():
            pass

    return Case(
        "limiter_try_acquire",
        "Rate limiter, non-blocking acquire of one token (admitted)",
        0.6,
        [
            Contestant("swarmguard try_acquire", "ours", sync_runner(ours.try_acquire)),
            Contestant("nopanic guard()", "peer", sync_runner(nop_guard)),
            Contestant(
                "pyrate-limiter",
                "peer",
                sync_runner(lambda: pyrate.try_acquire("k", blocking=False)),
            ),
            Contestant("limits fixed window", "peer", sync_runner(lambda: fixed.hit(item, "k"))),
            Contestant("limits moving window", "peer", sync_runner(lambda: moving.hit(item, "k"))),
            Contestant("throttled-py", "peer", sync_runner(lambda: thr.limit("k"))),
            *floors(),
        ],
        note="nopanic has no try_acquire; its cheapest public non-blocking path is guard().",
    )


def case_limiter_async() -> Case:
    ours = RateLimiter("bench", rate=1e12, burst=1e12)
    aio = aiolimiter.AsyncLimiter(10**12, 1)
    nop = nopanic.rate_limit(1e12, max_wait=0)

    async def nop_guard() -> None:
        async with nop.guard():
            pass

    return Case(
        "limiter_async_acquire",
        "Rate limiter, async acquire of one token (admitted)",
        0.75,
        [
            Contestant("swarmguard acquire_async", "ours", async_runner(ours.acquire_async)),
            Contestant("aiolimiter acquire", "peer", async_runner(aio.acquire)),
            Contestant("nopanic async guard()", "peer", async_runner(nop_guard)),
            *async_floors(),
        ],
        note="Ours is also thread-safe; aiolimiter is not.",
    )


def quiet_stamina() -> None:
    """Measure stamina's retry logic, not its default logging hook (one log line per retry)."""
    stamina.instrumentation.set_on_retry_hooks([])


def case_retry_success() -> Case:
    quiet_stamina()
    ours = Retry("bench", attempts=3)(noop)
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(3))(noop)
    bo = backoff.on_exception(backoff.expo, Exception, max_tries=3)(noop)
    st = stamina.retry(on=Exception, attempts=3)(noop)
    nop = nopanic.retry(attempts=3)(noop)
    return Case(
        "retry_success",
        "Retry, call succeeding on the first attempt",
        0.8,
        [
            Contestant("swarmguard", "ours", sync_runner(ours)),
            Contestant("tenacity", "peer", sync_runner(ten)),
            Contestant("backoff", "peer", sync_runner(bo)),
            Contestant("stamina", "peer", sync_runner(st)),
            Contestant("nopanic", "peer", sync_runner(nop)),
            *floors(),
        ],
    )


def fail_every_other() -> Callable[[], None]:
    state = [0]

    def call() -> None:
        state[0] += 1
        if state[0] % 2:
            raise ConnectionError("transient")

    return call


def case_retry_fail_once() -> Case:
    quiet_stamina()
    ours = Retry("bench", attempts=3, initial_delay=0.0, max_delay=0.0)(fail_every_other())
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none())(
        fail_every_other()
    )
    bo = backoff.on_exception(backoff.constant, Exception, max_tries=3, interval=0, jitter=None)(
        fail_every_other()
    )
    st = stamina.retry(on=Exception, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)(
        fail_every_other()
    )
    nop = nopanic.retry(attempts=3, backoff=0.0)(fail_every_other())
    return Case(
        "retry_fail_once_zero_backoff",
        "Retry, fail once then succeed, zero backoff",
        0.1,
        [
            Contestant("swarmguard", "ours", sync_runner(ours)),
            Contestant("tenacity", "peer", sync_runner(ten)),
            Contestant("backoff", "peer", sync_runner(bo)),
            Contestant("stamina", "peer", sync_runner(st)),
            Contestant("nopanic", "peer", sync_runner(nop)),
            *floors(),
        ],
        note="Peers call sleep(0) between attempts; we skip a zero sleep.",
    )


def case_bulkhead_sync() -> Case:
    ours = Bulkhead("bench", max_concurrent=100)(noop)
    nop = nopanic.bulkhead(100)(noop)
    return Case(
        "bulkhead_sync",
        "Bulkhead, sync call with a free permit",
        0.4,
        [
            Contestant("swarmguard", "ours", sync_runner(ours)),
            Contestant("nopanic", "peer", sync_runner(nop)),
            *floors(),
        ],
    )


def case_bulkhead_async() -> Case:
    ours = Bulkhead("bench", max_concurrent=100)(anoop)
    nop = nopanic.bulkhead(100)(anoop)
    return Case(
        "bulkhead_async",
        "Bulkhead, async call with a free permit",
        0.35,
        [
            Contestant("swarmguard", "ours", async_runner(ours)),
            Contestant("nopanic", "peer", async_runner(nop)),
            *async_floors(),
        ],
    )


def composed_policy() -> Policy:
    return Policy(
        "bench",
        retry=Retry("bench", attempts=3),
        circuit_breaker=CircuitBreaker("bench"),
        rate_limiter=RateLimiter("bench", rate=1e12, burst=1e12),
        bulkhead=Bulkhead("bench", max_concurrent=100),
    )


def case_stack() -> Case:
    sync_stack = composed_policy()(noop)
    async_stack = composed_policy()(anoop)
    nop_sync = nopanic.compose(
        nopanic.retry(attempts=3),
        nopanic.circuit_breaker(),
        nopanic.rate_limit(1e12, max_wait=0),
        nopanic.bulkhead(100),
    )(noop)
    return Case(
        "composed_stack",
        "Whole stack: retry + breaker + limiter + bulkhead around a no-op",
        None,
        [
            Contestant("swarmguard sync", "ours", sync_runner(sync_stack)),
            Contestant("swarmguard async", "ours", async_runner(async_stack)),
            Contestant("nopanic sync (compose)", "peer", sync_runner(nop_sync)),
            *floors(),
            *async_floors(),
        ],
        note="Batch means; the per-call P99 check is 'stack_overhead' below.",
    )


CASES: list[Callable[[], Case]] = [
    case_breaker_closed_sync,
    case_breaker_closed_async,
    case_breaker_open,
    case_limiter_try,
    case_limiter_async,
    case_retry_success,
    case_retry_fail_once,
    case_bulkhead_sync,
    case_bulkhead_async,
    case_stack,
]


# ---------------------------------------------------------------------------- measurement


# ---------------------------------------------------------------------------- other checks


def rejection_memory(count: int) -> dict[str, Any]:
    """Traced memory still held after ``count`` rejections, per library."""
    results = {}
    for name, func in open_breakers().items():
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            with contextlib.suppress(Exception):
                func()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        results[name] = after - before
    return {"rejections": count, "retained_bytes": results}


def thread_scaling(total: int) -> dict[str, Any]:
    """Throughput of try_acquire with 2 threads relative to 1 thread, same total work."""

    def timed(threads: int, limiter: Callable[[], Any]) -> float:
        per_thread = total // threads
        barrier = threading.Barrier(threads + 1)

        def work() -> None:
            barrier.wait()
            for _ in range(per_thread):
                limiter()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        return time.perf_counter() - start

    ours = RateLimiter("bench", rate=1e12, burst=1e12).try_acquire
    nop_limiter = nopanic.rate_limit(1e12, max_wait=0)

    def nop() -> None:
        with nop_limiter.guard():
            pass

    result = {}
    for name, func in (("swarmguard", ours), ("nopanic", nop)):
        ratios = []
        for _ in range(5):
            one = timed(1, func)
            two = timed(2, func)
            ratios.append(one / two)
        ratios.sort()
        result[name] = round(ratios[len(ratios) // 2], 3)
    return {
        "two_thread_throughput_vs_one": result,
        "target_ours": 0.95,
        "pass": result["swarmguard"] >= 0.95,
    }


def breaker_concurrency() -> dict[str, Any]:
    """Wall time of 4 threads x 5 calls that each sleep 20 ms inside the breaker.

    A breaker that holds its lock across the call (pybreaker) runs them one at a time: 400 ms.
    One that never does lets them overlap: about 100 ms.
    """

    def sleepy() -> None:
        time.sleep(0.02)

    aio = aiobreaker.CircuitBreaker()
    contenders: dict[str, Callable[[], Any]] = {
        "swarmguard": CircuitBreaker("bench")(sleepy),
        "pybreaker": pybreaker.CircuitBreaker()(sleepy),
        "circuitbreaker": circuitbreaker.CircuitBreaker()(sleepy),
        "aiobreaker (.call)": lambda: aio.call(sleepy),
        "purgatory": purgatory.SyncCircuitBreakerFactory()("bench-sleepy")(sleepy),
        "nopanic": nopanic.circuit_breaker()(sleepy),
    }
    results = {}
    for name, func in contenders.items():
        threads = [
            threading.Thread(target=lambda f=func: [f() for _ in range(5)]) for _ in range(4)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results[name] = round((time.perf_counter() - start) * 1000, 1)
    return {
        "wall_ms_4_threads_x_5_calls_of_20ms": results,
        "ideal_ms": 100,
        "serialised_ms": 400,
        "ours_overlaps": results["swarmguard"] < 200,
    }


def background_threads() -> dict[str, Any]:
    """Threads each limiter starts while admitting 20,000 requests over about half a second."""
    started = [0]
    original = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started[0] += 1
        original(self)

    ours = RateLimiter("bench", rate=1e12, burst=1e12)
    fixed = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    moving = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(10**9)
    pyrate = pyrate_limiter.Limiter(pyrate_limiter.Rate(10**12, pyrate_limiter.Duration.SECOND))
    contenders: dict[str, Callable[[], Any]] = {
        "swarmguard": ours.try_acquire,
        "limits fixed window": lambda: fixed.hit(item, "k"),
        "limits moving window": lambda: moving.hit(item, "k"),
        "pyrate-limiter": lambda: pyrate.try_acquire("k", blocking=False),
    }
    results = {}
    threading.Thread.start = counting_start  # type: ignore[method-assign]
    try:
        for name, func in contenders.items():
            started[0] = 0
            begin = time.monotonic()
            for index in range(20_000):
                func()
                if index % 2000 == 0:
                    time.sleep(0.05)
            elapsed = time.monotonic() - begin
            results[name] = {
                "threads_started": started[0],
                "per_second": round(started[0] / elapsed, 1),
            }
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    return results


def memory_footprint() -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    breakers = [CircuitBreaker(f"b{index}") for index in range(2000)]
    per_breaker = (tracemalloc.get_traced_memory()[0] - before) / len(breakers)
    tracemalloc.stop()
    del breakers
    keys = [f"client-{index}" for index in range(200_000)]
    limiter = KeyedRateLimiter("k", rate=1.0, max_keys=1_000_000)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in keys:
        limiter.try_acquire(key)
    per_key = (tracemalloc.get_traced_memory()[0] - before) / len(keys)
    tracemalloc.stop()
    return {
        "bytes_per_breaker": round(per_breaker),
        "target_bytes_per_breaker": 5000,
        "bytes_per_keyed_limiter_entry": round(per_key, 1),
        "target_bytes_per_keyed_entry": 200,
        "pass": per_breaker <= 5000 and per_key <= 200,
    }


def stack_overhead(calls: int) -> dict[str, Any]:
    """Per-call latency of the composed stack, each call timed on its own.

    The target is per call, so batches would be wrong here: one garbage-collector pass inside
    a batch is spread over every call of that batch. Calls are timed one by one, interleaved
    in chunks with bare calls; the cost of the timer itself (an empty timed region) is
    subtracted. Added P99 = P99(stack) - P99(bare).
    """
    perf = time.perf_counter_ns
    sync_stack = composed_policy()(noop)
    async_stack = composed_policy()(anoop)

    def timed_sync(func: Callable[[], Any], count: int) -> list[int]:
        out = []
        for _ in range(count):
            start = perf()
            func()
            out.append(perf() - start)
        return out

    async def timed_async(func: Callable[[], Awaitable[Any]], count: int) -> list[int]:
        out = []
        for _ in range(count):
            start = perf()
            await func()
            out.append(perf() - start)
        return out

    def empty() -> None:
        return None

    samples: dict[str, list[int]] = {k: [] for k in ("timer", "bare", "sync", "abare", "async")}
    chunk = 1000
    for _ in range(calls // chunk):
        samples["timer"] += timed_sync(empty, chunk)
        samples["bare"] += timed_sync(noop, chunk)
        samples["sync"] += timed_sync(sync_stack, chunk)
        samples["abare"] += LOOP.run_until_complete(timed_async(anoop, chunk))
        samples["async"] += LOOP.run_until_complete(timed_async(async_stack, chunk))

    def pct(values: list[int], fraction: float) -> float:
        ordered = sorted(values)
        return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])

    sync_added = pct(samples["sync"], 0.99) - pct(samples["bare"], 0.99)
    async_added = pct(samples["async"], 0.99) - pct(samples["abare"], 0.99)
    return {
        "calls_timed_each": calls,
        "sync_stack_p50_us": round(pct(samples["sync"], 0.5) / 1000, 3),
        "sync_stack_p99_us": round(pct(samples["sync"], 0.99) / 1000, 3),
        "async_stack_p50_us": round(pct(samples["async"], 0.5) / 1000, 3),
        "async_stack_p99_us": round(pct(samples["async"], 0.99) / 1000, 3),
        "bare_call_p99_us": round(pct(samples["bare"], 0.99) / 1000, 3),
        "timer_p50_ns": pct(samples["timer"], 0.5),
        "sync_added_p99_us": round(sync_added / 1000, 3),
        "async_added_p99_us": round(async_added / 1000, 3),
        "target_us": 3.0,
        "pass": sync_added <= 3000 and async_added <= 3000,
    }


# ---------------------------------------------------------------------------- report


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Python {report['python']} on {report['machine']}; rounds={report['rounds']}, "
        f"samples per round={report['per_round']}, batch ~{report['batch_us']} us",
        "",
    ]
    for case in report["cases"]:
        lines.extend(render_case(case))
    for key in (
        "stack_overhead",
        "rejection_memory",
        "thread_scaling",
        "background_threads",
        "breaker_concurrency",
        "memory",
    ):
        lines.append(f"## {key}")
        lines.append(json.dumps(report[key], indent=2))
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--json", help="also write the full report to this file")
    parser.add_argument("--only", help="run only cases whose key contains this text")
    args = parser.parse_args()
    rounds, per_round, batch_ns = (6, 3, 30_000) if args.quick else (100, 10, 50_000)
    rejections = 100_000 if args.quick else 1_000_000
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "rounds": rounds,
        "per_round": per_round,
        "batch_us": batch_ns // 1000,
        "cases": [],
    }
    gc.collect()
    for factory in CASES:
        case = factory()
        if args.only and args.only not in case.key:
            continue
        measure(case, rounds, per_round, batch_ns)
        report["cases"].append(summarise(case))
        print(f"measured {case.key}", file=sys.stderr)
    report["stack_overhead"] = stack_overhead(50_000 if args.quick else 300_000)
    report["rejection_memory"] = rejection_memory(rejections)
    report["thread_scaling"] = thread_scaling(200_000 if args.quick else 1_000_000)
    report["background_threads"] = background_threads()
    report["breaker_concurrency"] = breaker_concurrency()
    report["memory"] = memory_footprint()
    text = render(report)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
