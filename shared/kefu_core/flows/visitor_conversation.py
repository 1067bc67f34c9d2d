"""A visitor's conversation starts when there is something in it: the first message, a request
for a human or an offline message, not when a page with the widget opens a connection.

A visitor connection made while its visitor had no open conversation carries none. The first
frame that needs one creates it (or finds the one another tab of the visitor created meanwhile)
and attaches the connection, and the visitor's other connections still without one (their
tabs see the conversation live from its first message). A new conversation is announced to
the consoles (their lists are live) and receives the context the connection sent before it
existed (product.visitor_context).
"""

from __future__ import annotations

import logging
from typing import Any

from kefu_core.chat.connections import ConnectionRecord
from kefu_core.chat.conversations import Conversation
from kefu_core.chat.protocol import ContextFrame, queue_changed_frame
from kefu_core.deps import Deps
from kefu_core.infra.errors import StoreError
from kefu_core.product.handoff.notify import notify_staff
from kefu_core.product.visitor_context import (
    VisitorContext,
    VisitorContexts,
    clean_url,
)

__all__ = ["EARLIER", "announce", "attached", "contexts", "keep_context", "started", "visit"]

logger = logging.getLogger("kefu.flows.visitor_conversation")
EARLIER = 10  # earlier conversations of the visitor shown beside one


def contexts(deps: Deps) -> VisitorContexts:
    return VisitorContexts(deps.pool, deps.redis, prefix=deps.settings.redis_prefix,
                           ttl_s=deps.settings.connection_ttl_s)


async def attached(deps: Deps, record: ConnectionRecord) -> ConnectionRecord:
    """The record, attached to its visitor's open conversation when one exists now."""
    if record.conversation_id is not None or record.role != "visitor":
        return record
    conversation = await deps.conversations.find_open(tenant_id=record.tenant_id,
                                                      visitor_id=record.subject)
    if conversation is None:
        return record
    return await _attach(deps, record, conversation.id)


async def started(deps: Deps, record: ConnectionRecord) -> tuple[ConnectionRecord, bool]:
    """The record, attached to its visitor's open conversation, created when there is none;
    and whether it was created now (then :func:`announce` it once the frame is handled)."""
    record = await attached(deps, record)
    if record.conversation_id is not None:
        return record, False
    conversation = await deps.conversations.open_for_visitor(tenant_id=record.tenant_id,
                                                             visitor_id=record.subject)
    record = await _attach(deps, record, conversation.id)
    for connection_id in await deps.connections.waiting(record.tenant_id, record.subject):
        other = await deps.connections.get(connection_id)  # the visitor's other tabs
        if other is not None and other.conversation_id is None:
            await _attach(deps, other, conversation.id)
    return record, True


async def announce(deps: Deps, record: ConnectionRecord) -> None:
    """Tell the consoles a visitor started a conversation: their lists refresh."""
    assert record.conversation_id is not None
    await notify_staff(deps, record.tenant_id, queue_changed_frame(
        conversation_id=record.conversation_id, event="created"))


async def _attach(deps: Deps, record: ConnectionRecord, conversation_id: str) -> ConnectionRecord:
    record = record.model_copy(update={"conversation_id": conversation_id})
    await deps.connections.attach(record)
    store = contexts(deps)
    waiting = await store.take(record.connection_id)
    if waiting is not None:
        await store.save(tenant_id=record.tenant_id, conversation_id=conversation_id,
                         context=waiting)
    return record


async def keep_context(deps: Deps, record: ConnectionRecord, frame: ContextFrame) -> None:
    """Store what the widget says about the visitor's page, with the browser and country from
    the handshake: on the conversation, or until the connection starts one."""
    context = VisitorContext(
        url=clean_url(frame.url), title=frame.title.strip(), referrer=clean_url(frame.referrer),
        language=frame.language.strip(), time_zone=frame.time_zone.strip(),
        browser=record.browser or "", country=record.country or "")
    store = contexts(deps)
    try:
        if record.conversation_id is None:
            await store.hold(record.connection_id, context)
        else:
            await store.save(tenant_id=record.tenant_id, conversation_id=record.conversation_id,
                             context=context)
    except StoreError:  # nice to have: the chat goes on without it
        logger.warning("visitor context not stored", exc_info=True)


async def visit(deps: Deps, conversation: Conversation) -> tuple[dict[str, Any] | None,
                                                                list[dict[str, Any]]]:
    """For the console: the visitor's context on this conversation, and their other
    conversations, newest first."""
    try:
        context = await contexts(deps).get(tenant_id=conversation.tenant_id,
                                           conversation_id=conversation.id)
        others = await deps.conversations.search(tenant_id=conversation.tenant_id,
                                                 visitor_id=conversation.visitor_id,
                                                 limit=EARLIER + 1)
    except StoreError:  # the conversation opens without them
        logger.warning("visit not read", exc_info=True)
        return None, []
    earlier = [{"id": c.id, "status": c.status, "created_at": c.created_at.isoformat(),
                "updated_at": c.updated_at.isoformat(), "last_text": c.last_text}
               for c in others if c.id != conversation.id][:EARLIER]
    return (context.model_dump() if context else None), earlier
