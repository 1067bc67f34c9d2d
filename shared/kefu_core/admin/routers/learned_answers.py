"""``/v1/admin/learned-answers``: question/answer pairs proposed from conversations agents
resolved (:mod:`kefu_core.flows.learn`), for an admin to edit, approve or reject
(docs/console.md, "The learning loop").

Admins only: a proposal is made of a customer's (redacted) words. Nothing reaches visitors
until an admin approves it: approval turns it into a curated answer or a knowledge-base entry.
Every change is audited with lengths only, never the texts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.admin.errors import NOT_FOUND, found
from kefu_core.admin.routers.curated_answers import ANSWER_MAX, FULL, QUESTION_MAX, add_curated
from kefu_core.admin.routers.knowledge import UNCONFIGURED, add_knowledge_entry
from kefu_core.deps import Deps
from kefu_core.product.learned_answers import LearnedAnswer, Status, Target
from kefu_core.security.tokens import Identity

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/learned-answers", tags=["learning"])

LearnedId = Annotated[int, Field(ge=1, le=2**62)]


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str | None = Field(default=None, min_length=1, max_length=QUESTION_MAX)
    answer: str | None = Field(default=None, min_length=1, max_length=ANSWER_MAX)


class Approval(Change):
    target: Target = "curated"


@router.get("", response_model=list[LearnedAnswer], summary="The review list")
async def review_list(who: AdminId, deps: DepsDep, status: Status = "pending",
                      limit: Annotated[int, Query(ge=1, le=200)] = 50,
                      before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                      ) -> list[LearnedAnswer]:
    """Pairs proposed from resolved conversations (`status`: pending, approved or
    rejected), newest first; `before` pages on by id."""
    return await deps.learned.list(tenant_id=who.tenant_id, status=status, limit=limit,
                                   before=before)


@router.put("/{learned_id}", response_model=LearnedAnswer, summary="Edit a proposal",
            responses=NOT_FOUND)
async def edit(learned_id: LearnedId, body: Change, who: AdminId,
               deps: DepsDep) -> LearnedAnswer:
    """Change a pending proposal's question and/or answer before approving it."""
    saved = found(await deps.learned.edit(tenant_id=who.tenant_id, learned_id=learned_id,
                                          question=body.question, answer=body.answer))
    await record(deps, who, "learned_answer.edited", "learned_answer", str(saved.id),
                 question_chars=len(saved.question), answer_chars=len(saved.answer))
    return saved


@router.post("/{learned_id}/approve", response_model=LearnedAnswer,
             summary="Approve a proposal", responses={**NOT_FOUND, **FULL, **UNCONFIGURED})
async def approve(learned_id: LearnedId, body: Approval, who: AdminId,
                  deps: DepsDep) -> LearnedAnswer:
    """The pair (with the question and answer given, if any) becomes a curated answer or a
    knowledge-base entry (`target`); only then can visitors get it."""
    if body.question or body.answer:
        await edit(learned_id, Change(question=body.question, answer=body.answer), who, deps)
    pending = found(await deps.learned.review(tenant_id=who.tenant_id, learned_id=learned_id,
                                              status="approved", by=who.subject))
    try:
        ref = await _apply(deps, who, pending, body.target)
    except BaseException:
        await deps.learned.reopen(tenant_id=who.tenant_id, learned_id=learned_id)
        raise
    await deps.learned.applied(tenant_id=who.tenant_id, learned_id=learned_id,
                               target=body.target, target_ref=ref)
    await record(deps, who, "learned_answer.approved", "learned_answer", str(pending.id),
                 target=body.target, target_ref=ref, method=pending.method)
    return found(await deps.learned.get(tenant_id=who.tenant_id, learned_id=learned_id))


@router.post("/{learned_id}/reject", response_model=LearnedAnswer,
             summary="Reject a proposal", responses=NOT_FOUND)
async def reject(learned_id: LearnedId, who: AdminId, deps: DepsDep) -> LearnedAnswer:
    """Take a pending proposal out of the list; visitors never get it."""
    rejected = found(await deps.learned.review(tenant_id=who.tenant_id, learned_id=learned_id,
                                               status="rejected", by=who.subject))
    await record(deps, who, "learned_answer.rejected", "learned_answer", str(rejected.id))
    return rejected


async def _apply(deps: Deps, who: Identity, pair: LearnedAnswer, target: Target) -> str:
    if target == "curated":
        saved = await add_curated(deps, who, question=pair.question, answer=pair.answer,
                                  source="learned_answer")
        return str(saved.id)
    return await add_knowledge_entry(deps, who, question=pair.question, answer=pair.answer,
                                     source="learned_answer")
