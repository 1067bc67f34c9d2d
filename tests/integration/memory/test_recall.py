"""Recall over the real stores: Redis, PostgreSQL + pgvector, and the sample CRM."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from kefu_memory import (
    CrmClient,
    KnowledgeBase,
    LongTermMemory,
    OfflineEmbedder,
    ShortTermMemory,
    Turn,
    crm_source,
    knowledge_source,
    long_term_source,
    recall,
    short_term_source,
)
from kefu_memory.sample_crm import create_app


async def test_recall_merges_all_sources_with_crm_first(
    memory_pool: AsyncConnectionPool,
    embedder: OfflineEmbedder,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    # GIVEN short-term turns, long-term facts (one about an order the CRM also knows), a KB
    tenant, customer, conversation = f"t-{uuid.uuid4().hex[:8]}", "c-1001", "conv-1"
    stm = ShortTermMemory(redis_client, prefix=redis_prefix)
    await stm.extend(conversation, [
        Turn(role="user", content="我的键盘订单SO20241120001到哪了？", seq=1),
        Turn(role="assistant", content="正在为您查询。", seq=2),
    ])
    ltm = LongTermMemory(memory_pool, embedder)
    await ltm.remember_exchange(
        tenant_id=tenant, customer_id=customer, conversation_id="old",
        turns=[
            Turn(role="user", content="订单号SO20241120001还没发货吗", seq=4),
            Turn(role="user", content="以后请用顺丰发货。", seq=5),
        ],
    )
    kb = KnowledgeBase(memory_pool, embedder)
    await kb.ingest_document(tenant_id=tenant, name="shipping.md", content_type="md",
                             content="# 物流\n顺丰快递一般 1-2 天送达，偏远地区 3-5 天。")
    crm = CrmClient("http://crm", token="demo-token",
                    transport=httpx.ASGITransport(app=create_app()))
    query = "我的订单什么时候到"
    # WHEN everything is recalled at once
    result = await recall(
        sources={
            "short_term": short_term_source(stm, conversation),
            "long_term": long_term_source(ltm, tenant_id=tenant, customer_id=customer,
                                          query=query),
            "crm": crm_source(crm, customer),
            "knowledge": knowledge_source(kb, tenant_id=tenant, query=query),
        },
        deadline_s=2.0,
    )
    await crm.aclose()
    # THEN every source arrived, the order is told once (by the CRM), and the prompt is ordered
    assert result.missing == []
    sections = {s.source: s for s in result.sections}
    assert [s.source for s in result.sections] == ["crm", "long_term", "short_term", "knowledge"]
    assert not any(i.key == "order:SO20241120001" for i in sections["long_term"].items)
    assert any("顺丰" in i.text for i in sections["long_term"].items)
    assert "[order]" not in result.prompt
    assert result.prompt.count("Order SO20241120001") == 1
    assert result.prompt.index("### Customer record") < result.prompt.index("### Recent")
    assert "1-2 天" in result.prompt


async def test_a_slow_crm_is_dropped_at_the_deadline_while_redis_and_postgres_answer(
    memory_pool: AsyncConnectionPool,
    embedder: OfflineEmbedder,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    # GIVEN a CRM that takes 3 s to answer, and real short- and long-term memory
    started_requests: list[float] = []
    finished_requests: list[float] = []

    async def slow_handler(request: httpx.Request) -> httpx.Response:
        started_requests.append(time.perf_counter())
        await asyncio.sleep(3)
        finished_requests.append(time.perf_counter())
        return httpx.Response(200, json={"id": "c-1", "name": "slow"})

    crm = CrmClient("http://crm", token="t", transport=httpx.MockTransport(slow_handler))
    stm = ShortTermMemory(redis_client, prefix=redis_prefix)
    await stm.append("conv", Turn(role="user", content="hello", seq=1))
    ltm = LongTermMemory(memory_pool, embedder)
    # WHEN recalled with the default 200 ms deadline
    t0 = time.perf_counter()
    result = await recall(
        sources={
            "crm": crm_source(crm, "c-1"),
            "long_term": long_term_source(ltm, tenant_id="t-x", customer_id="c-1", query="hi"),
            "short_term": short_term_source(stm, "conv"),
        },
    )
    elapsed = time.perf_counter() - t0
    # THEN recall returns at the deadline, the CRM is reported missing and was cancelled
    assert elapsed < 1.0
    assert result.missing == ["crm"] and result.late == ["crm"]
    assert [s.source for s in result.sections] == ["long_term", "short_term"]
    assert "user: hello" in result.prompt
    await asyncio.sleep(0.05)
    assert started_requests and not finished_requests
    await crm.aclose()
