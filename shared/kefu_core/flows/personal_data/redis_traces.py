"""What Redis holds about a customer, and its removal.

Keys under the deployment's prefix that can carry a customer's data:

- ``stm:{conversation}``: short-term memory, the recent turns in full text
  (``SHORT_TERM_TTL_S`` after the last write);
- ``conn:{connection}``: a live connection's record (visitor id, the signed-in customer's
  name, source address), with ``conv:{conversation}:conns`` listing a conversation's watchers;
- ``rc:{digest}``: cached replies (``CACHE_TTL_S``), keyed by a digest of the request, whose
  text may repeat what the customer wrote;
- ``ho:...`` handoff bookkeeping (conversation ids, failure counters): ids only.

Every step is a delete of what is there now, so running it twice is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from kefu_core.deps import Deps
from kefu_core.infra.errors import StoreError

__all__ = ["ConversationRef", "Texts", "purge_redis"]

logger = logging.getLogger("kefu.personal_data")

SCAN_COUNT = 1000
MIN_CONTAINED_CHARS = 4  # a visitor text shorter than this is matched only exactly


@dataclass(frozen=True)
class Texts:
    """What a cached reply of the customer's looks like: one of the replies they got (the cache
    stores exactly the text the conversation stored), or one holding something they wrote."""

    replies: frozenset[str] = frozenset()
    written: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.replies or self.written)

    def mentioned_in(self, value: str) -> bool:
        return value in self.replies or value in self.written or any(
            len(t) >= MIN_CONTAINED_CHARS and t in value for t in self.written)


@dataclass(frozen=True)
class ConversationRef:
    id: str
    assigned_agent: str | None = None


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def purge_redis(deps: Deps, *, tenant_id: str, subject: str,
                      conversations: list[ConversationRef], texts: Texts) -> dict[str, int]:
    """Remove the customer's traces from Redis; how many keys or records of each kind."""
    counts = {"short_term": 0, "connections": 0, "cached_replies": 0}
    prefix = deps.settings.redis_prefix
    handoff = deps.handoff
    try:
        if conversations:
            from kefu_memory.short_term import ShortTermMemory  # its key names, one source

            short_term = ShortTermMemory(deps.redis, prefix=prefix)
            counts["short_term"] = int(await deps.redis.delete(
                *[short_term.key(c.id) for c in conversations]))
        for conversation in conversations:
            counts["connections"] += await _close_connections(deps, conversation.id, subject)
            await handoff.dequeue(tenant_id=tenant_id, conversation_id=conversation.id)
            await handoff.reset_failures(conversation.id)
            if conversation.assigned_agent:
                await handoff.unbind(tenant_id=tenant_id, agent_id=conversation.assigned_agent,
                                     conversation_id=conversation.id)
        counts["cached_replies"] = await _purge_cached_replies(deps, texts)
    except RedisError as exc:
        raise StoreError("cannot erase the customer's data in Redis") from exc
    return counts


async def _close_connections(deps: Deps, conversation_id: str, subject: str) -> int:
    """Disconnect the customer's live connections to the conversation and drop their records
    (agents watching it keep theirs)."""
    closed = 0
    for connection_id in await deps.connections.watchers(conversation_id):
        record = await deps.connections.get(connection_id)
        if record is not None and (record.role != "visitor" or record.subject != subject):
            continue
        with contextlib.suppress(Exception):  # best effort: the record goes whatever happens
            await deps.poster.close(connection_id)
        await deps.connections.remove(connection_id, conversation_id=conversation_id)
        closed += 1 if record is not None else 0
    return closed


async def _purge_cached_replies(deps: Deps, texts: Texts) -> int:
    """Delete cached replies of the customer's. Dropping an unrelated entry too costs one model
    call; the scan walks the keyspace in steps of SCAN_COUNT, never blocking Redis."""
    if not texts:
        return 0
    pattern = _glob_escape(deps.settings.redis_prefix) + "rc:*"
    deleted = 0
    batch: list[Any] = []
    async for key in deps.redis.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= SCAN_COUNT:
            deleted += await _drop_mentions(deps, batch, texts)
            batch = []
    if batch:
        deleted += await _drop_mentions(deps, batch, texts)
    return deleted


async def _drop_mentions(deps: Deps, keys: list[Any], texts: Texts) -> int:
    values = await deps.redis.mget(keys)
    doomed = [key for key, raw in zip(keys, values, strict=True) if raw is not None
              and texts.mentioned_in(raw.decode("utf-8", "replace") if isinstance(raw, bytes)
                                     else str(raw))]
    return int(await deps.redis.delete(*doomed)) if doomed else 0
