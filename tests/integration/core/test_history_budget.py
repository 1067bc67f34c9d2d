"""The turns a reply sends the model stay within HISTORY_TOKEN_BUDGET (kefu_core.answers.history):
the stream flow on real PostgreSQL and Redis, a real router, the fake OpenAI-compatible server
over HTTP/SSE reading what the model received."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kefu_core.deps import Deps
from kefu_core.flows.stream import handle_stream
from kefu_llm import AdapterSettings, ChatMessage, EngineConfig, build_router, count_tokens
from tests.support.core import core_settings, make_deps
from tests.support.fake_openai import FakeOpenAI

BUDGET = 1000
SUMMARY_HEADS = ("此前对话要点：", "Earlier in this conversation: ")
_SENTENCES = (
    "我上周在你们店里买了一台空气净化器，型号是 KJ{n}，到现在还没有发货",
    "物流信息一直显示已揽收，第 {n} 天了也没有更新，能帮我查一下吗",
    "另外我想把收货地址改到公司，因为白天家里没有人可以签收",
    "如果这周还到不了的话，我希望可以退款，或者换成别的型号也行",
    "之前客服说会在 {n} 小时内回复我，但是一直没有收到任何消息",
)


def _long_turn(n: int) -> str:
    """A visitor message of about 600 characters (a long complaint), different per n."""
    return "。".join(s.format(n=n * 10 + i) for i in range(6) for s in _SENTENCES) + "。"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=1) as server:
        yield server


@pytest.fixture
async def deps(pg_dsn: str, redis_url: str, redis_prefix: str,
               fake: FakeOpenAI) -> AsyncIterator[Deps]:
    router = build_router(settings=AdapterSettings(
        engines=[EngineConfig(name="main", provider="main", base_url=fake.base_url,
                              model="fake", api_keys=["sk-test-1"])],
        openai_api_key=None, openai_base_url=None, cache_ttl_s=0), redis=None)
    built, _, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                      memory_enabled=False, history_token_budget=BUDGET,
                      outbound_allow_private=True),
        router=router)
    yield built
    await built.aclose()
    await router.aclose()


@pytest.fixture
async def deps_with_knowledge(pg_dsn: str, redis_url: str, redis_prefix: str,
                              fake: FakeOpenAI) -> AsyncIterator[Deps]:
    router = build_router(settings=AdapterSettings(
        engines=[EngineConfig(name="main", provider="main", base_url=fake.base_url,
                              model="fake", api_keys=["sk-test-1"])],
        openai_api_key=None, openai_base_url=None, cache_ttl_s=0), redis=None)
    built, _, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                      history_token_budget=BUDGET, recall_deadline_ms=5000,
                      outbound_allow_private=True),
        router=router)
    yield built
    await built.aclose()
    await router.aclose()


async def _conversation(deps: Deps, visitor_turns: list[str],
                        tenant: str | None = None) -> tuple[str, str, int]:
    """A conversation with these visitor turns answered, then one more question (unanswered):
    (tenant, conversation id, the question's seq)."""
    tenant = tenant or f"h{uuid.uuid4().hex[:8]}"
    conversation = await deps.conversations.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    for i, text in enumerate(visitor_turns):
        asked = await deps.conversations.append(
            tenant_id=tenant, conversation_id=conversation.id, role="visitor", text=text,
            client_msg_id=f"m-{i}")
        await deps.conversations.append(
            tenant_id=tenant, conversation_id=conversation.id, role="assistant",
            text=f"好的，已经记录您的第 {i + 1} 个问题。", reply_to=asked.seq)
    question = await deps.conversations.append(
        tenant_id=tenant, conversation_id=conversation.id, role="visitor",
        text="那现在能退款吗？", client_msg_id="m-last")
    return tenant, conversation.id, question.seq


async def _reply(deps: Deps, fake: FakeOpenAI, visitor_turns: list[str],
                 tenant: str | None = None) -> list[dict[str, Any]]:
    """The messages the model received for the reply to the conversation's last question."""
    tenant, conversation_id, seq = await _conversation(deps, visitor_turns, tenant)
    result = await handle_stream({"tenant_id": tenant, "conversation_id": conversation_id,
                                  "reply_to_seq": seq, "text": "那现在能退款吗？"}, deps)
    assert result["status"] == "complete", result
    messages: list[dict[str, Any]] = fake.requests[-1]["messages"]
    return messages


async def test_a_long_history_is_compressed_to_the_budget(deps: Deps, fake: FakeOpenAI) -> None:
    # GIVEN a conversation of five long visitor messages (about 3,500 tokens before the
    # question, over a 1,000-token budget)
    turns = [_long_turn(n) for n in range(5)]
    # WHEN the stream flow answers the next question
    messages = await _reply(deps, fake, turns)
    # THEN the model got the system prompt, a summary of the older turns, the last turns
    # verbatim and the question verbatim
    assert messages[0]["content"].startswith(deps.settings.system_prompt)
    assert messages[-1] == {"role": "user", "content": "那现在能退款吗？"}
    (summary,) = [i for i, m in enumerate(messages) if m["content"].startswith(SUMMARY_HEADS)]
    history = messages[summary:-1]
    assert history[-1] == {"role": "assistant", "content": "好的，已经记录您的第 5 个问题。"}
    # AND the turns before the question fit the budget (they did not before)
    before = [ChatMessage(role=m["role"], content=m["content"]) for m in history]
    assert count_tokens(before) <= BUDGET
    assert count_tokens([ChatMessage(role="user", content=t) for t in turns]) > 3 * BUDGET
    # AND the turns kept verbatim are the newest ones
    verbatim = [m["content"] for m in history if m["role"] == "user"]
    assert all(text in turns[-len(verbatim):] for text in verbatim)
    assert turns[0] not in verbatim


async def test_an_ordinary_history_is_sent_as_it_is(deps: Deps, fake: FakeOpenAI) -> None:
    # GIVEN a conversation of short messages (under the budget)
    turns = ["你好", "我的订单还没到", "订单号是 A1024"]
    # WHEN the stream flow answers the next question
    messages = await _reply(deps, fake, turns)
    # THEN every turn reached the model verbatim, with no summary
    assert [m["content"] for m in messages[1:] if m["role"] == "user"] == \
        [*turns, "那现在能退款吗？"]
    assert not any(m["content"].startswith(SUMMARY_HEADS) for m in messages)


async def test_the_tenants_knowledge_base_names_survive_compression_whole(
    deps_with_knowledge: Deps, fake: FakeOpenAI,
) -> None:
    deps = deps_with_knowledge
    # GIVEN a tenant whose knowledge base has a restaurant "一家人面馆" (its "一家" is filler
    # the extract drops when it does not know the name)
    tenant = f"h{uuid.uuid4().hex[:8]}"
    memory = await deps.load_memory()
    assert memory is not None
    await memory.knowledge.ingest_document(
        tenant_id=tenant, name="restaurants.md", content_type="md",
        content="# 一家人面馆\n\n推荐菜：炸酱面、卤煮\n\n人均消费：48\n\n评分：4.6\n")
    # AND a long conversation whose oldest message names it once
    turns = [f"上周在一家人面馆吃的面不新鲜。{_long_turn(0)}",
             *(_long_turn(n) for n in range(1, 5))]
    # WHEN the stream flow answers the next question
    messages = await _reply(deps, fake, turns, tenant)
    # THEN the older turns were compressed within the budget and the summary keeps the name
    (at,) = [i for i, m in enumerate(messages) if m["content"].startswith(SUMMARY_HEADS)]
    assert "一家人面馆" in messages[at]["content"]
    # (the knowledge passages follow the summary as a system message of their own)
    history = [messages[at], *(m for m in messages[at + 1 : -1] if m["role"] != "system")]
    assert count_tokens([ChatMessage(role=m["role"], content=m["content"])
                         for m in history]) <= BUDGET
