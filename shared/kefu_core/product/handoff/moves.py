"""Handoff between the assistant and human agents: the moves of a conversation's owner.

A conversation is owned by the bot, waits in the queue, or is owned by a human
(``conversations.owner``: ``bot`` | ``queue`` | ``human``, plus ``assigned_agent``). It moves to
the queue when the visitor presses the button, writes a handoff keyword, when the assistant
fails to answer ``handoff_after_failures`` times in a row, or when the model's final event
carries a structured handoff flag. Queued conversations are assigned to online agents with
free capacity, round-robin, by one Lua script in Redis (:mod:`.repository`), so every Lambda
container and every gateway replica agrees on who gets what. Outside the tenant's business
hours (:mod:`.opening`) a request is queued all the same but assigned to nobody until the
opening; an agent may still take it. Each move is audited and announced (:mod:`.notify`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from kefu_core.chat.conversations import Conversation
from kefu_core.chat.delivery import broadcast
from kefu_core.chat.protocol import assigned_frame, unassigned_frame
from kefu_core.infra.errors import KefuError
from kefu_core.product.audit import ActorType
from kefu_core.product.handoff.context import HandoffDeps
from kefu_core.product.handoff.notify import (
    agent_name,
    announce,
    broadcast_positions,
    notify_agent,
    state_frame,
)
from kefu_core.product.handoff.opening import hours_now

if TYPE_CHECKING:
    from kefu_llm import Final

__all__ = [
    "HandoffError",
    "HandoffReason",
    "after_reply",
    "close_conversation",
    "dispatch",
    "dispatch_at_opening",
    "matches_keyword",
    "release_to_bot",
    "request_handoff",
    "requeue_if_agent_gone",
    "take_over",
    "transfer",
]

HandoffReason = Literal["button", "keyword", "failures", "llm", "agent", "admin",
                        "agent_offline", "ungrounded"]


class HandoffError(KefuError):
    """The move is not possible in the conversation's current state (code says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def matches_keyword(text: str, keywords: list[str]) -> bool:
    """Whether ``text`` asks for a human: CJK keywords as substrings, Latin ones as words."""
    lowered = text.casefold()
    for keyword in keywords:
        word = keyword.strip().casefold()
        if not word:
            continue
        if word.isascii():
            if re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", lowered):
                return True
        elif word in lowered:
            return True
    return False


async def request_handoff(
    deps: HandoffDeps, *, tenant_id: str, conversation_id: str, reason: HandoffReason,
    actor_type: ActorType, actor_id: str | None,
) -> Conversation:
    """Move a bot-owned conversation to the queue and try to assign it at once."""
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation_id, owner="queue",
        assigned_agent=None, from_owners=("bot",), reason=reason,
    )
    if moved is None:
        current = await deps.conversations.get(tenant_id=tenant_id,
                                               conversation_id=conversation_id)
        if current is None:
            raise HandoffError("not_found", "no such conversation")
        if current.status != "open":
            raise HandoffError("conversation_closed", "this conversation is closed")
        await broadcast(deps, conversation_id, await state_frame(deps, current))
        return current
    deps.metrics.handoff(reason=reason)
    await deps.handoff.enqueue(tenant_id=tenant_id, conversation_id=conversation_id)
    await deps.handoff.reset_failures(conversation_id)
    hours = await hours_now(deps, tenant_id)
    await deps.audit.safe_record(
        tenant_id=tenant_id, actor_type=actor_type, actor_id=actor_id,
        action="conversation.handoff_requested", target_type="conversation",
        target_id=conversation_id,
        detail={"reason": reason, **({} if hours.open else {"closed": True})})
    if hours.open:
        await announce(deps, moved, "queued", "Waiting for a human agent", reason=reason)
    else:
        await announce(deps, moved, "queued", "Queued for the next opening", reason=reason,
                       opens_at=hours.public()["next_opening"])
    await dispatch(deps, tenant_id=tenant_id)
    return moved


async def requeue_if_agent_gone(deps: HandoffDeps, *, conversation: Conversation) -> bool:
    """A visitor wrote to a conversation whose agent has no live console any more: put it
    back in the queue (first in line by its original time) so another agent gets it."""
    agent_id = conversation.assigned_agent
    if conversation.owner != "human" or agent_id is None or conversation.status != "open":
        return False
    tenant_id = conversation.tenant_id
    if await deps.handoff.is_connected(tenant_id=tenant_id, agent_id=agent_id):
        return False
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation.id, owner="queue",
        assigned_agent=None, from_owners=("human",), from_agent=agent_id,
        reason="agent_offline",
    )
    if moved is None:
        return False
    deps.metrics.handoff(reason="agent_offline")
    await deps.handoff.unbind(tenant_id=tenant_id, agent_id=agent_id,
                              conversation_id=conversation.id)
    await deps.handoff.enqueue(tenant_id=tenant_id, conversation_id=conversation.id)
    await deps.audit.safe_record(
        tenant_id=tenant_id, actor_type="system", actor_id=None,
        action="conversation.requeued", target_type="conversation",
        target_id=conversation.id, detail={"reason": "agent_offline", "agent_id": agent_id})
    await announce(deps, moved, "queued", "Waiting for a human agent", reason="agent_offline")
    await dispatch(deps, tenant_id=tenant_id)
    return True


