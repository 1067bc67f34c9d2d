"""Regression replay: re-ask visitors' questions against the current knowledge base and curated
answers, with the published tuning (before) and a draft (after), and count what changes.

For each question: whether a curated answer would answer it (the tenant's threshold, no model
call), whether retrieval hits (the best passage shares keyword terms with the question and
scores at least ``min_score``), and, under each tuning, whether the reply is a refusal (the
engine had nothing to answer from, or the reply did not complete) and whether the grounding
check (:mod:`kefu_core.answers.grounding`, as ``mark`` does) passes it. Nothing is stored and
nothing is sent to a visitor. The offline engine answers unless the tenant's chain is asked
for (``engines="tenant"``): replaying against paid engines costs two calls per question.

Used by ``kefu replay`` (docs/console.md, "Regression replay") and by the workbench's
``POST /v1/admin/workbench/replay``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from psycopg.rows import dict_row
from pydantic import BaseModel

from kefu_core.answers.grounded import ground
from kefu_core.deps import Deps
from kefu_core.flows.preview import PreviewContext, preview_request, recall_for_preview
from kefu_core.product.prompt_versions import Tuning

if TYPE_CHECKING:
    from kefu_llm import Router

__all__ = ["QUESTION_MAX", "Engines", "Figures", "ReplayReport", "file_questions", "replay",
           "stored_questions"]

QUESTION_MAX = 500  # characters of a question replayed (longer ones are cut)
EXAMPLES = 20  # questions whose outcome changed, listed in a report

Engines = Literal["offline", "tenant"]


class Outcome(BaseModel):
    refused: bool
    grounded: bool | None  # None: not checked (a curated answer, a refusal, nothing to check)


class Figures(BaseModel):
    """What one tuning did over the questions."""

    questions: int = 0
    curated_hits: int = 0
    retrieval_hits: int = 0
    refusals: int = 0
    grounding_checked: int = 0
    grounded: int = 0
    retrieval_hit_rate: float = 0.0
    curated_hit_rate: float = 0.0
    refusal_rate: float = 0.0
    grounded_rate: float | None = None

    def add(self, *, curated: bool, hit: bool, outcome: Outcome) -> None:
        self.questions += 1
        self.curated_hits += curated
        self.retrieval_hits += hit
        self.refusals += outcome.refused
        if outcome.grounded is not None:
            self.grounding_checked += 1
            self.grounded += outcome.grounded
        n = self.questions
        self.retrieval_hit_rate = round(self.retrieval_hits / n, 4)
        self.curated_hit_rate = round(self.curated_hits / n, 4)
        self.refusal_rate = round(self.refusals / n, 4)
        self.grounded_rate = (round(self.grounded / self.grounding_checked, 4)
                              if self.grounding_checked else None)


class Changed(BaseModel):
    question: str
    before: Outcome
    after: Outcome


class ReplayReport(BaseModel):
    questions: int
    engines: Engines
    kb_version: str
    min_score: float
    before: Figures
    after: Figures | None  # None: no draft to compare
    changed: list[Changed]  # up to EXAMPLES questions whose outcome differs


async def replay(deps: Deps, *, tenant_id: str, questions: list[str], before: Tuning,
                 after: Tuning | None, engines: Engines = "offline",
                 min_score: float = 0.0) -> ReplayReport:
    """Re-ask ``questions`` under ``before`` (and ``after``, when given)."""
    router = await _router(deps, tenant_id, engines)
    try:
        threshold = (await deps.tenant_settings.get(tenant_id)).curated_answer_threshold
        matcher = await deps.curated_matcher()
        report = ReplayReport(questions=0, engines=engines, kb_version="0",
                              min_score=min_score, before=Figures(),
                              after=Figures() if after is not None else None, changed=[])
        for question in questions:
            best = await matcher.best(tenant_id, question)
            curated = best is not None and best.score >= threshold
            hit = await _retrieval_hit(deps, tenant_id, question, min_score)
            context = await recall_for_preview(deps, tenant_id=tenant_id, question=question)
            report.kb_version = context.kb_version
            first = await _outcome(deps, router, tenant_id, question, before, context, curated,
                                   offline=engines == "offline")
            report.before.add(curated=curated, hit=hit, outcome=first)
            if after is not None and report.after is not None:
                second = await _outcome(deps, router, tenant_id, question, after, context,
                                        curated, offline=engines == "offline")
                report.after.add(curated=curated, hit=hit, outcome=second)
                if second != first and len(report.changed) < EXAMPLES:
                    report.changed.append(Changed(question=question, before=first,
                                                  after=second))
            report.questions += 1
        return report
    finally:
        if engines == "offline":
            await router.aclose()


async def _router(deps: Deps, tenant_id: str, engines: Engines) -> Router:
    if engines == "tenant":
        return await deps.router_for(tenant_id)
    from kefu_llm import AdapterSettings, build_router

    return build_router(settings=AdapterSettings(engines=[], openai_api_key=None,
                                                 openai_base_url=None, cache_ttl_s=0),
                        redis=None)


async def _retrieval_hit(deps: Deps, tenant_id: str, question: str, min_score: float) -> bool:
    memory = await deps.load_memory()
    if memory is None:
        return False
    passages: list[Any] = await memory.knowledge.search(
        tenant_id, question, k=deps.settings.knowledge_top_k)
    return bool(passages) and passages[0].keyword_rank is not None \
        and passages[0].score >= min_score


async def _outcome(deps: Deps, router: Router, tenant_id: str, question: str, tuning: Tuning,
                   context: PreviewContext, curated: bool, *, offline: bool) -> Outcome:
    """A curated answer needs no model; otherwise the reply under ``tuning``, checked."""
    if curated:
        return Outcome(refused=False, grounded=None)
    from kefu_llm import Final

    request = await preview_request(deps, tenant_id=tenant_id, tuning=tuning,
                                    question=question, context=context)
    if offline:  # the offline engine is the chain here, not a last resort to switch off
        request = request.model_copy(update={"fallback": True})
    final: Final | None = None
    async for event in router.stream(request):
        if isinstance(event, Final):
            final = event
    if final is None or final.status != "complete" or not final.answered:
        return Outcome(refused=True, grounded=None)
    checked = (await ground(final, request, action="mark")).meta.get("grounding")
    if not checked or not checked["checked"]:
        return Outcome(refused=False, grounded=None)
    return Outcome(refused=False, grounded=not checked["unsupported"])


async def stored_questions(deps: Deps, *, tenant_id: str, days: int,
                           limit: int) -> list[str]:
    """The visitor messages of the tenant's conversations of the last ``days`` days that an
    assistant reply answered, newest first, each once, at most ``limit``."""
    since = datetime.now(UTC) - timedelta(days=days)
    async with deps.pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT q.text FROM messages q JOIN conversations c ON c.id = q.conversation_id"
            " WHERE c.tenant_id = %s AND q.role = 'visitor' AND q.created_at >= %s"
            " AND EXISTS (SELECT 1 FROM messages r WHERE r.conversation_id = q.conversation_id"
            " AND r.role = 'assistant' AND r.reply_to = q.seq)"
            " ORDER BY q.created_at DESC LIMIT %s", (tenant_id, since, limit * 4))
        rows = await cur.fetchall()
    return _unique((r["text"] for r in rows), limit)


def file_questions(lines: Iterable[str], *, limit: int) -> list[str]:
    """Questions of a JSONL set: a line ``{"question": ...}``, a message ``{"role":
    "visitor", "text": ...}``, or a conversation ``{"messages": [...]}`` as the transcript
    export writes it (its visitor messages)."""
    found: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        if not isinstance(item, dict):
            continue
        found.extend(_questions_of(item))
    return _unique(found, limit)


def _questions_of(item: dict[str, Any]) -> list[str]:
    if isinstance(item.get("question"), str):
        return [item["question"]]
    if item.get("role") == "visitor" and isinstance(item.get("text"), str):
        return [item["text"]]
    messages = item.get("messages")
    if isinstance(messages, list):
        return [q for m in messages if isinstance(m, dict) for q in _questions_of(m)]
    return []


def _unique(texts: Iterable[str], limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for text in texts:
        question = text.strip()[:QUESTION_MAX]
        if question and question not in seen:
            seen[question] = None
            if len(seen) >= limit:
                break
    return list(seen)
