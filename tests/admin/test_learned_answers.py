"""Learned answers made by the tenant's engine, and approval into the knowledge base.

Real PostgreSQL and Redis, the stream function's entry point (``kind: learn``), the tenant's own
engine chain on the fake OpenAI-compatible server (which records what it was sent), the admin
app over ASGI. The extractive path through a production gateway is tests/e2e.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from kefu_core.admin import create_admin_app
from kefu_core.deps import Deps
from kefu_core.flows.stream import handle_stream
from tests.support.core import RecordingInvoker, core_settings, make_deps
from tests.support.fake_openai import FakeOpenAI
from tests.support.staff import make_staff, token_for

PHONE = "13912345678"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1) as server:
        yield server


@dataclass
class World:
    deps: Deps
    invoker: RecordingInvoker
    client: httpx.AsyncClient
    tenant: str
    admin: dict[str, str]


@pytest.fixture
async def world(pg_dsn: str, redis_url: str, redis_prefix: str) -> AsyncIterator[World]:
    settings = core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                             outbound_allow_private=True)
    deps, _, invoker = await make_deps(settings)

    async def provide() -> Deps:
        return deps

    tenant = f"l{uuid.uuid4().hex[:8]}"
    admin = await make_staff(deps.pool, tenant_id=tenant, role="admin")
    app = create_admin_app(settings, deps_provider=provide)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield World(deps=deps, invoker=invoker, client=client, tenant=tenant,
                    admin={"authorization": f"Bearer {token_for(admin)}"})
    await deps.aclose()


async def _resolved(world: World, question: str, answer: str) -> str:
    """A closed conversation: the visitor asked ``question``, an agent answered ``answer``."""
    deps = world.deps
    conversation = await deps.conversations.open_for_visitor(
        tenant_id=world.tenant, visitor_id=f"v-{uuid.uuid4().hex[:6]}")
    await deps.conversations.append(tenant_id=world.tenant, conversation_id=conversation.id,
                                    role="visitor", text=question, client_msg_id="q")
    await deps.conversations.append(tenant_id=world.tenant, conversation_id=conversation.id,
                                    role="agent", author="agent-7", text=answer,
                                    client_msg_id="a")
    await deps.conversations.close(tenant_id=world.tenant, conversation_id=conversation.id)
    return conversation.id


async def test_the_tenants_engine_rewrites_the_redacted_transcript(
    world: World, fake: FakeOpenAI,
) -> None:
    # GIVEN a tenant with its own engine, which answers with a JSON pair
    await world.deps.engines.put_chain(tenant_id=world.tenant, chain=[{
        "name": "own", "kind": "openai", "base_url": fake.base_url, "model": "m"}])
    fake.configure(reply=json.dumps({"question": "How do I change my invoice's title?",
                                     "answer": "Ask for a new invoice on the order page."}))
    conversation_id = await _resolved(world, f"invoice title wrong, call me on {PHONE}",
                                      "Ask for a new invoice on the order page.")
    # WHEN the stream function is asked to learn from it (what an agent's close sends)
    result = await handle_stream({"kind": "learn", "tenant_id": world.tenant,
                                  "conversation_id": conversation_id}, world.deps)
    # THEN the engine's pair is proposed, and the engine never saw the phone number
    assert result["status"] == "proposed" and result["method"] == "engine"
    (proposal,) = await world.deps.learned.list(tenant_id=world.tenant, status="pending",
                                                limit=10)
    assert proposal.question == "How do I change my invoice's title?"
    assert proposal.method == "engine" and proposal.agent_id == "agent-7"
    sent = json.dumps(fake.requests, ensure_ascii=False, default=str)
    assert "invoice title wrong" in sent and PHONE not in sent
    # AND learning again from the same conversation (a retried invocation) proposes nothing
    again = await handle_stream({"kind": "learn", "tenant_id": world.tenant,
                                 "conversation_id": conversation_id}, world.deps)
    assert again["status"] == "skipped"


async def test_an_engine_reply_that_is_no_pair_leaves_the_extractive_one(
    world: World, fake: FakeOpenAI,
) -> None:
    # GIVEN a tenant engine that answers prose
    await world.deps.engines.put_chain(tenant_id=world.tenant, chain=[{
        "name": "own", "kind": "openai", "base_url": fake.base_url, "model": "m"}])
    fake.configure(reply="Sure, here is a summary of the conversation.")
    conversation_id = await _resolved(world, "能开专票吗？", "可以，请提供税号。")
    # WHEN it is learned from
    result = await handle_stream({"kind": "learn", "tenant_id": world.tenant,
                                  "conversation_id": conversation_id}, world.deps)
    # THEN the visitor's question and the agent's answer are proposed as they were
    assert result["method"] == "extractive"
    (proposal,) = await world.deps.learned.list(tenant_id=world.tenant, status="pending",
                                                limit=10)
    assert (proposal.question, proposal.answer) == ("能开专票吗？", "可以，请提供税号。")


async def test_an_open_conversation_or_one_no_agent_answered_is_not_learned_from(
    world: World,
) -> None:
    deps = world.deps
    # GIVEN a closed conversation only the bot answered, and an open one an agent answered
    bot_only = await deps.conversations.open_for_visitor(tenant_id=world.tenant,
                                                         visitor_id="v-bot")
    await deps.conversations.append(tenant_id=world.tenant, conversation_id=bot_only.id,
                                    role="visitor", text="hi", client_msg_id="q")
    await deps.conversations.close(tenant_id=world.tenant, conversation_id=bot_only.id)
    still_open = await deps.conversations.open_for_visitor(tenant_id=world.tenant,
                                                           visitor_id="v-open")
    await deps.conversations.append(tenant_id=world.tenant, conversation_id=still_open.id,
                                    role="visitor", text="q?", client_msg_id="q")
    await deps.conversations.append(tenant_id=world.tenant, conversation_id=still_open.id,
                                    role="agent", author="a", text="a.", client_msg_id="a")
    # WHEN each is learned from
    results = [await handle_stream({"kind": "learn", "tenant_id": world.tenant,
                                    "conversation_id": c.id}, deps)
               for c in (bot_only, still_open)]
    # THEN nothing is proposed
    assert [r["status"] for r in results] == ["skipped", "skipped"]
    assert await deps.learned.list(tenant_id=world.tenant, status="pending", limit=10) == []


async def test_an_approved_pair_can_become_a_knowledge_base_entry(world: World) -> None:
    # GIVEN a proposal (no tenant engine: extractive)
    conversation_id = await _resolved(world, "周末发货吗？", "周末正常发货，顺丰次日达。")
    await handle_stream({"kind": "learn", "tenant_id": world.tenant,
                         "conversation_id": conversation_id}, world.deps)
    (proposal,) = await world.deps.learned.list(tenant_id=world.tenant, status="pending",
                                                limit=10)
    # WHEN an admin approves it into the knowledge base
    response = await world.client.post(f"/v1/admin/learned-answers/{proposal.id}/approve",
                                       headers=world.admin, json={"target": "knowledge"})
    # THEN a document of its own holds the pair, and retrieval finds it
    assert response.status_code == 200, response.text
    name = response.json()["target_ref"]
    assert name.startswith("learned-") and name.endswith(".md")
    hits = await world.client.post("/v1/admin/knowledge/search", headers=world.admin,
                                   json={"question": "周末发货吗"})
    assert any(h["document"] == name and "顺丰次日达" in h["content"] for h in hits.json())
    # AND no curated answer was made
    assert await world.deps.curated.active(world.tenant) == []


async def test_a_customers_export_holds_the_pair_proposed_from_their_conversation(
    world: World,
) -> None:
    from kefu_core.flows.personal_data import CustomerRef, export_customer

    # GIVEN a proposal from a visitor's conversation
    conversation_id = await _resolved(world, "发票丢了能补吗？", "可以补开。")
    await handle_stream({"kind": "learn", "tenant_id": world.tenant,
                         "conversation_id": conversation_id}, world.deps)
    conversation = await world.deps.conversations.get(tenant_id=world.tenant,
                                                      conversation_id=conversation_id)
    assert conversation is not None
    # WHEN the customer's data is exported
    exported = await export_customer(world.deps, tenant_id=world.tenant,
                                     ref=CustomerRef(visitor_id=conversation.visitor_id))
    # THEN the conversation carries the pair made of its words
    (transcript,) = exported.conversations
    assert transcript["learned_answer"]["question"] == "发票丢了能补吗？"
    assert transcript["learned_answer"]["status"] == "pending"
