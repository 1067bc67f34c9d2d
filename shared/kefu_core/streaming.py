"""Delta batching: a reply costs tens of frames, not one per token.

The first delta goes out at once (time to first token is what a visitor feels); later deltas
are gathered for ``flush_ms`` or until ``flush_chars`` characters, whichever comes first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

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
        """Consume ``events``; flush text deltas in batches; return the non-delta events."""
        queue: asyncio.Queue[tuple[bool, E | BaseException | None]] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for event in events:
                    await queue.put((False, event))
            except BaseException as exc:  # handed to the consumer, re-raised there
                await queue.put((True, exc))
                return
            await queue.put((True, None))

        producer = asyncio.create_task(produce())
        others: list[E] = []
        buffer: list[str] = []
        buffered = 0
        deadline: float | None = None
        try:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    done, item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    await self._emit(buffer)
                    buffer, buffered, deadline = [], 0, None
                    continue
                if done:
                    await self._emit(buffer)
                    if isinstance(item, BaseException):
                        raise item
                    return others
                assert item is not None and not isinstance(item, BaseException)
                text = self._text_of(item)
                if text is None:
                    others.append(item)
                    continue
                if not text:
                    continue
                buffer.append(text)
                buffered += len(text)
                if self.flushes == 0 or buffered >= self._chars:
                    await self._emit(buffer)
                    buffer, buffered, deadline = [], 0, None
                elif deadline is None:
                    deadline = time.monotonic() + self._interval
        finally:
            if not producer.done():
                producer.cancel()

    async def _emit(self, buffer: list[str]) -> None:
        if not buffer:
            return
        text = "".join(buffer)
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
