"""``/v1/admin/missing-knowledge``: the questions the bot could not answer well, clustered and
ranked (:mod:`kefu_core.answers.missing_knowledge`); an answer written once for a cluster
becomes a curated answer or a knowledge-base entry. Admins only: it shows visitors' words.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.admin.routers.curated_answers import ANSWER_MAX, FULL, QUESTION_MAX, add_curated
from kefu_core.admin.routers.knowledge import UNCONFIGURED, add_knowledge_entry
from kefu_core.answers.missing_knowledge import Cluster, open_clusters
from kefu_core.product.curated_answers import CuratedAnswer

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/missing-knowledge", tags=["learning"])

ITEMS_MAX = 1000  # the newest items clustered per request


class Answered(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=QUESTION_MAX)
    answer: str = Field(min_length=1, max_length=ANSWER_MAX)
    target: Literal["curated", "knowledge"] = "curated"


class Learned(BaseModel):
    target: Literal["curated", "knowledge"]
    curated: CuratedAnswer | None = None
    document: str | None = None


@router.get("", response_model=list[Cluster], summary="The missing-knowledge queue")
async def queue(who: AdminId, deps: DepsDep,
                days: Annotated[int, Query(ge=1, le=90)] = 30,
                top: Annotated[int, Query(ge=1, le=100)] = 50) -> list[Cluster]:
    """Questions of the last `days` the bot refused, answered unsupported, was rated 👎 on, or
    handed off after failing: clustered by similarity, most conversations first, each with up
    to five examples. Clusters a curated answer now answers are left out."""
    since = datetime.now(UTC) - timedelta(days=days)
    items = await deps.learning_queue.items(tenant_id=who.tenant_id, since=since,
                                            limit=ITEMS_MAX)
    threshold = (await deps.tenant_settings.get(who.tenant_id)).curated_answer_threshold
    return await open_clusters(items, matcher=await deps.curated_matcher(),
                               tenant_id=who.tenant_id, threshold=threshold, top=top)


@router.post("/answer", response_model=Learned, status_code=201,
             summary="Answer a cluster once", responses={**FULL, **UNCONFIGURED})
async def answer(body: Answered, who: AdminId, deps: DepsDep) -> Learned:
    """Write the answer to a cluster's question once: as a curated answer (visitors asking it
    get it without a model call) or as a knowledge-base entry (a Markdown document named
    `learned-...md` the model retrieves like any other)."""
    if body.target == "curated":
        return Learned(target="curated", curated=await add_curated(
            deps, who, question=body.question, answer=body.answer, source="missing_knowledge"))
    name = await add_knowledge_entry(deps, who, question=body.question, answer=body.answer,
                                     source="missing_knowledge")
    return Learned(target="knowledge", document=name)
