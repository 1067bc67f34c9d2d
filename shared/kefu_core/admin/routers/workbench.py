"""``/v1/admin/workbench``: the 话术 tuning workbench (:mod:`kefu_core.product.prompt_versions`).

An admin edits a draft of the system prompt and the humanisation knobs, asks a question and
sees the published and the draft answer side by side, streamed (NDJSON), with the passages and
memory both were given; then publishes the draft as a new version, or rolls back to an earlier
one. Publishing and rolling back are audited (version number, prompt length: never the text).
Comparing calls the tenant's engines twice, so it is rate-limited per tenant.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep, SettingsDep
from kefu_core.admin.errors import NOT_FOUND, done, found
from kefu_core.deps import Deps
from kefu_core.flows.preview import PreviewContext, preview_answer, recall_for_preview
from kefu_core.flows.replay import Engines, ReplayReport, replay, stored_questions
from kefu_core.product.prompt_versions import PromptVersion, PromptWorkbench, Tuning
from kefu_core.security.rate_limits import admit, counter_key

logger = logging.getLogger("kefu.admin")

router = APIRouter(prefix="/v1/admin/workbench", tags=["workbench"])

DRAFT_PATH = "/v1/admin/workbench/draft"
COMPARE_PATH = "/v1/admin/workbench/compare"
COMPARES_PER_MINUTE = 20
REPLAYS_PER_10_MINUTES = 5
REPLAY_SAMPLE_MAX = 50  # questions per replay with the offline engine
REPLAY_TENANT_SAMPLE_MAX = 10  # with the tenant's engines: two paid calls per question
SIDES = ("published", "draft")


class Workbench(BaseModel):
    published: Tuning
    draft: Tuning | None
    versions: list[PromptVersion]
    default_prompt: str  # what an empty system prompt means: the deployment's


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=200)


class CompareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=500)
    # the draft to try (default: the stored one), so unsaved edits can be compared
    draft: Tuning | None = None


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sample: int = Field(default=20, ge=1, le=REPLAY_SAMPLE_MAX)
    days: int = Field(default=30, ge=1, le=90)
    engines: Engines = "offline"
    draft: Tuning | None = None

    @model_validator(mode="after")
    def _bounded(self) -> ReplayBody:
        if self.engines == "tenant" and self.sample > REPLAY_TENANT_SAMPLE_MAX:
            raise ValueError(f"at most {REPLAY_TENANT_SAMPLE_MAX} questions with the tenant's "
                             "engines")
        return self


def _store(deps: Deps) -> PromptWorkbench:
    return PromptWorkbench(deps.pool, deps.tenant_settings)


@router.get("", response_model=Workbench, summary="The workbench")
async def workbench(who: AdminId, deps: DepsDep, settings: SettingsDep) -> Workbench:
    """The published tuning (what replies use now), the draft if any, the version history
    (newest first) and the deployment's default system prompt."""
    store = _store(deps)
    return Workbench(published=await store.published(who.tenant_id),
                     draft=await store.draft(who.tenant_id),
                     versions=await store.versions(who.tenant_id),
                     default_prompt=settings.system_prompt)


@router.put("/draft", status_code=204, summary="Save the draft")
async def save_draft(body: Tuning, who: AdminId, deps: DepsDep) -> Response:
    """Replace the draft (a system prompt of up to 20,000 characters, empty for the
    deployment's default, and the knobs). Replies do not use it until it is published."""
    await _store(deps).save_draft(who.tenant_id, body, by=who.subject)
    await record(deps, who, "workbench.draft_saved", "prompt", "system",
                 length=len(body.system_prompt))
    return Response(status_code=204)


@router.delete("/draft", status_code=204, summary="Discard the draft", responses=NOT_FOUND)
async def discard_draft(who: AdminId, deps: DepsDep) -> Response:
    """Forget the draft; the published tuning is unchanged."""
    done(await _store(deps).discard_draft(who.tenant_id))
    await record(deps, who, "workbench.draft_discarded", "prompt", "system")
    return Response(status_code=204)


@router.post("/publish", response_model=PromptVersion, status_code=201,
             summary="Publish the draft", responses={404: {"description": "no draft"}})
