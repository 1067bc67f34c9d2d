"""Testing one engine of a tenant's chain from the admin API, on a production gateway whose
tenant engines are fake OpenAI-compatible servers: only the named engine answers, streamed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway
from tests.support.prod_gateway import admin_token, production_gateway

DATA_KEY = "engine-trial-test-data-key-0123456789-abcdef"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(make_database: Callable[[], str], redis_url: str) -> Iterator[RunningGateway]:
    with production_gateway(dsn=make_database(), redis_url=redis_url,
                            name=f"engine-trial-{uuid.uuid4().hex[:6]}",
                            data_encryption_key=[DATA_KEY], outbound_allow_private=True,
                            cache_ttl_s=0) as running:
        yield running


async def _trial(admin: httpx.AsyncClient, name: str) -> tuple[int, list[dict[str, Any]]]:
    async with admin.stream("POST", f"/v1/admin/engines/{name}/test",
                            json={"question": "Ping?"}) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, []
        return 200, [json.loads(line) async for line in response.aiter_lines() if line]


async def test_only_the_named_engine_answers_and_unusable_ones_are_not_found(
    gateway: RunningGateway, fake: FakeOpenAI,
) -> None:
    token = await admin_token(gateway, tenant="tea")
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30,
                                 headers={"authorization": f"Bearer {token}"}) as admin:
        # GIVEN a chain: a broken engine first, a working one, and one whose key is missing
        await admin.put("/v1/admin/engines/secrets/llm", json={"secret": "sk-tea"})
        chain = await admin.put("/v1/admin/engines", json={"chain": [
            {"name": "broken", "base_url": fake.base_url, "model": "fake:mode=error,status=500",
             "key_ref": "llm"},
            {"name": "good", "base_url": fake.base_url, "model": "good-model", "key_ref": "llm"},
            {"name": "keyless", "base_url": fake.base_url, "model": "m", "key_ref": "nokey"}]})
        assert chain.status_code == 200, chain.text
        # WHEN the admin tests the working engine
        fake.reset()
        status, events = await _trial(admin, "good")
        # THEN it streams its answer, and the final says it completed, with its first token
        assert status == 200
        final = events[-1]
        assert final["event"] == "final" and final["status"] == "complete"
        assert final["engine"] == "good" and isinstance(final["first_token_ms"], int)
        assert "".join(e["text"] for e in events if e["event"] == "delta") == "OK. Ping?"
        assert [r["model"] for r in fake.requests] == ["good-model"]
        # WHEN the admin tests the broken one
        fake.reset()
        status, events = await _trial(admin, "broken")
        # THEN it fails on its own: no other engine and no offline answer stands in
        assert status == 200 and events[-1]["status"] != "complete"
        assert not [e for e in events if e["event"] == "delta"]
        assert {r["model"] for r in fake.requests} == {"fake:mode=error,status=500"}
        # AND an engine without its key, or unknown, is not found
        assert (await _trial(admin, "keyless"))[0] == 404
        assert (await _trial(admin, "nobody"))[0] == 404
