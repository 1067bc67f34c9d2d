"""One read at a time per key: callers that miss a cache together share the first one's read.

When a cached value expires under load, every request then starting misses it at once and
reads the store too (a stampede: hundreds of pool checkouts for one value). ``SingleFlight``
runs one read per key and hands its result, or its exception, to every caller waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self._reading: dict[str, asyncio.Future[V]] = {}

    async def run(self, key: str, read: Callable[[], Awaitable[V]]) -> V:
        """``read()``'s result for ``key``, shared with the callers that ask while it runs. A
        caller cancelled while waiting does not cancel the read for the others."""
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(read())
            reading.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(reading)

    def _done(self, key: str, done: asyncio.Future[V]) -> None:
        if self._reading.get(key) is done:
            del self._reading[key]
        if not done.cancelled():
            done.exception()  # retrieved here: the waiters, if any are left, raise it
