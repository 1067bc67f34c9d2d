"""Agent (and admin) frames on the ``message``/``$default`` routes: the live agent console.

Every action is scoped to the agent's tenant (conversation lookups are tenant-scoped, so
another tenant's conversation id is simply not found) and recorded in the audit log.

Before any staff frame, :func:`current_staff` checks that the connection's token is still
current (product.agent_auth) and takes the role from the database; a revoked console gets an
``unauthorized`` error frame and is disconnected.

Role rules (docs/console.md): every agent and admin may read any conversation of the tenant
(``open``, lists) and take one the bot or the queue holds; only the assigned agent replies and
signals typing. An agent transfers, hands back, closes, annotates and asks for suggestions only
on conversations assigned to them; an admin may do so on any conversation of the tenant.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from kefu_core.chat.connections import ConnectionRecord
from kefu_core.chat.conversations import Conversation
from kefu_core.chat.delivery import broadcast, send
from kefu_core.chat.protocol import (
    AnyClientFrame,
    ConversationActionFrame,
    ListFrame,
    NoteFrame,
    PresenceFrame,
    ReplyFrame,
    SuggestionOut,
    TransferFrame,
    TypingFrame,
    UploadFrame,
    ack_frame,
    agents_frame,
    conversation_frame,
    error_frame_for,
    message_frame,
    note_frame,
    presence_frame,
    queue_frame,
    suggestion_frame,
    typing_frame,
)
from kefu_core.deps import Deps
from kefu_core.flows.image_messages import image_meta, send_ticket
from kefu_core.flows.learn import propose_later
from kefu_core.flows.visitor_conversation import visit
from kefu_core.infra.errors import BadFrame, StoreError, Unauthorized
from kefu_core.product.agent_auth import staff_access
from kefu_core.product.audit import ActorType
from kefu_core.product.customer import customer_view
from kefu_core.product.handoff.moves import (
    HandoffError,
    close_conversation,
    dispatch,
    release_to_bot,
    take_over,
    transfer,
)
from kefu_core.product.handoff.notify import state_frame
from kefu_core.product.handoff.opening import hours_now
from kefu_core.security.roles import MODEL_ROLE, TURN_ROLE

if TYPE_CHECKING:
    from kefu_llm import Final

__all__ = ["current_staff", "handle_agent_frame"]

logger = logging.getLogger("kefu.flows.agent")

_SUGGEST_INSTRUCTION = (
    "Draft the next reply a human customer-service agent could send to this visitor. "
    "Write only the reply, in the visitor's language, friendly and concise."
)


def _summary(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id, "visitor_id": conversation.visitor_id,
        "customer_id": conversation.customer_id, "status": conversation.status,
        "owner": conversation.owner, "assigned_agent": conversation.assigned_agent,
        "handoff_reason": conversation.handoff_reason, "last_seq": conversation.last_seq,
        "updated_at": conversation.updated_at.isoformat(),
        "queued_at": conversation.queued_at.isoformat() if conversation.queued_at else None,
        "last_text": getattr(conversation, "last_text", None),
        "last_role": getattr(conversation, "last_role", None),
    }


async def current_staff(record: ConnectionRecord, deps: Deps) -> ConnectionRecord | None:
    """The connection's record with the role and name the database gives now, or None when
    its token was revoked (then the console is told and disconnected)."""
    try:
        access = await staff_access(deps, tenant_id=record.tenant_id, agent_id=record.subject,
                                    version=record.token_version)
    except Unauthorized as exc:
        logger.info("staff frame refused: %s", exc)
        await send(deps, record.connection_id,
                   error_frame_for(exc))
        with contextlib.suppress(StoreError):
            await deps.handoff.set_away(tenant_id=record.tenant_id,
                                        agent_id=record.subject)
        await deps.poster.close(record.connection_id)
        return None
    if access.role == record.role and access.name == record.name:
        return record
    return record.model_copy(update={"role": access.role, "name": access.name})


def _assigned_to_me(conversation: Conversation, me: str) -> bool:
    return conversation.owner == "human" and conversation.assigned_agent == me


async def _own_or_admin(
    deps: Deps, record: ConnectionRecord, conversation_id: str
) -> Conversation:
    """The conversation, when the caller is an admin or the agent it is assigned to."""
    conversation = await _conversation(deps, record.tenant_id, conversation_id)
    if record.role != "admin" and conversation.assigned_agent != record.subject:
        raise HandoffError("not_yours", "this conversation is not assigned to you")
    return conversation


async def handle_agent_frame(frame: AnyClientFrame, record: ConnectionRecord, deps: Deps) -> None:
    tenant_id, me = record.tenant_id, record.subject
    actor: ActorType = record.role
    if isinstance(frame, PresenceFrame):
        await _presence(frame, record, deps)
    elif isinstance(frame, ListFrame) and frame.action == "queue":
        await _queue(record, deps)
    elif isinstance(frame, ListFrame):
        online = await deps.handoff.online_agents(tenant_id)
        everyone = await deps.agents.list(tenant_id)
        await send(deps, record.connection_id, agents_frame(
            online=[a.model_dump() for a in online],
            everyone=[{"id": a.id, "name": a.name, "role": a.role} for a in everyone if a.active],
        ))
    elif isinstance(frame, ReplyFrame):
        await _reply(frame, record, deps)
    elif isinstance(frame, UploadFrame):
        if frame.conversation_id is None:
            raise BadFrame("invalid_frame", "invalid fields: conversation_id")
        conversation = await _replier(deps, record, frame.conversation_id)
        await send_ticket(deps, record, frame, conversation.id)
    elif isinstance(frame, NoteFrame):
        conversation = await _own_or_admin(deps, record, frame.conversation_id)
        note = await deps.service.add_note(
            tenant_id=tenant_id, conversation_id=conversation.id, agent_id=me,
            agent_name=record.name, text=frame.text.strip())
        await deps.audit.safe_record(
            tenant_id=tenant_id, actor_type=actor, actor_id=me, action="conversation.note_added",
            target_type="conversation", target_id=conversation.id,
            detail={"note_id": note.id, "chars": len(note.text)})
        await send(deps, record.connection_id, note_frame(**note.model_dump(mode="json")))
    elif isinstance(frame, TransferFrame):
        await transfer(deps, tenant_id=tenant_id, conversation_id=frame.conversation_id,
                       from_agent=me, to_agent=frame.agent_id, actor_type=actor)
        await _queue(record, deps)
    elif isinstance(frame, TypingFrame):
        if frame.conversation_id is None:
            raise BadFrame("invalid_frame", "invalid fields: conversation_id")
        conversation = await _conversation(deps, tenant_id, frame.conversation_id)
        if not _assigned_to_me(conversation, me):  # the visitor sees it: the replier only
            raise HandoffError("not_yours", "take the conversation over first")
        await broadcast(deps, conversation.id, typing_frame(
            conversation_id=conversation.id, role="agent", name=record.name),
            exclude=record.connection_id)
    elif isinstance(frame, ConversationActionFrame):
        await _conversation_action(frame, record, deps)
    else:
        raise BadFrame("unsupported_for_role", "agents use reply, not message")


async def _conversation(deps: Deps, tenant_id: str, conversation_id: str) -> Conversation:
    conversation = await deps.conversations.get(tenant_id=tenant_id,
                                                conversation_id=conversation_id)
    if conversation is None:
        raise HandoffError("not_found", "no such conversation")
    return conversation


async def _presence(frame: PresenceFrame, record: ConnectionRecord, deps: Deps) -> None:
    tenant_id, me = record.tenant_id, record.subject
    if frame.status == "away":
        await deps.handoff.set_away(tenant_id=tenant_id, agent_id=me)
    else:
        agent = await deps.agents.get(tenant_id=tenant_id, agent_id=me)
        if agent is not None and not agent.active:
            raise HandoffError("agent_disabled", "this agent account is disabled")
        await deps.handoff.set_online(
            tenant_id=tenant_id, agent_id=me, name=agent.name if agent else (record.name or me),
            capacity=agent.capacity if agent else 5)
        for conversation_id in await deps.handoff.assigned(tenant_id=tenant_id, agent_id=me):
            await deps.connections.watch(record.connection_id, conversation_id)
    await send(deps, record.connection_id, presence_frame(frame.status))
    if frame.status == "online":
        await dispatch(deps, tenant_id=tenant_id)
    await _queue(record, deps)


async def _queue(record: ConnectionRecord, deps: Deps) -> None:
    tenant_id, me = record.tenant_id, record.subject
    waiting = await deps.conversations.search(tenant_id=tenant_id, status="open",
                                              owners=("queue",), limit=200)
    order = {cid: i + 1 for i, cid in enumerate(await deps.handoff.queued(tenant_id))}
    waiting.sort(key=lambda c: order.get(c.id, 10**6))
    bot = await deps.conversations.search(tenant_id=tenant_id, status="open", owners=("bot",),
                                          limit=50)
    humans = await deps.conversations.search(tenant_id=tenant_id, status="open",
                                             owners=("human",), limit=200)
    hours = (await hours_now(deps, tenant_id)).public()
    until = {} if hours["open"] else {"queued_until": hours["next_opening"]}
    await send(deps, record.connection_id, queue_frame(
        waiting=[{**_summary(c), "position": order.get(c.id), **until} for c in waiting],
        bot=[_summary(c) for c in bot],
        mine=[_summary(c) for c in humans if c.assigned_agent == me],
        others=[_summary(c) for c in humans if c.assigned_agent != me],
        hours=hours,
    ))


async def _replier(deps: Deps, record: ConnectionRecord, conversation_id: str) -> Conversation:
    """The conversation, when it is open and assigned to the caller (who may then reply)."""
    conversation = await _conversation(deps, record.tenant_id, conversation_id)
    if conversation.status != "open":
        raise HandoffError("conversation_closed", "this conversation is closed")
    if conversation.owner != "human" or conversation.assigned_agent != record.subject:
        raise HandoffError("not_yours", "take the conversation over before replying")
    return conversation


async def _reply(frame: ReplyFrame, record: ConnectionRecord, deps: Deps) -> None:
    tenant_id, me = record.tenant_id, record.subject
    conversation = await _replier(deps, record, frame.conversation_id)
    meta = await image_meta(deps, tenant_id=tenant_id, conversation_id=conversation.id,
                            upload_id=frame.image, client_msg_id=frame.client_msg_id) or {}
    if record.name:
        meta["agent_name"] = record.name
    stored = await deps.conversations.append(
        tenant_id=tenant_id, conversation_id=conversation.id, role="agent", author=me,
        text=frame.text, client_msg_id=frame.client_msg_id, meta=meta or None,
    )
    await send(deps, record.connection_id, ack_frame(
        conversation_id=conversation.id, client_msg_id=frame.client_msg_id, seq=stored.seq,
        duplicate=stored.duplicate))
    if stored.duplicate:
        return
    await broadcast(deps, conversation.id, message_frame(
        conversation_id=conversation.id, seq=stored.seq, role="agent", text=frame.text,
        client_msg_id=frame.client_msg_id, agent_name=record.name,
        image=await deps.images.public(meta.get("image")),
    ), exclude=record.connection_id)
    await deps.audit.safe_record(
        tenant_id=tenant_id, actor_type=record.role,
        actor_id=me, action="conversation.agent_replied", target_type="conversation",
        target_id=conversation.id, detail={"seq": stored.seq})


async def _conversation_action(
    frame: ConversationActionFrame, record: ConnectionRecord, deps: Deps
) -> None:
    tenant_id, me = record.tenant_id, record.subject
    actor: ActorType = record.role
    if frame.action == "take":
        await take_over(deps, tenant_id=tenant_id, conversation_id=frame.conversation_id,
                        agent_id=me, actor_type=actor)
        await _open(frame.conversation_id, record, deps)
        await _queue(record, deps)
    elif frame.action == "release":
        await release_to_bot(deps, tenant_id=tenant_id, conversation_id=frame.conversation_id,
                             agent_id=me, actor_type=actor)
        await _queue(record, deps)
    elif frame.action == "close":
        closed = await close_conversation(deps, tenant_id=tenant_id,
                                          conversation_id=frame.conversation_id,
                                          actor_type=actor, actor_id=me,
                                          agent_id=None if actor == "admin" else me)
        await _queue(record, deps)
        if closed.owner == "human":  # resolved by a person: propose what the bot can learn
            await propose_later(deps, tenant_id=tenant_id, conversation_id=closed.id)
    elif frame.action == "suggest":
        await _own_or_admin(deps, record, frame.conversation_id)
        await _suggest(frame.conversation_id, record, deps)
    else:
        await _open(frame.conversation_id, record, deps)


async def _open(conversation_id: str, record: ConnectionRecord, deps: Deps) -> None:
    tenant_id = record.tenant_id
    conversation = await _conversation(deps, tenant_id, conversation_id)
    await deps.connections.watch(record.connection_id, conversation.id)
    messages = await deps.conversations.recent(tenant_id=tenant_id,
                                               conversation_id=conversation.id, limit=200)
    notes = await deps.service.notes(tenant_id=tenant_id, conversation_id=conversation.id)
    rating = await deps.service.rating(tenant_id=tenant_id, conversation_id=conversation.id)
    customer = await customer_view(await deps.customer(), tenant_id=tenant_id,
                                   visitor_id=conversation.visitor_id,
                                   customer_id=conversation.customer_id)
    await deps.audit.safe_record(
        tenant_id=tenant_id, actor_type=record.role,
        actor_id=record.subject, action="conversation.opened", target_type="conversation",
        target_id=conversation.id)
    context, earlier = await visit(deps, conversation)
    await send(deps, record.connection_id, conversation_frame(
        conversation=_summary(conversation),
        state=await state_frame(deps, conversation),
        messages=await deps.images.with_links([m.public() for m in messages]),
        notes=[n.model_dump(mode="json") for n in notes],
        csat=rating.model_dump(mode="json") if rating else None,
        customer=customer, visitor_context=context, earlier=earlier,
    ))


async def _suggest(conversation_id: str, record: ConnectionRecord, deps: Deps) -> None:
    """Ask the router for a draft grounded in the passages the bot would use for the visitor's
    last message; it goes to the agent only, never to the visitor."""
    from kefu_llm import ChatMessage, ChatRequest, Delta, Final  # loaded on first use

    tenant_id = record.tenant_id
    conversation = await _conversation(deps, tenant_id, conversation_id)
    settings, prompt = await deps.tenant_settings.current(tenant_id)
    history = await deps.conversations.recent(tenant_id=tenant_id,
                                              conversation_id=conversation.id,
                                              limit=settings.context_window * 2)
    question = next((m.text for m in reversed(history) if m.role == "visitor"), "")
    messages = [ChatMessage(role="system",
                            content=f"{prompt or deps.settings.system_prompt}\n\n"
                                    f"{_SUGGEST_INSTRUCTION}")]
    messages += [ChatMessage(role=MODEL_ROLE[TURN_ROLE[m.role]], content=m.text)
                 for m in history if TURN_ROLE[m.role] in MODEL_ROLE and m.text]
    passages: list[str] = []
    more_passages: list[str] = []
    kb_version = "0"
    memory = await deps.load_memory()
    if memory is not None and question:
        try:
            from kefu_memory import Turn

            asked = max(i for i, m in enumerate(history) if m.role == "visitor")
            before = [Turn(role=TURN_ROLE[m.role], content=m.text, seq=m.seq)
                      for m in history[:asked] if m.text]
            recalled = await memory.recall(tenant_id=tenant_id,
                                           memory_id=conversation.visitor_id,
                                           crm_id=conversation.customer_id,
                                           question=question, history=before)
            passages, kb_version = list(recalled.passages), str(recalled.kb_version)
            more_passages = list(recalled.more_passages)
        except Exception:
            logger.warning("recall for a suggestion failed", exc_info=True)
    request = ChatRequest(tenant_id=tenant_id, conversation_id=conversation.id,
                          messages=messages, passages=passages,
                          more_passages=more_passages, kb_version=kb_version,
                          fallback=settings.enable_fallback)
    parts: list[str] = []
    final: Final | None = None
    try:
        router = await deps.router_for(tenant_id)
        async for event in router.stream(request):
            if isinstance(event, Delta):
                parts.append(event.text)
            elif isinstance(event, Final):
                final = event
    except Exception:
        logger.warning("suggestion failed", exc_info=True)
    await send(deps, record.connection_id, _suggestion(conversation.id, final, "".join(parts)))


def _suggestion(conversation_id: str, final: Final | None, streamed: str) -> SuggestionOut:
    """The draft for the agent: none when the engine failed (``unavailable``) or had nothing
    to answer from (``none``: its refusal line is no reply an agent would send)."""
    if final is None:
        return suggestion_frame(conversation_id=conversation_id, text="", engine=None,
                                status="unavailable")
    if not final.answered:
        return suggestion_frame(conversation_id=conversation_id, text="", engine=final.engine,
                                status="none")
    return suggestion_frame(conversation_id=conversation_id, text=final.text or streamed,
                            engine=final.engine, status=final.status)
