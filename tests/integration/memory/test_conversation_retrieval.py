"""Conversation-aware knowledge search on real PostgreSQL + pgvector: a follow-up that does not
name its subject finds the passage about the thing being discussed, and only thanks to the
conversation."""

from __future__ import annotations

import asyncio
import uuid

from psycopg_pool import AsyncConnectionPool

from kefu_memory import KnowledgeBase, OfflineEmbedder, Turn
from kefu_memory.retrieval import ConversationRetriever

STORES_MD = """# 静安店
地址：上海市静安区南京西路1266号。

营业时间：每天上午10点开门，晚上10点关门。

# 浦东店
地址：上海市浦东新区世纪大道100号。

营业时间：每天上午9点开门，晚上9点关门。

# 徐汇店
地址：上海市徐汇区漕溪北路88号。

营业时间：每天上午11点开门，晚上8点关门。
"""

PRODUCTS_MD = """# Pro X headphones
## Returns
Pro X headphones can be returned within 30 days of delivery.
## Refund
Refunds for Pro X headphones are paid within 5 business days.

# Air Mini speaker
## Returns
The Air Mini speaker can be returned within 14 days of delivery.
## Refund
Refunds for the Air Mini speaker are paid within 10 business days.
"""


def user(text: str) -> Turn:
    return Turn(role="user", content=text)


def bot(text: str) -> Turn:
    return Turn(role="assistant", content=text)


async def _kb(pool: AsyncConnectionPool, embedder: OfflineEmbedder) -> tuple[KnowledgeBase, str]:
    kb = KnowledgeBase(pool, embedder)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await kb.ingest_document(tenant_id=tenant, name="stores.md", content=STORES_MD,
                             content_type="md")
    await kb.ingest_document(tenant_id=tenant, name="products.md", content=PRODUCTS_MD,
                             content_type="md")
    return kb, tenant


async def _delete(kb: KnowledgeBase, tenant: str) -> None:
    for name in await kb.document_names(tenant):
        await kb.delete_document(tenant_id=tenant, name=name)


