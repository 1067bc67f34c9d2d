"""Learning from human agents: a question/answer pair proposed from a resolved conversation.

When an agent (or an admin) closes a conversation a human held, the close asks for this flow
through the stream function's asynchronous invoke (``kind: "learn"``; a background task in the
gateway), so the close never waits for it. The flow reads the transcript and proposes one pair
into the review list (:mod:`kefu_core.product.learned_answers`):

- **extractively** (always possible): the visitor's last questions before the first agent reply
  and the agent's replies, joined;
- **by an engine** when the tenant configured its own engine chain: the engine rewrites the
  (already redacted) transcript as one standalone question and answer, as JSON; an answer that
  is not such JSON, or comes from the offline engine, leaves the extractive pair.

Every text is redacted with kefu_llm's PII redaction before it is sent to an engine and again
before it is stored. Nothing reaches visitors until an admin approves the pair.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel

from kefu_core.chat.conversations import StoredMessage
from kefu_core.deps import Deps
from kefu_core.product.learned_answers import Method
from kefu_core.security.roles import HUMAN_AUTHORS

__all__ = ["ANSWER_MAX", "QUESTION_MAX", "LearnPayload", "extract_pair", "handle_learn",
           "propose_later"]

logger = logging.getLogger("kefu.flows.learn")

QUESTION_MAX = 500  # the curated answers' limits: an approved pair always fits
ANSWER_MAX = 4000
QUESTIONS = 3  # visitor messages before the first agent reply taken as the question
TRANSCRIPT_MESSAGES = 60  # messages read (the last ones)

_INSTRUCTION = (
    "Below is a customer-service conversation that a human agent resolved. Write the one "
    "question the customer needed answered, phrased as any customer could ask it, and the "
    "agent's answer to it, phrased as a general answer. Keep every fact, number and step the "
    "agent gave; add nothing. Leave placeholders such as [PHONE_1] out. Reply with JSON only: "
    '{"question": "...", "answer": "..."}'
)


class LearnPayload(BaseModel):
    """What the close sends to the stream function to have a pair proposed."""

    kind: str = "learn"
    tenant_id: str
    conversation_id: str


async def propose_later(deps: Deps, *, tenant_id: str, conversation_id: str) -> None:
    """Ask for a proposal from the closed conversation without waiting for it; a failure to
    ask is logged, never raised (the conversation is closed either way)."""
    try:
        await deps.invoker.invoke(LearnPayload(tenant_id=tenant_id,
                                               conversation_id=conversation_id).model_dump())
    except Exception:
        logger.warning("cannot ask for a learned answer", exc_info=True,
                       extra={"conversation_id": conversation_id})


async def handle_learn(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    payload = LearnPayload.model_validate(event)
    tenant_id, conversation_id = payload.tenant_id, payload.conversation_id
    conversation = await deps.conversations.get(tenant_id=tenant_id,
                                                conversation_id=conversation_id)
    if conversation is None or conversation.status != "closed":
        return {"status": "skipped", "reason": "not closed"}
    messages = await deps.conversations.recent(tenant_id=tenant_id,
                                               conversation_id=conversation_id,
                                               limit=TRANSCRIPT_MESSAGES)
    pair = extract_pair(messages)
    if pair is None:
        return {"status": "skipped", "reason": "no agent answer"}
    method: Method = "extractive"
    if await deps.engines.chain(tenant_id):
        rewritten = await _by_engine(deps, tenant_id, conversation_id, messages)
        if rewritten is not None:
            pair, method = rewritten, "engine"
    agent = next((m.author for m in messages if m.role == "agent"), None)
    proposed = await deps.learned.propose(
        tenant_id=tenant_id, conversation_id=conversation_id, agent_id=agent,
        question=pair[0], answer=pair[1], method=method)
    if proposed is None:
        return {"status": "skipped", "reason": "already proposed or list full"}
    return {"status": "proposed", "id": proposed.id, "method": method}


def extract_pair(messages: list[StoredMessage]) -> tuple[str, str] | None:
    """The visitor's question(s) and the agent's answer(s), PII redacted; None when no agent
    answered a visitor question."""
    first_agent = next((i for i, m in enumerate(messages) if m.role == "agent" and m.text),
                       None)
    if first_agent is None:
        return None
    asked = [m.text for m in messages[:first_agent] if m.role == "visitor" and m.text]
    answers = [m.text for m in messages[first_agent:] if m.role == "agent" and m.text]
    if not asked:
        asked = [m.text for m in messages[first_agent:] if m.role == "visitor" and m.text][:1]
    if not asked:
        return None
    question = _redacted("\n".join(asked[-QUESTIONS:]), QUESTION_MAX)
    answer = _redacted("\n".join(answers), ANSWER_MAX)
    return (question, answer) if question and answer else None


def _redacted(text: str, limit: int) -> str:
    from kefu_llm import redact_text

    return redact_text(text.strip())[:limit].strip()


async def _by_engine(deps: Deps, tenant_id: str, conversation_id: str,
                     messages: list[StoredMessage]) -> tuple[str, str] | None:
    """The tenant's engine's rewrite of the redacted transcript, or None."""
    from kefu_llm import ChatMessage, ChatRequest, Final

    lines = [f"{'Customer' if m.role == 'visitor' else 'Agent'}: {m.text}"
             for m in messages if m.role in HUMAN_AUTHORS and m.text]
    transcript = _redacted("\n".join(lines), 12000)
    request = ChatRequest(tenant_id=tenant_id, conversation_id=conversation_id,
                          messages=[ChatMessage(role="system", content=_INSTRUCTION),
                                    ChatMessage(role="user", content=transcript)],
                          temperature=0.0, max_tokens=800, fallback=False)
    final: Final | None = None
    try:
        router = await deps.router_for(tenant_id)
        async for event in router.stream(request):
            if isinstance(event, Final):
                final = event
    except Exception:
        logger.warning("an engine could not propose a learned answer", exc_info=True,
                       extra={"conversation_id": conversation_id})
        return None
    if final is None or final.status != "complete" or final.engine == "offline":
        return None
    return _parse_pair(final.text)


def _parse_pair(text: str) -> tuple[str, str] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    question, answer = data.get("question"), data.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        return None
    question, answer = _redacted(question, QUESTION_MAX), _redacted(answer, ANSWER_MAX)
    return (question, answer) if question and answer else None
