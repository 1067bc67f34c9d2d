"""Regression replay: stored visitor questions re-asked with the published tuning and a draft,
through the admin API (the workbench's replay) and the ``kefu replay`` command.

Real PostgreSQL and Redis, the knowledge base with its offline embedder, curated answers, the
offline engine, and a tenant engine on the fake OpenAI-compatible server that fails.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kefu_core.admin import create_admin_app
from kefu_core.cli import main
from kefu_core.deps import Deps
from kefu_core.infra.secret_settings import get_settings
from kefu_core.product.prompt_versions import PromptWorkbench, Tuning
from tests.support.core import SECRET, core_settings, make_deps
from tests.support.fake_openai import FakeOpenAI
from tests.support.staff import make_staff, token_for

DOC = ("# 退货政策\n\n自签收之日起7天内可无理由退货，商品需保持完好。\n\n"
       "# 发货时间\n\n付款后48小时内发货，周末正常发货。\n")
COVERED = "退货政策是什么？"
UNCOVERED = "你们卖火箭发动机吗？"
CURATED = "怎么开发票？"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1) as server:
        yield server


@dataclass
class World:
    deps: Deps
    client: httpx.AsyncClient
    tenant: str
    admin: dict[str, str]
    dsn: str


@pytest.fixture
async def world(pg_dsn: str, redis_url: str, redis_prefix: str) -> AsyncIterator[World]:
    settings = core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                             outbound_allow_private=True)
    deps, _, _ = await make_deps(settings)

    async def provide() -> Deps:
        return deps

    tenant = f"r{uuid.uuid4().hex[:8]}"
    admin = await make_staff(deps.pool, tenant_id=tenant, role="admin")
    memory = await deps.load_memory()
    assert memory is not None
    await memory.knowledge.ingest_document(tenant_id=tenant, name="policy.md", content=DOC,
                                           content_type=".md")
    await deps.curated.create(tenant_id=tenant, question=CURATED,
                              answer="在订单详情页点击“申请开票”。", by="setup")
    for question in (COVERED, UNCOVERED, CURATED):
        await _answered(deps, tenant, question)
    app = create_admin_app(settings, deps_provider=provide)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield World(deps=deps, client=client, tenant=tenant,
                    admin={"authorization": f"Bearer {token_for(admin)}"}, dsn=pg_dsn)
    await deps.aclose()


async def _answered(deps: Deps, tenant: str, question: str) -> None:
    """A stored conversation in which the bot answered ``question``."""
    conversation = await deps.conversations.open_for_visitor(
        tenant_id=tenant, visitor_id=f"v-{uuid.uuid4().hex[:6]}")
    asked = await deps.conversations.append(tenant_id=tenant, conversation_id=conversation.id,
                                            role="visitor", text=question, client_msg_id="q")
    await deps.conversations.append(tenant_id=tenant, conversation_id=conversation.id,
                                    role="assistant", text="…", reply_to=asked.seq)


async def test_the_workbench_replays_stored_questions_with_the_offline_engine(
    world: World,
) -> None:
    # GIVEN three stored questions: one the knowledge base covers, one it does not, one a
    # curated answer answers
    # WHEN an admin replays them on a draft
    response = await world.client.post("/v1/admin/workbench/replay", headers=world.admin,
                                       json={"sample": 10,
                                             "draft": {"system_prompt": "简短回答。"}})
    # THEN each figure counts them: the curated one without a model, the uncovered one refused
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["questions"] == 3 and report["engines"] == "offline"
    for side in ("before", "after"):
        figures = report[side]
        assert figures["curated_hits"] == 1, figures
        assert figures["retrieval_hits"] == 1, figures  # the returns question
        assert figures["refusals"] == 1, figures  # the rocket engines
        assert figures["grounding_checked"] == 1 and figures["grounded_rate"] == 1.0, figures
    # AND the prompt alone changes nothing the offline engine does
    assert report["changed"] == []
    # AND the replay is audited
    audit = (await world.client.get("/v1/admin/audit", headers=world.admin)).text
    assert "workbench.replayed" in audit


async def test_a_draft_without_fallback_refuses_when_the_tenants_engine_fails(
    world: World, fake: FakeOpenAI,
) -> None:
    # GIVEN the tenant's own engine, failing, and a draft that turns the fallback off
    await world.deps.engines.put_chain(tenant_id=world.tenant, chain=[{
        "name": "own", "kind": "openai", "base_url": fake.base_url, "model": "m"}])
    fake.configure(status=500)
    # WHEN the replay runs on the tenant's engines
    response = await world.client.post("/v1/admin/workbench/replay", headers=world.admin,
                                       json={"sample": 10, "engines": "tenant",
                                             "draft": {"enable_fallback": False}})
    # THEN published (offline last resort) answers the covered question; the draft refuses it
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["before"]["refusals"] == 1 and report["after"]["refusals"] == 2
    (changed,) = report["changed"]
    assert changed["question"] == COVERED
    assert (changed["before"]["refused"], changed["after"]["refused"]) == (False, True)


async def test_replays_are_bounded_and_rate_limited(world: World) -> None:
    draft = {"system_prompt": "x"}
    # WHEN too large a sample is asked for
    too_many = await world.client.post("/v1/admin/workbench/replay", headers=world.admin,
                                       json={"sample": 51, "draft": draft})
    paid = await world.client.post("/v1/admin/workbench/replay", headers=world.admin,
                                   json={"sample": 11, "engines": "tenant", "draft": draft})
    assert (too_many.status_code, paid.status_code) == (422, 422)
    # WHEN replays come faster than the tenant's limit
    statuses = [(await world.client.post("/v1/admin/workbench/replay", headers=world.admin,
                                         json={"sample": 1, "draft": draft})).status_code
                for _ in range(6)]
    # THEN the sixth in ten minutes is refused with a wait
    assert statuses == [200] * 5 + [429]
    # AND without a stored draft nor one in the body there is nothing to replay
    await PromptWorkbench(world.deps.pool, world.deps.tenant_settings).discard_draft(world.tenant)
    assert (await world.client.post("/v1/admin/workbench/replay", headers=world.admin,
                                    json={"sample": 1})).status_code == 404


def test_kefu_replay_reports_a_jsonl_set_against_the_stored_draft(
    pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    tenant = f"r{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        deps, _, _ = await make_deps(core_settings(pg_dsn=pg_dsn, redis_url=redis_url,
                                                   redis_prefix=redis_prefix))
        try:
            await deps.tenants.ensure(tenant_id=tenant, name=tenant)
            memory = await deps.load_memory()
            assert memory is not None
            await memory.knowledge.ingest_document(tenant_id=tenant, name="policy.md",
                                                   content=DOC, content_type=".md")
            workbench = PromptWorkbench(deps.pool, deps.tenant_settings)
            await workbench.save_draft(tenant, Tuning(system_prompt="d"), by="setup")
        finally:
            await deps.aclose()

    # GIVEN an exported set (a question line and an exported conversation) and a stored draft
    asyncio.run(seed())
    data = tmp_path / "set.jsonl"
    data.write_text(json.dumps({"question": COVERED}, ensure_ascii=False) + "\n"
                    + json.dumps({"messages": [{"role": "visitor", "text": UNCOVERED},
                                               {"role": "assistant", "text": "…"}]},
                                 ensure_ascii=False) + "\n", encoding="utf-8")
    for key, value in {"KEFU_ENV": "production", "DATABASE_URL": pg_dsn,
                       "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
                       "TOKEN_SECRETS": SECRET}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        # WHEN `kefu replay` runs on it
        code = main(["replay", "--tenant", tenant, "--file", str(data), "--json"])
    finally:
        get_settings.cache_clear()
    # THEN the report has both questions, published and draft
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 2
    assert report["before"]["retrieval_hits"] == 1 and report["before"]["refusals"] == 1
    assert report["after"] == report["before"]
