"""kefu_memory: short-term, long-term and business memory, recall, and the knowledge base.

Public surface (everything else is private):

- `ShortTermMemory`, `Turn`: the last turns of a conversation in Redis.
- `KnowledgeBase`, `Passage`, `IngestResult`: documents in pgvector, hybrid search, versions.
- `build_query`, `condense_query`, `EntityIndex`, `SearchQuery`: the knowledge-search query
  of a reply, built from the recent turns (rules, or a language model under a deadline).
- `recall`, `RecallResult`, `RecallSection`, `MemoryItem`: parallel recall under one deadline.
- `gather_within`, `Gathered`: any awaitables in parallel under one deadline, with which of
  them were late or failed (recall runs on it).
- `LongTermMemory`, `Fact`, `StoredFact`, `MemoryExport`: customer facts with supersession,
  provenance, export and erasure; `RuleBasedExtractor`, `LlmExtractor` find facts in turns.
- `CrmClient`, `CustomerProfile`: business memory over the CRM HTTP contract
  (`kefu_memory.sample_crm` serves it with demo data).
- `short_term_source`, `long_term_source`, `crm_source`, `knowledge_source`: recall sources.
- `Embedder`, `OfflineEmbedder`, `OpenAIEmbedder`: embedders behind one interface.
- `normalize`, `words`, `keyword_terms`, `cjk_ngrams`: the Chinese-aware text helpers the
  keyword index uses (NFKC, jieba words, CJK bigrams), for callers that compare texts.
- `migrate`: idempotent schema migrations (`python -m kefu_memory.migrate --dsn ...`).
- `KefuMemoryError` and its subclasses (tree in `kefu_memory._errors`).
"""

from __future__ import annotations

from ._errors import (
    CrmError,
    CrmNotFound,
    EmbedderError,
    EmbedderMismatchError,
    ExtractionError,
    IngestError,
    KefuMemoryError,
    MigrationError,
    StoreError,
    UnsupportedContentType,
)
from ._gather import Gathered, gather_within
from ._migrations import migrate
from ._models import (
    Fact,
    FactSource,
    MemoryExport,
    MemoryItem,
    Passage,
    RecallResult,
    RecallSection,
    StoredFact,
    Turn,
)
from ._text import cjk_ngrams, keyword_terms, load_segmenter, normalize, words
from .crm import CrmClient, CrmCustomer, CrmOrder, CrmTicket, CustomerProfile
from .embedders import Embedder, OfflineEmbedder, OpenAIEmbedder
from .extraction import FactExtractor, LlmExtractor, RuleBasedExtractor
from .knowledge import IngestResult, KnowledgeBase
from .long_term import LongTermMemory, RememberOutcome
from .query import CondenseFn, EntityIndex, SearchQuery, build_query, condense_query
from .recall import recall
from .short_term import ShortTermMemory
from .sources import crm_source, knowledge_source, long_term_source, short_term_source

__all__ = [
    "CondenseFn",
    "CrmClient",
    "CrmCustomer",
    "CrmError",
    "CrmNotFound",
    "CrmOrder",
    "CrmTicket",
    "CustomerProfile",
    "Embedder",
    "EmbedderError",
    "EmbedderMismatchError",
    "EntityIndex",
    "ExtractionError",
    "Fact",
    "FactExtractor",
    "FactSource",
    "Gathered",
    "IngestError",
    "IngestResult",
    "KefuMemoryError",
    "KnowledgeBase",
    "LlmExtractor",
    "LongTermMemory",
    "MemoryExport",
    "MemoryItem",
    "MigrationError",
    "OfflineEmbedder",
    "OpenAIEmbedder",
    "Passage",
    "RecallResult",
    "RecallSection",
    "RememberOutcome",
    "RuleBasedExtractor",
    "SearchQuery",
    "ShortTermMemory",
    "StoreError",
    "StoredFact",
    "Turn",
    "UnsupportedContentType",
    "build_query",
    "cjk_ngrams",
    "condense_query",
    "crm_source",
    "gather_within",
    "keyword_terms",
    "knowledge_source",
    "long_term_source",
    "migrate",
    "normalize",
    "recall",
    "short_term_source",
    "warm_up",
    "words",
]


async def warm_up(embedder: Embedder | None = None) -> None:
    """Load the Chinese segmenter off the event loop and run the embedder once.

    Call it at cold start: the first segmentation would otherwise block the loop for most of
    a second.
    """
    import asyncio

    await asyncio.to_thread(load_segmenter)
    if embedder is not None:
        await embedder.embed(["预热 warm up"])
