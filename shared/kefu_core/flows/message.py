"""The ``message`` and ``$default`` routes: validate, persist, acknowledge, then answer.

Only a persisted message is acknowledged. When storing fails the client gets an error frame
with ``retry: true`` and resends the same ``client_msg_id``; de-duplication makes that safe.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from kefu_core.chat.connections import ConnectionRecord
from kefu_core.chat.conversations import StoredMessage
from kefu_core.chat.delivery import broadcast, send
from kefu_core.chat.events import StreamPayload, WebSocketEvent
from kefu_core.chat.liveness import alive_replies
from kefu_core.chat.protocol import (
    AnyClientFrame,
    ContextFrame,
    CsatFrame,
    EndFrame,
    ErrorOut,
    FeedbackFrame,
    HandoffFrame,
    MessageFrame,
    OfflineMessageFrame,
    PingFrame,
    SyncFrame,
    TypingFrame,
    UploadFrame,
    ack_frame,
    csat_frame,
    csat_saved_frame,
    error_frame_for,
    feedback_saved_frame,
    history_frames,
    message_frame,
    not_stored_frame,
    offline_message_frame,
    offline_saved_frame,
    parse_client_frame,
    pong_frame,
    reply_not_started_frame,
    typing_frame,
)
from kefu_core.deps import Deps
from kefu_core.flows.agent import current_staff, handle_agent_frame
from kefu_core.flows.image_messages import image_meta, model_text, send_ticket
from kefu_core.flows.visitor_conversation import announce, attached, keep_context, started
from kefu_core.infra.errors import (
    BadFrame,
    ConversationClosed,
    KefuError,
    NotConnected,
    StoreError,
    TransportError,
)
from kefu_core.product.handoff.moves import (
    HandoffError,
    close_conversation,
    dispatch_at_opening,
    matches_keyword,
    request_handoff,
    requeue_if_agent_gone,
)
from kefu_core.product.handoff.notify import notify_staff, state_frame
from kefu_core.security.roles import STAFF_ROLES

__all__ = ["handle_message", "replay"]

logger = logging.getLogger("kefu.flows.message")
OK: dict[str, Any] = {"statusCode": 200}


async def handle_message(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    ws = WebSocketEvent.model_validate(event)
    connection_id = ws.request_context.connection_id
    try:
        record = await deps.connections.get(connection_id)
    except StoreError:
        await _send_error(deps, connection_id, not_stored_frame(None))
        return OK
    if record is None:
        await _send_error(deps, connection_id, error_frame_for(NotConnected))
        return OK
    try:
        frame = parse_client_frame(
            ws.body,
            max_frame_bytes=deps.settings.max_frame_bytes,
            max_text_chars=deps.settings.max_text_chars,
        )
        await _dispatch(frame, record, deps)
    except BadFrame as exc:
        await _send_error(deps, connection_id,
                          error_frame_for(exc, client_msg_id=exc.client_msg_id))
    except (ConversationClosed, HandoffError) as exc:
        await _send_error(deps, connection_id, error_frame_for(exc))
    except KefuError:
        logger.exception("message flow failed")
        await _send_error(deps, connection_id, not_stored_frame(_client_msg_id(ws.body)))
    return OK


async def _send_error(deps: Deps, connection_id: str, frame: ErrorOut) -> None:
    """Send an error frame and count it by its code (a fixed word chosen by the code)."""
    deps.metrics.error(code=frame["code"])
    await send(deps, connection_id, frame)


def _client_msg_id(body: str | None) -> str | None:
    try:
        value = json.loads(body or "").get("client_msg_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def _dispatch(frame: AnyClientFrame, record: ConnectionRecord, deps: Deps) -> None:
    if record.role in STAFF_ROLES:  # every staff frame, pings included: access still current?
        current = await current_staff(record, deps)
        if current is None:
            return
        record = current
    if isinstance(frame, PingFrame):
        if record.role in STAFF_ROLES:
            await deps.handoff.heartbeat(tenant_id=record.tenant_id,
                                         agent_id=record.subject)
        await send(deps, record.connection_id, pong_frame())
        if record.role in STAFF_ROLES:  # a queue that waited for the opening is assigned
            await dispatch_at_opening(deps, tenant_id=record.tenant_id)
    elif isinstance(frame, SyncFrame):
        await replay(deps, record, after_seq=frame.last_seq)
    elif record.role in STAFF_ROLES:
        await handle_agent_frame(frame, record, deps)
    elif isinstance(frame, MessageFrame | HandoffFrame | OfflineMessageFrame | UploadFrame):
        await _visitor_start(frame, record, deps)
    elif isinstance(frame, ContextFrame):
        await keep_context(deps, await attached(deps, record), frame)
    elif isinstance(frame, TypingFrame | EndFrame | CsatFrame):
        await _visitor_action(frame, await attached(deps, record), deps)
    elif isinstance(frame, FeedbackFrame):
        await _feedback(frame, await attached(deps, record), deps)
    else:
        raise BadFrame("unsupported_for_role", "this action is for agents")


async def _visitor_start(
    frame: MessageFrame | HandoffFrame | OfflineMessageFrame | UploadFrame,
    record: ConnectionRecord, deps: Deps,
) -> None:
    """The frames that start a conversation when the visitor has none (an image's upload is
    the start of its message); the consoles hear of a new one once the frame is handled (their
    lists then show its first message)."""
    if isinstance(frame, UploadFrame) and not deps.images.available:
        raise BadFrame("images_unavailable", "images are not enabled on this server",
                       client_msg_id=frame.client_msg_id)
    record, new = await started(deps, record)
    try:
        if isinstance(frame, MessageFrame):
            await _visitor_message(frame, record, deps)
        elif isinstance(frame, UploadFrame):
            if record.role != "visitor" or record.conversation_id is None:
                raise BadFrame("no_conversation", "no conversation")
            await send_ticket(deps, record, frame, record.conversation_id)
        else:
            await _visitor_action(frame, record, deps)
    finally:
        if new:
            await announce(deps, record)


async def _visitor_action(
    frame: HandoffFrame | TypingFrame | EndFrame | CsatFrame | OfflineMessageFrame,
    record: ConnectionRecord,
    deps: Deps,
) -> None:
    conversation_id = record.conversation_id
    if conversation_id is None:
        raise BadFrame("no_conversation", "no conversation")
    tenant_id = record.tenant_id
    if isinstance(frame, HandoffFrame):
        await request_handoff(deps, tenant_id=tenant_id, conversation_id=conversation_id,
                              reason="button", actor_type="visitor", actor_id=record.subject)
    elif isinstance(frame, TypingFrame):
        await broadcast(deps, conversation_id,
                        typing_frame(conversation_id=conversation_id, role="visitor"),
                        exclude=record.connection_id)
    elif isinstance(frame, EndFrame):
        await close_conversation(deps, tenant_id=tenant_id, conversation_id=conversation_id,
                                 actor_type="visitor", actor_id=record.subject)
    elif isinstance(frame, CsatFrame):
        conversation = await deps.conversations.get(tenant_id=tenant_id,
                                                    conversation_id=conversation_id)
        if conversation is None:
            raise BadFrame("no_conversation", "no conversation")
        rating = await deps.service.rate(
            tenant_id=tenant_id, conversation_id=conversation_id, score=frame.score,
            comment=frame.comment, agent_id=conversation.assigned_agent,
        )
        await deps.audit.safe_record(
            tenant_id=tenant_id, actor_type="visitor", actor_id=record.subject,
            action="conversation.rated", target_type="conversation",
            target_id=conversation_id, detail={"score": rating.score,
                                               "comment_chars": len(rating.comment)})
        await send(deps, record.connection_id,
                   csat_saved_frame(conversation_id=conversation_id, score=rating.score))
        await broadcast(deps, conversation_id, csat_frame(  # the console shows it live
            conversation_id=conversation_id, score=rating.score, comment=rating.comment),
            exclude=record.connection_id)
    else:
        saved = await deps.service.leave_offline_message(
            tenant_id=tenant_id, visitor_id=record.subject, conversation_id=conversation_id,
            name=frame.name, contact=frame.contact, text=frame.text,
        )
        await deps.audit.safe_record(
            tenant_id=tenant_id, actor_type="visitor", actor_id=record.subject,
            action="offline_message.left", target_type="offline_message",
            target_id=str(saved.id), detail={"contact_given": bool(frame.contact.strip())})
        await notify_staff(deps, tenant_id, offline_message_frame(saved.id))
        await send(deps, record.connection_id, offline_saved_frame(saved.id))


async def _feedback(frame: FeedbackFrame, record: ConnectionRecord, deps: Deps) -> None:
    """The visitor's 👍/👎 on a bot reply of its own conversation (the store checks the reply
    is one: an assistant message of this visitor's conversation in this tenant)."""
    if record.role != "visitor" or record.conversation_id is None:
        raise BadFrame("no_conversation", "no conversation")
    saved = await deps.feedback.rate(
        tenant_id=record.tenant_id, conversation_id=record.conversation_id,
        visitor_id=record.subject, seq=frame.seq, rating=frame.rating,
        reason=frame.reason.strip())
    await deps.audit.safe_record(
        tenant_id=record.tenant_id, actor_type="visitor", actor_id=record.subject,
        action="reply.rated", target_type="conversation", target_id=record.conversation_id,
        detail={"seq": saved.seq, "rating": saved.rating, "reason_chars": len(saved.reason)})
    await send(deps, record.connection_id, feedback_saved_frame(
        conversation_id=record.conversation_id, seq=saved.seq, rating=saved.rating))


