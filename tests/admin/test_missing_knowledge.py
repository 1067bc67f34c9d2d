"""The missing-knowledge queue end to end: replies made by the stream flow (a real router on the
fake OpenAI-compatible server), a visitor's 👎, a handoff after failures, all on real
PostgreSQL and Redis; the queue and its answers through the admin API over ASGI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kefu_core.admin import create_admin_app
from kefu_core.deps import Deps
from kefu_core.flows.stream import handle_stream
from kefu_core.product.handoff.moves import request_handoff
from kefu_core.product.tenants.settings import TenantSettings
from kefu_llm import AdapterSettings, EngineConfig, build_router
from tests.support.core import core_settings, make_deps
from tests.support.fake_openai import FakeOpenAI
from tests.support.staff import make_staff, token_for

INSTALMENTS = ["你们支持花呗分期吗？", "可以用花呗分期吗", "支持花呗分期付款吗？"]
INVENTED = "支持花呗分期，最多12期免息。"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1, reply=INVENTED) as server:
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

    tenant = f"m{uuid.uuid4().hex[:8]}"
    admin = await make_staff(deps.pool, tenant_id=tenant, role="admin")
    await deps.tenant_settings.put(tenant, TenantSettings(grounding_action="refuse"))
    app = create_admin_app(settings, deps_provider=provide)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield World(deps=deps, client=client, tenant=tenant,
                    admin={"authorization": f"Bearer {token_for(admin)}"})
    await deps.aclose()
    await router.aclose()


async def _asked(world: World, question: str) -> tuple[str, int, dict[str, Any]]:
    """A new visitor asks ``question`` and the stream flow answers: (conversation id, the
    reply's seq, the flow's result)."""
    deps = world.deps
    conversation = await deps.conversations.open_for_visitor(
        tenant_id=world.tenant, visitor_id=f"v-{uuid.uuid4().hex[:6]}")
    asked = await deps.conversations.append(tenant_id=world.tenant,
                                            conversation_id=conversation.id, role="visitor",
                                            text=question, client_msg_id="m-1")
    result = await handle_stream({"tenant_id": world.tenant, "conversation_id": conversation.id,
                                  "reply_to_seq": asked.seq, "text": question}, deps)
    return conversation.id, result["seq"], result


async def _queue(world: World) -> list[dict[str, Any]]:
    response = await world.client.get("/v1/admin/missing-knowledge", headers=world.admin)
    assert response.status_code == 200, response.text
    clusters: list[dict[str, Any]] = response.json()
    return clusters


async def test_what_the_bot_could_not_answer_is_clustered_and_ranked(world: World) -> None:
    # GIVEN three visitors asking about instalments in different words, answered with an
    # invented policy (refused by the grounding check)
    for question in INSTALMENTS:
        await _asked(world, question)
    # AND a visitor who rated a reply about invoices 👎
    conversation_id, seq, _ = await _asked(world, "发票怎么开")
    conversation = await world.deps.conversations.get(tenant_id=world.tenant,
                                                      conversation_id=conversation_id)
    assert conversation is not None
    await world.deps.feedback.rate(tenant_id=world.tenant, conversation_id=conversation_id,
                                   visitor_id=conversation.visitor_id, seq=seq, rating="down",
                                   reason="没用")
    # AND a conversation handed off after the bot failed
    handed, _, _ = await _asked(world, "我的快递丢了怎么办")
    await request_handoff(world.deps, tenant_id=world.tenant, conversation_id=handed,
                          reason="failures", actor_type="system", actor_id=None)
    # WHEN an admin reads the queue
    clusters = await _queue(world)
    # THEN the instalment questions are one cluster, first, counted by conversation
    first = clusters[0]
    assert first["question"] in INSTALMENTS and first["conversations"] == 3
    assert first["kinds"] == {"unsupported": 3}
    assert {e["question"] for e in first["examples"]} == set(INSTALMENTS)
    # AND the 👎 (with its reason) and the failed handoff are there too, with examples
    kinds = {c["question"]: c["kinds"] for c in clusters}
    assert kinds["发票怎么开"]["down"] == 1
    assert kinds["我的快递丢了怎么办"]["handoff"] == 1
    invoice = next(c for c in clusters if c["question"] == "发票怎么开")
    assert any(e["detail"] == "没用" for e in invoice["examples"])


async def test_an_answer_written_once_closes_the_cluster(world: World, fake: FakeOpenAI) -> None:
    # GIVEN the instalment questions in the queue
    for question in INSTALMENTS:
        await _asked(world, question)
    cluster = (await _queue(world))[0]
    # WHEN an admin answers the cluster once, as a curated answer
    written = await world.client.post("/v1/admin/missing-knowledge/answer", headers=world.admin,
                                      json={"question": cluster["question"],
                                            "answer": "暂不支持花呗分期。", "target": "curated"})
    assert written.status_code == 201, written.text
    # THEN the cluster leaves the queue
    assert all(c["id"] != cluster["id"] for c in await _queue(world))
    # AND the next visitor asking it gets the answer, without a model call
    calls = len(fake.requests)
    conversation_id, seq, _ = await _asked(world, cluster["question"])
    stored = await world.deps.conversations.since(tenant_id=world.tenant,
                                                  conversation_id=conversation_id,
                                                  after_seq=seq - 1, limit=1)
    assert stored[0].text == "暂不支持花呗分期。" and len(fake.requests) == calls


async def test_an_answer_can_become_a_knowledge_base_entry(world: World) -> None:
    # WHEN an admin writes an answer as a knowledge-base entry
    written = await world.client.post("/v1/admin/missing-knowledge/answer", headers=world.admin,
                                      json={"question": "支持花呗分期吗？",
                                            "answer": "暂不支持花呗分期。",
                                            "target": "knowledge"})
    # THEN it is a document of the tenant's knowledge base, retrieved for the question
    assert written.status_code == 201, written.text
    name = written.json()["document"]
    memory = await world.deps.load_memory()
    assert memory is not None
    assert name in await memory.knowledge.document_names(world.tenant)
    passages = await memory.knowledge.search(world.tenant, "花呗分期", k=1)
    assert "暂不支持花呗分期" in passages[0].content


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/admin/missing-knowledge?days=91", None),
    ("GET", "/v1/admin/missing-knowledge?top=0", None),
    ("POST", "/v1/admin/missing-knowledge/answer",
     {"question": "问" * 501, "answer": "答", "target": "curated"}),
    ("POST", "/v1/admin/missing-knowledge/answer",
     {"question": "问", "answer": "答", "target": "prompt"}),
])
async def test_out_of_bounds_requests_are_refused(world: World, method: str, path: str,
                                                  body: dict[str, str] | None) -> None:
    # GIVEN an admin WHEN a period, a count, a text or a target is out of bounds THEN 422
    response = await world.client.request(method, path, json=body, headers=world.admin)
    assert response.status_code == 422
