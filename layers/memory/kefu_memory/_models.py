"""Pydantic models at the package boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Fact",
    "FactSource",
    "MemoryExport",
    "MemoryItem",
    "Passage",
    "RecallResult",
    "RecallSection",
    "StoredFact",
    "Turn",
]

FactKind = Literal["order", "address", "phone", "preference", "complaint", "promise", "other"]


def _now() -> datetime:
    return datetime.now(UTC)


class Turn(BaseModel):
    """One message of a conversation as short-term memory keeps it."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant", "agent", "system"]
    content: str
    seq: int | None = None
    at: datetime = Field(default_factory=_now)


class FactSource(BaseModel):
    """The message a fact came from."""

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    message_seq: int | None = None


class Fact(BaseModel):
    """A fact worth remembering about a customer, before it is stored.

    `key` identifies what the fact is about: two facts with the same key cannot both be current,
    so a new value supersedes the old one (for example `address:shipping`, `order:A123:status`,
    `promise:refund:A123`). Facts without a natural key get one from their normalised value.
    """

    model_config = ConfigDict(frozen=True)

    kind: FactKind
    key: str
    value: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    message_seq: int | None = None


class StoredFact(BaseModel):
    """A fact as long-term memory stores it, with its validity and provenance."""

    id: int
    tenant_id: str
    customer_id: str
    kind: str
    key: str
    value: str
    attributes: dict[str, Any]
    confidence: float
    extractor: str
    valid_from: datetime
    valid_to: datetime | None
    superseded_by: int | None
    seen_count: int
    source: FactSource | None
    sources: list[FactSource] = Field(default_factory=list)
    score: float | None = None

    @property
    def current(self) -> bool:
        return self.valid_to is None


class MemoryExport(BaseModel):
    """Everything long-term memory holds about one customer, history and provenance included."""

    tenant_id: str
    customer_id: str
    exported_at: datetime
    facts: list[StoredFact]


class Passage(BaseModel):
    """A knowledge-base chunk returned by search."""

    chunk_id: int
    document_id: int
    document: str
    heading: str
    content: str
    score: float
    vector_rank: int | None = None
    keyword_rank: int | None = None


class MemoryItem(BaseModel):
    """One line of recalled memory. `key` de-duplicates across sources (e.g. `order:A123`)."""

    model_config = ConfigDict(frozen=True)

    text: str
    key: str | None = None


class RecallSection(BaseModel):
    """What one source returned in time."""

    source: str
    title: str
    items: list[MemoryItem]
    elapsed_ms: float
    keep_latest: bool = False


class RecallResult(BaseModel):
    """Merged recall: sections per source, sources missing (late or failed), the prompt."""

    sections: list[RecallSection]
    missing: list[str]
    failed: list[str] = Field(default_factory=list)
    late: list[str] = Field(default_factory=list)
    elapsed_ms: float
    prompt: str
    tokens: int
    dropped_items: int = 0
