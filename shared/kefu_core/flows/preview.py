"""An answer to one question under a given tuning, outside any conversation: the tuning
workbench's side-by-side comparison of the published and the draft prompt.

It takes a reply's path (memory recall, the tenant's engines, the system prompt with its emoji
rule, the tuning's fallback switch) but stores nothing and sends nothing to a visitor; the
long-term memory looked up is the workbench's own (no visitor's facts are read).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from kefu_core.deps import Deps
from kefu_core.flows.stream import system_prompt
from kefu_core.product.prompt_versions import Tuning
from kefu_llm import Busy, ChatMessage, ChatRequest, Delta, Final

__all__ = ["PreviewContext", "preview_answer", "preview_request", "recall_for_preview"]

logger = logging.getLogger("kefu.preview")

MEMORY_ID = "workbench"  # no visitor's long-term facts


@dataclass(frozen=True)
class PreviewContext:
    passages: list[str]
    kb_version: str
    memory_prompt: str
    more_passages: list[str] = field(default_factory=list)  # the offline engine's only


async def recall_for_preview(deps: Deps, *, tenant_id: str, question: str) -> PreviewContext:
    """The knowledge passages and memory a reply to ``question`` would be given."""
    memory = await deps.load_memory()
    if memory is None:
        return PreviewContext(passages=[], kb_version="0", memory_prompt="")
    try:
        context = await memory.recall(tenant_id=tenant_id, memory_id=MEMORY_ID, crm_id=None,
                                      question=question)
    except Exception:
        logger.warning("recall failed; previewing without memory", exc_info=True)
        return PreviewContext(passages=[], kb_version="0", memory_prompt="")
    return PreviewContext(passages=list(context.passages), kb_version=context.kb_version,
                          memory_prompt=context.memory_prompt,
                          more_passages=list(context.more_passages))


async def preview_answer(deps: Deps, *, tenant_id: str, tuning: Tuning, question: str,
                         context: PreviewContext) -> AsyncIterator[dict[str, Any]]:
    """``{"event": "delta", "text"}`` pieces, then one ``{"event": "final", ...}``."""
    request = await preview_request(deps, tenant_id=tenant_id, tuning=tuning,
                                    question=question, context=context)
    router = await deps.router_for(tenant_id)
    async for event in router.stream(request):
        if isinstance(event, Delta):
            yield {"event": "delta", "text": event.text}
        elif isinstance(event, Final):
            yield {"event": "final", "text": event.text, "status": event.status,
                   "engine": event.engine, "answered": event.answered}
        elif isinstance(event, Busy):
            yield {"event": "final", "text": "", "status": "busy", "engine": None,
                   "answered": False}


async def preview_request(deps: Deps, *, tenant_id: str, tuning: Tuning, question: str,
                          context: PreviewContext) -> ChatRequest:
    """The request a reply to ``question`` under ``tuning`` sends to the engines."""
    tenant, _ = await deps.tenant_settings.current(tenant_id)
    settings = tuning.settings(tenant)
    system = system_prompt(tuning.system_prompt or deps.settings.system_prompt, settings)
    if context.memory_prompt:
        system = f"{system}\n\n{context.memory_prompt}"
    request = ChatRequest(
        tenant_id=tenant_id, conversation_id=f"workbench-{uuid.uuid4()}",
        messages=[ChatMessage(role="system", content=system),
                  ChatMessage(role="user", content=question)],
        passages=context.passages, more_passages=context.more_passages,
        kb_version=context.kb_version, fallback=settings.enable_fallback)
    return request
