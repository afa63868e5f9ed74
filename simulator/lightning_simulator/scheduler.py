"""A single background thread that runs callbacks at wall-clock times (a timer heap).

One thread serves every job's state transitions, so thousands of "timed" jobs cost
one heap entry each rather than one thread each.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Scheduler:
    """Run ``fn(*args)`` at a given ``time.time()``; callbacks run on the scheduler thread."""

    def __init__(self, name: str = "lightning-sim-scheduler") -> None:
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker thread; pending callbacks are dropped."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` for wall-clock time ``when``."""
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (when, next(self._seq), fn, args))
            if self._heap[0][0] == when:
                self._cond.notify()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` in ``delay`` seconds."""
        self.call_at(time.time() + max(0.0, delay), fn, *args)

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.time()
                    if delay <= 0:
                        break
                    self._cond.wait(timeout=min(delay, 1.0))
                if self._stopped:
                    return
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception:  # a failing callback must not kill the scheduler
                log.exception("simulator scheduler callback %r failed", fn)
