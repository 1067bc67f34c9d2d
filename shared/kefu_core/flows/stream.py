"""The stream function: build the prompt, stream the adapter's reply, persist it.

The reply row is reserved as ``streaming`` before the first token (idempotent on the visitor
message it answers, so a retried async invoke does not answer twice) and finished as
``complete`` or ``incomplete``; a reply that dies with its process is reported incomplete on
replay, never shown as whole.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from kefu_llm import Busy, ChatMessage, ChatRequest, Delta, Final

from ..deps import Deps
from ..events import StreamPayload
from ..protocol import delta_frame, final_frame
from ..streaming import DeltaBatcher
from .fanout import broadcast

__all__ = ["handle_stream"]

logger = logging.getLogger("kefu.flows.stream")

_ROLE_FOR_MODEL: dict[str, Literal["user", "assistant"]] = {
    "visitor": "user", "assistant": "assistant", "agent": "assistant",
}


async def handle_stream(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    payload = StreamPayload.model_validate(event)
    tenant_id, conversation_id = payload.tenant_id, payload.conversation_id
    conversation = await deps.conversations.get(
        tenant_id=tenant_id, conversation_id=conversation_id
    )
    if conversation is None or conversation.owner != "bot":
        return {"status": "skipped", "reason": "not bot-owned"}
    reserved = await deps.conversations.append(
        tenant_id=tenant_id, conversation_id=conversation_id, role="assistant",
        text="", status="streaming", reply_to=payload.reply_to_seq,
    )
    if reserved.duplicate:
        return {"status": "skipped", "reason": "already answered", "seq": reserved.seq}
    seq = reserved.seq
    request = await _build_request(deps, payload, before_seq=seq)

    offset = 0

    async def flush(text: str) -> None:
        nonlocal offset
        await broadcast(deps, conversation_id, delta_frame(
            conversation_id=conversation_id, seq=seq, reply_to=payload.reply_to_seq,
            offset=offset, text=text,
        ))
        offset += len(text)

    batcher: DeltaBatcher[Delta | Final | Busy] = DeltaBatcher(
        flush=flush,
        text_of=lambda e: e.text if isinstance(e, Delta) else None,
        flush_ms=deps.settings.delta_flush_ms,
        flush_chars=deps.settings.delta_flush_chars,
    )
    started = time.monotonic()
    final: Final | None = None
    busy: Busy | None = None
    try:
        for other in await batcher.run(deps.router.stream(request)):
            if isinstance(other, Final):
                final = other
            elif isinstance(other, Busy):
                busy = other
    except Exception:
        logger.exception("reply stream failed", extra={"conversation_id": conversation_id})
    if final is None:
        reason = "busy" if busy else "error"
        final = Final(text="", status="incomplete", engine="none", reason=reason)
        if busy is not None:
            await broadcast(deps, conversation_id, {
                "type": "busy", "conversation_id": conversation_id,
                "retry_after_s": round(busy.retry_after_s, 1),
            })
    await deps.conversations.finish(
        conversation_id=conversation_id, seq=seq, text=final.text, status=final.status,
        engine=final.engine,
        meta={"reason": final.reason, "fallback_used": final.fallback_used,
              "cached": final.cached, "frames": batcher.flushes},
    )
    await broadcast(deps, conversation_id, final_frame(
        conversation_id=conversation_id, seq=seq, reply_to=payload.reply_to_seq,
        text=final.text, status=final.status, engine=final.engine,
        fallback_used=final.fallback_used, reason=final.reason,
    ))
    logger.info("reply finished", extra={
        "conversation_id": conversation_id, "seq": seq, "status": final.status,
        "engine": final.engine, "frames": batcher.flushes,
        "elapsed_ms": round((time.monotonic() - started) * 1000),
    })
    return {"status": final.status, "seq": seq, "frames": batcher.flushes}


async def _build_request(deps: Deps, payload: StreamPayload, *, before_seq: int) -> ChatRequest:
    history = await deps.conversations.recent(
        tenant_id=payload.tenant_id, conversation_id=payload.conversation_id,
        limit=deps.settings.context_window * 2, before_seq=before_seq,
    )
    messages = [ChatMessage(role="system", content=deps.settings.system_prompt)]
    messages += [
        ChatMessage(role=_ROLE_FOR_MODEL[m.role], content=m.text)
        for m in history
        if m.role in _ROLE_FOR_MODEL and m.text
    ]
    question = next((m.text for m in reversed(history) if m.role == "visitor"), "")
    passages: list[str] = []
    kb_version = "0"
    if deps.knowledge is not None and question:
        try:
            passages, kb_version = await deps.knowledge(payload.tenant_id, question)
        except Exception:
            logger.warning("knowledge search failed; answering without it", exc_info=True)
    return ChatRequest(
        tenant_id=payload.tenant_id, conversation_id=payload.conversation_id,
        messages=messages, passages=passages, kb_version=kb_version,
    )