async def dispatch(deps: HandoffDeps, *, tenant_id: str) -> int:
    """Assign queued conversations to online agents with capacity; return how many. Outside
    business hours nobody is assigned (the waiting visitors are told when agents are back)."""
    assigned = 0
    open_now = (await hours_now(deps, tenant_id)).open
    while open_now:
        pick = await deps.handoff.assign_next(tenant_id)
        if pick is None:
            break
        conversation_id, agent_id = pick
        moved = await deps.conversations.transition(
            tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
            assigned_agent=agent_id, from_owners=("queue",),
        )
        if moved is None:  # closed or taken meanwhile: give the capacity back
            await deps.handoff.unbind(tenant_id=tenant_id, agent_id=agent_id,
                                      conversation_id=conversation_id)
            continue
        assigned += 1
        await _joined(deps, moved, agent_id, actor_type="system", actor_id=None,
                      action="conversation.assigned")
    await broadcast_positions(deps, tenant_id)
    return assigned


async def dispatch_at_opening(deps: HandoffDeps, *, tenant_id: str) -> int:
    """On a console's heartbeat: once business hours open after the tenant was seen closed,
    the queue that waited is assigned as usual (by one caller only). Hours switched off
    count as an opening."""
    if not (await hours_now(deps, tenant_id)).open or not await deps.handoff.reopened(tenant_id):
        return 0
    return await dispatch(deps, tenant_id=tenant_id)


async def _joined(deps: HandoffDeps, conversation: Conversation, agent_id: str, *,
                  actor_type: ActorType, actor_id: str | None, action: str) -> None:
    name = await agent_name(deps, conversation.tenant_id, agent_id) or agent_id
    await notify_agent(deps, conversation.tenant_id, agent_id, assigned_frame(
        conversation_id=conversation.id, visitor_id=conversation.visitor_id),
        watch=conversation.id)
    await deps.audit.safe_record(
        tenant_id=conversation.tenant_id, actor_type=actor_type, actor_id=actor_id,
        action=action, target_type="conversation", target_id=conversation.id,
        detail={"agent_id": agent_id})
    await announce(deps, conversation, "agent_joined", f"{name} joined the conversation",
                    agent_name=name, agent_id=agent_id)


async def take_over(
    deps: HandoffDeps, *, tenant_id: str, conversation_id: str, agent_id: str,
    actor_type: ActorType = "agent",
) -> Conversation:
    """An agent takes a conversation from the bot or the queue."""
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
        assigned_agent=agent_id, from_owners=("bot", "queue"), reason="agent",
    )
    if moved is None:
        current = await deps.conversations.get(tenant_id=tenant_id,
                                               conversation_id=conversation_id)
        if current is None:
            raise HandoffError("not_found", "no such conversation")
        if current.owner == "human" and current.assigned_agent == agent_id \
                and current.status == "open":
            return current
        raise HandoffError("not_available", "this conversation is not available to take")
    await deps.handoff.dequeue(tenant_id=tenant_id, conversation_id=conversation_id)
    await deps.handoff.bind(tenant_id=tenant_id, agent_id=agent_id,
                            conversation_id=conversation_id)
    await _joined(deps, moved, agent_id, actor_type=actor_type, actor_id=agent_id,
                  action="conversation.taken_over")
    await broadcast_positions(deps, tenant_id)
    return moved


async def transfer(
    deps: HandoffDeps, *, tenant_id: str, conversation_id: str, from_agent: str, to_agent: str,
    actor_type: ActorType = "agent",
) -> Conversation:
    """Give a conversation to another agent: the assigned agent may, an admin always may."""
    target = await deps.agents.get(tenant_id=tenant_id, agent_id=to_agent)
    if target is None or not target.active:
        raise HandoffError("unknown_agent", "no such agent")
    current = await deps.conversations.get(tenant_id=tenant_id, conversation_id=conversation_id)
    if current is None:
        raise HandoffError("not_found", "no such conversation")
    if actor_type == "admin":
        moved = await deps.conversations.transition(
            tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
            assigned_agent=to_agent, from_owners=("human", "queue", "bot"),
            from_agent=current.assigned_agent)
    else:
        moved = await deps.conversations.transition(
            tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
            assigned_agent=to_agent, from_owners=("human",), from_agent=from_agent)
    if moved is None:
        raise HandoffError("not_yours", "only the assigned agent can transfer it")
    previous = current.assigned_agent
    if previous:
        await deps.handoff.unbind(tenant_id=tenant_id, agent_id=previous,
                                  conversation_id=conversation_id)
        await notify_agent(deps, tenant_id, previous,
                           unassigned_frame(conversation_id=conversation_id))
    await deps.handoff.dequeue(tenant_id=tenant_id, conversation_id=conversation_id)
    await deps.handoff.bind(tenant_id=tenant_id, agent_id=to_agent,
                            conversation_id=conversation_id)
    await _joined(deps, moved, to_agent, actor_type=actor_type, actor_id=from_agent,
                  action="conversation.transferred")
    return moved


