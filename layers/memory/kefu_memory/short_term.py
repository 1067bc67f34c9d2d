"""Short-term memory: the last turns of a conversation in a bounded Redis list.

One key per conversation (`{prefix}stm:{conversation_id}`). `append` runs RPUSH + LTRIM +
EXPIRE in one MULTI/EXEC transaction (one round trip, atomic), so the list never grows past
`2 * window` turns and lives `ttl_s` after the last write. `recent` is one LRANGE over at most
`2 * window` entries.

`window` counts rounds (a visitor turn plus its reply), like the `CONTEXT_WINDOW` setting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from ._errors import StoreError
from ._models import Turn

__all__ = ["ShortTermMemory"]

logger = logging.getLogger("kefu.memory.short_term")


class ShortTermMemory:
    """The last `window` rounds of each conversation, in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        window: int = 10,
        ttl_s: int = 2 * 3600,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if ttl_s < 1:
            raise ValueError("ttl_s must be positive")
        self._redis = redis
        self._prefix = prefix
        self._max_turns = 2 * window
        self._ttl_s = ttl_s

    @property
    def max_turns(self) -> int:
        return self._max_turns

    def key(self, conversation_id: str) -> str:
        return f"{self._prefix}stm:{conversation_id}"

    async def append(self, conversation_id: str, turn: Turn) -> None:
        """Append one turn; the oldest turns beyond the window fall off."""
        await self.extend(conversation_id, [turn])

    async def extend(self, conversation_id: str, turns: Sequence[Turn]) -> None:
        """Append several turns in one round trip."""
        if not turns:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                self.queue_extend(pipe, conversation_id, turns)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError("short-term memory append failed") from exc

    def queue_extend(self, pipe: Any, conversation_id: str, turns: Sequence[Turn]) -> None:
        """:meth:`extend` on the caller's pipeline (atomic when it is a transaction)."""
        if not turns:
            return
        key = self.key(conversation_id)
        pipe.rpush(key, *[t.model_dump_json() for t in turns])
        pipe.ltrim(key, -self._max_turns, -1)
        pipe.expire(key, self._ttl_s)

    def queue_clear(self, pipe: Any, conversation_id: str) -> None:
        """:meth:`clear` on the caller's pipeline."""
        pipe.delete(self.key(conversation_id))

    async def recent(self, conversation_id: str) -> list[Turn]:
        """The remembered turns, oldest first."""
        try:
            raw = await self._redis.lrange(self.key(conversation_id), 0, -1)
        except RedisError as exc:
            raise StoreError("short-term memory read failed") from exc
        return self.turns_of(raw, conversation_id)

    def queue_recent(self, pipe: Any, conversation_id: str) -> None:
        """:meth:`recent` on the caller's pipeline; :meth:`turns_of` reads its result."""
        pipe.lrange(self.key(conversation_id), 0, -1)

    @staticmethod
    def turns_of(raw: Sequence[bytes | str], conversation_id: str) -> list[Turn]:
        """The turns of a conversation's list as Redis returned it, oldest first."""
        turns: list[Turn] = []
        for item in raw:
            try:
                turns.append(Turn.model_validate_json(item))
            except ValidationError:
                logger.warning(
                    "skipping unreadable short-term entry",
                    extra={"conversation_id": conversation_id},
                )
        return turns

    async def clear(self, conversation_id: str) -> None:
        """Forget the conversation's turns (erasure, or a conversation that ended)."""
        try:
            await self._redis.delete(self.key(conversation_id))
        except RedisError as exc:
            raise StoreError("short-term memory clear failed") from exc
