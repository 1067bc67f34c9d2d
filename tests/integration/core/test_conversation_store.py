"""The conversation store on real PostgreSQL: ordered sequence numbers, de-duplication."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kefu_core.chat.conversations import ConversationStore
from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.errors import ConversationClosed


@pytest.fixture
async def store(pg_dsn: str):  # type: ignore[no-untyped-def]
    pool = await open_pool(pg_dsn, min_size=1, max_size=8)
    await migrate(pool)
    yield ConversationStore(pool)
    await pool.close()


async def test_migrations_are_idempotent(pg_dsn: str) -> None:
    pool = await open_pool(pg_dsn, min_size=1, max_size=2)
    await migrate(pool)
    assert await migrate(pool) == []
    await pool.close()


async def test_visitor_keeps_one_open_conversation(store: ConversationStore) -> None:
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    first = await store.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    again = await store.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    other = await store.open_for_visitor(tenant_id=tenant, visitor_id="v-2")
    assert first.id == again.id != other.id


async def test_concurrent_appends_get_gapless_unique_sequence_numbers(
    store: ConversationStore,
) -> None:
    # GIVEN one conversation
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    # WHEN 50 messages are appended concurrently
    results = await asyncio.gather(*(
        store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor",
                     text=f"m{i}", client_msg_id=f"c-{i}")
        for i in range(50)
    ))
    # THEN sequence numbers are exactly 1..50 and every message is stored
    assert sorted(r.seq for r in results) == list(range(1, 51))
    stored = await store.since(tenant_id=tenant, conversation_id=conv.id, after_seq=0, limit=100)
    assert {m.text for m in stored} == {f"m{i}" for i in range(50)}


async def test_duplicate_client_msg_id_returns_original_seq_even_concurrently(
    store: ConversationStore,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    # WHEN the same client message arrives 10 times at once (client retries)
    results = await asyncio.gather(*(
        store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor",
                     text="hello", client_msg_id="c-same")
        for _ in range(10)
    ))
    # THEN one row exists, everyone got its seq, and the counter did not skip
    assert {r.seq for r in results} == {1}
    assert sum(not r.duplicate for r in results) == 1
    nxt = await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor",
                             text="next", client_msg_id="c-next")
    assert nxt.seq == 2


async def test_other_tenant_cannot_write_or_read(store: ConversationStore) -> None:
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor", text="secret")
    with pytest.raises(ConversationClosed):
        await store.append(tenant_id="intruder", conversation_id=conv.id, role="visitor",
                           text="x")
    assert await store.since(tenant_id="intruder", conversation_id=conv.id, after_seq=0,
                             limit=10) == []
    assert await store.get(tenant_id="intruder", conversation_id=conv.id) is None


async def test_stale_streaming_reply_is_reported_incomplete(store: ConversationStore) -> None:
    # GIVEN a reply reserved as streaming whose writer died long ago
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    q = await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor", text="q")
    r = await store.append(tenant_id=tenant, conversation_id=conv.id, role="assistant", text="",
                           status="streaming", reply_to=q.seq)
    async with store._pool.connection() as conn:
        await conn.execute("UPDATE messages SET updated_at = now() - interval '10 min'"
                           " WHERE conversation_id = %s AND seq = %s", (conv.id, r.seq))
    # WHEN replayed / THEN it is marked incomplete, not shown as whole
    replay = await store.since(tenant_id=tenant, conversation_id=conv.id, after_seq=0, limit=10)
    assert replay[-1].status == "incomplete"
    # AND a second reservation for the same question is refused as duplicate
    again = await store.append(tenant_id=tenant, conversation_id=conv.id, role="assistant",
                               text="", status="streaming", reply_to=q.seq)
    assert again.duplicate and again.seq == r.seq


async def test_a_reply_is_reserved_once_with_the_conversation_read_in_the_same_step(
    store: ConversationStore,
) -> None:
    # GIVEN a visitor's question in a bot-owned conversation
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    q = await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor", text="q")
    # WHEN the reply is reserved three times at once
    results = await asyncio.gather(*(
        store.reserve_reply(tenant_id=tenant, conversation_id=conv.id, reply_to=q.seq)
        for _ in range(3)))
    # THEN each call sees the conversation, one reserved the next number, the others got it
    assert all(c is not None and c.id == conv.id and c.owner == "bot" for c, _ in results)
    stored = [r for _, r in results]
    assert all(r is not None for r in stored)
    assert sum(not r.duplicate for r in stored if r) == 1
    assert {r.seq for r in stored if r} == {q.seq + 1}
    # AND another tenant's id reads nothing and reserves nothing
    assert await store.reserve_reply(tenant_id="other", conversation_id=conv.id,
                                     reply_to=q.seq) == (None, None)


async def test_no_reply_is_reserved_in_a_conversation_a_human_owns(
    store: ConversationStore,
) -> None:
    # GIVEN a conversation handed to a human
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    q = await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor", text="q")
    async with store._pool.connection() as conn:
        await conn.execute("UPDATE conversations SET owner = 'human' WHERE id = %s", (conv.id,))
    # WHEN the stream flow asks to reserve a reply
    found, reserved = await store.reserve_reply(tenant_id=tenant, conversation_id=conv.id,
                                                reply_to=q.seq)
    # THEN it reads the conversation, reserves nothing, and the sequence did not move
    assert found is not None and found.owner == "human" and reserved is None
    later = await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor",
                               text="q2")
    assert later.seq == q.seq + 1


async def test_append_returns_the_conversation_it_stored_into(store: ConversationStore) -> None:
    # GIVEN a conversation a human agent has taken over
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor", text="a",
                       client_msg_id="c-a")
    async with store._pool.connection() as conn:
        await conn.execute("UPDATE conversations SET owner = 'human', assigned_agent = 'ag-1'"
                           " WHERE id = %s", (conv.id,))
    # WHEN the visitor's next message is stored, and then resent
    stored = await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor",
                                text="b", client_msg_id="c-b")
    again = await store.append(tenant_id=tenant, conversation_id=conv.id, role="visitor",
                               text="b", client_msg_id="c-b")
    # THEN both answers carry the conversation as read by the same statement: who owns it,
    # and its sequence number after the message (the resend changed nothing)
    for result in (stored, again):
        assert result.conversation is not None
        assert result.conversation.id == conv.id
        assert (result.conversation.owner, result.conversation.assigned_agent) == ("human",
                                                                                  "ag-1")
        assert result.conversation.last_seq == 2
    assert (stored.seq, stored.duplicate, again.seq, again.duplicate) == (2, False, 2, True)


async def test_a_message_is_stored_while_every_shared_connection_is_busy(pg_dsn: str) -> None:
    # GIVEN a store with connections of its own for messages, and the shared pool's only
    # connection held by other work (a reply's reads and writes)
    shared = await open_pool(pg_dsn, min_size=1, max_size=1, timeout_s=0.5)
    ingress = await open_pool(pg_dsn, min_size=1, max_size=1, timeout_s=0.5)
    await migrate(shared)
    store = ConversationStore(shared, ingress=ingress)
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    try:
        async with shared.connection():
            # WHEN a visitor's message arrives
            stored = await store.append(tenant_id=tenant, conversation_id=conv.id,
                                        role="visitor", text="hello", client_msg_id="c-1")
        # THEN it is stored at once, under the next sequence number, without waiting
        assert (stored.seq, stored.duplicate) == (1, False)
        history = await store.since(tenant_id=tenant, conversation_id=conv.id, after_seq=0,
                                    limit=10)
        assert [m.text for m in history] == ["hello"]
    finally:
        await shared.close()
        await ingress.close()


async def test_a_message_is_stored_on_the_shared_pool_when_its_own_connections_are_busy(
    pg_dsn: str,
) -> None:
    # GIVEN a store whose connections for messages are all taken (a burst)
    shared = await open_pool(pg_dsn, min_size=1, max_size=2, timeout_s=0.5)
    ingress = await open_pool(pg_dsn, min_size=1, max_size=1, timeout_s=0.5)
    await migrate(shared)
    store = ConversationStore(shared, ingress=ingress)
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conv = await store.open_for_visitor(tenant_id=tenant, visitor_id="v")
    try:
        async with ingress.connection():
            # WHEN a visitor's message arrives
            stored = await store.append(tenant_id=tenant, conversation_id=conv.id,
                                        role="visitor", text="hello", client_msg_id="c-1")
        # THEN it is stored all the same, through the shared pool
        assert (stored.seq, stored.duplicate) == (1, False)
        assert shared.get_stats()["requests_num"] >= 1
        history = await store.since(tenant_id=tenant, conversation_id=conv.id, after_seq=0,
                                    limit=10)
        assert [m.text for m in history] == ["hello"]
    finally:
        await shared.close()
        await ingress.close()
