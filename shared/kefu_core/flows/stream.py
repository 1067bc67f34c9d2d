"""The stream function: build the prompt, stream the adapter's reply, persist it.

The reply row is reserved as ``streaming`` before the first token (idempotent on the visitor
message it answers, so a retried async invoke does not answer twice) and finished as
``complete`` or ``incomplete``; a reply that dies with its process is reported incomplete on
replay, never shown as whole.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from redis.exceptions import RedisError

from kefu_core.answers.curated import (
    HINT_MARGIN,
    CuratedMatch,
    curated_events,
    curated_passage,
)
from kefu_core.answers.grounded import ground
from kefu_core.answers.grounding_review import engine_reviewer
from kefu_core.answers.history import fit_history
from kefu_core.answers.memory import MemoryService
from kefu_core.answers.query_condenser import router_condenser
from kefu_core.chat.conversations import Conversation
from kefu_core.chat.delivery import Audience, broadcast
from kefu_core.chat.events import StreamPayload
from kefu_core.chat.liveness import ReplyHeartbeat
from kefu_core.chat.protocol import (
    busy_frame,
    delta_frame,
    final_frame,
    reply_not_started_frame,
)
from kefu_core.chat.streaming import DeltaBatcher, Pacer
from kefu_core.deps import Deps
from kefu_core.flows.image_messages import model_text, picture_or_note
from kefu_core.flows.learn import handle_learn
from kefu_core.infra.errors import StoreError
from kefu_core.infra.tracing import span
from kefu_core.product.handoff.moves import HandoffError, after_reply, request_handoff
from kefu_core.product.tenants.settings import TenantSettings
from kefu_core.security.roles import MODEL_ROLE, TURN_ROLE
from kefu_llm import Busy, ChatMessage, ChatRequest, Delta, Final, detect_language
from kefu_memory import Turn

__all__ = ["handle_stream"]

logger = logging.getLogger("kefu.flows.stream")



@dataclass
class _Progress:
    """How far a reply got, for the guard that never leaves the visitor in silence."""

    seq: int | None = None
    shown: list[str] = field(default_factory=list)
    finished: bool = False


async def handle_stream(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    if event.get("kind") == "learn":  # a resolved conversation to learn from (flows.learn)
        return await handle_learn(event, deps)
    payload = StreamPayload.model_validate(event)
    progress = _Progress()
    try:
        return await _stream(payload, deps, progress)
    except Exception:
        logger.exception("reply failed", extra={"conversation_id": payload.conversation_id})
        deps.metrics.error(code="reply_failed")
        await _report_failure(deps, payload, progress)
        return {"status": "failed", "seq": progress.seq}


async def _report_failure(deps: Deps, payload: StreamPayload, progress: _Progress) -> None:
    """A store or a client failed outside the model's stream: finish the reply as incomplete
    with what was shown, or, when it never started, ask the client to resend its message (the
    resend starts the reply; de-duplication keeps it single). Best effort: the stores may be
    the very thing that is down."""
    if progress.finished:
        return
    audience = Audience(deps, payload.conversation_id)
    with contextlib.suppress(Exception):
        if progress.seq is None:
            await audience.send(reply_not_started_frame(
                payload.client_msg_id, reply_to=payload.reply_to_seq,
                conversation_id=payload.conversation_id))
            return
        text = "".join(progress.shown)
        with contextlib.suppress(Exception):
            await deps.conversations.finish(conversation_id=payload.conversation_id,
                                            seq=progress.seq, text=text, status="incomplete",
                                            engine=None, meta={"reason": "error"})
        await audience.send(final_frame(
            conversation_id=payload.conversation_id, seq=progress.seq,
            reply_to=payload.reply_to_seq, text=text, status="incomplete", engine=None,
            reason="error",
        ), fresh=True)


async def _stream(payload: StreamPayload, deps: Deps, progress: _Progress) -> dict[str, Any]:
    tenant_id, conversation_id = payload.tenant_id, payload.conversation_id
    conversation, reserved = await deps.conversations.reserve_reply(
        tenant_id=tenant_id, conversation_id=conversation_id, reply_to=payload.reply_to_seq
    )
    if conversation is None or conversation.owner != "bot" or reserved is None:
        return {"status": "skipped", "reason": "not bot-owned"}
    if reserved.duplicate:
        return {"status": "skipped", "reason": "already answered", "seq": reserved.seq}
    seq = progress.seq = reserved.seq
    memory = await deps.load_memory()
    heartbeat = ReplyHeartbeat(deps.redis, prefix=deps.settings.redis_prefix,
                               conversation_id=conversation_id, seq=seq)
    recent = await _begin(deps, memory, payload, heartbeat)
    async with heartbeat:
        return await _answer(deps, payload, progress, conversation, seq, heartbeat, recent)


async def _begin(deps: Deps, memory: MemoryService | None, payload: StreamPayload,
                 heartbeat: ReplyHeartbeat) -> list[Turn] | None:
    """The reply's first heartbeat and its history from short-term memory, in one round
    trip; the history is None when short-term memory cannot give it (then PostgreSQL does)."""
    question = payload.text
    async with deps.redis.pipeline(transaction=False) as pipe:
        heartbeat.begin(pipe)
        if memory is not None and question is not None:
            memory.short_term.queue_recent(pipe, payload.conversation_id)
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError):  # the heartbeat is advisory; the history has PostgreSQL
            return None
    if memory is None or question is None or isinstance(results[-1], Exception):
        return None
    turns = memory.short_term.turns_of(results[-1], payload.conversation_id)
    return memory.history_of(turns, question_seq=payload.reply_to_seq, question=question)


async def _answer(
    deps: Deps, payload: StreamPayload, progress: _Progress, conversation: Conversation,
    seq: int, heartbeat: ReplyHeartbeat, recent: list[Turn] | None,
) -> dict[str, Any]:
    tenant_id, conversation_id = payload.tenant_id, payload.conversation_id
    memory = await deps.load_memory()
    if memory is not None:
        await memory.warm_up()
    tenant, tenant_prompt = await deps.tenant_settings.current(tenant_id)
    router = await deps.router_for(tenant_id)
    turns, from_short_term = await _history(deps, payload, recent, before_seq=seq,
                                            window=tenant.context_window)
    system = system_prompt(tenant_prompt or deps.settings.system_prompt, tenant)
    match = await _curated_match(deps, tenant_id, _question(turns, payload))
    direct = match if match and match.score >= tenant.curated_answer_threshold else None
    if direct is not None:  # an approved answer: no recall, no model
        request = ChatRequest(tenant_id=tenant_id, conversation_id=conversation_id, messages=[],
                              passages=[curated_passage(direct.answer)],
                              kb_version=await memory.kb_version(tenant_id) if memory else "0")
        events: AsyncIterator[Delta | Final | Busy] = curated_events(direct)
    else:
        hint = match if match and match.score >= tenant.curated_answer_threshold - HINT_MARGIN \
            else None
        request = await _build_request(deps, router, memory, payload, turns=turns, system=system,
                                       memory_id=conversation.visitor_id,
                                       crm_id=conversation.customer_id,
                                       fallback=tenant.enable_fallback, hint=hint)
        request = await picture_or_note(deps, router, request, payload.image,
                                        allowed=tenant.images_to_model)
        events = router.stream(request)

    offset = 0
    first_token_ms: float | None = None
    audience = Audience(deps, conversation_id)
    pacer = Pacer(chars_per_s=tenant.reply_pacing_cps,
                  first_delay_ms=tenant.reply_first_delay_ms)

    async def flush(text: str) -> None:
        nonlocal offset, first_token_ms
        if pacer.active:
            await pacer.before(len(text))
        await audience.send(delta_frame(
            conversation_id=conversation_id, seq=seq, reply_to=payload.reply_to_seq,
            offset=offset, text=text,
        ))
        if first_token_ms is None:
            first_token_ms = _since_received(payload, started)
        offset += len(text)
        progress.shown.append(text)

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
        async with span("engine"):
            for other in await batcher.run(events):
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
            await broadcast(deps, conversation_id, busy_frame(
                conversation_id=conversation_id, retry_after_s=busy.retry_after_s))
    if final.handoff and not final.text.strip():
        # The model only called the handoff tool: say what happens instead of showing nothing.
        question = next((t.content for t in reversed(turns) if t.role == "user"), "")
        final = replace(final, text=_HANDOFF_LINE[detect_language(question)])
        await audience.send(delta_frame(conversation_id=conversation_id, seq=seq,
                                        reply_to=payload.reply_to_seq, offset=0,
                                        text=final.text))
    review = engine_reviewer(router, tenant_id=tenant_id, conversation_id=conversation_id,
                             budget_s=deps.settings.grounding_engine_budget_ms / 1000) \
        if tenant.grounding_engine_check else None
    grounded = await ground(final, request, review=review,
                            action="off" if direct else tenant.grounding_action)
    final = grounded.final
    try:
        async with span("persist"):
            await deps.conversations.finish(
                conversation_id=conversation_id, seq=seq, text=final.text, status=final.status,
                engine=final.engine,
                meta={"reason": final.reason, "fallback_used": final.fallback_used,
                      "cached": final.cached, "frames": batcher.flushes,
                      # false: nothing to answer from (reports: top unanswered questions)
                      "answered": final.answered,
                      "passages": request.passages, "kb_version": request.kb_version,
                      **grounded.meta, **_curated_meta(direct)},
            )
    except StoreError:
        # The visitor still gets the final frame; replay will show the reply incomplete.
        logger.exception("cannot persist the reply", extra={"conversation_id": conversation_id})
    deps.metrics.reply_finished(status=final.status, first_token_ms=first_token_ms,
                                fallback_used=final.fallback_used)
    await audience.send(final_frame(
        conversation_id=conversation_id, seq=seq, reply_to=payload.reply_to_seq,
        text=final.text, status=final.status, engine=final.engine,
        fallback_used=final.fallback_used, reason=final.reason,
        unsupported=grounded.unsupported,
    ), fresh=True)
    progress.finished = True
    if grounded.handoff:
        with contextlib.suppress(HandoffError):
            await request_handoff(deps, tenant_id=tenant_id, conversation_id=conversation_id,
                                  reason="ungrounded", actor_type="system", actor_id=None)
    remember = memory is not None and bool(final.text) and final.status == "complete"
    # What Redis keeps of a finished reply leaves in one round trip (one transaction): the
    # failure count reset, the short-term memory, the end of the reply's liveness key.
    async with deps.redis.pipeline(transaction=True) as batch:
        try:  # a structured handoff signal, or too many failed replies in a row
            await after_reply(deps, tenant_id=tenant_id, conversation_id=conversation_id,
                              final=final, batch=batch)
        except Exception:
            logger.warning("handoff check failed", extra={"conversation_id": conversation_id},
                           exc_info=True)
        if memory is not None and remember:
            memory.queue_short_term(batch, conversation_id=conversation_id, turns=turns,
                                    answer=final.text, answer_seq=seq,
                                    from_short_term=from_short_term)
        heartbeat.end(batch)
        await _send_batch(batch, conversation_id)
    if memory is not None and remember:
        await memory.remember_long_term(
            tenant_id=tenant_id, customer_id=conversation.visitor_id,
            conversation_id=conversation_id, turns=turns, answer=final.text, answer_seq=seq)
    logger.info("reply finished", extra={
        "conversation_id": conversation_id, "seq": seq, "status": final.status,
        "engine": final.engine, "frames": batcher.flushes,
        "elapsed_ms": round((time.monotonic() - started) * 1000),
    })
    return {"status": final.status, "seq": seq, "frames": batcher.flushes}


async def _history(
    deps: Deps, payload: StreamPayload, recent: list[Turn] | None, *, before_seq: int,
    window: int,
) -> tuple[list[Turn], bool]:
    """The recent turns up to the question: from Redis short-term memory alone when it is
    complete (``recent``, the steady state), from PostgreSQL otherwise. True when Redis
    sufficed."""
    if recent is not None:
        return recent[-(window * 2):], True
    stored = await deps.conversations.recent(
        tenant_id=payload.tenant_id, conversation_id=payload.conversation_id,
        limit=window * 2, before_seq=before_seq,
    )
    turns = [Turn(role=TURN_ROLE[m.role], content=model_text(m.text, m.meta), seq=m.seq)
             for m in stored]
    return [t for t in turns if t.content], False


async def _send_batch(batch: Any, conversation_id: str) -> None:
    """Send the reply's queued Redis writes; a failure is logged, never the visitor's."""
    try:
        results = await batch.execute(raise_on_error=False)
    except (RedisError, OSError):
        logger.warning("reply's Redis writes failed", extra={"conversation_id": conversation_id},
                       exc_info=True)
        return
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        logger.warning("reply's Redis writes failed", extra={
            "conversation_id": conversation_id, "error": repr(failed[0])})


def _since_received(payload: StreamPayload, started: float) -> float:
    """Milliseconds from the visitor's message being stored (``received_ms``, set by the
    message flow; the clocks of two Lambda containers agree to a few ms) to now, or from the
    start of the model call when the payload does not say."""
    if payload.received_ms is not None:
        return max(time.time() * 1000 - payload.received_ms, 0.0)
    return (time.monotonic() - started) * 1000


_HANDOFF_LINE = {
    "zh": "好的，正在为您转接人工客服，请稍候。",
    "en": "Sure, I'm connecting you with a human agent. One moment, please.",
}

_EMOJI = {
    "none": "Do not use emoji.",
    "low": "Use an emoji rarely: at most one in a reply, and only where it fits.",
    "medium": "Use an emoji or two where it feels natural.",
    "high": "Use emoji freely to sound warm and friendly.",
}


def system_prompt(base: str, tenant: TenantSettings) -> str:
    """The system prompt of a reply: the tenant's (or the deployment's) and the emoji rule."""
    return f"{base}\n{_EMOJI[tenant.emoji_frequency]}"


def _question(turns: list[Turn], payload: StreamPayload) -> str:
    if payload.text:
        return payload.text
    return next((t.content for t in reversed(turns) if t.role == "user"), "")


async def _curated_match(deps: Deps, tenant_id: str, question: str) -> CuratedMatch | None:
    """The tenant's closest curated answer; None when it has none or they cannot be read
    (the model answers then)."""
    try:
        return await (await deps.curated_matcher()).best(tenant_id, question)
    except Exception:
        logger.warning("curated answers unavailable", exc_info=True)
        return None


def _curated_meta(match: CuratedMatch | None) -> dict[str, Any]:
    if match is None:
        return {}
    return {"curated": {"id": match.answer.id, "version": match.answer.version,
                        "score": match.score}}


async def _build_request(
    deps: Deps, router: Any, memory: MemoryService | None, payload: StreamPayload, *,
    turns: list[Turn], system: str, memory_id: str, crm_id: str | None, fallback: bool = True,
    hint: CuratedMatch | None = None,
) -> ChatRequest:
    asked = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)
    question = turns[asked].content if asked is not None else ""
    passages: list[str] = []
    more_passages: list[str] = []
    kb_version = "0"
    if memory is not None and question:
        condense = None
        if deps.settings.query_condenser == "llm":
            condense = router_condenser(router, tenant_id=payload.tenant_id,
                                        conversation_id=payload.conversation_id)
        try:
            async with span("recall"):
                context = await memory.recall(tenant_id=payload.tenant_id,
                                              memory_id=memory_id, crm_id=crm_id,
                                              question=question, history=turns[:asked],
                                              condense=condense)
            passages, kb_version = context.passages, context.kb_version
            more_passages = context.more_passages
            if context.memory_prompt:
                system = f"{system}\n\n{context.memory_prompt}"
        except Exception:
            logger.warning("recall failed; answering without memory", exc_info=True)
    if hint is not None:  # an approved answer close to the question comes first
        passages = [curated_passage(hint.answer), *passages]
    split = asked if asked is not None else len(turns)
    earlier, latest = ([ChatMessage(role=MODEL_ROLE[t.role], content=t.content)
                        for t in part if t.role in MODEL_ROLE]
                       for part in (turns[:split], turns[split:]))
    earlier = await fit_history(
        earlier, budget_tokens=deps.settings.history_token_budget,
        find_terms=memory.term_finder(payload.tenant_id) if memory is not None else None)
    messages = [ChatMessage(role="system", content=system), *earlier, *latest]
    return ChatRequest(
        tenant_id=payload.tenant_id, conversation_id=payload.conversation_id,
        messages=messages, passages=passages, more_passages=more_passages,
        kb_version=kb_version, fallback=fallback,
    )