async def release_to_bot(
    deps: HandoffDeps, *, tenant_id: str, conversation_id: str, agent_id: str,
    actor_type: ActorType = "agent",
) -> Conversation:
    """Hand a conversation back to the assistant."""
    current = await deps.conversations.get(tenant_id=tenant_id, conversation_id=conversation_id)
    if current is None:
        raise HandoffError("not_found", "no such conversation")
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation_id, owner="bot", assigned_agent=None,
        from_owners=("human", "queue"),
        from_agent=current.assigned_agent if actor_type == "admin" else agent_id,
    )
    if moved is None:
        raise HandoffError("not_yours", "only the assigned agent can hand it back")
    await _let_go(deps, current)
    await deps.handoff.reset_failures(conversation_id)
    await deps.audit.safe_record(
        tenant_id=tenant_id, actor_type=actor_type, actor_id=agent_id,
        action="conversation.returned_to_bot", target_type="conversation",
        target_id=conversation_id)
    await announce(deps, moved, "returned_to_bot", "The assistant is back")
    await dispatch(deps, tenant_id=tenant_id)
    return moved


async def close_conversation(
    deps: HandoffDeps, *, tenant_id: str, conversation_id: str, actor_type: ActorType,
    actor_id: str | None, agent_id: str | None = None,
) -> Conversation:
    """Close a conversation. An agent (``agent_id``) may close only a conversation assigned to
    them, never one the bot or the queue holds; admins and visitors pass no ``agent_id``."""
    current = await deps.conversations.get(tenant_id=tenant_id, conversation_id=conversation_id)
    if current is None:
        raise HandoffError("not_found", "no such conversation")
    if agent_id is not None and (current.owner != "human" or current.assigned_agent != agent_id):
        raise HandoffError("not_yours", "this conversation is not assigned to you")
    closed = await deps.conversations.close(tenant_id=tenant_id, conversation_id=conversation_id)
    if closed is None:
        raise HandoffError("conversation_closed", "this conversation is already closed")
    await _let_go(deps, current)
    await deps.audit.safe_record(
        tenant_id=tenant_id, actor_type=actor_type, actor_id=actor_id,
        action="conversation.closed", target_type="conversation", target_id=conversation_id)
    await announce(deps, closed, "closed", "The conversation was closed")
    await dispatch(deps, tenant_id=tenant_id)
    return closed


async def _let_go(deps: HandoffDeps, conversation: Conversation) -> None:
    """Take a conversation off its agent's load and out of the queue."""
    if conversation.assigned_agent:
        await deps.handoff.unbind(tenant_id=conversation.tenant_id,
                                  agent_id=conversation.assigned_agent,
                                  conversation_id=conversation.id)
    await deps.handoff.dequeue(tenant_id=conversation.tenant_id, conversation_id=conversation.id)


async def after_reply(
    deps: HandoffDeps, *, tenant_id: str, conversation_id: str, final: Final,
    batch: Any | None = None,
) -> bool:
    """Called by the stream flow after a reply: hand off on the model's structured signal or
    after too many failed replies in a row. True when the conversation was queued.
    ``batch``: a Redis pipeline the caller sends, where a good reply's reset of the failure
    count is queued instead of being a round trip of its own."""
    settings, _ = await deps.tenant_settings.current(tenant_id)
    failed = final.status != "complete" or not final.answered
    reason: HandoffReason | None = "llm" if final.handoff else None
    if reason is None and failed and settings.handoff_after_failures > 0:
        if await deps.handoff.record_failure(conversation_id) >= \
                settings.handoff_after_failures:
            reason = "failures"
    elif not failed:
        if batch is not None:
            deps.handoff.queue_reset_failures(batch, conversation_id)
        else:
            await deps.handoff.reset_failures(conversation_id)
    if reason is None:
        return False
    try:
        await request_handoff(deps, tenant_id=tenant_id, conversation_id=conversation_id,
                              reason=reason, actor_type="system", actor_id=None)
    except HandoffError:
        return False
    return True
