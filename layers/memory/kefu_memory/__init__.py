"""kefu_memory: short-term, long-term and business memory, recall, and the knowledge base.

Public surface (everything else is private):

- `ShortTermMemory`, `Turn`: the last turns of a conversation in Redis.
- `KnowledgeBase`, `Passage`, `IngestResult`: documents in pgvector, hybrid search, versions.
- `recall`, `RecallResult`, `RecallSection`, `MemoryItem`: parallel recall under one deadline.
- `Embedder`, `OfflineEmbedder`, `OpenAIEmbedder`: embedders behind one interface.
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
from ._migrations import migrate
from ._models import (
    Fact,
    FactSource,
    MemoryItem,
    Passage,
    RecallResult,
    RecallSection,
    StoredFact,
    Turn,
)
from .embedders import Embedder, OfflineEmbedder, OpenAIEmbedder
from .knowledge import IngestResult, KnowledgeBase
from .recall import recall
from .short_term import ShortTermMemory

__all__ = [
    "CrmError",
    "CrmNotFound",
    "Embedder",
    "EmbedderError",
    "EmbedderMismatchError",
    "ExtractionError",
    "Fact",
    "FactSource",
    "IngestError",
    "IngestResult",
    "KefuMemoryError",
    "KnowledgeBase",
    "MemoryItem",
    "MigrationError",
    "OfflineEmbedder",
    "OpenAIEmbedder",
    "Passage",
    "RecallResult",
    "RecallSection",
    "ShortTermMemory",
    "StoreError",
    "StoredFact",
    "Turn",
    "UnsupportedContentType",
    "migrate",
    "recall",
]
