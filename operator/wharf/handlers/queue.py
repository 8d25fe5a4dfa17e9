"""A work queue of App keys, after client-go's workqueue: a key waits at most once (events for an App coalesce),
is processed by one worker at a time (added again while processing, it runs once more after), a fixed number of
workers, and per-key exponential backoff with jitter for retries. A key's state lives only while it waits, runs or
backs off: nothing per App outlives it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Backoff:
    """base * 2^failures, capped, times a random factor in [1 - jitter, 1]."""

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.2

    def delay(self, failures: int) -> float:
        plain: float = min(self.cap, self.base * 2.0 ** max(0, failures - 1))
        return plain * (1 - self.jitter * random.random())


class WorkQueue(Generic[K]):
    def __init__(
        self,
        work: Callable[[K], Awaitable[bool]],
        workers: int,
        backoff: Backoff | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        """`work(key)` returns True when the key should be retried later (backoff), False when it is done.
        `on_depth(n)` hears the number of keys waiting or running whenever it changes (the metrics)."""
        self._work = work
        self._on_depth = on_depth
        self._workers = workers
        self._backoff = backoff or Backoff()
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()  # in the queue
        self._running: set[K] = set()
        self._dirty: set[K] = set()  # added while running: queued again when it finishes
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(), name=f"wharf worker {i}") for i in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def add(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:  # something changed: try now rather than after the backoff
            timer.cancel()
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)
            self._depth()

    def _depth(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self))

    def add_after(self, key: K, delay: float) -> None:
        if key in self._timers or key in self._waiting:
            return
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def forget(self, key: K) -> None:
        """The key's retries are over (done, or its App deleted)."""
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        """Keys waiting or running (not those backing off)."""
        return len(self._waiting | self._running)

    def tracked(self) -> int:
        """Keys the queue holds any state for: 0 once every App is done (nothing outlives an App)."""
        return len(self._waiting | self._running | self._dirty | set(self._failures) | set(self._timers))

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._waiting.discard(key)
            self._running.add(key)
            retry = True
            try:
                retry = await self._work(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("processing %s failed", key)
            finally:
                self._running.discard(key)
                self._depth()
            if retry:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                self.add_after(key, self._backoff.delay(failures))
            else:
                self._failures.pop(key, None)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
