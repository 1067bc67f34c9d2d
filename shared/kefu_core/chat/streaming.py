"""Delta batching: a reply costs tens of frames, not one per token.

The first delta goes out at once (time to first token is what a visitor feels); later deltas
are gathered for ``flush_ms`` or until ``flush_chars`` characters, whichever comes first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["DeltaBatcher", "Pacer"]

E = TypeVar("E")


class DeltaBatcher(Generic[E]):
    def __init__(
        self,
        *,
        flush: Callable[[str], Awaitable[None]],
        text_of: Callable[[E], str | None],
        flush_ms: int,
        flush_chars: int,
    ) -> None:
        self._flush = flush
        self._text_of = text_of
        self._interval = flush_ms / 1000
        self._chars = flush_chars
        self.sent_chars = 0
        self.flushes = 0

    async def run(self, events: AsyncIterator[E]) -> list[E]:
        """Consume ``events``; flush text deltas in batches; return the non-delta events.

        Reading never waits for a flush (posting a frame may be slow): flushes run as tasks,
        one at a time and in order, each taking everything gathered so far. One timer per
        batch, not per piece."""
        others: list[E] = []
        buffer: list[str] = []
        buffered = 0
        lock = asyncio.Lock()  # FIFO: flushes leave in the order they were started
        tasks: set[asyncio.Task[None]] = set()
        timer: asyncio.Task[None] | None = None

        async def flush_now() -> None:
            nonlocal buffer, buffered
            async with lock:
                if buffer:
                    text, buffer, buffered = "".join(buffer), [], 0
                    await self._emit(text)

        async def flush_later() -> None:
            nonlocal timer
            await asyncio.sleep(self._interval)
            timer = None
            await flush_now()

        def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            return task

        try:
            async for event in events:
                text = self._text_of(event)
                if text is None:
                    others.append(event)
                    continue
                if not text:
                    continue
                first = self.flushes == 0 and not buffer and not tasks
                buffer.append(text)
                buffered += len(text)
                if first or buffered >= self._chars:
                    start(flush_now())
                elif timer is None:
                    timer = start(flush_later())
        finally:
            if timer is not None:
                timer.cancel()
            pending = [t for t in tasks if t is not timer]
            if pending:
                await asyncio.gather(*pending)
            await flush_now()
        return others

    async def _emit(self, text: str) -> None:
        await self._flush(text)
        self.sent_chars += len(text)
        self.flushes += 1


class Pacer:
    """Humanised pacing of a reply: a short pause before the first delta, then about
    ``chars_per_s`` characters per second (a model that streams slower is never slowed down
    further). The total added delay is capped, so a reply never stalls on pacing."""

    def __init__(self, *, chars_per_s: int, first_delay_ms: int, max_total_s: float = 8.0) -> None:
        self._cps = chars_per_s
        self._first = first_delay_ms / 1000
        self._budget = max_total_s
        self._last: float | None = None

    @property
    def active(self) -> bool:
        return self._cps > 0 or self._first > 0

    async def before(self, chars: int) -> None:
        now = time.monotonic()
        if self._last is None:
            wait = self._first
        else:
            wait = (chars / self._cps - (now - self._last)) if self._cps > 0 else 0.0
        wait = min(max(wait, 0.0), self._budget)
        if wait > 0:
            self._budget -= wait
            await asyncio.sleep(wait)
        self._last = time.monotonic()