async def test_a_chinese_follow_up_finds_the_store_being_discussed(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN three stores whose opening-hours passages differ only by the store
    kb, tenant = await _kb(memory_pool, embedder)
    retriever = ConversationRetriever(kb)
    version = await kb.kb_version(tenant)
    try:
        # AND the question alone does not find the Xuhui store first
        alone = await kb.search(tenant, "它几点开门？", k=3)
        assert "徐汇店" not in alone[0].heading
        # WHEN the visitor asks it after talking about the Xuhui store
        history = [user("徐汇店在哪里？"), bot("徐汇店在漕溪北路88号，欢迎光临。")]
        passages, query = await retriever.search(tenant, "它几点开门？", history, k=3,
                                                 version=version)
        # THEN the first passage is the Xuhui store's, with its opening hours
        assert passages[0].heading == "徐汇店"
        assert "上午11点开门" in passages[0].content
        assert query.source == "conversation"
    finally:
        await _delete(kb, tenant)


async def test_an_english_follow_up_finds_the_refund_of_the_product_being_discussed(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN two products with a refund section each
    kb, tenant = await _kb(memory_pool, embedder)
    retriever = ConversationRetriever(kb)
    version = await kb.kb_version(tenant)
    try:
        # AND "and the refund?" alone finds the other product's refund first
        alone = await kb.search(tenant, "and the refund?", k=3)
        assert alone[0].heading != "Air Mini speaker > Refund"
        # WHEN it follows a question about the Air Mini speaker, answered by the assistant
        history = [user("Can I return the speaker I bought?"),
                   bot("Yes, the Air Mini speaker can be returned within 14 days.")]
        passages, _ = await retriever.search(tenant, "and the refund?", history, k=3,
                                             version=version)
        # THEN the Air Mini speaker's refund passage comes first
        assert passages[0].heading == "Air Mini speaker > Refund"
        assert "10 business days" in passages[0].content
    finally:
        await _delete(kb, tenant)


async def test_the_entity_index_follows_knowledge_base_changes(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN a retriever that indexed the tenant's titles
    kb, tenant = await _kb(memory_pool, embedder)
    retriever = ConversationRetriever(kb)
    try:
        before = await retriever.entities(tenant, await kb.kb_version(tenant))
        assert before.find("长宁店") == []
        # WHEN a document with a new store is added (the version changes)
        await kb.ingest_document(tenant_id=tenant, name="more.md", content_type="md",
                                 content="# 长宁店\n营业时间：每天上午8点开门。")
        version = await kb.kb_version(tenant)
        await retriever.entities(tenant, version)  # serves the old index, rebuilds behind
        for _ in range(600):
            if (await retriever.entities(tenant, version)).find("长宁店"):
                break
            await asyncio.sleep(0.05)
        # THEN the new store is known by name
        assert (await retriever.entities(tenant, version)).find("长宁店") == ["长宁店"]
    finally:
        await _delete(kb, tenant)


async def test_a_failing_condenser_falls_back_to_the_conversation_query(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN a language model that fails
    kb, tenant = await _kb(memory_pool, embedder)
    retriever = ConversationRetriever(kb)

    async def broken(prompt: str) -> str:
        raise ConnectionError("engine unreachable")

    try:
        history = [user("浦东店在哪里？"), bot("浦东店在世纪大道100号。")]
        # WHEN a follow-up is searched with it
        passages, query = await retriever.search(
            tenant, "它几点开门？", history, k=3, version=await kb.kb_version(tenant),
            condense=broken, condense_timeout_s=5,
        )
        # THEN the rule-based query answered, and found the Pudong store
        assert query.source == "conversation"
        assert passages[0].heading == "浦东店"
    finally:
        await _delete(kb, tenant)


async def test_a_condensed_question_drives_the_search_when_it_arrives_in_time(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN a language model that rewrites the follow-up as a standalone question
    kb, tenant = await _kb(memory_pool, embedder)
    retriever = ConversationRetriever(kb)

    async def condense(prompt: str) -> str:
        return "静安店几点开门"

    try:
        # WHEN a follow-up that the rules would read otherwise is searched
        history = [user("你们有几家店？"), bot("我们在静安、浦东和徐汇各有一家店。")]
        passages, query = await retriever.search(
            tenant, "第一家几点开门？", history, k=3, version=await kb.kb_version(tenant),
            condense=condense, condense_timeout_s=5,
        )
        # THEN the model's question found the Jing'an store
        assert query.source == "condensed"
        assert passages[0].heading == "静安店"
    finally:
        await _delete(kb, tenant)


async def test_a_first_search_does_not_wait_for_the_entity_index_past_its_share(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN a process that has not indexed the tenant's titles yet
    kb, tenant = await _kb(memory_pool, embedder)
    retriever = ConversationRetriever(kb)
    version = await kb.kb_version(tenant)
    try:
        # WHEN its first search may not wait for the index at all
        history = [user("徐汇店在哪里？"), bot("徐汇店在漕溪北路88号。")]
        passages, query = await retriever.search(tenant, "它几点开门？", history, k=3,
                                                 version=version, index_wait_s=0)
        # THEN it still answers (with the previous question as the topic), and the index is
        # built behind it for the next search
        assert passages
        assert query.entities == ()
        for _ in range(600):
            if (await retriever.entities(tenant, version, wait_s=0)).find("徐汇店"):
                break
            await asyncio.sleep(0.05)
        _, later = await retriever.search(tenant, "它几点开门？", history, k=3, version=version)
        assert later.entities[0] == "徐汇店"
    finally:
        await _delete(kb, tenant)


CATALOGUE = {
    "如意酒店": "酒店类型：经济型\n\n酒店设施：无烟房、叫醒服务\n\n价格：260\n\n评分：4.6",
    "金都大酒店": "酒店类型：豪华型\n\n酒店设施：无烟房、健身房\n\n价格：1200\n\n评分：4.8",
    "平安旅馆": "酒店类型：经济型\n\n酒店设施：叫醒服务\n\n价格：180\n\n评分：4.1",
    "北京经济型酒店评分说明": "说明：经济型酒店评分4.5分以上即为优秀\n\n适用：所有酒店\n\n"
                           "价格：0",
}


async def test_a_request_by_properties_finds_the_catalogue_record_that_meets_them(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN a catalogue of hotels, one record per document, and a passage that repeats the
    # words of the question without being a hotel that meets them
    kb = KnowledgeBase(memory_pool, embedder)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    for name, body in CATALOGUE.items():
        await kb.ingest_document(tenant_id=tenant, name=f"{name}.md", content_type="md",
                                 content=f"# {name}（酒店）\n\n{body}")
    places = "".join(f"# {name}（景点）\n\n门票：{fee}\n\n评分：{rating}\n\n游玩时间：2小时\n\n"
                     for name, fee, rating in [("故宫", 60, 4.7), ("天坛", 15, 4.5),
                                               ("北海", 10, 4.4)])
    await kb.ingest_document(tenant_id=tenant, name="places.md", content_type="md",
                             content=places)
    retriever = ConversationRetriever(kb)
    version = await kb.kb_version(tenant)
    question = "帮我推荐一个评分4.5分以上、价格200-300元的经济型酒店"
    try:
        # AND the question alone does not find the matching hotel first
        alone = await kb.search(tenant, question, k=3)
        assert alone[0].document != "如意酒店.md"
        # WHEN the visitor asks for a pick by properties
        passages, query = await retriever.search(tenant, question, [], k=3, version=version)
        # THEN the one hotel that meets them all comes first, with its record
        assert query.source == "records"
        assert passages[0].document == "如意酒店.md"
        assert "价格：260" in passages[0].content
        assert len({p.chunk_id for p in passages}) == len(passages)
    finally:
        await _delete(kb, tenant)


async def test_the_record_index_follows_knowledge_base_changes(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN a retriever that indexed a catalogue of hotels
    kb = KnowledgeBase(memory_pool, embedder)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    for name, body in list(CATALOGUE.items())[:3]:
        await kb.ingest_document(tenant_id=tenant, name=f"{name}.md", content_type="md",
                                 content=f"# {name}（酒店）\n\n{body}")
    retriever = ConversationRetriever(kb)
    question = "推荐一个有桑拿的经济型酒店"
    try:
        _, before = await retriever.search(tenant, question, [], k=3,
                                           version=await kb.kb_version(tenant))
        assert "桑拿酒店.md" not in before.documents
        # WHEN a hotel with a sauna is added (the version changes)
        await kb.ingest_document(tenant_id=tenant, name="桑拿酒店.md", content_type="md",
                                 content="# 桑拿酒店（酒店）\n\n酒店类型：经济型\n\n"
                                         "酒店设施：桑拿、叫醒服务\n\n价格：300\n\n评分：4.2")
        version = await kb.kb_version(tenant)
        await retriever.entities(tenant, version)  # serves the old index, rebuilds behind
        for _ in range(600):
            index = await retriever.entities(tenant, version)
            if index.records is not None and index.records.is_name("桑拿酒店"):
                break
            await asyncio.sleep(0.05)
        passages, query = await retriever.search(tenant, question, [], k=3, version=version)
        # THEN the new hotel is the match
        assert query.documents[0] == "桑拿酒店.md"
        assert passages[0].document == "桑拿酒店.md"
    finally:
        await _delete(kb, tenant)
