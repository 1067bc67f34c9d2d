"""With no LLM configured, answers come from the tenant's knowledge base (offline engine)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.core import ROOT, SECRET
from tests.support.gateway import RunningGateway, gateway_for_test


@pytest.fixture(scope="module")
def gateway(make_database, redis_url) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    # These tests check what the answers say: a generous recall deadline, so a busy machine
    # cannot drop the knowledge search (the deadline itself is tested on its own).
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name="kb",
                          knowledge_dir=str(ROOT / "knowledge" / "demo"),
                          knowledge_tenant="shop", recall_deadline_ms=5000) as running:
        yield running


async def ask(gw: RunningGateway, tenant: str, text: str) -> dict:  # type: ignore[type-arg]
    token = issue_token(secrets=[SECRET], tenant_id=tenant, subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gw.ws}?token={token}") as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1", "text": text}))
        async with asyncio.timeout(10):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "final":
                    return frame  # type: ignore[no-any-return]


@pytest.mark.parametrize(("question", "expected"), [
    ("你好，我想退货，怎么操作？", "7天"),
    ("How long does shipping take?", "16:00"),
    ("电池保修多久？", "六个月"),
])
async def test_answer_is_grounded_in_the_knowledge_base(
    gateway: RunningGateway, question: str, expected: str
) -> None:
    # GIVEN the demo knowledge folder ingested for tenant "shop"
    # WHEN a visitor of that tenant asks
    final = await ask(gateway, "shop", question)
    # THEN the reply carries the fact from the knowledge base
    assert final["status"] == "complete"
    assert expected in final["text"]


async def test_another_tenant_does_not_see_that_knowledge(gateway: RunningGateway) -> None:
    # GIVEN a tenant with no documents / WHEN its visitor asks the same question
    final = await ask(gateway, "other-shop", "你好，我想退货，怎么操作？")
    # THEN nothing from tenant "shop" leaks into the answer
    assert "7天" not in final["text"]


async def test_short_term_memory_holds_the_conversation_after_each_reply(
    gateway: RunningGateway, redis_url: str
) -> None:
    # GIVEN a visitor who asks two questions on one connection
    token = issue_token(secrets=[SECRET], tenant_id="shop", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gateway.ws}?token={token}") as ws:
        for i, text in enumerate(("怎么退货？", "运费怎么算？")):
            await ws.send(json.dumps({"action": "message", "client_msg_id": f"c-{i}",
                                      "text": text}))
            async with asyncio.timeout(10):
                while (frame := json.loads(await ws.recv()))["type"] != "final":
                    conversation_id = frame.get("conversation_id", "")
    # THEN short-term memory in Redis holds all four turns in order, so the next reply reads
    # its history without a database query
    prefix = gateway.gateway.settings.redis_prefix
    r = redis.Redis.from_url(redis_url)
    raw = r.lrange(f"{prefix}stm:{conversation_id}", 0, -1)
    r.close()
    turns = [json.loads(item) for item in raw]
    assert [(t["role"], t["seq"]) for t in turns] == [("user", 1), ("assistant", 2),
                                                      ("user", 3), ("assistant", 4)]
    assert turns[2]["content"] == "运费怎么算？"


@pytest.mark.parametrize(("question", "caveat"), [
    ("手机不小心进水了，还能免费保修吗", "进水和私自拆机不在保修范围内"),
    ("My phone fell in the pool, will the warranty cover it?",
     "water damage and unauthorised repairs are not covered"),
])
async def test_a_grounded_answer_keeps_its_caveat(
    gateway: RunningGateway, question: str, caveat: str
) -> None:
    # GIVEN the demo knowledge base / WHEN a visitor asks about water damage
    final = await ask(gateway, "shop", question)
    # THEN the answer quotes the warranty section with its exclusion sentence
    assert final["status"] == "complete" and caveat in final["text"]


async def test_unanswerable_questions_are_refused_and_then_handed_to_a_human(
    gateway: RunningGateway,
) -> None:
    # GIVEN a visitor of the demo shop
    token = issue_token(secrets=[SECRET], tenant_id="shop", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    finals: list[dict] = []  # type: ignore[type-arg]
    states: list[str] = []
    async with websockets.connect(f"{gateway.ws}?token={token}") as ws:
        # WHEN they ask twice what the knowledge base does not answer
        for i, text in enumerate(("可以货到付款吗？", "上海有没有线下门店？")):
            await ws.send(json.dumps({"action": "message", "client_msg_id": f"u-{i}",
                                      "text": text}))
            async with asyncio.timeout(10):
                while (frame := json.loads(await ws.recv()))["type"] != "final":
                    pass
            finals.append(frame)
        async with asyncio.timeout(10):
            while not states:
                frame = json.loads(await ws.recv())
                if frame["type"] == "state":
                    states.append(frame["state"])
    # THEN each reply says it does not know and offers a human, quoting no passage
    for final in finals:
        assert "人工客服" in final["text"] and "根据我们的资料" not in final["text"]
    # AND the two "don't know" replies in a row queue the conversation for a human agent
    assert states == ["queued"]
