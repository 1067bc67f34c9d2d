"""Which replies are still being streamed by a live process.

The stream flow keeps a short-lived Redis key per reply (``{prefix}live:{conversation}:{seq}``,
refreshed every few seconds while it streams, deleted when it finishes). A reply stored as
``streaming`` without its key has lost its writer (a replica killed, a Lambda timed out): a
resuming client is told it is incomplete at once, instead of waiting for it forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["ReplyHeartbeat", "alive_replies"]

TTL_S = 15
BEAT_S = 5.0


def _key(prefix: str, conversation_id: str, seq: int) -> str:
    return f"{prefix}live:{conversation_id}:{seq}"


class ReplyHeartbeat:
    """``async with ReplyHeartbeat(...)``: the reply's key lives while the block runs (a
    background task refreshes it every few seconds, whatever the model is doing)."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, conversation_id: str,
                 seq: int) -> None:
        self._redis = redis
        self._key = _key(prefix, conversation_id, seq)
        self._task: asyncio.Task[None] | None = None
        self._begun = False
        self._ended = False

    async def _beat(self) -> None:
        with contextlib.suppress(RedisError):  # advisory: a miss only says "incomplete" early
            await self._redis.set(self._key, b"1", ex=TTL_S)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(BEAT_S)
            await self._beat()

    def begin(self, pipe: Any) -> None:
        """Queue the first beat on the caller's pipeline (sent before the block is entered):
        entering the block then costs no round trip."""
        pipe.set(self._key, b"1", ex=TTL_S)
        self._begun = True

    async def __aenter__(self) -> ReplyHeartbeat:
        if not self._begun:
            await self._beat()
        self._task = asyncio.create_task(self._loop())
        return self

    def end(self, pipe: Any) -> None:
        """Stop beating and queue the key's deletion on the caller's pipeline (sent with its
        other writes): leaving the block then costs no round trip."""
        self._stop()
        pipe.delete(self._key)
        self._ended = True

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def __aexit__(self, *exc: object) -> None:
        self._stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self._ended:
            with contextlib.suppress(RedisError):
                await self._redis.delete(self._key)


async def alive_replies(
    redis: aioredis.Redis, *, prefix: str, conversation_id: str, seqs: list[int]
) -> set[int] | None:
    """The sequence numbers among ``seqs`` whose stream is alive; None when Redis cannot tell
    (then nobody is declared dead)."""
    if not seqs:
        return set()
    try:
        values = await redis.mget([_key(prefix, conversation_id, s) for s in seqs])
    except RedisError:
        return None
    return {s for s, v in zip(seqs, values, strict=True) if v is not None}