async def _visitor_message(frame: MessageFrame, record: ConnectionRecord, deps: Deps) -> None:
    if record.role != "visitor" or record.conversation_id is None:
        raise BadFrame("unsupported_for_role", "only visitors send chat messages here",
                       client_msg_id=frame.client_msg_id)
    conversation_id = record.conversation_id
    meta = await image_meta(deps, tenant_id=record.tenant_id, conversation_id=conversation_id,
                            upload_id=frame.image, client_msg_id=frame.client_msg_id)
    stored = await deps.conversations.append(
        tenant_id=record.tenant_id,
        conversation_id=conversation_id,
        role="visitor",
        author=record.subject,
        text=frame.text,
        client_msg_id=frame.client_msg_id,
        meta=meta,
    )
    await send(deps, record.connection_id, ack_frame(
        conversation_id=conversation_id, client_msg_id=frame.client_msg_id,
        seq=stored.seq, duplicate=stored.duplicate,
    ))
    if stored.duplicate:
        deps.metrics.resend()
    if not stored.duplicate:
        # Other tabs of the visitor and watching agents see the message too.
        await broadcast(deps, conversation_id, message_frame(
            conversation_id=conversation_id, seq=stored.seq, role="visitor", text=frame.text,
            client_msg_id=frame.client_msg_id,
            image=await deps.images.public(meta and meta["image"]),
        ), exclude=record.connection_id)
    elif await deps.conversations.has_reply(conversation_id=conversation_id, seq=stored.seq):
        return
    # A resent message whose reply never started (the invoke failed) is answered now: the
    # stream flow reserves its reply idempotently, so this is at-least-once without doubles.
    conversation = stored.conversation or await deps.conversations.get(
        tenant_id=record.tenant_id, conversation_id=conversation_id
    )
    if conversation is not None and conversation.owner == "human" and not stored.duplicate:
        await requeue_if_agent_gone(deps, conversation=conversation)
    if conversation is None or conversation.owner != "bot":
        return
    settings, _ = await deps.tenant_settings.current(record.tenant_id)
    if matches_keyword(frame.text, settings.handoff_keywords):
        await request_handoff(deps, tenant_id=record.tenant_id, conversation_id=conversation_id,
                              reason="keyword", actor_type="visitor", actor_id=record.subject)
        return
    try:
        await deps.invoker.invoke(StreamPayload(
            tenant_id=record.tenant_id, conversation_id=conversation_id,
            reply_to_seq=stored.seq, text=model_text(frame.text, meta),
            client_msg_id=frame.client_msg_id, image=meta and meta["image"],
            connection_id=record.connection_id,
            domain_name=record.domain_name, stage=record.stage,
            received_ms=int(time.time() * 1000),
        ).to_event())
    except TransportError:
        logger.exception("cannot start the reply", extra={"conversation_id": conversation_id})
        await _send_error(deps, record.connection_id,
                          reply_not_started_frame(frame.client_msg_id))


