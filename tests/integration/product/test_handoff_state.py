"""Handoff state on real Redis and PostgreSQL: round-robin within capacity, presence,
failures leading to a handoff, and the append-only, redacted audit log."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from kefu_core.chat.connections import ConnectionRecord
from kefu_core.deps import Deps
from kefu_core.product.audit import AuditLog
from kefu_core.product.handoff.moves import (
    after_reply,
    dispatch,
    matches_keyword,
    requeue_if_agent_gone,
    take_over,
)
from kefu_core.product.tenants.passwords import verify_password
from kefu_llm import Final
from tests.support.core import RecordingPoster, core_settings, make_deps


@pytest.fixture
async def deps(pg_dsn: str, redis_url: str, redis_prefix: str) -> AsyncIterator[
    tuple[Deps, RecordingPoster]
]:
    built, poster, _ = await make_deps(
        core_settings(pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix,
                      memory_enabled=False),
    )
    yield built, poster
    await built.aclose()


async def _online(deps: Deps, tenant: str, agent: str, capacity: int) -> str:
    connection_id = f"conn-{agent}-{uuid.uuid4().hex[:6]}"
    await deps.connections.add(ConnectionRecord(
        connection_id=connection_id, tenant_id=tenant, subject=agent, role="agent",
        connected_at=deps.connections.now()))
    await deps.handoff.set_online(tenant_id=tenant, agent_id=agent, name=agent.title(),
                                  capacity=capacity)
    return connection_id


async def test_round_robin_within_capacity(deps: tuple[Deps, RecordingPoster]) -> None:
    d, _ = deps
    state = d.handoff
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    # GIVEN two online agents with room for one conversation each, and one offline agent
    await _online(d, tenant, "ann", 1)
    await _online(d, tenant, "ben", 1)
    await state.set_online(tenant_id=tenant, agent_id="cat", name="Cat", capacity=5)  # no conn
    for conversation in ("c1", "c2", "c3"):
        await state.enqueue(tenant_id=tenant, conversation_id=conversation)
    # WHEN assignments are made
    picks = [await state.assign_next(tenant) for _ in range(3)]
    # THEN the oldest conversations go to each agent in turn, and the third waits
    assert picks[0] is not None and picks[1] is not None and picks[2] is None
    assert {picks[0][1], picks[1][1]} == {"ann", "ben"}
    assert [picks[0][0], picks[1][0]] == ["c1", "c2"]
    assert await state.position(tenant_id=tenant, conversation_id="c3") == 1
    # WHEN one agent's conversation ends, the waiting one goes to them
    await state.unbind(tenant_id=tenant, agent_id="ann", conversation_id="c1")
    assert await state.assign_next(tenant) == ("c3", "ann")


async def test_agent_without_connections_is_not_online(
    deps: tuple[Deps, RecordingPoster],
) -> None:
    d, _ = deps
    state = d.handoff
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    connection = await _online(d, tenant, "ann", 2)
    assert [a.id for a in await state.online_agents(tenant)] == ["ann"]
    # WHEN the agent's last console disconnects
    await d.connections.remove(connection)
    # THEN nobody is online and nothing is assigned
    assert await state.online_agents(tenant) == []
    await state.enqueue(tenant_id=tenant, conversation_id="c1")
    assert await state.assign_next(tenant) is None


async def test_a_good_replys_reset_of_the_failure_count_goes_with_the_callers_batch(
    deps: tuple[Deps, RecordingPoster],
) -> None:
    d, _ = deps
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conversation = await d.conversations.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    incomplete = Final(text="...", status="incomplete", engine="primary")
    complete = Final(text="...", status="complete", engine="primary")
    # GIVEN one failed reply (the default threshold is two in a row)
    assert await after_reply(d, tenant_id=tenant, conversation_id=conversation.id,
                             final=incomplete) is False
    # WHEN a good reply's bookkeeping is queued on a batch that is sent
    async with d.redis.pipeline(transaction=True) as batch:
        assert await after_reply(d, tenant_id=tenant, conversation_id=conversation.id,
                                 final=complete, batch=batch) is False
        await batch.execute()
    # THEN the count started again: one more failure does not hand off
    assert await after_reply(d, tenant_id=tenant, conversation_id=conversation.id,
                             final=incomplete) is False
    kept = await d.conversations.get(tenant_id=tenant, conversation_id=conversation.id)
    assert kept is not None and kept.owner == "bot"


async def test_repeated_failures_and_the_structured_signal_hand_off(
    deps: tuple[Deps, RecordingPoster],
) -> None:
    d, _ = deps
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conversation = await d.conversations.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    incomplete = Final(text="...", status="incomplete", engine="primary")
    complete = Final(text="...", status="complete", engine="primary")
    # GIVEN the default threshold of two failures in a row
    assert await after_reply(d, tenant_id=tenant, conversation_id=conversation.id,
                             final=incomplete) is False
    # WHEN a good reply comes in between, the count starts again
    assert await after_reply(d, tenant_id=tenant, conversation_id=conversation.id,
                             final=complete) is False
    assert await after_reply(d, tenant_id=tenant, conversation_id=conversation.id,
                             final=incomplete) is False
    # THEN the second failure in a row queues the conversation
    assert await after_reply(d, tenant_id=tenant, conversation_id=conversation.id,
                             final=incomplete) is True
    queued = await d.conversations.get(tenant_id=tenant, conversation_id=conversation.id)
    assert queued is not None and queued.owner == "queue" and queued.handoff_reason == "failures"
    # AND a final event carrying the structured flag hands off at once
    other = await d.conversations.open_for_visitor(tenant_id=tenant, visitor_id="v-2")
    assert await after_reply(d, tenant_id=tenant, conversation_id=other.id,
                             final=Final(text="", status="complete", engine="primary",
                                         handoff=True)) is True
    assert await dispatch(d, tenant_id=tenant) == 0  # nobody online: both wait


def test_keywords_match_cjk_substrings_and_latin_words() -> None:
    keywords = ["转人工", "human", "agent"]
    assert matches_keyword("请帮我转人工，谢谢", keywords)
    assert matches_keyword("Can I talk to a HUMAN?", keywords)
    assert not matches_keyword("my user-agentless browser", ["agent"])
    assert not matches_keyword("humanity is great", keywords)
    assert not matches_keyword("退货政策是什么", keywords)


async def test_audit_log_is_append_only_and_redacted(pg_dsn: str,
                                                     deps: tuple[Deps, RecordingPoster]) -> None:
    d, _ = deps
    log = AuditLog(d.pool)
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    entry = await log.record(tenant_id=tenant, actor_type="agent", actor_id="a-1",
                             action="conversation.note_added", target_type="conversation",
                             target_id="x", detail={"text": "手机 13812345678 邮箱 a@b.cn"})
    stored = (await log.query(tenant_id=tenant))[0]
    assert stored.id == entry
    assert "13812345678" not in stored.detail["text"] and "a@b.cn" not in stored.detail["text"]
    # WHEN anybody tries to change or remove history, the database refuses
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert len(await log.query(tenant_id=tenant)) == 1


async def test_redaction_fails_closed(deps: tuple[Deps, RecordingPoster]) -> None:
    d, _ = deps

    def broken(text: str) -> str:
        raise RuntimeError("detector down")

    log = AuditLog(d.pool, redactor=broken)
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    await log.record(tenant_id=tenant, actor_type="system", actor_id=None, action="x",
                     detail={"text": "13812345678", "n": 3})
    assert (await log.query(tenant_id=tenant))[0].detail == {"text": "[REDACTED]", "n": 3}


async def test_passwords_are_hashed_and_checked(deps: tuple[Deps, RecordingPoster]) -> None:
    d, _ = deps
    agents = d.agents
    tenant = f"t{uuid.uuid4().hex[:6]}"
    await d.tenants.ensure(tenant_id=tenant, name=tenant)
    email = f"x-{uuid.uuid4().hex[:6]}@t.cn"
    agent = await agents.create(tenant_id=tenant, email=email, name="X",
                                password="correct horse")
    async with d.pool.connection() as conn:
        cur = await conn.execute("SELECT password_hash FROM agents WHERE id = %s", (agent.id,))
        row = await cur.fetchone()
    assert row is not None and row[0].startswith("scrypt$") and "correct" not in row[0]
    assert verify_password("correct horse", row[0])
    sign_in = functools.partial(agents.authenticate, tenant_id=tenant)
    assert await sign_in(email=email.upper(), password="correct horse") is not None
    assert await sign_in(email=email, password="wrong") is None
    assert await sign_in(email=email, password="correct horse", allow_demo=False) is not None
    await agents.update(tenant_id=tenant, agent_id=agent.id, active=False)
    assert await sign_in(email=email, password="correct horse") is None


async def test_a_conversation_whose_agent_left_goes_back_to_the_queue(
    deps: tuple[Deps, RecordingPoster],
) -> None:
    d, _ = deps
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conversation = await d.conversations.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    connection = await _online(d, tenant, "ann", 2)
    taken = await take_over(d, tenant_id=tenant, conversation_id=conversation.id,
                            agent_id="ann")
    # GIVEN the agent is still connected, nothing moves
    assert await requeue_if_agent_gone(d, conversation=taken) is False
    # WHEN the agent's console disconnects and another agent is online
    await d.connections.remove(connection)
    await _online(d, tenant, "ben", 2)
    # THEN the conversation is re-queued and assigned to the other agent
    assert await requeue_if_agent_gone(d, conversation=taken) is True
    now = await d.conversations.get(tenant_id=tenant, conversation_id=conversation.id)
    assert now is not None and now.owner == "human" and now.assigned_agent == "ben"
    assert await d.handoff.assigned(tenant_id=tenant, agent_id="ann") == []
