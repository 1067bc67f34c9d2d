"""Long-term memory: facts about a customer in PostgreSQL + pgvector.

Writing (after the reply, never on the read path):

- a fact whose key has a current fact with the same normalised value is merged into it
  (`seen_count` + 1, one more source row);
- a fact whose key has a current fact with another value supersedes it: the old row gets
  `valid_to = now()` and `superseded_by`, the new row starts `valid_from = now()`;
- a preference, complaint or other keyless fact that is nearly identical (cosine similarity
  above `merge_similarity`) to a current fact of the same kind about the same order (or both
  about none) is merged into it;
- every fact keeps the message it came from (conversation id + message seq).

Writers of one customer are serialised with a transaction-level advisory lock.
Reading returns current facts by vector similarity. `export` returns everything, history and
sources included; `erase` deletes everything and logs the erasure without the customer id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ._db import read_connection
from ._errors import ExtractionError, StoreError
from ._models import Fact, FactSource, MemoryExport, StoredFact, Turn
from ._text import normalize
from .embedders import Embedder, to_pgvector
from .extraction import FactExtractor, RuleBasedExtractor

__all__ = ["LongTermMemory", "RememberOutcome"]

logger = logging.getLogger("kefu.memory.long_term")

_NORM_RE = re.compile(r"[\W_]+", re.UNICODE)
_SIMILARITY_MERGE_KINDS = ("preference", "complaint", "other")
_COLUMNS = (
    "id, tenant_id, customer_id, kind, key, value, attributes, confidence, extractor,"
    " valid_from, valid_to, superseded_by, seen_count, source_conversation_id, source_seq"
)


@dataclass(frozen=True)
class RememberOutcome:
    """What happened to one fact: inserted, merged into `fact_id`, or superseded `replaced_id`."""

    action: Literal["inserted", "merged", "superseded"]
    fact_id: int
    key: str
    replaced_id: int | None = None


_PROMISE_LABELS = {
    "refund": "退款 refund",
    "coupon": "优惠券 coupon",
    "callback": "回电 call back",
}


def _embedding_text(fact: Fact) -> str:
    label = _PROMISE_LABELS.get(str(fact.attributes.get("promise", "")), "")
    return f"{fact.kind}: {label} {fact.value}" if label else f"{fact.kind}: {fact.value}"


def _order_id(fact: Fact) -> str | None:
    order = fact.attributes.get("order_id")
    return None if order is None else str(order)


def _value_norm(value: str) -> str:
    return _NORM_RE.sub("", normalize(value))


def _stored(row: dict[str, Any], sources: list[FactSource] | None = None) -> StoredFact:
    source = (
        FactSource(conversation_id=row["source_conversation_id"], message_seq=row["source_seq"])
        if row.get("source_conversation_id") is not None
        else None
    )
    return StoredFact(
        id=row["id"],
        tenant_id=row["tenant_id"],
        customer_id=row["customer_id"],
        kind=row["kind"],
        key=row["key"],
        value=row["value"],
        attributes=row["attributes"] or {},
        confidence=row["confidence"],
        extractor=row["extractor"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        superseded_by=row["superseded_by"],
        seen_count=row["seen_count"],
        source=source,
        sources=sources or [],
        score=row.get("score"),
    )


class LongTermMemory:
    """Customer facts with supersession, merging, provenance, export and erasure."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        embedder: Embedder,
        *,
        extractor: FactExtractor | None = None,
        fallback_to_rules: bool = True,
        merge_similarity: float = 0.9,
    ) -> None:
        """`extractor` defaults to the rule-based one; with another extractor (an LLM), its
        failures fall back to the rules unless `fallback_to_rules` is False."""
        self._pool = pool
        self._embedder = embedder
        rules = RuleBasedExtractor()
        self._extractor: FactExtractor = extractor or rules
        self._fallback: FactExtractor | None = (
            rules if fallback_to_rules and extractor is not None else None
        )
        self._merge_similarity = merge_similarity
        # The statements name the embedder's dimension: composed once, not on every reply.
        dim = sql.Literal(embedder.dim)
        self._search_sql = sql.SQL(
            "SELECT " + _COLUMNS + ", 1 - ((embedding::vector({dim})) <=> %(q)s::vector({dim}))"
            " AS score FROM mem_facts WHERE tenant_id = %(t)s AND customer_id = %(c)s"
            " AND valid_to IS NULL AND dim = {dim} AND embedder = %(e)s"
            " ORDER BY (embedding::vector({dim})) <=> %(q)s::vector({dim}), last_seen_at DESC"
            " LIMIT %(k)s"
        ).format(dim=dim)
        self._nearest_sql = sql.SQL(
            "SELECT id, value_norm, 1 - ((embedding::vector({dim})) <=> %s::vector({dim}))"
            " FROM mem_facts WHERE tenant_id = %s AND customer_id = %s AND kind = %s"
            " AND valid_to IS NULL AND dim = {dim} AND embedder = %s"
            " AND (attributes->>'order_id') IS NOT DISTINCT FROM %s"
            " ORDER BY (embedding::vector({dim})) <=> %s::vector({dim}) LIMIT 1"
        ).format(dim=dim)

    # ------------------------------------------------------------------ write

    async def remember_exchange(
        self,
        *,
        tenant_id: str,
        customer_id: str,
        conversation_id: str,
        turns: Sequence[Turn],
    ) -> list[RememberOutcome]:
        """Extract facts from a finished exchange and remember them (call after the reply)."""
        extractor = self._extractor
        try:
            facts = await extractor.extract(turns)
        except ExtractionError:
            if self._fallback is None:
                raise
            logger.warning(
                "fact extractor failed; using the fallback",
                extra={"extractor": extractor.name, "conversation_id": conversation_id},
            )
            extractor = self._fallback
            facts = await extractor.extract(turns)
        return await self.remember(
            tenant_id=tenant_id,
            customer_id=customer_id,
            conversation_id=conversation_id,
            facts=facts,
            extractor=extractor.name,
        )

    async def remember(
        self,
        *,
        tenant_id: str,
        customer_id: str,
        conversation_id: str,
        facts: Sequence[Fact],
        extractor: str = "manual",
    ) -> list[RememberOutcome]:
        """Store facts (each with the seq of its source message in `message_seq`)."""
        if not facts:
            return []
        matrix = await self._embedder.embed([_embedding_text(f) for f in facts])
        vectors = [to_pgvector(row) for row in matrix]
        outcomes: list[RememberOutcome] = []
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))",
                    (f"{tenant_id}\x1f{customer_id}",),
                )
                for fact, vector in zip(facts, vectors, strict=True):
                    outcomes.append(
                        await self._remember_one(
                            conn, tenant_id, customer_id, conversation_id, fact, vector, extractor
                        )
                    )
        except psycopg.Error as exc:
            raise StoreError("long-term memory write failed") from exc
        logger.info(
            "remembered facts",
            extra={
                "tenant_id": tenant_id,
                "conversation_id": conversation_id,
                "actions": [o.action for o in outcomes],
            },
        )
        return outcomes

    async def _remember_one(
        self,
        conn: psycopg.AsyncConnection[Any],
        tenant_id: str,
        customer_id: str,
        conversation_id: str,
        fact: Fact,
        vector: str,
        extractor: str,
    ) -> RememberOutcome:
        norm = _value_norm(fact.value)
        cur = await conn.execute(
            "SELECT id, value_norm FROM mem_facts WHERE tenant_id = %s AND customer_id = %s"
            " AND key = %s AND valid_to IS NULL FOR UPDATE",
            (tenant_id, customer_id, fact.key),
        )
        current = await cur.fetchone()
        if current is None and fact.kind in _SIMILARITY_MERGE_KINDS:
            cur = await conn.execute(
                self._nearest_sql,
                (
                    vector,
                    tenant_id,
                    customer_id,
                    fact.kind,
                    self._embedder.name,
                    _order_id(fact),
                    vector,
                ),
            )
            near = await cur.fetchone()
            if near is not None and float(near[2]) >= self._merge_similarity:
                current = (near[0], norm)  # treat as the same fact
        if current is not None and current[1] == norm:
            fact_id = int(current[0])
            await conn.execute(
                "UPDATE mem_facts SET seen_count = seen_count + 1, last_seen_at = now(),"
                " confidence = greatest(confidence, %s) WHERE id = %s",
                (fact.confidence, fact_id),
            )
            await self._add_source(conn, fact_id, conversation_id, fact.message_seq)
            return RememberOutcome("merged", fact_id, fact.key)
        replaced: int | None = None
        if current is not None:
            replaced = int(current[0])
            await conn.execute(
                "UPDATE mem_facts SET valid_to = now() WHERE id = %s", (replaced,)
            )
        cur = await conn.execute(
            "INSERT INTO mem_facts (tenant_id, customer_id, kind, key, value, value_norm,"
            " attributes, confidence, extractor, source_conversation_id, source_seq,"
            " embedder, dim, embedding)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s::vector)"
            " RETURNING id",
            (
                tenant_id,
                customer_id,
                fact.kind,
                fact.key,
                fact.value,
                norm,
                json.dumps(fact.attributes, ensure_ascii=False, default=str),
                fact.confidence,
                extractor,
                conversation_id,
                fact.message_seq,
                self._embedder.name,
                self._embedder.dim,
                vector,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        fact_id = int(row[0])
        await self._add_source(conn, fact_id, conversation_id, fact.message_seq)
        if replaced is not None:
            await conn.execute(
                "UPDATE mem_facts SET superseded_by = %s WHERE id = %s", (fact_id, replaced)
            )
            return RememberOutcome("superseded", fact_id, fact.key, replaced)
        return RememberOutcome("inserted", fact_id, fact.key)

    @staticmethod
    async def _add_source(
        conn: psycopg.AsyncConnection[Any], fact_id: int, conversation_id: str, seq: int | None
    ) -> None:
        await conn.execute(
            "INSERT INTO mem_fact_sources (fact_id, conversation_id, message_seq)"
            " VALUES (%s, %s, %s)",
            (fact_id, conversation_id, seq),
        )

    # ------------------------------------------------------------------ read

    async def search(
        self,
        tenant_id: str,
        customer_id: str,
        query: str,
        k: int = 8,
    ) -> list[StoredFact]:
        """The customer's current facts most similar to `query` (best first)."""
        if k < 1:
            return []
        matrix = await self._embedder.embed([query or " "])
        statement = self._search_sql
        params = {
            "q": to_pgvector(matrix[0]),
            "t": tenant_id,
            "c": customer_id,
            "e": self._embedder.name,
            "k": k,
        }
        try:
            async with read_connection(self._pool) as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(statement, params)
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("long-term memory search failed") from exc
        return [_stored(r) for r in rows]

    async def facts(
        self, *, tenant_id: str, customer_id: str, include_history: bool = False
    ) -> list[StoredFact]:
        """The customer's facts (current only, or with superseded ones), with all sources."""
        where = "" if include_history else " AND f.valid_to IS NULL"
        try:
            async with read_connection(self._pool) as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(
                    "SELECT "
                    + ", ".join(f"f.{c.strip()}" for c in _COLUMNS.split(","))
                    + ", coalesce((SELECT json_agg(json_build_object('conversation_id',"
                    " s.conversation_id, 'message_seq', s.message_seq) ORDER BY s.seen_at)"
                    " FROM mem_fact_sources s WHERE s.fact_id = f.id), '[]') AS all_sources"
                    " FROM mem_facts f WHERE f.tenant_id = %s AND f.customer_id = %s"
                    + where
                    + " ORDER BY f.valid_from, f.id",
                    (tenant_id, customer_id),
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("long-term memory read failed") from exc
        return [
            _stored(r, [FactSource.model_validate(s) for s in r["all_sources"]]) for r in rows
        ]

    async def export(self, *, tenant_id: str, customer_id: str) -> MemoryExport:
        """Everything remembered about the customer (for a data-access request)."""
        facts = await self.facts(tenant_id=tenant_id, customer_id=customer_id,
                                 include_history=True)
        return MemoryExport(
            tenant_id=tenant_id,
            customer_id=customer_id,
            exported_at=datetime.now(UTC),
            facts=facts,
        )

    async def erase(self, *, tenant_id: str, customer_id: str) -> int:
        """Delete every fact about the customer (history and sources too); return the count."""
        ref = hashlib.sha256(f"{tenant_id}\x00{customer_id}".encode()).hexdigest()
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))",
                    (f"{tenant_id}\x1f{customer_id}",),
                )
                await conn.execute(
                    "UPDATE mem_facts SET superseded_by = NULL"
                    " WHERE tenant_id = %s AND customer_id = %s",
                    (tenant_id, customer_id),
                )
                cur = await conn.execute(
                    "DELETE FROM mem_facts WHERE tenant_id = %s AND customer_id = %s",
                    (tenant_id, customer_id),
                )
                erased = int(cur.rowcount)
                await conn.execute(
                    "INSERT INTO mem_erasures (tenant_id, customer_ref, facts_erased)"
                    " VALUES (%s, %s, %s)",
                    (tenant_id, ref, erased),
                )
        except psycopg.Error as exc:
            raise StoreError("long-term memory erasure failed") from exc
        logger.info("erased customer memory", extra={"tenant_id": tenant_id, "facts": erased})
        return erased
