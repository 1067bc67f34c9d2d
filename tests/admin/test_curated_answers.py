"""Curated answers end to end: saved through the admin API, matched on the reply path, answered
without a model call; versioned, audited; who may edit them. Real PostgreSQL and Redis, the
admin app over ASGI, the stream flow with a real router on the fake OpenAI-compatible server
(which records every request it gets)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kefu_core.admin import create_admin_app
from kefu_core.chat.connections import ConnectionRecord
from kefu_core.deps import Deps
from kefu_core.flows.stream import handle_stream
from kefu_llm import AdapterSettings, EngineConfig, build_router
from tests.support.core import RecordingPoster, core_settings, make_deps
from tests.support.fake_openai import FakeOpenAI
from tests.support.staff import make_staff, token_for

QUESTION = "怎么退货？"
ANSWER = "自签收之日起7天内可无理由退货：在“我的订单”中点击“申请退货”即可。"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1) as server:
        yield server


@dataclass
class World:
    deps: Deps
    poster: RecordingPoster
    client: httpx.AsyncClient
    tenant: str
    admin: dict[str, str]
    agent: dict[str, str]


@pytest.fixture
async def world(pg_dsn: str, redis_url: str, redis_prefix: str,
                fake: FakeOpenAI) -> AsyncIterator[World]:
    router = build_router(settings=AdapterSettings(
        engines=[EngineConfig(name="main", provider="main", base_url=fake.base_url,
                              model="fake", api_keys=["sk-test-1"])],
        openai_api_key=None, openai_base_url=None, cache_ttl_s=0), redis=None)
    settings = core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                             outbound_allow_private=True)
    deps, poster, _ = await make_deps(settings, router=router)

    async def provide() -> Deps:
        return deps

    tenant = f"c{uuid.uuid4().hex[:8]}"
    admin = await make_staff(deps.pool, tenant_id=tenant, role="admin")
    agent = await make_staff(deps.pool, tenant_id=tenant, role="agent")
    app = create_admin_app(settings, deps_provider=provide)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield World(deps=deps, poster=poster, client=client, tenant=tenant,
                    admin={"authorization": f"Bearer {token_for(admin)}"},
                    agent={"authorization": f"Bearer {token_for(agent)}"})
    await deps.aclose()
    await router.aclose()


async def _ask(world: World, question: str) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                     dict[str, Any]]:
    """A visitor of the tenant asks ``question``; the stream flow answers: (the final frame, the
    delta frames, the stored reply's meta)."""
    deps = world.deps
    conversation = await deps.conversations.open_for_visitor(
        tenant_id=world.tenant, visitor_id=f"v-{uuid.uuid4().hex[:6]}")
    connection = f"c-{uuid.uuid4().hex[:6]}"
    await deps.connections.add(ConnectionRecord(
        connection_id=connection, tenant_id=world.tenant, role="visitor", subject="v",
        conversation_id=conversation.id, connected_at=time.time()))
    asked = await deps.conversations.append(tenant_id=world.tenant,
                                            conversation_id=conversation.id, role="visitor",
                                            text=question, client_msg_id="m-1")
    result = await handle_stream({"tenant_id": world.tenant, "conversation_id": conversation.id,
                                  "reply_to_seq": asked.seq, "text": question}, deps)
    (final,) = world.poster.of_type(connection, "final")
    async with deps.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT meta FROM messages WHERE conversation_id = %s AND seq = %s",
            (conversation.id, result["seq"]))).fetchone()
    assert row is not None
    return final, world.poster.of_type(connection, "delta"), row[0]


async def _save(world: World, headers: dict[str, str], **body: str) -> httpx.Response:
    return await world.client.post("/v1/admin/curated-answers", json=body, headers=headers)


async def test_a_close_question_gets_the_curated_answer_without_a_model_call(
    world: World, fake: FakeOpenAI,
) -> None:
    # GIVEN an admin saved a question with its approved answer
    saved = await _save(world, world.admin, question=QUESTION, answer=ANSWER)
    assert saved.status_code == 201, saved.text
    # WHEN a visitor asks nearly the same question
    final, deltas, meta = await _ask(world, "怎么退货")
    # THEN the curated answer is the reply, streamed as deltas, by no model
    assert final["text"] == ANSWER and final["engine"] == "curated"
    assert "".join(d["text"] for d in deltas) == ANSWER
    assert fake.requests == []
    # AND the stored reply names the curated answer, its version and the score
    assert meta["curated"]["id"] == saved.json()["id"] and meta["curated"]["version"] == 1
    assert meta["curated"]["score"] >= 0.75


