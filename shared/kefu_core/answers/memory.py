"""Wiring of the memory layer (kefu_memory) into the chat flows.

Read path (inside the stream flow, before the model is called): knowledge passages, the CRM
record, long-term facts and the recent turns are fetched concurrently under one deadline
(``RECALL_DEADLINE_MS``); a late source is dropped and logged, never waited for.

Write path (after the reply was sent): the exchange goes to short-term memory and long-term
facts are extracted and stored; failures are logged and never reach the visitor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cachetools import TTLCache
from psycopg_pool import AsyncConnectionPool

from kefu_core.infra.settings import Settings
from kefu_core.infra.single_flight import SingleFlight
from kefu_memory import (
    CondenseFn,
    CrmClient,
    Embedder,
    KefuMemoryError,
    KnowledgeBase,
    OfflineEmbedder,
    OpenAIEmbedder,
    Passage,
    ShortTermMemory,
    Turn,
    gather_within,
)
from kefu_memory import migrate as migrate_memory
from kefu_memory import warm_up as warm_up_memory
from kefu_memory.long_term import LongTermMemory
from kefu_memory.recall import items_of, merge
from kefu_memory.retrieval import ConversationRetriever
from kefu_memory.sources import crm_source, long_term_source

__all__ = ["MemoryContext", "MemoryService", "build_memory", "passage_text"]

logger = logging.getLogger("kefu.memory")
KB_VERSION_TTL_S = 5.0
CONDENSE_SHARE = 0.75  # of the recall deadline, for the condensed query and its search
INDEX_WAIT_SHARE = 0.5  # of the recall deadline, for a tenant's first entity index


def passage_text(passage: Passage) -> str:
    """A passage as the engines see it: its section heading (``# path > title``) on the first
    line when the chunk text does not carry it (a FAQ chunk holds its question already), so a
    section that answers "how to claim the warranty" says it is about the warranty."""
    if passage.heading and passage.heading not in passage.content:
        return f"# {passage.heading}\n{passage.content}"
    return passage.content


@dataclass
class MemoryContext:
    passages: list[str] = field(default_factory=list)
    # The search results after ``passages`` (up to OFFLINE_CANDIDATES in all): the offline
    # engine judges them too; a model is never shown them.
    more_passages: list[str] = field(default_factory=list)
    kb_version: str = "0"
    memory_prompt: str = ""
    missing: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    query: str = ""  # what the knowledge base was searched with
    query_source: str = ""  # question / conversation / condensed


@dataclass(frozen=True)
class _Knowledge:
    """What the knowledge search of one reply found, and the query it used."""

    version: str
    passages: list[str] = field(default_factory=list)
    more_passages: list[str] = field(default_factory=list)
    query: str = ""
    query_source: str = ""


class MemoryService:
    def __init__(
        self,
        *,
        settings: Settings,
        knowledge: KnowledgeBase,
        short_term: ShortTermMemory,
        long_term: LongTermMemory,
        crm: CrmClient | None,
    ) -> None:
        self._settings = settings
        self.knowledge = knowledge
        self.retriever = ConversationRetriever(knowledge)
        self.short_term = short_term
        self.long_term = long_term
        self.crm = crm
        self._warm = False
        self._versions: TTLCache[str, str] = TTLCache(maxsize=10_000, ttl=KB_VERSION_TTL_S)
        self._reading: SingleFlight[str] = SingleFlight()

    async def warm_up(self) -> None:
        """Load the Chinese segmenter and the embedder off the event loop, once (its first use
        would otherwise block the loop for most of a second)."""
        if self._warm:
            return
        await warm_up_memory(self.knowledge.embedder)
        self._warm = True

    async def recall(
        self, *, tenant_id: str, memory_id: str, crm_id: str | None, question: str,
        history: Sequence[Turn] = (), condense: CondenseFn | None = None,
    ) -> MemoryContext:
        """Knowledge and customer memory for one reply, within the recall deadline.

        ``memory_id`` keys long-term facts (the visitor id: ``cust:<id>`` for a signed-in
        customer); ``crm_id`` is the CRM's customer id, None for an anonymous visitor.
        ``history`` is the conversation before the question (oldest first): the knowledge
        search carries its subject over to follow-ups; ``condense`` (a language model) may
        rewrite the question as a standalone query within part of the deadline."""
        deadline = self._settings.recall_deadline_ms / 1000
        sources = {"long_term": long_term_source(self.long_term, tenant_id=tenant_id,
                                                 customer_id=memory_id, query=question)}
        if self.crm is not None and crm_id:
            sources["crm"] = crm_source(self.crm, crm_id)
        gathered = await gather_within(
            deadline, **items_of(sources),
            knowledge=self._knowledge(tenant_id, question, history, condense, deadline),
        )
        result = merge(gathered, sources=list(sources),
                       token_budget=self._settings.memory_token_budget)
        context = MemoryContext(memory_prompt=result.prompt if result.tokens else "",
                                missing=list(result.missing), elapsed_ms=result.elapsed_ms)
        found = gathered.values.get("knowledge")
        if isinstance(found, _Knowledge):
            context.passages, context.kb_version = found.passages, found.version
            context.more_passages = found.more_passages
            context.query, context.query_source = found.query, found.query_source
        else:
            context.missing.append("knowledge")
        if context.missing:
            logger.info("recall dropped sources", extra={"missing": context.missing})
        return context

    async def _knowledge(
        self, tenant_id: str, question: str, history: Sequence[Turn],
        condense: CondenseFn | None, deadline_s: float,
    ) -> _Knowledge:
        started = time.monotonic()
        version = await self._kb_version(tenant_id)
        if version == "0":  # the tenant has never had a document: nothing to search
            return _Knowledge(version=version)
        # The model's query must arrive early enough for its own search to end in time.
        budget = CONDENSE_SHARE * deadline_s - (time.monotonic() - started)
        top_k = self._settings.knowledge_top_k
        # One search for both: the first top_k passages are the model's (the ranking does not
        # depend on k), the rest only the offline engine judges.
        passages, used = await self.retriever.search(
            tenant_id, question, history, k=max(top_k, self._settings.offline_candidates),
            version=version,
            condense=condense if budget > 0 else None, condense_timeout_s=max(budget, 0.0),
            index_wait_s=INDEX_WAIT_SHARE * deadline_s,
        )
        texts = [passage_text(p) for p in passages]
        return _Knowledge(passages=texts[:top_k], more_passages=texts[top_k:], version=version,
                          query=used.text, query_source=used.source)

    def term_finder(self, tenant_id: str) -> Callable[[str], list[str]] | None:
        """The words of a text the tenant's knowledge base names (entity names and catalogue
        values, `EntityIndex.terms_in`) from the index recall already built and caches per
        knowledge-base version; None when there is none yet (a compressed history keeps them
        whole: `answers.history.fit_history`)."""
        index = self.retriever.cached(tenant_id)
        return index.terms_in if index is not None and len(index) else None

    async def kb_version(self, tenant_id: str) -> str:
        """The tenant's knowledge-base version (cached as for recall)."""
        return await self._kb_version(tenant_id)

    async def _kb_version(self, tenant_id: str) -> str:
        """The knowledge-base version, read at most every KB_VERSION_TTL_S per process (a
        change reaches replies, and the response cache keyed on it, within that time)."""
        version = self._versions.get(tenant_id)
        if version is not None:
            return version
        # One read per tenant at a time: when the cached version expires, every reply then
        # starting would otherwise read it too (hundreds of pool checkouts under load).
        version = await self._reading.run(tenant_id,
                                          lambda: self.knowledge.kb_version(tenant_id))
        self._versions[tenant_id] = version
        return version

    @staticmethod
    def history_of(turns: list[Turn], *, question_seq: int, question: str) -> list[Turn] | None:
        """The recent turns plus the question, from the short-term turns the caller read (with
        ``short_term.queue_recent``, in a round trip of its own choosing), when they hold every
        turn up to the one before the question; else None (the caller reads PostgreSQL)."""
        if not turns or turns[-1].seq != question_seq - 1:
            return None
        return [*turns, Turn(role="user", content=question, seq=question_seq)]

    def queue_short_term(
        self, batch: Any, *, conversation_id: str, turns: list[Turn], answer: str,
        answer_seq: int, from_short_term: bool,
    ) -> None:
        """After a reply, short-term memory gets the question and the answer (or, when the
        history had to come from PostgreSQL, is rebuilt from it so the next reply reads Redis
        alone), queued on the caller's Redis transaction pipeline (the caller sends it with
        its other writes)."""
        answer_turn = Turn(role="assistant", content=answer, seq=answer_seq)
        if from_short_term:
            self.short_term.queue_extend(batch, conversation_id, [turns[-1], answer_turn])
        else:
            self.short_term.queue_clear(batch, conversation_id)
            self.short_term.queue_extend(batch, conversation_id, [*turns, answer_turn])

    async def remember_long_term(
        self, *, tenant_id: str, customer_id: str, conversation_id: str, turns: list[Turn],
        answer: str, answer_seq: int,
    ) -> None:
        """After a reply, long-term facts extracted from the exchange; never on the read
        path."""
        question = next((t for t in reversed(turns) if t.role == "user"), None)
        if question is None:
            return
        try:
            await self.long_term.remember_exchange(
                tenant_id=tenant_id, customer_id=customer_id, conversation_id=conversation_id,
                turns=[question, Turn(role="assistant", content=answer, seq=answer_seq)],
            )
        except (KefuMemoryError, OSError):
            logger.warning("long-term memory write failed", exc_info=True)

    async def ingest_folder(self, *, tenant_id: str, path: Path) -> int:
        results = await self.knowledge.ingest_folder(tenant_id=tenant_id, path=path)
        return len(results)

    async def aclose(self) -> None:
        if self.crm is not None:
            await self.crm.aclose()


