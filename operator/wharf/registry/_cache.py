"""Small caches for the registry client: bounded LRU, bounded TTL, and single-flight.

Content addressed by digest never changes, so it lives in an LRU with no expiry; a tag can move at any time,
so tag -> digest lives only for a short TTL. Single-flight makes concurrent lookups of the same key share one
piece of work (one set of registry requests) instead of stampeding the registry.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most `maxsize` entries; the least recently used goes first."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        try:
            self._data.move_to_end(key)
        except KeyError:
            return None
        return self._data[key]

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def discard(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class TTLCache(Generic[K, V]):
    """An LRU whose entries also expire `ttl` seconds after they were stored (per-entry TTL allowed)."""

    def __init__(self, maxsize: int, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lru: LRUCache[K, tuple[float, V]] = LRUCache(maxsize)

    def get(self, key: K) -> V | None:
        entry = self._lru.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            return None
        return value

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        lifetime = self.ttl if ttl is None else ttl
        if lifetime <= 0:
            return
        self._lru.put(key, (self._clock() + lifetime, value))

    def discard(self, key: K) -> None:
        self._lru.discard(key)

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)


class SingleFlight(Generic[K, V]):
    """`await flight.do(key, work)`: callers asking for the same key while work is running share its result.

    The work runs in its own task, so one caller being cancelled does not cancel it for the others.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def do(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:

            async def run() -> V:
                return await work()

            new_task: asyncio.Task[V] = asyncio.ensure_future(run())
            self._running[key] = new_task
            new_task.add_done_callback(lambda _t: self._forget(key, new_task))
            task = new_task
        return await asyncio.shield(task)

    def _forget(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            # Retrieve the exception so an abandoned task does not log "exception was never retrieved".
            task.exception()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def cancel_all(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
