"""The grounding check on the reply path (kefu_core.answers.grounded): the stream flow on real
PostgreSQL and Redis with the tenant's knowledge base, a real router and the fake
OpenAI-compatible server answering what each test makes it say."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kefu_core.chat.connections import ConnectionRecord
from kefu_core.deps import Deps
from kefu_core.flows.stream import handle_stream
from kefu_core.product.tenants.settings import TenantSettings
from kefu_llm import AdapterSettings, EngineConfig, build_router
from tests.support.core import ROOT, RecordingPoster, core_settings, make_deps
from tests.support.fake_openai import FakeOpenAI

WARRANTY = (ROOT / "knowledge" / "demo" / "warranty.md").read_text()
QUESTION = "电子产品保修多久？"
GROUNDED = "所有电子产品自签收之日起享受一年免费保修。电池类配件保修六个月。"
INVENTED = "所有电子产品自签收之日起享受一年免费保修。进水损坏也在保修范围内，可以免费维修。"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1) as server:
        yield server


@pytest.fixture
async def world(pg_dsn: str, redis_url: str, redis_prefix: str,
                fake: FakeOpenAI) -> AsyncIterator[tuple[Deps, RecordingPoster]]:
    router = build_router(settings=AdapterSettings(
        engines=[EngineConfig(name="main", provider="main", base_url=fake.base_url,
                              model="fake", api_keys=["sk-test-1"])],
        openai_api_key=None, openai_base_url=None, cache_ttl_s=0), redis=None)
    deps, poster, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                      recall_deadline_ms=5000, outbound_allow_private=True),
        router=router)
    yield deps, poster
    await deps.aclose()
    await router.aclose()


async def _ask(deps: Deps, poster: RecordingPoster, *, action: str, engine_check: bool = False,
               ) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """A tenant with the warranty document and ``action`` set; a visitor asks QUESTION and the
    model answers: (the final frame, the stored reply's meta, tenant, conversation id)."""
    tenant = f"g{uuid.uuid4().hex[:8]}"
    await deps.tenants.ensure(tenant_id=tenant, name="Grounding")
    await deps.tenant_settings.put(tenant, TenantSettings.model_validate(
        {"grounding_action": action, "grounding_engine_check": engine_check}))
    memory = await deps.load_memory()
    assert memory is not None
    await memory.knowledge.ingest_document(tenant_id=tenant, name="warranty.md",
                                           content=WARRANTY, content_type="md")
    conversation = await deps.conversations.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    await deps.connections.add(ConnectionRecord(
        connection_id="c-1", tenant_id=tenant, role="visitor", subject="v-1",
        conversation_id=conversation.id, connected_at=time.time()))
    asked = await deps.conversations.append(tenant_id=tenant, conversation_id=conversation.id,
                                            role="visitor", text=QUESTION, client_msg_id="m-1")
    result = await handle_stream({"tenant_id": tenant, "conversation_id": conversation.id,
                                  "reply_to_seq": asked.seq, "text": QUESTION}, deps)
    assert result["status"] == "complete", result
    (final,) = poster.of_type("c-1", "final")
    async with deps.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT meta FROM messages WHERE conversation_id = %s AND seq = %s",
            (conversation.id, result["seq"]))).fetchone()
    assert row is not None
    return final, row[0], tenant, conversation.id


async def test_a_grounded_reply_is_sent_unmarked(world: tuple[Deps, RecordingPoster],
                                                 fake: FakeOpenAI) -> None:
    deps, poster = world
    # GIVEN a model that repeats what the warranty document says
    fake.configure(reply=GROUNDED)
    # WHEN a visitor asks about the warranty
    final, meta, _, _ = await _ask(deps, poster, action="mark")
    # THEN the reply is sent as it is, with no unsupported sentence
    assert final["text"] == GROUNDED
    assert "unsupported" not in final
    # AND the stored reply keeps its passages and that every sentence was checked
    assert any("一年免费保修" in p for p in meta["passages"])
    assert meta["grounding"] == {"checked": 2, "unsupported": [], "action": "mark"}