def _embedder(settings: Settings) -> Embedder:
    if settings.embedder == "openai":
        return OpenAIEmbedder(model=settings.embedding_model, dim=settings.embedding_dim,
                              base_url=settings.embedding_base_url,
                              api_key=settings.embedding_api_key)
    if settings.embedder == "use-multilingual":
        from kefu_memory.use_embedder import USEMultilingualEmbedder

        return USEMultilingualEmbedder()
    return OfflineEmbedder()


def embedding_dim(settings: Settings) -> int:
    """The dimension of the configured embedder (its HNSW index is part of the schema)."""
    return _embedder(settings).dim


async def build_memory(
    settings: Settings, *, pool: AsyncConnectionPool, redis: aioredis.Redis
) -> MemoryService:
    """Build the service (stores are shared with the core); with ``SCHEMA_MIGRATIONS=apply``
    apply the memory schema first (on Lambda it was applied at deploy time and verified at
    cold start)."""
    embedder = _embedder(settings)
    if settings.schema_migrations == "apply":
        await migrate_memory(pool, dims=(embedder.dim,))  # the HNSW index for this dimension
    crm = None
    if settings.crm_url:
        from kefu_llm.netguard import guarded_transport

        # Every CRM connection goes only where OUTBOUND_* allows (checked on the resolved
        # address): a CRM on a private network must be allowed by the operator.
        crm = CrmClient(settings.crm_url, token=settings.crm_token or "",
                        transport=guarded_transport(settings.outbound_policy()))
    return MemoryService(
        settings=settings,
        knowledge=KnowledgeBase(pool, embedder),
        short_term=ShortTermMemory(redis, prefix=settings.redis_prefix,
                                   window=settings.context_window,
                                   ttl_s=settings.short_term_ttl_s),
        long_term=LongTermMemory(pool, embedder),
        crm=crm,
    )
