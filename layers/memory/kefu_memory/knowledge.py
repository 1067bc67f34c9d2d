"""Knowledge base: ingest documents, chunk, embed, store in pgvector, search hybrid.

Search runs a vector query (HNSW, cosine) and a keyword query (BM25 over our own postings of
jieba words and CJK bigrams) concurrently, and fuses the two rankings with reciprocal rank
fusion. Every query is scoped to one tenant.

Ingesting a document under an existing name replaces its chunks when its content hash (or the
embedder) changed and does nothing otherwise; every change bumps the tenant's version
(`kb_version`), which response caches key on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from cachetools import TTLCache
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ._chunking import Chunk, chunk_document, content_kind
from ._db import read_connection
from ._errors import EmbedderMismatchError, IngestError, StoreError, UnsupportedContentType
from ._models import Passage
from ._text import keyword_terms
from .embedders import Embedder, to_pgvector
from .query import heading_keys

__all__ = ["IngestResult", "KnowledgeBase", "SearchMode"]

logger = logging.getLogger("kefu.memory.knowledge")

SearchMode = Literal["hybrid", "vector", "keyword"]
_BM25_K1 = 1.2
_BM25_B = 0.0
# Terms of a chunk's heading (document title, section path, FAQ question) count this many times:
# a simple field boost, so the entity or topic a chunk is about outweighs passing mentions.
HEADING_BOOST = 3
# Bump when chunking or term extraction changes, so unchanged documents are re-indexed once.
INDEX_FORMAT = "kb-2"


@dataclass(frozen=True)
class IngestResult:
    document_id: int
    name: str
    chunks: int
    changed: bool
    kb_version: str


@dataclass(frozen=True)
class _Stored:
    """A stored document: its id, content hash, chunk count, and whether the configured
    embedder (name and dimension) made all of its chunks."""

    id: int
    content_hash: str
    chunks: int
    same_embedder: bool

    def unchanged(self, digest: str) -> bool:
        """Re-ingesting content of hash ``digest`` would change nothing."""
        return self.content_hash == digest and self.same_embedder


@dataclass(frozen=True)
class _Prepared:
    chunks: list[Chunk]
    vectors: list[str]
    terms: list[dict[str, int]]


def _chunk_terms(chunk: Chunk) -> dict[str, int]:
    terms = keyword_terms(chunk.text)
    for term, count in keyword_terms(chunk.heading).items():
        terms[term] += HEADING_BOOST * count
    return dict(terms)


def _list_documents(root: Path) -> list[Path]:
    found: list[Path] = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            content_kind(file.suffix)
        except UnsupportedContentType:
            continue
        found.append(file)
    return found


class KnowledgeBase:
    """Tenant-scoped knowledge base over a psycopg async pool."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        embedder: Embedder,
        *,
        max_chunk_tokens: int = 200,
        overlap_tokens: int = 30,
        candidates: int = 40,
        rrf_k: int | None = None,
        ef_search: int = 40,
        bm25_k1: float = _BM25_K1,
        bm25_b: float = _BM25_B,
        vector_weight: float | None = None,
        keyword_weight: float = 1.0,
        max_df_ratio: float = 0.5,
        max_query_terms: int = 32,
        exact_max_chunks: int = 2000,
    ) -> None:
        """Search settings: `candidates` per side before fusion; `rrf_k` of reciprocal rank
        fusion; `ef_search` of the HNSW scan (at least `candidates` are asked for); BM25
        `bm25_k1`/`bm25_b` (b = 0: chunks are length-capped already, and length
        normalisation put short near-duplicate entries first in measurements);
        keyword terms found in more than `max_df_ratio` of the tenant's chunks are skipped
        (their BM25 weight is near zero and their postings are the longest), and at most
        `max_query_terms` of the rarest query terms are scored. Tenants with more than
        `exact_max_chunks` chunks are searched through the HNSW index, smaller ones exactly.

        Fusion defaults depend on the embedder: a semantic one (an API model) gets equal weight
        and `rrf_k` 60; a lexical one (`embedder.lexical`, like `OfflineEmbedder`) only sees
        what the keyword side sees, less sharply, so it gets weight 0.1 and `rrf_k` 5: it
        breaks ties and fills in when the keyword side finds little (measured on CrossWOZ by
        bench/retrieval_quality.py: any larger weight lowered recall@1)."""
        lexical = bool(getattr(embedder, "lexical", False))
        if vector_weight is None:
            vector_weight = 0.1 if lexical else 1.0
        if rrf_k is None:
            rrf_k = 5 if lexical else 60
        self._pool = pool
        self._embedder = embedder
        self._max_chunk_tokens = max_chunk_tokens
        self._overlap_tokens = overlap_tokens
        self._candidates = candidates
        self._rrf_k = rrf_k
        self._ef_search = ef_search
        self._bm25_k1 = bm25_k1
        self._bm25_b = bm25_b
        self._weights = (vector_weight, keyword_weight)
        self._max_df_ratio = max_df_ratio
        self._max_query_terms = max_query_terms
        self._exact_max_chunks = exact_max_chunks
        self._chunk_counts: TTLCache[str, int] = TTLCache(maxsize=10_000, ttl=60.0)

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    # ------------------------------------------------------------------ ingest

    async def _prepare(self, content: str, content_type: str) -> _Prepared:
        chunks = chunk_document(
            content,
            content_type,
            max_tokens=self._max_chunk_tokens,
            overlap_tokens=self._overlap_tokens,
        )
        if not chunks:
            raise IngestError("document has no text to index")
        texts = [c.embedding_text() for c in chunks]
        matrix = await self._embedder.embed(texts)
        terms = await asyncio.to_thread(lambda: [_chunk_terms(c) for c in chunks])
        return _Prepared(chunks=chunks, vectors=[to_pgvector(row) for row in matrix], terms=terms)

    async def ingest_document(
        self,
        *,
        tenant_id: str,
        name: str,
        content: str,
        content_type: str,
    ) -> IngestResult:
        """Add or replace one document (Markdown, plain text or FAQ CSV).

        Unchanged content (same hash, same embedder) is a no-op and keeps the version.
        """
        content_kind(content_type)  # raises UnsupportedContentType early
        settings = f"{INDEX_FORMAT}:{self._max_chunk_tokens}:{self._overlap_tokens}"
        digest = hashlib.sha256(f"{settings}\n{content_type}\n{content}".encode()).hexdigest()
        existing = await self._existing(tenant_id, name)
        if existing is not None and existing.unchanged(digest):
            return IngestResult(
                document_id=existing.id,
                name=name,
                chunks=existing.chunks,
                changed=False,
                kb_version=await self.kb_version(tenant_id),
            )
        prepared = await self._prepare(content, content_type)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                # Lock the tenant row first: serialises writers of one tenant, bumps the version.
                cur = await conn.execute(
                    "INSERT INTO kb_tenants (tenant_id) VALUES (%s) "
                    "ON CONFLICT (tenant_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id "
                    "RETURNING version",
                    (tenant_id,),
                )
                stored = await self._stored(conn, tenant_id, name)
                if stored is not None and stored.unchanged(digest):
                    version = await self._version(conn, tenant_id)
                    return IngestResult(stored.id, name, stored.chunks, False, version)
                removed_chunks, removed_terms = 0, 0
                if stored is not None:
                    document_id = stored.id
                    await self._forget_terms(conn, tenant_id, document_id)
                    cur = await conn.execute(
                        "DELETE FROM kb_chunks WHERE document_id = %s RETURNING term_count",
                        (document_id,),
                    )
                    gone = await cur.fetchall()
                    removed_chunks, removed_terms = len(gone), sum(int(r[0]) for r in gone)
                    await conn.execute(
                        "UPDATE kb_documents SET content_hash = %s, content_type = %s, "
                        "chunk_count = %s, updated_at = now() WHERE id = %s",
                        (digest, content_type, len(prepared.chunks), document_id),
                    )
                else:
                    cur = await conn.execute(
                        "INSERT INTO kb_documents (tenant_id, name, content_type, content_hash,"
                        " chunk_count) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                        (tenant_id, name, content_type, digest, len(prepared.chunks)),
                    )
                    inserted = await cur.fetchone()
                    assert inserted is not None
                    document_id = int(inserted[0])
                added_terms = await self._write_chunks(conn, tenant_id, document_id, prepared)
                cur = await conn.execute(
                    "UPDATE kb_tenants SET version = version + 1, updated_at = now(), "
                    "chunk_count = chunk_count + %s, term_total = term_total + %s "
                    "WHERE tenant_id = %s RETURNING version",
                    (
                        len(prepared.chunks) - removed_chunks,
                        added_terms - removed_terms,
                        tenant_id,
                    ),
                )
                bumped = await cur.fetchone()
                assert bumped is not None
        except psycopg.Error as exc:
            raise StoreError("knowledge-base ingest failed") from exc
        logger.info(
            "ingested document",
            extra={"tenant_id": tenant_id, "document": name, "chunks": len(prepared.chunks)},
        )
        return IngestResult(document_id, name, len(prepared.chunks), True, str(bumped[0]))

    async def _write_chunks(
        self,
        conn: psycopg.AsyncConnection[Any],
        tenant_id: str,
        document_id: int,
        prepared: _Prepared,
    ) -> int:
        n = len(prepared.chunks)
        cur = await conn.execute(
            "SELECT nextval('kb_chunks_id_seq') FROM generate_series(1, %s)", (n,)
        )
        ids = [int(r[0]) for r in await cur.fetchall()]
        term_counts = [sum(t.values()) for t in prepared.terms]
        async with conn.cursor().copy(
            "COPY kb_chunks (id, document_id, tenant_id, ord, heading, content, term_count,"
            " embedder, dim, embedding) FROM STDIN"
        ) as copy:
            for i, chunk in enumerate(prepared.chunks):
                await copy.write_row(
                    (
                        ids[i],
                        document_id,
                        tenant_id,
                        i,
                        chunk.heading,
                        chunk.text,
                        term_counts[i],
                        self._embedder.name,
                        self._embedder.dim,
                        prepared.vectors[i],
                    )
                )
        async with conn.cursor().copy(
            "COPY kb_postings (tenant_id, term, chunk_id, tf, doc_len) FROM STDIN"
        ) as copy:
            for i, terms in enumerate(prepared.terms):
                for term, tf in terms.items():
                    await copy.write_row((tenant_id, term, ids[i], tf, term_counts[i]))
        await conn.execute(
            "INSERT INTO kb_terms (tenant_id, term, df)"
            " SELECT %s, term, count(*) FROM kb_postings WHERE chunk_id = ANY(%s) GROUP BY term"
            " ON CONFLICT (tenant_id, term) DO UPDATE SET df = kb_terms.df + EXCLUDED.df",
            (tenant_id, ids),
        )
        return sum(term_counts)

    @staticmethod
    async def _forget_terms(
        conn: psycopg.AsyncConnection[Any], tenant_id: str, document_id: int
    ) -> None:
        """Lower the document frequencies of the terms of a document about to be removed."""
        await conn.execute(
            "UPDATE kb_terms t SET df = t.df - s.n FROM ("
            "  SELECT p.term, count(*) AS n FROM kb_postings p"
            "  JOIN kb_chunks c ON c.id = p.chunk_id WHERE c.document_id = %s GROUP BY p.term"
            ") s WHERE t.tenant_id = %s AND t.term = s.term",
            (document_id, tenant_id),
        )
        await conn.execute(
            "DELETE FROM kb_terms WHERE tenant_id = %s AND df <= 0", (tenant_id,)
        )

    async def _stored(
        self, conn: psycopg.AsyncConnection[Any], tenant_id: str, name: str
    ) -> _Stored | None:
        """The document named ``name`` as stored, or None."""
        cur = await conn.execute(
            "SELECT d.id, d.content_hash, d.chunk_count,"
            " coalesce(bool_and(c.embedder = %s AND c.dim = %s), true) "
            "FROM kb_documents d LEFT JOIN kb_chunks c ON c.document_id = d.id "
            "WHERE d.tenant_id = %s AND d.name = %s GROUP BY d.id",
            (self._embedder.name, self._embedder.dim, tenant_id, name),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        return _Stored(id=int(row[0]), content_hash=str(row[1]), chunks=int(row[2]),
                       same_embedder=bool(row[3]))

    async def _existing(self, tenant_id: str, name: str) -> _Stored | None:
        try:
            async with read_connection(self._pool) as conn:
                return await self._stored(conn, tenant_id, name)
        except psycopg.Error as exc:
            raise StoreError("knowledge-base lookup failed") from exc

    async def ingest_folder(
        self, *, tenant_id: str, path: str | Path, prune: bool = False
    ) -> list[IngestResult]:
        """Ingest every .md/.markdown/.txt/.csv file under `path` (names are relative paths).

        With `prune`, documents of the tenant that are no longer in the folder are deleted.
        """
        root = Path(path)
        results: list[IngestResult] = []
        seen: set[str] = set()
        files = await asyncio.to_thread(_list_documents, root)
        for file in files:
            name = file.relative_to(root).as_posix()
            seen.add(name)
            text = await asyncio.to_thread(file.read_text, encoding="utf-8-sig")
            results.append(
                await self.ingest_document(
                    tenant_id=tenant_id, name=name, content=text, content_type=file.suffix
                )
            )
        if prune:
            for name in set(await self.document_names(tenant_id)) - seen:
                await self.delete_document(tenant_id=tenant_id, name=name)
        return results

    async def document_names(self, tenant_id: str) -> list[str]:
        async with read_connection(self._pool) as conn:
            cur = await conn.execute(
                "SELECT name FROM kb_documents WHERE tenant_id = %s ORDER BY name", (tenant_id,)
            )
            return [str(r[0]) for r in await cur.fetchall()]

    async def documents(self, tenant_id: str) -> list[dict[str, Any]]:
        """Each document's name, content type, chunk count and last update, by name."""
        try:
            async with read_connection(self._pool) as conn:
                cur = await conn.execute(
                    "SELECT name, content_type, chunk_count, updated_at FROM kb_documents"
                    " WHERE tenant_id = %s ORDER BY name", (tenant_id,)
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("knowledge-base listing failed") from exc
        return [{"name": str(r[0]), "content_type": str(r[1]), "chunks": int(r[2]),
                 "updated_at": r[3]} for r in rows]

    async def chunks(self, *, tenant_id: str, name: str, limit: int = 200,
                     ) -> list[dict[str, Any]] | None:
        """The first ``limit`` chunks of a document in order (heading and content), or None
        when the tenant has no document of that name."""
        try:
            async with read_connection(self._pool) as conn:
                cur = await conn.execute(
                    "SELECT id FROM kb_documents WHERE tenant_id = %s AND name = %s",
                    (tenant_id, name),
                )
                doc = await cur.fetchone()
                if doc is None:
                    return None
                cur = await conn.execute(
                    "SELECT ord, heading, content FROM kb_chunks WHERE document_id = %s"
                    " AND tenant_id = %s ORDER BY ord LIMIT %s", (doc[0], tenant_id, limit)
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("knowledge-base chunk listing failed") from exc
        return [{"ord": int(r[0]), "heading": str(r[1]), "content": str(r[2])} for r in rows]

    async def delete_document(self, *, tenant_id: str, name: str) -> bool:
        """Delete a document and its chunks; bumps the version when something was deleted."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO kb_tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING",
                    (tenant_id,),
                )
                await conn.execute(
                    "SELECT 1 FROM kb_tenants WHERE tenant_id = %s FOR UPDATE", (tenant_id,)
                )
                cur = await conn.execute(
                    "SELECT id FROM kb_documents WHERE tenant_id = %s AND name = %s",
                    (tenant_id, name),
                )
                doc = await cur.fetchone()
                if doc is not None:
                    await self._forget_terms(conn, tenant_id, int(doc[0]))
                cur = await conn.execute(
                    "DELETE FROM kb_chunks c USING kb_documents d WHERE c.document_id = d.id"
                    " AND d.tenant_id = %s AND d.name = %s RETURNING c.term_count",
                    (tenant_id, name),
                )
                gone = await cur.fetchall()
                cur = await conn.execute(
                    "DELETE FROM kb_documents WHERE tenant_id = %s AND name = %s RETURNING id",
                    (tenant_id, name),
                )
                if await cur.fetchone() is None:
                    return False
                await conn.execute(
                    "UPDATE kb_tenants SET version = version + 1, updated_at = now(),"
                    " chunk_count = chunk_count - %s, term_total = term_total - %s"
                    " WHERE tenant_id = %s",
                    (len(gone), sum(int(r[0]) for r in gone), tenant_id),
                )
                return True
        except psycopg.Error as exc:
            raise StoreError("knowledge-base delete failed") from exc

    # ------------------------------------------------------------------ version

    @staticmethod
    async def _version(conn: psycopg.AsyncConnection[Any], tenant_id: str) -> str:
        cur = await conn.execute(
            "SELECT version FROM kb_tenants WHERE tenant_id = %s", (tenant_id,)
        )
        row = await cur.fetchone()
        return str(row[0]) if row else "0"

    async def kb_version(self, tenant_id: str) -> str:
        """The tenant's knowledge-base version; it changes whenever its content changes."""
        try:
            async with read_connection(self._pool) as conn:
                return await self._version(conn, tenant_id)
        except psycopg.Error as exc:
            raise StoreError("knowledge-base version lookup failed") from exc

    # ------------------------------------------------------------------ search

    async def search(
        self,
        tenant_id: str,
        query: str,
        k: int = 5,
        *,
        mode: SearchMode = "hybrid",
        prefer: Sequence[str] = (),
        pin: Sequence[str] = (),
    ) -> list[Passage]:
        """The k best passages of the tenant's knowledge base for `query`.

        `prefer` lists entity names (as `EntityIndex.find` returns them, best first): among the
        candidates, passages whose heading names one of them come first, in that order (the
        conversation said what the question is about; the ranking decides among its passages).
        `pin` lists documents to put first whether the search found them or not (catalogue
        records matched on the visitor's conditions, `RecordIndex.rank`), one passage each:
        the best-ranked of theirs the search found, else their first chunk.
        """
        if not query.strip() or k < 1:
            return []
        n = max(self._candidates, k)
        pin = list(dict.fromkeys(pin))[:k]
        try:
            if mode == "vector":
                searched = self._vector(tenant_id, query, n)
            elif mode == "keyword":
                searched = self._keyword(tenant_id, query, n)
            else:
                searched = self._hybrid(tenant_id, query, n)
            if pin:
                found, pinned = await asyncio.gather(searched, self._first_chunks(tenant_id, pin))
            else:
                found, pinned = await searched, []
        except psycopg.Error as exc:
            raise StoreError("knowledge-base search failed") from exc
        return self._pinned(pinned, self._prefer(found, prefer))[:k]

    async def _hybrid(self, tenant_id: str, query: str, n: int) -> list[Passage]:
        by_vector, by_keyword = await asyncio.gather(
            self._vector(tenant_id, query, n), self._keyword(tenant_id, query, n)
        )
        return self._fuse(by_vector, by_keyword, n)

    async def _first_chunks(self, tenant_id: str, documents: Sequence[str]) -> list[Passage]:
        """The first chunk of each of `documents` (in that order; unknown names skipped)."""
        async with read_connection(self._pool) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT DISTINCT ON (d.name) c.id AS chunk_id, c.document_id,"
                " d.name AS document, c.heading, c.content, 0.0::float8 AS score"
                " FROM kb_documents d JOIN kb_chunks c ON c.document_id = d.id"
                " WHERE d.tenant_id = %s AND d.name = ANY(%s) ORDER BY d.name, c.ord",
                (tenant_id, list(documents)),
            )
            rows = await cur.fetchall()
        order = {name: i for i, name in enumerate(documents)}
        rows.sort(key=lambda r: order[r["document"]])
        return [Passage(**row) for row in rows]

    @staticmethod
    def _pinned(pinned: list[Passage], found: list[Passage]) -> list[Passage]:
        if not pinned:
            return found
        best: dict[str, Passage] = {}
        for passage in found:
            best.setdefault(passage.document, passage)
        first = [best.get(p.document, p) for p in pinned]
        taken = {p.chunk_id for p in first}
        return first + [p for p in found if p.chunk_id not in taken]

    @staticmethod
    def _prefer(passages: list[Passage], prefer: Sequence[str]) -> list[Passage]:
        if not prefer:
            return passages
        rank = {name: i for i, name in reversed(list(enumerate(prefer)))}
        first: list[tuple[int, int, Passage]] = []
        rest: list[Passage] = []
        for order, passage in enumerate(passages):
            hits = [rank[key] for key in heading_keys(passage.heading) if key in rank]
            if hits:
                first.append((min(hits), order, passage))
            else:
                rest.append(passage)
        return [p for _, _, p in sorted(first, key=lambda x: (x[0], x[1]))] + rest

    async def titles(self, tenant_id: str) -> list[tuple[str, str]]:
        """(document, heading) of every distinct heading of the tenant's chunks: the source
        of the entity names a conversation is matched against (`EntityIndex`)."""
        try:
            async with read_connection(self._pool) as conn:
                cur = await conn.execute(
                    "SELECT DISTINCT d.name, c.heading FROM kb_chunks c"
                    " JOIN kb_documents d ON d.id = c.document_id"
                    " WHERE c.tenant_id = %s AND c.heading <> ''",
                    (tenant_id,),
                )
                return [(str(r[0]), str(r[1])) for r in await cur.fetchall()]
        except psycopg.Error as exc:
            raise StoreError("knowledge-base titles lookup failed") from exc

    async def record_chunks(self, tenant_id: str, *, limit: int = 60_000
                            ) -> list[tuple[str, str, str]]:
        """(document, heading, content) of the chunks of the tenant's documents that hold
        ``key: value`` lines, in document and chunk order, at most `limit`: the source of
        `RecordIndex`."""
        try:
            async with read_connection(self._pool) as conn:
                cur = await conn.execute(
                    "SELECT d.name, c.heading, c.content FROM kb_chunks c"
                    " JOIN kb_documents d ON d.id = c.document_id"
                    " WHERE c.tenant_id = %s AND c.heading <> '' AND c.document_id IN"
                    " (SELECT document_id FROM kb_chunks WHERE tenant_id = %s"
                    "  AND (content LIKE %s OR content LIKE %s))"
                    " ORDER BY d.id, c.ord LIMIT %s",
                    (tenant_id, tenant_id, "%：%", "%:%", limit),
                )
                return [(str(r[0]), str(r[1]), str(r[2])) for r in await cur.fetchall()]
        except psycopg.Error as exc:
            raise StoreError("knowledge-base records lookup failed") from exc

    def _fuse(
        self, by_vector: Sequence[Passage], by_keyword: Sequence[Passage], k: int
    ) -> list[Passage]:
        scores: dict[int, float] = {}
        passages: dict[int, Passage] = {}
        vector_rank: dict[int, int] = {}
        keyword_rank: dict[int, int] = {}
        sides = (
            (by_vector, vector_rank, self._weights[0]),
            (by_keyword, keyword_rank, self._weights[1]),
        )
        for ranking, ranks, weight in sides:
            for rank, passage in enumerate(ranking, start=1):
                scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + weight / (
                    self._rrf_k + rank
                )
                passages.setdefault(passage.chunk_id, passage)
                ranks[passage.chunk_id] = rank
        best = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
        return [
            passages[cid].model_copy(
                update={
                    "score": scores[cid],
                    "vector_rank": vector_rank.get(cid),
                    "keyword_rank": keyword_rank.get(cid),
                }
            )
            for cid in best
        ]

    async def _vector(self, tenant_id: str, query: str, n: int) -> list[Passage]:
        matrix = await self._embedder.embed([query])
        dim = self._embedder.dim
        statement = sql.SQL(
            "SELECT c.id AS chunk_id, c.document_id, d.name AS document, c.heading, c.content,"
            " 1 - c.distance AS score "
            "FROM (SELECT id, document_id, heading, content,"
            "      (embedding::vector({dim})) <=> %(q)s::vector({dim}) AS distance"
            "      FROM kb_chunks WHERE tenant_id = %(t)s AND dim = {dim} AND embedder = %(e)s"
            "      ORDER BY (embedding::vector({dim})) <=> %(q)s::vector({dim}) LIMIT %(n)s) c "
            "JOIN kb_documents d ON d.id = c.document_id"
        ).format(dim=sql.Literal(dim))
        params = {"q": to_pgvector(matrix[0]), "t": tenant_id, "e": self._embedder.name, "n": n}
        async with read_connection(self._pool) as conn:
            use_index = await self._tenant_chunks(conn, tenant_id) > self._exact_max_chunks
            # One round trip: the settings and the query travel together in pipeline mode.
            async with conn.pipeline(), conn.transaction():
                await conn.execute(
                    sql.SQL("SET LOCAL hnsw.ef_search = {}").format(
                        sql.Literal(max(self._ef_search, n))
                    )
                )
                await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                if use_index:
                    # PostgreSQL underestimates an exact scan (a cast and a 512-float distance
                    # per row): on a large tenant make the HNSW index the only sort-free plan.
                    await conn.execute("SET LOCAL enable_sort = off")
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(statement, params)
            rows = await cur.fetchall()
        rows.sort(key=lambda r: (-r["score"], r["chunk_id"]))
        return [Passage(**row, vector_rank=i) for i, row in enumerate(rows, start=1)]

    async def _tenant_chunks(self, conn: psycopg.AsyncConnection[Any], tenant_id: str) -> int:
        """The tenant's chunk count, cached for a minute (it only steers the query plan)."""
        count = self._chunk_counts.get(tenant_id)
        if count is None:
            cur = await conn.execute(
                "SELECT chunk_count FROM kb_tenants WHERE tenant_id = %s", (tenant_id,)
            )
            row = await cur.fetchone()
            count = self._chunk_counts[tenant_id] = int(row[0]) if row else 0
        return count

    async def _keyword(self, tenant_id: str, query: str, n: int) -> list[Passage]:
        terms = keyword_terms(query)
        if not terms:
            return []
        statement = (
            "WITH q(term, qtf) AS (SELECT * FROM unnest(%(terms)s::text[], %(qtf)s::int[])),"
            " stats AS (SELECT greatest(chunk_count, 1)::float8 AS n,"
            "   greatest(term_total::float8 / greatest(chunk_count, 1), 1) AS avgdl"
            "   FROM kb_tenants WHERE tenant_id = %(t)s),"
            " w AS (SELECT q.term, q.qtf * ln(1 + (stats.n - t.df + 0.5) / (t.df + 0.5)) AS idf"
            "   FROM q JOIN kb_terms t ON t.tenant_id = %(t)s AND t.term = q.term"
            "   CROSS JOIN stats WHERE t.df <= greatest(stats.n * %(max_df)s, 2)"
            "   ORDER BY idf DESC LIMIT %(max_terms)s),"
            " scored AS (SELECT p.chunk_id, sum(w.idf * p.tf * (%(k1)s + 1) / (p.tf + %(k1)s *"
            "   (1 - %(b)s + %(b)s * p.doc_len / stats.avgdl))) AS score"
            "   FROM kb_postings p JOIN w USING (term) CROSS JOIN stats"
            "   WHERE p.tenant_id = %(t)s GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id"
            "   LIMIT %(n)s) "
            "SELECT c.id AS chunk_id, c.document_id, d.name AS document, c.heading, c.content,"
            " s.score FROM scored s JOIN kb_chunks c ON c.id = s.chunk_id"
            " JOIN kb_documents d ON d.id = c.document_id ORDER BY s.score DESC, c.id"
        )
        params = {
            "terms": list(terms.keys()),
            "qtf": list(terms.values()),
            "t": tenant_id,
            "n": n,
            "max_df": self._max_df_ratio,
            "max_terms": self._max_query_terms,
            "k1": self._bm25_k1,
            "b": self._bm25_b,
        }
        async with read_connection(self._pool) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(statement, params)
            rows = await cur.fetchall()
        return [Passage(**row, keyword_rank=i) for i, row in enumerate(rows, start=1)]

    # ------------------------------------------------------------------ maintenance

    async def stale_chunks(self, tenant_id: str) -> int:
        """How many of the tenant's chunks were embedded by another embedder (or dimension)."""
        async with read_connection(self._pool) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM kb_chunks WHERE tenant_id = %s"
                " AND (embedder <> %s OR dim <> %s)",
                (tenant_id, self._embedder.name, self._embedder.dim),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def ensure_embedder(self, tenant_id: str) -> None:
        """Raise `EmbedderMismatchError` when some of the tenant's chunks were embedded by
        another embedder or dimension (vector search ignores them until `reembed`)."""
        stale = await self.stale_chunks(tenant_id)
        if stale:
            raise EmbedderMismatchError(
                f"{stale} chunks of tenant {tenant_id!r} were not embedded by"
                f" {self._embedder.name}/{self._embedder.dim}; run reembed()"
            )

    async def reembed(self, *, tenant_id: str, batch: int = 256) -> int:
        """Re-embed the tenant's chunks made by another embedder; returns how many changed."""
        total = 0
        while True:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT id, heading, content FROM kb_chunks WHERE tenant_id = %s"
                    " AND (embedder <> %s OR dim <> %s) ORDER BY id LIMIT %s",
                    (tenant_id, self._embedder.name, self._embedder.dim, batch),
                )
                rows = await cur.fetchall()
                if not rows:
                    break
                texts = [Chunk(heading=r[1], text=r[2]).embedding_text() for r in rows]
                matrix = await self._embedder.embed(texts)
                async with conn.transaction():
                    async with conn.cursor() as wcur:
                        await wcur.executemany(
                            "UPDATE kb_chunks SET embedder = %s, dim = %s, embedding = %s::vector"
                            " WHERE id = %s",
                            [
                                (self._embedder.name, self._embedder.dim, to_pgvector(v), r[0])
                                for v, r in zip(matrix, rows, strict=True)
                            ],
                        )
                    await conn.execute(
                        "UPDATE kb_tenants SET version = version + 1, updated_at = now()"
                        " WHERE tenant_id = %s",
                        (tenant_id,),
                    )
            total += len(rows)
        return total
