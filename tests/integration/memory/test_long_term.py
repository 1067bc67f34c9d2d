"""Long-term memory on real PostgreSQL + pgvector: supersession, merging, export, erasure."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from kefu_memory import (
    ExtractionError,
    Fact,
    LlmExtractor,
    LongTermMemory,
    OfflineEmbedder,
    Turn,
)


def ids() -> tuple[str, str]:
    return f"t-{uuid.uuid4().hex[:8]}", f"cust-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ltm(memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder) -> LongTermMemory:
    return LongTermMemory(memory_pool, embedder)


async def test_a_changed_address_supersedes_the_old_one_with_validity_times(
    ltm: LongTermMemory,
) -> None:
    # GIVEN a customer whose address was remembered from conversation c1, message 3
    t, c = ids()
    first = await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c1",
        turns=[Turn(role="user", content="收货地址是北京市朝阳区建国路88号", seq=3)],
    )
    assert [o.action for o in first] == ["inserted"]
    # WHEN a later conversation gives a new address
    second = await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c2",
        turns=[Turn(role="user", content="地址改成上海市浦东新区世纪大道100号。", seq=7)],
    )
    # THEN the new fact supersedes the old one, which stays in history with its validity
    assert second[0].action == "superseded" and second[0].replaced_id == first[0].fact_id
    current = await ltm.facts(tenant_id=t, customer_id=c)
    new_address = "上海市浦东新区世纪大道100号"
    assert [(f.key, f.value) for f in current] == [("address:shipping", new_address)]
    history = await ltm.facts(tenant_id=t, customer_id=c, include_history=True)
    old, new = history
    assert old.valid_to is not None and old.valid_to == new.valid_from
    assert old.superseded_by == new.id and new.valid_to is None
    assert old.source is not None and (old.source.conversation_id, old.source.message_seq) == (
        "c1", 3)
    assert new.source is not None and new.source.message_seq == 7


async def test_the_same_fact_twice_is_merged_with_both_sources(ltm: LongTermMemory) -> None:
    # GIVEN a phone number remembered once
    t, c = ids()
    fact = Fact(kind="phone", key="phone", value="138 0013 8000", message_seq=1)
    await ltm.remember(tenant_id=t, customer_id=c, conversation_id="c1", facts=[fact])
    # WHEN the same number comes again, formatted differently
    again = Fact(kind="phone", key="phone", value="13800138000", message_seq=5)
    outcome = await ltm.remember(tenant_id=t, customer_id=c, conversation_id="c2", facts=[again])
    # THEN it is merged: one current fact, seen twice, both sources kept
    assert outcome[0].action == "merged"
    (stored,) = await ltm.facts(tenant_id=t, customer_id=c, include_history=True)
    assert stored.seen_count == 2
    assert [(s.conversation_id, s.message_seq) for s in stored.sources] == [("c1", 1), ("c2", 5)]


async def test_near_identical_preferences_are_merged(ltm: LongTermMemory) -> None:
    # GIVEN a preference
    t, c = ids()
    await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c1",
        turns=[Turn(role="user", content="以后请用顺丰快递发货。", seq=2)],
    )
    # WHEN nearly the same preference is stated again
    outcome = await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c2",
        turns=[Turn(role="user", content="以后请用顺丰快递发货吧", seq=4)],
    )
    # THEN it is merged into the existing fact instead of duplicated
    assert [o.action for o in outcome] == ["merged"]
    assert len(await ltm.facts(tenant_id=t, customer_id=c)) == 1


async def test_search_returns_current_facts_of_this_customer_only(ltm: LongTermMemory) -> None:
    # GIVEN two customers of one tenant with facts, and the same customer id in another tenant
    t, c = ids()
    other_tenant, _ = ids()
    turns = [
        Turn(role="user", content="我的订单号是SO20241120001，到现在还没收到货！", seq=1),
        Turn(role="assistant", content="我们会为您办理退款，并送您一张20元优惠券。", seq=2),
    ]
    await ltm.remember_exchange(tenant_id=t, customer_id=c, conversation_id="c1", turns=turns)
    await ltm.remember_exchange(
        tenant_id=t, customer_id="someone-else", conversation_id="c9",
        turns=[Turn(role="user", content="我的订单号是SO99999999，退款怎么还没到", seq=1)],
    )
    await ltm.remember_exchange(
        tenant_id=other_tenant, customer_id=c, conversation_id="c8",
        turns=[Turn(role="user", content="订单号 SO77777777 退款", seq=1)],
    )
    # WHEN searching this customer's memory about a refund
    hits = await ltm.search(t, c, "退款到哪一步了", k=10)
    # THEN the promise comes first and nothing of the other customers is there
    keys = [h.key for h in hits]
    assert keys[0] == "promise:refund:SO20241120001"
    assert "promise:coupon:SO20241120001" in keys and "order:SO20241120001" in keys
    assert all("99999999" not in h.value and "77777777" not in h.value for h in hits)
    assert all(h.customer_id == c and h.tenant_id == t for h in hits)


async def test_export_then_erase_removes_everything_and_logs_it(
    ltm: LongTermMemory, memory_dsn: str
) -> None:
    # GIVEN a customer with history, and a neighbour
    t, c = ids()
    addresses = ["地址是北京市海淀区中关村大街1号", "地址改为北京市海淀区学院路2号"]
    for seq, address in enumerate(addresses):
        await ltm.remember_exchange(
            tenant_id=t, customer_id=c, conversation_id="c1",
            turns=[Turn(role="user", content=address, seq=seq)],
        )
    await ltm.remember(
        tenant_id=t, customer_id="neighbour", conversation_id="c2",
        facts=[Fact(kind="phone", key="phone", value="13900000000")],
    )
    # WHEN the customer's memory is exported
    export = await ltm.export(tenant_id=t, customer_id=c)
    # THEN it holds both versions with their sources
    assert [f.current for f in export.facts] == [False, True]
    assert all(f.sources for f in export.facts)
    # WHEN it is erased
    erased = await ltm.erase(tenant_id=t, customer_id=c)
    # THEN nothing is left for the customer, the neighbour is untouched, the erasure is logged
    assert erased == 2
    assert (await ltm.export(tenant_id=t, customer_id=c)).facts == []
    assert await ltm.search(t, c, "地址", k=5) == []
    assert len(await ltm.facts(tenant_id=t, customer_id="neighbour")) == 1
    async with await psycopg.AsyncConnection.connect(memory_dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM mem_fact_sources s LEFT JOIN mem_facts f ON f.id = s.fact_id"
            " WHERE f.id IS NULL"
        )
        assert (await cur.fetchone()) == (0,)
        cur = await conn.execute(
            "SELECT facts_erased, customer_ref <> %s FROM mem_erasures WHERE tenant_id = %s",
            (c, t),
        )
        assert await cur.fetchall() == [(2, True)]


async def test_llm_extractor_is_used_and_falls_back_to_rules_on_bad_output(
    memory_pool: AsyncConnectionPool, embedder: OfflineEmbedder
) -> None:
    # GIVEN an LLM extractor whose model first answers well, then answers garbage
    answers = [
        '```json\n[{"kind": "preference", "key": "preference:contact", '
        '"value": "Prefers e-mail over phone calls", "message_seq": 4, "confidence": 0.9}]\n```',
        "Sorry, I cannot help with that.",
    ]
    prompts: list[str] = []

    async def complete(prompt: str) -> str:
        prompts.append(prompt)
        return answers.pop(0)

    ltm = LongTermMemory(memory_pool, embedder, extractor=LlmExtractor(complete))
    t, c = ids()
    turns = [Turn(role="user", content="Please email me, I don't like phone calls.", seq=4)]
    # WHEN two exchanges are remembered
    first = await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c", turns=turns
    )
    second = await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c",
        turns=[Turn(role="user", content="My order number is A10023.", seq=6)],
    )
    # THEN the first facts came from the model (with the exchange in its prompt) and the second
    # from the rule-based fallback
    assert "[seq=4] user: Please email me" in prompts[0]
    assert [o.key for o in first] == ["preference:contact"]
    assert [o.key for o in second] == ["order:A10023"]
    facts = {f.key: f for f in await ltm.facts(tenant_id=t, customer_id=c)}
    assert facts["preference:contact"].extractor == "llm"
    assert facts["order:A10023"].extractor == "rules-v1"
    # AND without a fallback the extraction error surfaces
    strict = LongTermMemory(
        memory_pool, embedder, extractor=LlmExtractor(complete), fallback_to_rules=False
    )
    answers.append("not json")
    with pytest.raises(ExtractionError):
        await strict.remember_exchange(tenant_id=t, customer_id=c, conversation_id="c", turns=turns)


async def test_similar_complaints_about_different_orders_stay_separate(
    ltm: LongTermMemory,
) -> None:
    # GIVEN a complaint about one order
    t, c = ids()
    text = ("My order #{} arrived damaged, the box was crushed and the screen is cracked,"
            " really unacceptable.")
    await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c1",
        turns=[Turn(role="user", content=text.format("A100231"), seq=1)],
    )
    # WHEN the same complaint (cosine similarity above the merge threshold) is made about
    # another order
    outcome = await ltm.remember_exchange(
        tenant_id=t, customer_id=c, conversation_id="c2",
        turns=[Turn(role="user", content=text.format("A100232"), seq=1)],
    )
    # THEN both complaints are kept
    assert "merged" not in [o.action for o in outcome]
    complaints = [f for f in await ltm.facts(tenant_id=t, customer_id=c) if f.kind == "complaint"]
    assert sorted(f.attributes["order_id"] for f in complaints) == ["A100231", "A100232"]
