"""Settling a reply whose stream invocation failed (the stream failure queue's consumer):
once, whatever the reply's state, and never for a conversation an agent took over."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kefu_core.chat.conversations import ConversationStore
from kefu_core.infra.db import migrate, open_pool


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[ConversationStore]:
    pool = await open_pool(pg_dsn, min_size=1, max_size=4)
    await migrate(pool)
    yield ConversationStore(pool)
    await pool.close()


async def _asked(store: ConversationStore) -> tuple[str, str, int]:
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    conversation = await store.open_for_visitor(tenant_id=tenant, visitor_id="v-1")
    asked = await store.append(tenant_id=tenant, conversation_id=conversation.id,
                               role="visitor", text="Where is my order?", client_msg_id="c-1")
    return tenant, conversation.id, asked.seq


async def test_a_reply_that_never_started_is_stored_incomplete_once(
    store: ConversationStore,
) -> None:
    tenant, conversation, asked = await _asked(store)
    # WHEN the failure is settled, then settled again (a redelivered record)
    first = await store.settle_failed_reply(tenant_id=tenant, conversation_id=conversation,
                                            reply_to=asked, reason="failed")
    second = await store.settle_failed_reply(tenant_id=tenant, conversation_id=conversation,
                                             reply_to=asked, reason="failed")
    # THEN one empty incomplete reply exists, and the second call changed nothing
    assert first is not None and first.status == "incomplete" and first.text == ""
    assert first.reply_to == asked and first.meta["reason"] == "failed"
    assert second is None
    # AND a late reply to the same message is a duplicate: it is not answered twice
    late = await store.append(tenant_id=tenant, conversation_id=conversation, role="assistant",
                              text="", status="streaming", reply_to=asked)
    assert late.duplicate and late.seq == first.seq


async def test_a_reply_cut_mid_stream_keeps_its_row_and_becomes_incomplete(
    store: ConversationStore,
) -> None:
    tenant, conversation, asked = await _asked(store)
    reserved = await store.append(tenant_id=tenant, conversation_id=conversation,
                                  role="assistant", text="", status="streaming", reply_to=asked)
    settled = await store.settle_failed_reply(tenant_id=tenant, conversation_id=conversation,
                                              reply_to=asked, reason="failed")
    assert settled is not None and settled.seq == reserved.seq
    assert settled.status == "incomplete"
    # A finished reply is never touched
    assert await store.settle_failed_reply(tenant_id=tenant, conversation_id=conversation,
                                           reply_to=asked, reason="failed") is None


async def test_nothing_is_stored_for_a_conversation_an_agent_took_over(
    store: ConversationStore,
) -> None:
    tenant, conversation, asked = await _asked(store)
    await store.transition(tenant_id=tenant, conversation_id=conversation, owner="human",
                           assigned_agent="a-1", from_owners=("bot",))
    assert await store.settle_failed_reply(tenant_id=tenant, conversation_id=conversation,
                                           reply_to=asked, reason="failed") is None
    # AND another tenant's id never reaches the conversation
    assert await store.settle_failed_reply(tenant_id="other", conversation_id=conversation,
                                           reply_to=asked, reason="failed") is None
