"""Knowledge base on real PostgreSQL + pgvector: ingest, hybrid search, isolation, versions."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from kefu_memory import (
    EmbedderMismatchError,
    KnowledgeBase,
    OfflineEmbedder,
    UnsupportedContentType,
)

RETURNS_MD = """# 退货政策

## 七天无理由退货
自签收之日起七天内，商品完好且不影响二次销售的，可以申请无理由退货。退货运费由买家承担。

## 退款时效
退货入库后，退款将在 3 个工作日内原路退回。

# Shipping

## Delivery times
Orders ship within 24 hours. Standard delivery takes 3-5 business days; express takes 1-2.
"""

FAQ_CSV = """question,answer
如何修改收货地址？,在订单发货前，可以在"我的订单"中修改收货地址。
Do you ship internationally?,"Yes, we ship to 40 countries; customs fees are paid by the buyer."
发票怎么开？,下单时选择开具电子发票，发货后发送到您的邮箱。
"""


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def assert_index_consistent(pool: AsyncConnectionPool, tenant_id: str) -> None:
    """Document frequencies and tenant statistics agree with the postings and chunks."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM (SELECT term, count(*) AS n FROM kb_postings"
            " WHERE tenant_id = %(t)s GROUP BY term) p FULL JOIN"
            " (SELECT term, df FROM kb_terms WHERE tenant_id = %(t)s) t USING (term)"
            " WHERE p.n IS DISTINCT FROM t.df",
            {"t": tenant_id},
        )
        assert await cur.fetchone() == (0,)
        cur = await conn.execute(
            "SELECT k.chunk_count = (SELECT count(*) FROM kb_chunks WHERE tenant_id = %(t)s),"
            " k.term_total = (SELECT coalesce(sum(term_count), 0) FROM kb_chunks"
            "   WHERE tenant_id = %(t)s) FROM kb_tenants k WHERE k.tenant_id = %(t)s",
            {"t": tenant_id},
        )
        assert await cur.fetchone() in ((True, True), None)


@pytest.fixture
def kb(memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder) -> KnowledgeBase:
    return KnowledgeBase(memory_pool, embedder)


async def test_hybrid_search_finds_chinese_and_english_answers(kb: KnowledgeBase) -> None:
    # GIVEN a tenant with a Markdown policy and an FAQ
    t = tenant()
    await kb.ingest_document(tenant_id=t, name="returns.md", content=RETURNS_MD,
                             content_type="text/markdown")
    await kb.ingest_document(tenant_id=t, name="faq.csv", content=FAQ_CSV, content_type="text/csv")
    # WHEN asked in Chinese and in English
    refund = await kb.search(t, "退款多久能到账？", k=3)
    address = await kb.search(t, "我想改一下收货地址", k=3)
    shipping = await kb.search(t, "how long does express delivery take", k=3)
    # THEN the passage holding the answer ranks first, with its heading path
    assert "3 个工作日" in refund[0].content
    assert refund[0].heading == "退货政策 > 退款时效"
    assert "修改收货地址" in address[0].content
    assert address[0].document == "faq.csv"
    assert "1-2" in shipping[0].content
    assert shipping[0].vector_rank is not None or shipping[0].keyword_rank is not None


async def test_keyword_and_vector_modes_each_work_alone(kb: KnowledgeBase) -> None:
    # GIVEN an FAQ
    t = tenant()
    await kb.ingest_document(tenant_id=t, name="faq.csv", content=FAQ_CSV, content_type="csv")
    # WHEN searching with only one side
    by_keyword = await kb.search(t, "发票", k=2, mode="keyword")
    by_vector = await kb.search(t, "电子发票怎么开", k=2, mode="vector")
    # THEN both find the invoice answer
    assert "发票" in by_keyword[0].content
    assert "发票" in by_vector[0].content


async def test_tenants_never_see_each_others_documents(kb: KnowledgeBase) -> None:
    # GIVEN two tenants, only the first has the FAQ
    a, b = tenant(), tenant()
    await kb.ingest_document(tenant_id=a, name="faq.csv", content=FAQ_CSV, content_type="csv")
    await kb.ingest_document(tenant_id=b, name="other.txt", content="营业时间：每天 9:00-18:00。",
                             content_type="text/plain")
    # WHEN tenant b asks about invoices
    hits = await kb.search(b, "发票怎么开", k=5)
    # THEN only b's own document can come back
    assert hits
    assert {h.document for h in hits} == {"other.txt"}
    assert await kb.search(tenant(), "发票怎么开", k=5) == []


async def test_reingest_replaces_chunks_and_bumps_version_only_on_change(
    kb: KnowledgeBase, memory_pool: AsyncConnectionPool
) -> None:
    # GIVEN a document ingested once
    t = tenant()
    assert await kb.kb_version(t) == "0"
    first = await kb.ingest_document(tenant_id=t, name="hours.txt",
                                     content="客服工作时间：周一至周五 9:00-18:00。",
                                     content_type="text/plain")
    assert first.changed and first.kb_version == "1"
    # WHEN the same content is ingested again
    again = await kb.ingest_document(tenant_id=t, name="hours.txt",
                                     content="客服工作时间：周一至周五 9:00-18:00。",
                                     content_type="text/plain")
    # THEN nothing changes
    assert not again.changed
    assert await kb.kb_version(t) == "1"
    # WHEN the content changes
    changed = await kb.ingest_document(tenant_id=t, name="hours.txt",
                                       content="客服工作时间：每天 8:00-22:00，节假日无休。",
                                       content_type="text/plain")
    # THEN the old chunks are gone, the new ones are found, and the version moved
    assert changed.changed and changed.document_id == first.document_id
    assert await kb.kb_version(t) == "2"
    hits = await kb.search(t, "客服工作时间", k=5)
    assert [h.content for h in hits] == ["客服工作时间：每天 8:00-22:00，节假日无休。"]
    stale = await kb.search(t, "周一至周五", k=5, mode="keyword")
    assert all("周一至周五" not in h.content for h in stale)
    await assert_index_consistent(memory_pool, t)