async def test_an_invented_policy_is_marked_in_the_final_frame(
    world: tuple[Deps, RecordingPoster], fake: FakeOpenAI,
) -> None:
    deps, poster = world
    # GIVEN a model that adds a policy the document contradicts (water damage is not covered)
    fake.configure(reply=INVENTED)
    # WHEN a visitor asks about the warranty, the tenant marking unsupported sentences
    final, meta, _, _ = await _ask(deps, poster, action="mark")
    # THEN the final frame keeps the text and marks the second sentence alone
    assert final["text"] == INVENTED
    (span,) = final["unsupported"]
    assert INVENTED[span["start"]:span["end"]].startswith("进水损坏")
    assert meta["grounding"]["unsupported"] == [span]


async def test_refuse_replaces_an_unsupported_reply_with_an_offer_of_a_human(
    world: tuple[Deps, RecordingPoster], fake: FakeOpenAI,
) -> None:
    deps, poster = world
    # GIVEN a model that invents a policy, and a tenant that refuses unsupported replies
    fake.configure(reply=INVENTED)
    # WHEN a visitor asks
    final, meta, tenant, conversation_id = await _ask(deps, poster, action="refuse")
    # THEN the visitor gets a refusal that offers a human, not the invented policy
    assert "进水" not in final["text"] and "人工客服" in final["text"]
    assert final["reason"] == "ungrounded"
    # AND the stored reply is the refusal, the model's text kept for the admins
    stored = await deps.conversations.since(tenant_id=tenant, conversation_id=conversation_id,
                                            after_seq=0, limit=10)
    assert stored[-1].text == final["text"]
    assert meta["grounding"]["original"] == INVENTED
    # AND the bot still owns the conversation
    conversation = await deps.conversations.get(tenant_id=tenant, conversation_id=conversation_id)
    assert conversation is not None and conversation.owner == "bot"


async def test_handoff_queues_the_conversation_after_an_unsupported_reply(
    world: tuple[Deps, RecordingPoster], fake: FakeOpenAI,
) -> None:
    deps, poster = world
    # GIVEN a model that invents a policy, and a tenant that hands such replies off
    fake.configure(reply=INVENTED)
    # WHEN a visitor asks
    final, _, tenant, conversation_id = await _ask(deps, poster, action="handoff")
    # THEN the visitor is told a human is coming, and the conversation waits for an agent
    assert "转接人工客服" in final["text"]
    conversation = await deps.conversations.get(tenant_id=tenant, conversation_id=conversation_id)
    assert conversation is not None and conversation.owner == "queue"


@pytest.mark.parametrize(("verdict", "marked"), [("1: SUPPORTED", False),
                                                 ("1: UNSUPPORTED", True),
                                                 ("I cannot tell.", True)])
async def test_the_engine_takes_a_second_look_where_the_tenant_asks_for_it(
    world: tuple[Deps, RecordingPoster], fake: FakeOpenAI, verdict: str, marked: bool,
) -> None:
    deps, poster = world
    # GIVEN a reply with a sentence the lexical check flags, and a tenant that has the engine
    # look again; the engine answers ``verdict``
    fake.push({"reply": INVENTED}, {"reply": verdict})
    # WHEN a visitor asks
    final, meta, _, _ = await _ask(deps, poster, action="mark", engine_check=True)
    # THEN the engine was asked about the flagged sentence alone, with the sources
    review = str(fake.requests[-1]["messages"])
    assert "1. 进水损坏也在保修范围内" in review and "一年免费保修" in review
    # AND its verdict clears the flag, confirms it, or (unreadable) leaves the lexical one
    assert ("unsupported" in final) is marked
    if verdict == "I cannot tell.":
        assert "engine_cleared" not in meta["grounding"]
    else:
        assert meta["grounding"]["engine_cleared"] == (0 if marked else 1)


async def test_a_grounded_reply_costs_no_engine_review(world: tuple[Deps, RecordingPoster],
                                                        fake: FakeOpenAI) -> None:
    deps, poster = world
    # GIVEN a grounded reply and a tenant with the engine's second look on
    fake.configure(reply=GROUNDED)
    # WHEN a visitor asks THEN the model was asked once: nothing was flagged to review
    await _ask(deps, poster, action="mark", engine_check=True)
    assert len(fake.requests) == 1
