"""Resolution figures in the service report: conversations made by the stream flow (a real
router on the fake OpenAI-compatible server, a curated answer), a 👎, a handoff and a visitor
coming back, all on real PostgreSQL and Redis; the report read through the admin API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from kefu_core.admin import create_admin_app
from kefu_core.deps import Deps
from kefu_core.flows.stream import handle_stream
from kefu_core.product.handoff.moves import close_conversation, request_handoff
from kefu_llm import AdapterSettings, EngineConfig, build_router
from tests.support.core import ROOT, core_settings, make_deps
from tests.support.fake_openai import FakeOpenAI
from tests.support.staff import make_staff, token_for

WARRANTY = (ROOT / "knowledge" / "demo" / "warranty.md").read_text()
GROUNDED = "所有电子产品自签收之日起享受一年免费保修。"
INVENTED = "进水损坏也在保修范围内，可以免费维修。"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1, reply=GROUNDED) as server:
        yield server


@dataclass
class World:
    deps: Deps
    client: httpx.AsyncClient
    tenant: str
    admin: dict[str, str]


@pytest.fixture
async def world(pg_dsn: str, redis_url: str, redis_prefix: str,
                fake: FakeOpenAI) -> AsyncIterator[World]:
    router = build_router(settings=AdapterSettings(
        engines=[EngineConfig(name="main", provider="main", base_url=fake.base_url,
                              model="fake", api_keys=["sk-test-1"])],
        openai_api_key=None, openai_base_url=None, cache_ttl_s=0), redis=None)
    settings = core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                             outbound_allow_private=True, recall_deadline_ms=5000)
    deps, _, _ = await make_deps(settings, router=router)

    async def provide() -> Deps:
        return deps

    tenant = f"r{uuid.uuid4().hex[:8]}"
    admin = await make_staff(deps.pool, tenant_id=tenant, role="admin")
    memory = await deps.load_memory()
    assert memory is not None
    await memory.knowledge.ingest_document(tenant_id=tenant, name="warranty.md",
                                           content=WARRANTY, content_type="md")
    app = create_admin_app(settings, deps_provider=provide)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield World(deps=deps, client=client, tenant=tenant,
                    admin={"authorization": f"Bearer {token_for(admin)}"})
    await deps.aclose()
    await router.aclose()


async def _chat(world: World, visitor: str, question: str) -> tuple[str, int]:
    """``visitor`` asks in its open conversation; the stream flow answers: (conversation id,
    the reply's seq)."""
    deps = world.deps
    conversation = await deps.conversations.open_for_visitor(tenant_id=world.tenant,
                                                             visitor_id=visitor)
    asked = await deps.conversations.append(tenant_id=world.tenant,
                                            conversation_id=conversation.id, role="visitor",
                                            text=question, client_msg_id=uuid.uuid4().hex)
    result = await handle_stream({"tenant_id": world.tenant, "conversation_id": conversation.id,
                                  "reply_to_seq": asked.seq, "text": question}, deps)
    assert result["status"] == "complete", result
    return conversation.id, result["seq"]


async def test_resolution_figures_per_day_and_knowledge_base_version(
    world: World, fake: FakeOpenAI,
) -> None:
    deps, tenant = world.deps, world.tenant
    # GIVEN a conversation answered by a curated answer (resolved by the bot)
    await deps.curated.create(tenant_id=tenant, question="怎么申请保修？",
                              answer="联系在线客服并提供订单号和故障照片。", by="setup")
    await _chat(world, "v-curated", "怎么申请保修？")
    # AND one answered from the knowledge base, then rated 👎 (not resolved)
    rated, seq = await _chat(world, "v-unhappy", "保修多久？")
    await deps.feedback.rate(tenant_id=tenant, conversation_id=rated, visitor_id="v-unhappy",
                             seq=seq, rating="down", reason="")
    # AND one answered, then handed to a human at the visitor's request (not resolved)
    handed, _ = await _chat(world, "v-human", "保修多久？")
    await request_handoff(deps, tenant_id=tenant, conversation_id=handed, reason="button",
                          actor_type="visitor", actor_id="v-human")
    # AND a visitor whose conversation was answered and closed, who came back the same day
    # (the first is not resolved; the second, answered, is)
    first, _ = await _chat(world, "v-back", "保修多久？")
    await close_conversation(deps, tenant_id=tenant, conversation_id=first,
                             actor_type="visitor", actor_id="v-back")
    await _chat(world, "v-back", "电池保修多久？")
    # AND a reply with a sentence found in no source, marked (the default), not rated
    fake.configure(reply=INVENTED)
    await _chat(world, "v-water", "进水保修吗？")
    # WHEN an admin reads the service report
    response = await world.client.get("/v1/admin/reports", headers=world.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    # THEN bot-resolved counts the curated, the returning visitor's second and the marked one
    assert report["conversations"] == 6 and report["bot_resolved"] == 3
    assert report["bot_resolved_rate"] == 0.5
    # AND one reply of six came from a curated answer; four of the five checked were grounded
    assert report["curated_hit_rate"] == round(1 / 6, 4)
    assert report["grounded_rate"] == 0.8 and report["thumbs_down"] == 1
    assert {"reason": "button", "count": 1} in report["handoff_reasons"]
    # AND the day and the knowledge base's version carry the same figures
    (day,) = report["days"]
    assert (day["bot_resolved"], day["bot_replies"], day["curated_hits"],
            day["grounding_checked"], day["grounded"]) == (3, 6, 1, 5, 4)
    (version,) = report["kb_versions"]
    assert version["kb_version"] != "0" and version["conversations"] == 6
    assert (version["bot_resolved"], version["handed_off"], version["grounded_rate"]) == \
        (3, 1, 0.8)
    # AND the CSV export has the columns
    csv = await world.client.get("/v1/admin/reports/export", headers=world.admin)
    header, row = csv.text.strip().splitlines()
    assert header.endswith("bot_resolved,bot_replies,curated_hits,grounding_checked,grounded,"
                           "thumbs_down")
    assert row.endswith(",3,6,1,5,4,1")
