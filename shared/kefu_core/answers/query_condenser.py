"""A language-model condenser for the knowledge-search query (``QUERY_CONDENSER=llm``).

kefu_memory asks for ``async complete(prompt) -> str`` and never imports an engine; this
module gives it one over the reply router: one short, deterministic call, accepted only when a
remote engine answered it completely (an offline engine cannot rewrite a question, and a
cut-off rewrite is no query). When every engine of the chain is local there is no condenser and
the rule-based query is used.
"""

from __future__ import annotations

from typing import Any

from kefu_llm import Busy, ChatMessage, ChatRequest, Delta, Final
from kefu_memory import CondenseFn

__all__ = ["CondenserUnavailable", "router_condenser"]

CONDENSE_MAX_TOKENS = 48


class CondenserUnavailable(Exception):
    """The router gave no complete answer from a remote engine."""


def _remote_engines(router: Any) -> set[str]:
    return {slot.name for slot in getattr(router, "slots", ())
            if not getattr(slot.engine, "local", False)}


def router_condenser(router: Any, *, tenant_id: str, conversation_id: str) -> CondenseFn | None:
    """A condenser over `router`, or None when it has no remote engine."""
    remote = _remote_engines(router)
    if not remote:
        return None

    async def complete(prompt: str) -> str:
        request = ChatRequest(
            tenant_id=tenant_id, conversation_id=conversation_id,
            messages=[ChatMessage(role="user", content=prompt)],
            max_tokens=CONDENSE_MAX_TOKENS, temperature=0.0,
        )
        parts: list[str] = []
        async for event in router.stream(request):
            if isinstance(event, Delta):
                parts.append(event.text)
            elif isinstance(event, Busy):
                raise CondenserUnavailable("busy")
            elif isinstance(event, Final):
                if event.status != "complete" or event.engine not in remote:
                    raise CondenserUnavailable(event.reason or event.status)
                return event.text or "".join(parts)
        raise CondenserUnavailable("no final event")

    return complete