async def test_a_distant_question_goes_to_the_model_with_the_curated_answer_first(
    world: World, fake: FakeOpenAI,
) -> None:
    # GIVEN a curated answer, and a question below the threshold but within the hint margin
    await _save(world, world.admin, question=QUESTION, answer=ANSWER)
    probe = await world.client.post("/v1/admin/curated-answers/match",
                                    json={"question": "退货怎么退"}, headers=world.admin)
    assert probe.status_code == 200
    # ... which the search tester shows with its score and the threshold
    assert probe.json()["threshold"] == 0.75
    await world.deps.tenant_settings.put(world.tenant, (
        await world.deps.tenant_settings.get(world.tenant)).model_copy(
            update={"curated_answer_threshold": probe.json()["score"] + 0.05}))
    # WHEN a visitor asks it
    final, _, meta = await _ask(world, "退货怎么退")
    # THEN the model answers, and it was given the curated answer
    assert final["engine"] == "main" and "curated" not in meta
    assert ANSWER in str(fake.requests[-1]["messages"])
    assert meta["passages"][0].endswith(ANSWER)


async def test_a_change_is_a_new_version_used_at_once_and_audited(world: World) -> None:
    # GIVEN a curated answer
    answer_id = (await _save(world, world.admin, question=QUESTION, answer=ANSWER)).json()["id"]
    # WHEN an admin changes its answer
    changed = await world.client.put(f"/v1/admin/curated-answers/{answer_id}",
                                     json={"answer": "新的退货说明。"}, headers=world.admin)
    # THEN it is version 2, and the next visitor gets the new text
    assert changed.status_code == 200 and changed.json()["version"] == 2
    final, _, meta = await _ask(world, QUESTION)
    assert final["text"] == "新的退货说明。" and meta["curated"]["version"] == 2
    # AND both versions stay readable, and the audit log names the changes (no texts)
    versions = (await world.client.get(f"/v1/admin/curated-answers/{answer_id}/versions",
                                       headers=world.admin)).json()
    assert [v["answer"] for v in versions] == [ANSWER, "新的退货说明。"]
    audit = (await world.client.get("/v1/admin/audit", headers=world.admin)).text
    assert "curated_answer.created" in audit and "curated_answer.updated" in audit
    assert "新的退货说明" not in audit


async def test_a_deleted_answer_is_no_longer_given(world: World, fake: FakeOpenAI) -> None:
    # GIVEN a curated answer that an admin deleted
    answer_id = (await _save(world, world.admin, question=QUESTION, answer=ANSWER)).json()["id"]
    deleted = await world.client.delete(f"/v1/admin/curated-answers/{answer_id}",
                                        headers=world.admin)
    assert deleted.status_code == 204
    # WHEN a visitor asks the question THEN the model answers
    final, _, _ = await _ask(world, QUESTION)
    assert final["engine"] == "main" and len(fake.requests) == 1
    # AND a second delete, or an id that is not a number, finds nothing
    for path in (f"/v1/admin/curated-answers/{answer_id}", "/v1/admin/curated-answers/x1"):
        assert (await world.client.delete(path, headers=world.admin)).status_code == 404


async def test_agents_curate_only_while_the_tenant_allows_it(world: World) -> None:
    # GIVEN an agent of a tenant that does not let agents curate
    # WHEN the agent saves an answer THEN it is refused
    assert (await _save(world, world.agent, question=QUESTION, answer=ANSWER)).status_code == 403
    # WHEN the tenant allows it THEN the agent may save one
    settings = await world.deps.tenant_settings.get(world.tenant)
    await world.deps.tenant_settings.put(world.tenant,
                                         settings.model_copy(update={"agents_curate": True}))
    assert (await _save(world, world.agent, question=QUESTION, answer=ANSWER)).status_code == 201
    # WHEN the tenant withdraws it THEN the agent's next call is refused at once
    await world.deps.tenant_settings.put(world.tenant, settings)
    listed = await world.client.get("/v1/admin/curated-answers", headers=world.agent)
    assert listed.status_code == 403


@pytest.mark.parametrize("body", [
    {"question": "", "answer": ANSWER},
    {"question": "问" * 501, "answer": ANSWER},
    {"question": QUESTION, "answer": "答" * 4001},
    {"question": QUESTION, "answer": ANSWER, "tenant_id": "other"},
])
async def test_bounds_are_enforced(world: World, body: dict[str, str]) -> None:
    # GIVEN an admin WHEN a curated answer is empty, too long or names a tenant THEN 422
    response = await world.client.post("/v1/admin/curated-answers", json=body,
                                       headers=world.admin)
    assert response.status_code == 422