async def test_delete_document_and_folder_ingest_with_prune(
    kb: KnowledgeBase, tmp_path: Path, memory_pool: AsyncConnectionPool
) -> None:
    # GIVEN a folder with a Markdown file, an FAQ and a file type we do not read
    t = tenant()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "returns.md").write_text(RETURNS_MD, encoding="utf-8")
    (tmp_path / "faq.csv").write_text(FAQ_CSV, encoding="utf-8")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    # WHEN the folder is ingested
    results = await kb.ingest_folder(tenant_id=t, path=tmp_path)
    # THEN both documents are there under their relative names
    assert sorted(r.name for r in results) == ["faq.csv", "policies/returns.md"]
    # WHEN a file disappears and the folder is ingested with prune
    (tmp_path / "faq.csv").unlink()
    await kb.ingest_folder(tenant_id=t, path=tmp_path, prune=True)
    # THEN its document and chunks are gone
    assert await kb.document_names(t) == ["policies/returns.md"]
    assert await kb.search(t, "发票怎么开", k=5, mode="keyword") == []
    await assert_index_consistent(memory_pool, t)
    assert await kb.delete_document(tenant_id=t, name="policies/returns.md")
    assert not await kb.delete_document(tenant_id=t, name="policies/returns.md")
    await assert_index_consistent(memory_pool, t)


async def test_changed_embedder_is_detected_and_reembedded(
    memory_pool: AsyncConnectionPool,
) -> None:
    # GIVEN chunks stored by a 512-dimension embedder
    t = tenant()
    old = KnowledgeBase(memory_pool, OfflineEmbedder(dim=512))
    await old.ingest_document(tenant_id=t, name="faq.csv", content=FAQ_CSV, content_type="csv")
    # WHEN the deployment switches to another dimension
    new = KnowledgeBase(memory_pool, OfflineEmbedder(dim=256))
    # THEN the stale chunks are reported, vector search ignores them, and reembed fixes them
    assert await new.stale_chunks(t) == 3
    with pytest.raises(EmbedderMismatchError):
        await new.ensure_embedder(t)
    assert await new.search(t, "发票", k=3, mode="vector") == []
    assert await new.reembed(tenant_id=t) == 3
    assert await new.stale_chunks(t) == 0
    await new.ensure_embedder(t)
    assert "发票" in (await new.search(t, "电子发票怎么开", k=1, mode="vector"))[0].content
    # AND re-ingesting identical content under the old embedder is not a no-op for the new one
    result = await old.ingest_document(tenant_id=t, name="faq.csv", content=FAQ_CSV,
                                       content_type="csv")
    assert result.changed


async def test_unsupported_content_type_is_refused(kb: KnowledgeBase) -> None:
    # GIVEN / WHEN a PDF is offered / THEN it is refused before anything is stored
    with pytest.raises(UnsupportedContentType):
        await kb.ingest_document(tenant_id=tenant(), name="x.pdf", content="%PDF",
                                 content_type="application/pdf")


async def test_reads_leave_the_pools_connections_as_they_were(memory_dsn: str) -> None:
    # GIVEN a one-connection pool in the default (transactional) mode
    pool = AsyncConnectionPool(memory_dsn, min_size=1, max_size=1, open=False)
    await pool.open(wait=True)
    kb = KnowledgeBase(pool, OfflineEmbedder())
    t = tenant()
    await kb.ingest_document(tenant_id=t, name="faq.csv", content=FAQ_CSV, content_type="csv")
    # WHEN searching (reads run in autocommit to save round trips)
    assert await kb.search(t, "发票怎么开", k=1)
    # THEN the connection comes back non-autocommit and idle
    async with pool.connection() as conn:
        assert conn.autocommit is False
        assert conn.info.transaction_status.name == "IDLE"
    await pool.close()


async def test_documents_and_their_chunks_are_listed_per_tenant(kb: KnowledgeBase) -> None:
    # GIVEN a tenant with a Markdown page and an FAQ, and another tenant
    a, b = tenant(), tenant()
    await kb.ingest_document(tenant_id=a, name="returns.md", content=RETURNS_MD,
                             content_type=".md")
    await kb.ingest_document(tenant_id=a, name="faq.csv", content=FAQ_CSV, content_type=".csv")
    # WHEN the documents are listed
    listed = await kb.documents(a)
    # THEN each has its type and chunk count, by name
    assert [(d["name"], d["content_type"]) for d in listed] == [("faq.csv", ".csv"),
                                                                 ("returns.md", ".md")]
    assert all(d["chunks"] > 0 for d in listed)
    # WHEN a document's chunks are read
    chunks = await kb.chunks(tenant_id=a, name="returns.md")
    # THEN they come in order, as many as counted, with their headings
    assert chunks is not None and [c["ord"] for c in chunks] == sorted(c["ord"] for c in chunks)
    assert len(chunks) == next(d["chunks"] for d in listed if d["name"] == "returns.md")
    assert any("七天无理由退货" in c["heading"] for c in chunks)
    assert len(await kb.chunks(tenant_id=a, name="returns.md", limit=1) or []) == 1
    # AND another tenant sees neither the list nor the chunks
    assert await kb.documents(b) == []
    assert await kb.chunks(tenant_id=b, name="returns.md") is None
