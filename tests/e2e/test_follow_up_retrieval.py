"""A follow-up that does not name its subject reaches the model with the passage about the
thing being discussed: the whole reply path (gateway, stream flow, short-term memory, knowledge
search, router) over real WebSocket connections, the provider faked."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway, gateway_for_test

STORES_MD = """# 静安店
营业时间：每天上午10点开门，晚上10点关门。

# 浦东店
营业时间：每天上午9点开门，晚上9点关门。

# 徐汇店
营业时间：每天上午11点开门，晚上8点关门。
"""
HOURS = {"静安店": "上午10点开门", "浦东店": "上午9点开门", "徐汇店": "上午11点开门"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=5, tokens_per_s=0) as server:
        yield server


def _gateway(make_database, redis_url, folder: Path, fake: FakeOpenAI,  # type: ignore[no-untyped-def]
             name: str, **settings: object) -> Iterator[RunningGateway]:
    engines = [{"name": "primary", "provider": "fakeai", "base_url": fake.base_url,
                "model": "fake-chat", "api_keys": ["sk-primary"]}]
    mp = pytest.MonkeyPatch()
    mp.setenv("ENGINES", json.dumps(engines))  # read by the adapter when the router is built
    with gateway_for_test(dsn=make_database(), redis_url=redis_url, name=name,
                          knowledge_dir=str(folder), knowledge_tenant="shop",
                          knowledge_top_k=1, recall_deadline_ms=3000,
                          outbound_allowed_hosts=["127.0.0.1"], **settings) as running:
        yield running
    mp.undo()


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    folder: Path = tmp_path_factory.mktemp("stores")
    (folder / "stores.md").write_text(STORES_MD, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def gateway(make_database, redis_url, stores, fake) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    yield from _gateway(make_database, redis_url, stores, fake, "followup",
                        query_condenser="rules")


@pytest.fixture(scope="module")
def condensing(make_database, redis_url, stores, fake) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    yield from _gateway(make_database, redis_url, stores, fake, "condense",
                        query_condenser="llm")  # the default


async def conversation(gw: RunningGateway, texts: list[str]) -> None:
    token = issue_token(secrets=[SECRET], tenant_id="shop", subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gw.ws}?token={token}") as ws:
        for i, text in enumerate(texts):
            await ws.send(json.dumps({"action": "message", "client_msg_id": f"c-{i}",
                                      "text": text}))
            async with asyncio.timeout(15):
                while json.loads(await ws.recv())["type"] != "final":
                    pass


def sent(request: dict) -> str:  # type: ignore[type-arg]
    return json.dumps(request["messages"], ensure_ascii=False)


async def test_a_follow_up_reaches_the_model_with_the_store_being_discussed(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    # GIVEN the store whose hours the follow-up alone is NOT answered with
    fake.reset()
    await conversation(gateway, ["它几点开门？"])
    (alone,) = fake.requests
    store = next(s for s, hours in HOURS.items() if hours not in sent(alone))
    # WHEN a visitor asks about that store, then the same follow-up
    fake.reset()
    await conversation(gateway, [f"{store}在哪里？", "它几点开门？"])
    # THEN the model answering the follow-up got that store's opening hours, and no other's
    _, follow_up = fake.requests
    assert HOURS[store] in sent(follow_up)
    assert [s for s, h in HOURS.items() if h in sent(follow_up)] == [store]


async def test_a_condensed_question_from_the_engine_drives_the_search(
    condensing: RunningGateway, fake: FakeOpenAI
) -> None:
    # GIVEN an engine that rewrites the follow-up as a standalone question about Xuhui
    fake.reset()
    # WHEN a conversation names no store before a follow-up the rules cannot resolve
    await conversation(condensing, ["你们有几家店？"])
    fake.push({"reply": "徐汇店几点开门"})  # the next request is the condenser's
    await conversation(condensing, ["你们有几家店？", "第一家几点开门？"])
    # THEN the condenser was asked with the conversation, and the reply's request carries the
    # passage its question found
    requests = fake.requests
    condense = next(r for r in requests if "standalone search query" in sent(r))
    assert "第一家几点开门？" in sent(condense) and "你们有几家店？" in sent(condense)
    reply = requests[requests.index(condense) + 1]
    assert HOURS["徐汇店"] in sent(reply)
