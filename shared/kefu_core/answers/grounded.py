"""What a tenant's grounding setting does to a finished reply (docs/console.md, "The learning
loop").

``mark``: the final frame lists the unsupported sentences (``unsupported``); ``refuse``: the
reply is replaced by a refusal that offers a human; ``handoff``: the same refusal, and the
conversation is queued for an agent (reason ``ungrounded``); ``off``: nothing is checked. Where
the tenant turned it on, the engine takes a second look at flagged sentences first
(:mod:`kefu_core.answers.grounding_review`).
What the check found is stored with the reply (its meta) for the reports and the
missing-knowledge queue; a replaced reply keeps the model's text there for the admins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kefu_core.answers.grounding import check_reply
from kefu_core.answers.grounding_review import Reviewer
from kefu_llm import ChatRequest, Final, detect_language

__all__ = ["Grounded", "GroundingAction", "ground"]

GroundingAction = Literal["off", "mark", "refuse", "handoff"]

REFUSAL = {
    "zh": "抱歉，这个问题我在资料中没有找到确切的答案。需要的话，我可以为您转接人工客服。",
    "en": "Sorry, I could not find a reliable answer to that in our documents. "
          "I can connect you with a human agent if you like.",
}
HANDOFF_REFUSAL = {
    "zh": "抱歉，这个问题我在资料中没有找到确切的答案，正在为您转接人工客服，请稍候。",
    "en": "Sorry, I could not find a reliable answer to that in our documents. "
          "I'm connecting you with a human agent. One moment, please.",
}


@dataclass(frozen=True)
class Grounded:
    """The reply to send and store, the spans for the final frame, what to store, and whether
    the conversation goes to an agent."""

    final: Final
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    handoff: bool = False


async def ground(final: Final, request: ChatRequest, *, action: GroundingAction,
                 review: Reviewer | None = None) -> Grounded:
    """Check a complete, answered reply against the request's passages, system prompt (with
    the customer's memory) and the visitor's words; with ``review``, the engine takes a
    second look at the flagged sentences (it may clear them); apply ``action``."""
    if action == "off" or final.status != "complete" or not final.answered \
            or final.handoff or not final.text.strip():
        return Grounded(final=final)
    sources = _sources(request)
    result = check_reply(final.text, sources)
    flagged = result.unsupported
    reviewed = None
    if flagged and review is not None:
        reviewed = await review([s.text for s in flagged], sources)
        if reviewed is not None:
            flagged = [s for i, s in enumerate(flagged) if i in reviewed]
    spans = [{"start": s.start, "end": s.end, "reason": s.reason} for s in flagged]
    meta: dict[str, Any] = {"grounding": {"checked": result.checked, "unsupported": spans,
                                          "action": action}}
    if reviewed is not None:
        meta["grounding"]["engine_cleared"] = len(result.unsupported) - len(flagged)
    if not flagged or action == "mark":
        return Grounded(final=final, unsupported=spans, meta=meta)
    question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    lines = HANDOFF_REFUSAL if action == "handoff" else REFUSAL
    meta["grounding"]["original"] = final.text
    refusal = replace(final, text=lines[detect_language(question)], answered=False,
                      reason="ungrounded")
    return Grounded(final=refusal, meta=meta, handoff=action == "handoff")


def _sources(request: ChatRequest) -> Sequence[str]:
    told = [m.content for m in request.messages if m.role in ("system", "user")]
    return [*request.passages, *told]