async def replay(deps: Deps, record: ConnectionRecord, *, after_seq: int) -> None:
    """Send every message after ``after_seq`` in history frames below the frame size limit."""
    record = await attached(deps, record)  # another tab may have started one meanwhile
    if record.conversation_id is None and record.role == "visitor":
        for empty in history_frames(conversation_id=None, owner="bot", last_seq=0, messages=[],
                                    page_bytes=deps.settings.replay_page_bytes):
            await send(deps, record.connection_id, empty)
        return
    if record.conversation_id is None:
        await send(deps, record.connection_id, error_frame_for(
            BadFrame("no_conversation", "nothing to sync")))
        return
    conversation = await deps.conversations.get(
        tenant_id=record.tenant_id, conversation_id=record.conversation_id
    )
    messages = await deps.conversations.since(
        tenant_id=record.tenant_id, conversation_id=record.conversation_id,
        after_seq=after_seq, limit=deps.settings.replay_max_messages,
    )
    messages = await _interrupted_marked(deps, record.conversation_id, messages)
    for page in history_frames(
        conversation_id=record.conversation_id,
        owner=conversation.owner if conversation else "bot",
        last_seq=conversation.last_seq if conversation else after_seq,
        messages=await deps.images.with_links([message.public() for message in messages]),
        page_bytes=deps.settings.replay_page_bytes,
    ):
        await send(deps, record.connection_id, page)
    if conversation is not None:
        await send(deps, record.connection_id, await state_frame(deps, conversation))
        if conversation.owner == "bot":
            await _restart_lost_reply(deps, record, conversation.id)


