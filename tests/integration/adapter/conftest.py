"""Fixtures for adapter integration tests: the fake OpenAI server and router factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from kefu_llm import AdapterSettings, ChatMessage, ChatRequest, Delta, EngineConfig, Event, Final
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_server.reset()
    fake_server.set_valid_keys(None)
    yield fake_server
    fake_server.reset()
    fake_server.set_valid_keys(None)


def engine(fake: FakeOpenAI, name: str, model: str = "fake", **kw: Any) -> EngineConfig:
    keys = kw.pop("keys", ["sk-test-1"])
    return EngineConfig(
        name=name,
        provider=kw.pop("provider", name),
        base_url=fake.base_url,
        model=model,
        api_keys=keys,
        **kw,
    )


def settings(*engines: EngineConfig, **kw: Any) -> AdapterSettings:
    kw.setdefault("openai_api_key", None)
    kw.setdefault("openai_base_url", None)
    kw.setdefault("cache_ttl_s", 0)
    return AdapterSettings(engines=list(engines), **kw)


def request(text: str = "你好", *, tenant: str = "t1", **kw: Any) -> ChatRequest:
    return ChatRequest(
        tenant_id=tenant,
        conversation_id="c1",
        messages=[ChatMessage(role="user", content=text)],
        **kw,
    )


async def collect(stream: AsyncIterator[Event]) -> tuple[list[Event], Final]:
    events = [e async for e in stream]
    final = events[-1]
    assert isinstance(final, Final), events
    assert sum(isinstance(e, Final) for e in events) == 1
    assert "".join(e.text for e in events if isinstance(e, Delta)) == final.text
    return events, final


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


MakeRequest = Callable[..., ChatRequest]
