"""The engine's second look at sentences the lexical grounding check flagged.

Only where the tenant turned it on (``grounding_engine_check``) and only for sentences already
flagged (so a grounded reply costs nothing): one short request to the first engine of the
tenant's chain (no fallback, no offline engine) asks, for each numbered sentence, whether the
sources support it. Within ``GROUNDING_ENGINE_BUDGET_MS`` (after the reply's last delta: it
delays the final frame of a flagged reply by at most that, never the first token). A late,
failed or unreadable answer keeps the lexical verdict. The engine can only clear a flag, never
add one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

from kefu_llm import ChatMessage, ChatRequest, Final, Router

__all__ = ["Reviewer", "engine_reviewer"]

logger = logging.getLogger("kefu.grounding")

# Given the flagged sentences and the sources: the indexes the engine says are unsupported,
# or None when it gave no usable answer in time.
Reviewer = Callable[[Sequence[str], Sequence[str]], Awaitable[set[int] | None]]

_VERDICT = re.compile(r"(\d+)\s*[:：.)]\s*(UNSUPPORTED|SUPPORTED)", re.IGNORECASE)
_INSTRUCTIONS = (
    "You check a customer-service reply against its sources. For each numbered sentence, say "
    "whether the sources state it (a paraphrase counts; anything added, changed or contradicted "
    "does not). Answer one line per sentence, exactly `n: SUPPORTED` or `n: UNSUPPORTED`, and "
    "nothing else."
)
SOURCE_CHARS = 6000  # of the sources sent with the question


def engine_reviewer(router: Router, *, tenant_id: str, conversation_id: str,
                    budget_s: float) -> Reviewer:
    async def review(sentences: Sequence[str], sources: Sequence[str]) -> set[int] | None:
        numbered = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(sentences))
        request = ChatRequest(
            tenant_id=tenant_id, conversation_id=conversation_id, fallback=False,
            max_tokens=16 * len(sentences), temperature=0,
            messages=[ChatMessage(role="system", content=_INSTRUCTIONS),
                      ChatMessage(role="user", content=(
                          "Sources:\n" + "\n---\n".join(sources)[:SOURCE_CHARS]
                          + f"\n\nSentences:\n{numbered}"))])
        try:
            async with asyncio.timeout(budget_s):
                text = await _answer(router, request)
        except Exception:  # late or failed: the lexical verdict stands
            logger.info("grounding review gave no answer in time",
                        extra={"conversation_id": conversation_id})
            return None
        verdicts = {int(n) - 1: v.upper() for n, v in _VERDICT.findall(text)}
        if set(verdicts) != set(range(len(sentences))):
            return None
        return {i for i, v in verdicts.items() if v == "UNSUPPORTED"}

    return review


async def _answer(router: Router, request: ChatRequest) -> str:
    final: Final | None = None
    async for event in router.stream(request):
        if isinstance(event, Final):
            final = event
    if final is None or final.status != "complete":
        raise RuntimeError("no complete answer")
    return final.text
