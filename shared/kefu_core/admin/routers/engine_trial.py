"""``POST /v1/admin/engines/{name}/test``: one engine of the tenant's chain answers a short
question, streamed (NDJSON), so an admin sees that its URL, model and key work before visitors
depend on it.

Only that engine answers (no other engine of the chain, no offline last resort:
:meth:`~kefu_core.answers.tenant_engines.TenantRouters.trial`); nothing is stored. It calls a
paid service, so it is rate-limited per tenant. The question is the caller's (at most 200
characters) and is never logged.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.answers.tenant_engines import ENGINE_NAME
from kefu_core.security.rate_limits import admit, counter_key
from kefu_llm import Busy, ChatMessage, ChatRequest, Delta, Final

router = APIRouter(prefix="/v1/admin/engines", tags=["engines"])

TESTS_PER_MINUTE = 10
EngineName = Annotated[str, Path(pattern=ENGINE_NAME, max_length=64)]


class TrialBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(default="你好！请用一句话介绍你自己。Hello! Introduce yourself in one "
                                  "short sentence.", min_length=1, max_length=200)


@router.post("/{name}/test", summary="Test one engine",
             responses={200: {"content": {"application/x-ndjson": {}},
                              "description": "`delta` events, then one `final` (status, "
                                             "engine, first_token_ms)"},
                        404: {"description": "no usable engine of that name in the chain "
                                             "(unknown, no model, its key not stored, its URL "
                                             "refused)"},
                        429: {"description": "too many tests (Retry-After)"}})
async def trial_engine(name: EngineName, who: AdminId, deps: DepsDep,
                      body: TrialBody | None = None) -> StreamingResponse:
    """The engine `name` of the tenant's chain, alone, answers `question`, streamed."""
    await admit(deps.redis, counter_key(deps.settings.redis_prefix, "engine-test",
                                        who.tenant_id),
                limit=TESTS_PER_MINUTE, window_s=60)
    stack = contextlib.AsyncExitStack()
    engine = await stack.enter_async_context(deps.tenant_routers.trial(who.tenant_id, name))
    if engine is None:
        await stack.aclose()
        raise HTTPException(status_code=404, detail="no usable engine of that name")
    request = ChatRequest(
        tenant_id=who.tenant_id, conversation_id=f"engine-test-{name}",
        messages=[ChatMessage(role="user", content=(body or TrialBody()).question)])
    return StreamingResponse(_events(stack, engine, request),
                             media_type="application/x-ndjson")


async def _events(stack: contextlib.AsyncExitStack, engine: Any,
                  request: ChatRequest) -> AsyncIterator[bytes]:
    started, first_ms = time.monotonic(), None
    async with stack:
        async for event in engine.stream(request):
            if isinstance(event, Delta):
                if first_ms is None:
                    first_ms = round((time.monotonic() - started) * 1000)
                yield _line({"event": "delta", "text": event.text})
            elif isinstance(event, Final):
                yield _line({"event": "final", "status": event.status, "engine": event.engine,
                             "reason": event.reason, "first_token_ms": first_ms})
            elif isinstance(event, Busy):
                yield _line({"event": "final", "status": "busy", "engine": None,
                             "reason": event.scope, "first_token_ms": None})


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode()