async def publish(body: PublishBody, who: AdminId, deps: DepsDep) -> PromptVersion:
    """Make the draft what replies use, as the next version (the next reply of every
    conversation follows it); the draft is cleared."""
    store = _store(deps)
    draft = found(await store.draft(who.tenant_id))
    version = await store.publish(who.tenant_id, draft, by=who.subject, note=body.note)
    await record(deps, who, "prompt.published", "prompt", "system", version=version.version,
                 length=len(draft.system_prompt))
    return version


@router.post("/versions/{version}/rollback", response_model=PromptVersion, status_code=201,
             summary="Roll back to a version", responses=NOT_FOUND)
async def rollback(version: Annotated[int, Path(ge=1, le=1_000_000)], who: AdminId,
                   deps: DepsDep) -> PromptVersion:
    """Publish an earlier version's tuning again, as a new version."""
    store = _store(deps)
    old = found(await store.version(who.tenant_id, version))
    new = await store.publish(who.tenant_id, old.tuning, by=who.subject,
                              note=f"rollback to v{version}")
    await record(deps, who, "prompt.rolled_back", "prompt", "system", to=version,
                 version=new.version)
    return new


@router.post("/compare", summary="Compare the published and the draft answer",
             responses={200: {"content": {"application/x-ndjson": {}},
                              "description": "one JSON object per line: `context` (passages "
                                             "and memory), then `delta` and `final` events "
                                             "of each `side` (published, draft), interleaved"},
                        404: {"description": "no draft"},
                        429: {"description": "too many comparisons (Retry-After)"}})
async def compare(body: CompareBody, who: AdminId, deps: DepsDep) -> StreamingResponse:
    """Answer `question` twice, with the published tuning and with the draft (the one in the
    body, else the stored one), streaming both."""
    store = _store(deps)
    draft = body.draft or found(await store.draft(who.tenant_id))
    await admit(deps.redis, counter_key(deps.settings.redis_prefix, "workbench-compare",
                                        who.tenant_id),
                limit=COMPARES_PER_MINUTE, window_s=60)
    published = await store.published(who.tenant_id)
    context = await recall_for_preview(deps, tenant_id=who.tenant_id, question=body.question)
    events = _merged(deps, who.tenant_id, body.question, context,
                     {"published": published, "draft": draft})
    return StreamingResponse(events, media_type="application/x-ndjson")


@router.post("/replay", response_model=ReplayReport, summary="Replay questions on the draft",
             responses={404: {"description": "no draft"},
                        429: {"description": "too many replays (Retry-After)"}})
async def replay_draft(body: ReplayBody, who: AdminId, deps: DepsDep) -> ReplayReport:
    """Re-ask up to `sample` visitor questions of the last `days` days (the newest that the
    bot answered) with the published tuning and with the draft (the one in the body, else
    the stored one): retrieval hit rate, curated-answer hits, refusals and grounded rate of
    each, and the questions whose outcome changed. The offline engine answers unless
    `engines` is `tenant` (at most 10 questions). Nothing is stored."""
    store = _store(deps)
    draft = body.draft or found(await store.draft(who.tenant_id))
    await admit(deps.redis, counter_key(deps.settings.redis_prefix, "workbench-replay",
                                        who.tenant_id),
                limit=REPLAYS_PER_10_MINUTES, window_s=600)
    questions = await stored_questions(deps, tenant_id=who.tenant_id, days=body.days,
                                       limit=body.sample)
    report = await replay(deps, tenant_id=who.tenant_id, questions=questions,
                          before=await store.published(who.tenant_id), after=draft,
                          engines=body.engines)
    await record(deps, who, "workbench.replayed", "prompt", "system",
                 questions=report.questions, engines=body.engines)
    return report


async def _merged(deps: Deps, tenant_id: str, question: str, context: PreviewContext,
                  tunings: dict[str, Tuning]) -> AsyncIterator[bytes]:
    """Both answers' events as NDJSON lines, in the order they come."""
    yield _line({"event": "context", "passages": context.passages,
                 "memory": context.memory_prompt})
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def run(side: str) -> None:
        try:
            async for event in preview_answer(deps, tenant_id=tenant_id, tuning=tunings[side],
                                              question=question, context=context):
                await queue.put({"side": side, **event})
        except Exception:  # the other side goes on; the client sees this one failed
            logger.warning("workbench preview failed", exc_info=True)
            await queue.put({"side": side, "event": "final", "text": "", "status": "failed",
                             "engine": None, "answered": False})
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(run(side)) for side in SIDES]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            else:
                yield _line(item)
    finally:
        for task in tasks:
            task.cancel()


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode()
