"""Knowledge passages for a reply in a conversation: the function the product calls.

`ConversationRetriever.search` builds the query from the recent turns (`query.build_query`,
about a millisecond) over the tenant's entity names (`EntityIndex`) and catalogue records
(`RecordIndex`, for a request by properties), both rebuilt in the background when the knowledge
base's version changes, and searches with it. With a condenser (a language
model, injected), the rule-based search and the model's standalone question run concurrently;
the model's result is used only when it arrives within `condense_timeout_s`, so a slow or
failing model never delays the reply beyond the recall deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from ._errors import KefuMemoryError
from ._models import Passage, Turn
from .knowledge import KnowledgeBase
from .query import CondenseFn, EntityIndex, SearchQuery, build_query, condense_query
from .records import RecordIndex

__all__ = ["ConversationRetriever"]

logger = logging.getLogger("kefu.memory.retrieval")

_MAX_TENANTS = 1_000


class ConversationRetriever:
    """Conversation-aware knowledge search over one `KnowledgeBase`."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge
        self._indexes: dict[str, tuple[str, EntityIndex]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def entities(self, tenant_id: str, version: str, *, wait_s: float | None = None
                       ) -> EntityIndex:
        """The tenant's entity index for `version`. The first call for a tenant waits for it
        (at most `wait_s`; an empty index meanwhile); after a change the previous index serves
        while the new one is built."""
        hit = self._indexes.get(tenant_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        task = self._refreshing.get(tenant_id)
        if task is None or task.done():
            task = asyncio.create_task(self._refresh(tenant_id, version))
            self._refreshing[tenant_id] = task
        if hit is not None:
            return hit[1]
        try:
            await asyncio.wait_for(asyncio.shield(task), wait_s)
        except TimeoutError:
            logger.info("entity index not ready yet", extra={"tenant_id": tenant_id})
        fresh = self._indexes.get(tenant_id)
        return fresh[1] if fresh is not None else EntityIndex()

    def cached(self, tenant_id: str) -> EntityIndex | None:
        """The tenant's latest entity index already built (any version), without waiting or
        reading anything; None before its first."""
        hit = self._indexes.get(tenant_id)
        return hit[1] if hit is not None else None

    async def _refresh(self, tenant_id: str, version: str) -> None:
        """Entity names first (published at once: the first reply waits only for them), then
        the catalogue records (the previous ones serve until they are read)."""
        try:
            pairs = await self.knowledge.titles(tenant_id)
            index = await asyncio.to_thread(EntityIndex.from_headings, pairs)
        except (KefuMemoryError, OSError):
            logger.warning("entity index refresh failed", extra={"tenant_id": tenant_id})
            return
        previous = self._indexes.get(tenant_id)
        self._publish(tenant_id, version, dataclasses.replace(
            index, records=previous[1].records if previous is not None else None))
        try:
            chunks = await self.knowledge.record_chunks(tenant_id)
            records = await asyncio.to_thread(RecordIndex.from_chunks, chunks, index.kinds)
        except (KefuMemoryError, OSError):
            logger.warning("record index refresh failed", extra={"tenant_id": tenant_id})
            return
        self._publish(tenant_id, version, dataclasses.replace(index, records=records))

    def _publish(self, tenant_id: str, version: str, index: EntityIndex) -> None:
        if len(self._indexes) >= _MAX_TENANTS and tenant_id not in self._indexes:
            self._indexes.pop(next(iter(self._indexes)))
        self._indexes[tenant_id] = (version, index)

    def query(self, question: str, history: Sequence[Turn], index: EntityIndex) -> SearchQuery:
        """The rule-based query (pure; exposed for benchmarks and tests)."""
        return build_query(question, history, index, records=index.records)

    async def search(
        self,
        tenant_id: str,
        question: str,
        history: Sequence[Turn],
        *,
        k: int,
        version: str,
        condense: CondenseFn | None = None,
        condense_timeout_s: float = 0.15,
        index_wait_s: float | None = None,
        **search_options: Any,
    ) -> tuple[list[Passage], SearchQuery]:
        """The k passages for `question` after `history` (oldest first, question excluded),
        and the query that found them. `index_wait_s` bounds the wait for a tenant's first
        entity index (None: wait)."""
        index = await self.entities(tenant_id, version, wait_s=index_wait_s)
        rules = build_query(question, history, index, records=index.records)
        if condense is None or not history or (rules.source == "question" and rules.entities):
            return await self._run(tenant_id, rules, k, search_options), rules
        by_rules = asyncio.create_task(self._run(tenant_id, rules, k, search_options))

        async def condensed() -> tuple[list[Passage], SearchQuery]:
            query = await condense_query(question, history, complete=condense, fallback=rules,
                                         entities=index, timeout_s=condense_timeout_s)
            if query is rules:
                return await by_rules, rules
            return await self._run(tenant_id, query, k, search_options), query

        by_model = asyncio.create_task(condensed())
        done, _ = await asyncio.wait({by_model}, timeout=condense_timeout_s)
        if by_model in done and by_model.exception() is None:
            result = by_model.result()
            if result[1] is not rules:
                by_rules.cancel()
                by_rules.add_done_callback(_swallow)
            return result
        by_model.cancel()
        by_model.add_done_callback(_swallow)
        return await by_rules, rules

    async def _run(self, tenant_id: str, query: SearchQuery, k: int,
                   options: dict[str, Any]) -> list[Passage]:
        return await self.knowledge.search(tenant_id, query.text, k, prefer=query.entities,
                                           pin=query.documents, **options)


def _swallow(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
