"""``/v1/admin/curated-answers``: questions with approved answers, answered without a model
(docs/console.md, "The learning loop").

Admins always; agents when the tenant's ``agents_curate`` setting allows it, read from the
database on every call (so a setting turned off stops them at once). Every change is a new
version and an audit entry (lengths only: the texts are in the versions).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AgentId, DepsDep
from kefu_core.admin.errors import NOT_FOUND, Responses, found
from kefu_core.deps import Deps
from kefu_core.infra.errors import Forbidden, LimitReached
from kefu_core.product.curated_answers import MAX_PER_TENANT, CuratedAnswer, CuratedVersion
from kefu_core.security.tokens import Identity

__all__ = ["CuratorId", "router"]

router = APIRouter(prefix="/v1/admin/curated-answers", tags=["learning"])

QUESTION_MAX = 500
ANSWER_MAX = 4000
AnswerId = Annotated[int, Field(ge=1, le=2**62)]
FULL: Responses = {409: {"description": f"the tenant has {MAX_PER_TENANT} curated answers"}}


async def _curator(who: AgentId, deps: DepsDep) -> Identity:
    if who.role != "admin" and not (await deps.tenant_settings.get(who.tenant_id)).agents_curate:
        raise HTTPException(status_code=Forbidden.status, detail=Forbidden.detail)
    return who


CuratorId = Annotated[Identity, Depends(_curator)]


class NewAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=QUESTION_MAX)
    answer: str = Field(min_length=1, max_length=ANSWER_MAX)


class AnswerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str | None = Field(default=None, min_length=1, max_length=QUESTION_MAX)
    answer: str | None = Field(default=None, min_length=1, max_length=ANSWER_MAX)


class MatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=2000)


class Match(BaseModel):
    """The curated answer closest to a question, its score, the tenant's threshold, and
    whether a visitor asking it would get that answer without a model call."""

    answer: CuratedAnswer | None
    score: float
    threshold: float
    answered: bool


@router.get("", response_model=list[CuratedAnswer], summary="List curated answers")
async def list_answers(who: CuratorId, deps: DepsDep) -> list[CuratedAnswer]:
    """The tenant's current curated answers, newest first."""
    return await deps.curated.active(who.tenant_id)


@router.post("", response_model=CuratedAnswer, status_code=201, summary="Add a curated answer",
             responses=FULL)
async def create_answer(body: NewAnswer, who: CuratorId, deps: DepsDep) -> CuratedAnswer:
    """Save a question with its approved answer (version 1)."""
    return await add_curated(deps, who, question=body.question, answer=body.answer)


@router.put("/{answer_id}", response_model=CuratedAnswer, summary="Change a curated answer",
            responses=NOT_FOUND)
async def update_answer(answer_id: AnswerId, body: AnswerChange, who: CuratorId,
                        deps: DepsDep) -> CuratedAnswer:
    """A new version with the question and/or the answer given."""
    saved = found(await deps.curated.update(tenant_id=who.tenant_id, answer_id=answer_id,
                                            question=body.question, answer=body.answer,
                                            by=who.subject))
    deps.curated_changed(who.tenant_id)
    await record(deps, who, "curated_answer.updated", "curated_answer", str(saved.id),
                 version=saved.version, question_chars=len(saved.question),
                 answer_chars=len(saved.answer))
    return saved


@router.delete("/{answer_id}", status_code=204, summary="Delete a curated answer",
               responses=NOT_FOUND)
async def delete_answer(answer_id: AnswerId, who: CuratorId, deps: DepsDep) -> Response:
    """Visitors no longer get it; its versions stay readable."""
    saved = found(await deps.curated.update(tenant_id=who.tenant_id, answer_id=answer_id,
                                            question=None, answer=None, active=False,
                                            by=who.subject))
    deps.curated_changed(who.tenant_id)
    await record(deps, who, "curated_answer.deleted", "curated_answer", str(saved.id),
                 version=saved.version)
    return Response(status_code=204)


@router.get("/{answer_id}/versions", response_model=list[CuratedVersion],
            summary="A curated answer's versions", responses=NOT_FOUND)
async def versions(answer_id: AnswerId, who: CuratorId, deps: DepsDep) -> list[CuratedVersion]:
    """Every version, oldest first, the deletion included."""
    return found(await deps.curated.versions(tenant_id=who.tenant_id, answer_id=answer_id)
                 or None)


@router.post("/match", response_model=Match, summary="Test a question")
async def match(body: MatchRequest, who: CuratorId, deps: DepsDep) -> Match:
    """The curated answer a visitor asking `question` would match, with its score and the
    tenant's threshold. Nothing is stored or logged."""
    threshold = (await deps.tenant_settings.get(who.tenant_id)).curated_answer_threshold
    best = await (await deps.curated_matcher()).best(who.tenant_id, body.question)
    score = best.score if best else 0.0
    return Match(answer=best.answer if best else None, score=score, threshold=threshold,
                 answered=best is not None and score >= threshold)


async def add_curated(deps: Deps, who: Identity, *, question: str, answer: str,
                      source: str | None = None) -> CuratedAnswer:
    """Save a curated answer for the caller's tenant, audited (``source``: where it came from,
    e.g. a missing-knowledge cluster)."""
    if await deps.curated.count(who.tenant_id) >= MAX_PER_TENANT:
        raise LimitReached
    saved = await deps.curated.create(tenant_id=who.tenant_id, question=question,
                                      answer=answer, by=who.subject)
    deps.curated_changed(who.tenant_id)
    await record(deps, who, "curated_answer.created", "curated_answer", str(saved.id),
                 question_chars=len(question), answer_chars=len(answer), source=source)
    return saved
