"""Worker threads for sync timeouts and hedging that never keep the process alive (private).

``concurrent.futures.ThreadPoolExecutor`` joins its workers when the interpreter exits, so one
call that hangs forever (the very case a timeout exists for) would hang the process's exit too.
These workers are daemon threads: an abandoned call is simply dropped at exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_STOP = object()


class DaemonPool:
    """At most ``max_workers`` daemon threads, started on demand, fed from one queue."""

    __slots__ = ("_idle", "_lock", "_max_workers", "_name", "_pending", "_queue", "_workers")

    def __init__(self, name: str, max_workers: int) -> None:
        self._name = name
        self._max_workers = max_workers
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0
        self._idle = 0
        self._pending = 0

    def submit(self, func: Callable[[], Any]) -> Future[Any]:
        """Run ``func()`` on a worker; a worker is started if none is free and the cap allows."""
        future: Future[Any] = Future()
        with self._lock:
            self._pending += 1
            start = self._pending > self._idle and self._workers < self._max_workers
            if start:
                self._workers += 1
        self._queue.put((future, func))
        if start:
            name = f"swarmguard-{self._name}-{self._workers}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
                if item is _STOP:
                    self._workers -= 1
                    return
                self._pending -= 1
            future, func = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before it started: never start it
            try:
                result = func()
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Ask every worker to stop once it is idle (queued calls still run first)."""
        with self._lock:
            workers = self._workers
        for _ in range(workers):
            self._queue.put(_STOP)
