"""The tuning workbench end to end on a production gateway: the tenant's engine is the fake
OpenAI-compatible server, so what each answer was asked with can be read back. A draft is
compared with the published tuning (streamed side by side), published, followed by the widget's
next answer, superseded and rolled back; every publish is in the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from kefu_core.security.rate_limits import counter_key
from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import admin_token, production_gateway

DATA_KEY = "workbench-test-data-key-0123456789-abcdef"
TENANT = "tea-shop"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str) -> Iterator[RunningGateway]:
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"workbench-{uuid.uuid4().hex[:6]}",
                            data_encryption_key=[DATA_KEY], outbound_allow_private=True,
                            cache_ttl_s=0) as running:
        yield running


@contextlib.asynccontextmanager
async def _admin(gateway: RunningGateway, fake: FakeOpenAI) -> AsyncIterator[httpx.AsyncClient]:
    """An admin of the tenant, whose engine chain is the fake server."""
    token = await admin_token(gateway, tenant=TENANT)
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30,
                                 headers={"authorization": f"Bearer {token}"}) as client:
        assert (await client.put("/v1/admin/engines/secrets/llm", json={"secret": "sk-tea"})
                ).status_code == 204
        chain = await client.put("/v1/admin/engines", json={"chain": [{
            "name": "tea-llm", "kind": "openai", "base_url": fake.base_url,
            "model": "tea-model", "key_ref": "llm"}]})
        assert chain.status_code == 200, chain.text
        yield client


def _systems(fake: FakeOpenAI) -> list[str]:
    """The system message of each chat request the fake received, in order."""
    return [next(m["content"] for m in r["messages"] if m["role"] == "system")
            for r in fake.requests]


async def _compare(admin: httpx.AsyncClient, question: str) -> list[dict[str, Any]]:
    async with admin.stream("POST", "/v1/admin/workbench/compare",
                            json={"question": question}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) async for line in response.aiter_lines() if line]


async def _visitor_asks(gateway: RunningGateway, text: str) -> dict[str, Any]:
    token = issue_token(secrets=[SECRET], tenant_id=TENANT, subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gateway.ws}?token={token}", open_timeout=10) as ws:
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1", "text": text}))
        async with asyncio.timeout(30):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "final":
                    return dict(frame)


def _tuning(prompt: str, **knobs: Any) -> dict[str, Any]:
    return {"system_prompt": prompt, "emoji_frequency": "none",
            "handoff_keywords": ["转人工", "human"], **knobs}


async def test_draft_compare_publish_widget_follows_rollback_and_audit(
    gateway: RunningGateway, fake: FakeOpenAI,
) -> None:
    fake.reset()
    async with _admin(gateway, fake) as admin:
        # GIVEN a tenant on the deployment's default prompt, with no draft and no version
        start = (await admin.get("/v1/admin/workbench")).json()
        assert start["published"]["system_prompt"] == "" and start["draft"] is None
        assert start["versions"] == [] and start["default_prompt"]
        # WHEN the admin saves a draft and compares it with the published tuning
        saved = await admin.put("/v1/admin/workbench/draft",
                                json=_tuning("You are Lin, the tea shop's host. DRAFT-ONE"))
        assert saved.status_code == 204
        events = await _compare(admin, "Which green tea do you have?")
        # THEN the context comes first, then both sides stream to a final answer
        assert events[0]["event"] == "context"
        finals = {e["side"]: e for e in events if e["event"] == "final"}
        assert set(finals) == {"published", "draft"}
        assert all(f["status"] == "complete" and f["engine"] == "tea-llm"
                   for f in finals.values())
        for side in ("published", "draft"):
            deltas = "".join(e["text"] for e in events
                             if e["event"] == "delta" and e["side"] == side)
            assert deltas == finals[side]["text"] and "green tea" in deltas
        # AND the engine was asked once with the draft prompt and once with the default
        systems = _systems(fake)
        assert len(systems) == 2 and sum("DRAFT-ONE" in s for s in systems) == 1
        assert all("Do not use emoji" in s for s in systems if "DRAFT-ONE" in s)

        # WHEN the admin publishes the draft
        v1 = await admin.post("/v1/admin/workbench/publish", json={"note": "Lin persona"})
        assert v1.status_code == 201 and v1.json()["version"] == 1
        # THEN the visitor's next answer is asked with the new prompt
        fake.reset()
        assert (await _visitor_asks(gateway, "Hello?"))["status"] == "complete"
        assert "DRAFT-ONE" in _systems(fake)[-1]

        # WHEN a second version is published, then version 1 is rolled back to
        await admin.put("/v1/admin/workbench/draft", json=_tuning("TWO: be brief.",
                                                                  context_window=4))
        v2 = await admin.post("/v1/admin/workbench/publish", json={})
        back = await admin.post("/v1/admin/workbench/versions/1/rollback")
        # THEN the history grows (3, 2, 1) and what replies use is version 1's tuning again
        assert (v2.json()["version"], back.json()["version"]) == (2, 3)
        now = (await admin.get("/v1/admin/workbench")).json()
        assert [v["version"] for v in now["versions"]] == [3, 2, 1]
        assert now["versions"][0]["note"] == "rollback to v1"
        assert now["published"]["system_prompt"].endswith("DRAFT-ONE")
        assert now["published"]["context_window"] == 10 and now["draft"] is None
        fake.reset()
        await _visitor_asks(gateway, "Still there?")
        assert "DRAFT-ONE" in _systems(fake)[-1]
        # AND every publish is audited, without the prompt's text
        audit = (await admin.get("/v1/admin/audit", params={"target_type": "prompt"})).json()
        actions = [(e["action"], e["detail"].get("version")) for e in audit
                   if e["action"] in ("prompt.published", "prompt.rolled_back")]
        assert actions == [("prompt.rolled_back", 3), ("prompt.published", 2),
                           ("prompt.published", 1)]
        assert "DRAFT-ONE" not in json.dumps(audit)


async def test_publishing_without_a_draft_and_unknown_versions_are_not_found(
    gateway: RunningGateway, fake: FakeOpenAI,
) -> None:
    async with _admin(gateway, fake) as admin:
        await admin.delete("/v1/admin/workbench/draft")
        statuses = [(await admin.post("/v1/admin/workbench/publish", json={})).status_code,
                    (await admin.post("/v1/admin/workbench/versions/999/rollback")).status_code,
                    (await admin.post("/v1/admin/workbench/compare",
                                      json={"question": "hi"})).status_code]
    assert statuses == [404, 404, 404]


async def test_comparisons_are_rate_limited_per_tenant(
    gateway: RunningGateway, fake: FakeOpenAI, redis_url: str,
) -> None:
    async with _admin(gateway, fake) as admin:
        # GIVEN a tenant that already compared 20 times this minute
        client = aioredis.Redis.from_url(redis_url)
        key = counter_key(gateway.gateway.settings.redis_prefix, "workbench-compare", TENANT)
        await client.set(key, 20, ex=60)
        await client.aclose()
        # WHEN it compares again THEN it is told to wait, and no engine is called
        fake.reset()
        answer = await admin.post("/v1/admin/workbench/compare",
                                  json={"question": "hi", "draft": _tuning("x")})
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1
    assert fake.requests == []