async def _interrupted_marked(
    deps: Deps, conversation_id: str, messages: list[StoredMessage]
) -> list[StoredMessage]:
    """Replies stored as streaming whose writer is gone are stored and shown as incomplete."""
    streaming = [m.seq for m in messages if m.status == "streaming"]
    alive = await alive_replies(deps.redis, prefix=deps.settings.redis_prefix,
                                conversation_id=conversation_id, seqs=streaming)
    if alive is None:
        return messages
    dead = [seq for seq in streaming if seq not in alive]
    if not dead:
        return messages
    await deps.conversations.mark_interrupted(conversation_id=conversation_id, seqs=dead)
    return [m.model_copy(update={"status": "incomplete"}) if m.seq in dead else m
            for m in messages]


async def _restart_lost_reply(deps: Deps, record: ConnectionRecord, conversation_id: str) -> None:
    """A visitor message that ends the conversation and never got a reply started (the
    process that was to answer it died) is answered now; the reply reservation keeps it single
    if another process is in fact on it."""
    lost = await deps.conversations.unanswered_tail(
        tenant_id=record.tenant_id, conversation_id=conversation_id, older_than_s=5)
    if lost is None:
        return
    with contextlib.suppress(TransportError):
        await deps.invoker.invoke(StreamPayload(
            tenant_id=record.tenant_id, conversation_id=conversation_id, reply_to_seq=lost.seq,
            text=lost.text, client_msg_id=lost.client_msg_id,
            connection_id=record.connection_id, domain_name=record.domain_name,
            stage=record.stage, received_ms=int(time.time() * 1000),
        ).to_event())
