"""The reply path's recall (kefu_core.answers.memory) searches the knowledge base with the
conversation: a follow-up gets the passage about the thing being discussed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from kefu_core.answers.memory import MemoryService, build_memory
from kefu_core.infra.settings import Settings
from kefu_memory import Turn
from tests.support.core import SECRET

STORES_MD = """# 静安店
营业时间：每天上午10点开门，晚上10点关门。

# 浦东店
营业时间：每天上午9点开门，晚上9点关门。

# 徐汇店
营业时间：每天上午11点开门，晚上8点关门。
"""

HOURS = {"静安店": "上午10点开门", "浦东店": "上午9点开门", "徐汇店": "上午11点开门"}


@pytest.fixture
async def memory(make_database: Callable[[], str], redis_url: str, redis_prefix: str
                 ) -> AsyncIterator[MemoryService]:
    dsn = make_database()
    settings = Settings(kefu_env="production", database_url=dsn, redis_url=redis_url,
                        redis_prefix=redis_prefix, token_secrets=[SECRET],
                        recall_deadline_ms=5000, knowledge_top_k=1)
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False)
    await pool.open(wait=True)
    client = aioredis.Redis.from_url(redis_url)
    service = await build_memory(settings, pool=pool, redis=client)
    await service.warm_up()
    yield service
    await service.aclose()
    await client.aclose()
    await pool.close()


async def test_a_follow_up_recalls_the_passage_of_the_store_being_discussed(
    memory: MemoryService,
) -> None:
    # GIVEN a tenant whose stores' opening hours differ only by the store
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await memory.knowledge.ingest_document(tenant_id=tenant, name="stores.md",
                                           content=STORES_MD, content_type="md")
    ask = {"tenant_id": tenant, "memory_id": "v-1", "crm_id": None, "question": "它几点开门？"}
    # AND a store that the question alone does not recall
    alone = await memory.recall(**ask)
    store, hours = next((s, h) for s, h in HOURS.items() if h not in alone.passages[0])
    # WHEN the same question follows a conversation about that store
    history = [Turn(role="user", content=f"{store}在哪里？", seq=1),
               Turn(role="assistant", content=f"{store}离地铁站很近。", seq=2)]
    context = await memory.recall(**ask, history=history)
    # THEN that store's hours are recalled, with the query that found them
    assert "knowledge" not in context.missing
    assert hours in context.passages[0]
    assert context.query == f"它几点开门？ {store}"
    assert context.query_source == "conversation"


async def test_the_search_results_after_the_models_go_to_the_offline_engine_alone(
    memory: MemoryService,
) -> None:
    # GIVEN three stores' opening hours and a model shown one passage (KNOWLEDGE_TOP_K=1)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await memory.knowledge.ingest_document(tenant_id=tenant, name="stores.md",
                                           content=STORES_MD, content_type="md")
    # WHEN a question is recalled
    context = await memory.recall(tenant_id=tenant, memory_id="v-1", crm_id=None,
                                  question="几点开门？")
    # THEN the model's passage comes first and the rest of the search (up to
    # OFFLINE_CANDIDATES) follows it for the offline engine, each passage once
    assert len(context.passages) == 1
    assert len(context.more_passages) == 2
    found = context.passages + context.more_passages
    assert all(any(hours in p for p in found) for hours in HOURS.values())
