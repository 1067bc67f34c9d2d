"""Which curated answer (:mod:`kefu_core.product.curated_answers`) a visitor's question asks
for, and how closely.

The score, 0 to 1, is the mean of two cosines computed with the knowledge base's own tools:
the keyword index's terms (kefu_memory ``keyword_terms``: jieba words plus CJK bigrams, stop
terms removed) and the knowledge base's embedder (when memory is enabled). A question scoring
at least the tenant's ``curated_answer_threshold`` is answered with the curated answer, without
a model call; below it, a curated answer scoring at least ``HINT_MARGIN`` less is given to
the model as the first passage, ahead of the retrieved ones.

A tenant's answers, their terms and their vectors are cached in the process for ``TTL_S`` (a
change made elsewhere is used within that time; :meth:`CuratedMatcher.changed` forgets them
at once in the process that made it).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kefu_core.product.curated_answers import CuratedAnswer, CuratedAnswerStore
from kefu_llm import Busy, Delta, Final
from kefu_memory import Embedder, keyword_terms

__all__ = ["HINT_MARGIN", "CuratedMatch", "CuratedMatcher", "curated_events", "curated_passage",
           "term_cosine"]

logger = logging.getLogger("kefu.curated")
TTL_S = 5.0
CURATED_ENGINE = "curated"  # a reply's engine when a curated answer answered
HINT_MARGIN = 0.15


@dataclass(frozen=True)
class CuratedMatch:
    answer: CuratedAnswer
    score: float


@dataclass(frozen=True)
class _Entry:
    answer: CuratedAnswer
    terms: Counter[str]
    vector: list[float] | None


def curated_passage(answer: CuratedAnswer) -> str:
    """A curated answer as a passage given to the model."""
    return f"# 已审核的回答 Approved answer\n问 Q: {answer.question}\n答 A: {answer.answer}"


async def curated_events(match: CuratedMatch, piece_chars: int = 12
                         ) -> AsyncIterator[Delta | Final | Busy]:
    """The curated answer as a reply's events: deltas (so it streams, paced like any reply),
    then a complete final from the engine ``curated``."""
    text = match.answer.answer
    for start in range(0, len(text), piece_chars):
        yield Delta(text=text[start:start + piece_chars])
    yield Final(text=text, status="complete", engine=CURATED_ENGINE)


class CuratedMatcher:
    def __init__(self, store: CuratedAnswerStore, embedder: Embedder | None = None) -> None:
        self._store = store
        self._embedder = embedder
        self._cache: dict[str, tuple[float, list[_Entry]]] = {}

    def changed(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)

    async def best(self, tenant_id: str, question: str) -> CuratedMatch | None:
        """The tenant's curated answer closest to ``question`` and its score (None when the
        tenant has none, or the question shares nothing with any)."""
        return (await self.best_of(tenant_id, [question]))[0]

    async def best_of(self, tenant_id: str, questions: list[str]) -> list[CuratedMatch | None]:
        """:meth:`best` for each question, their vectors computed in one call."""
        entries = await self._entries(tenant_id)
        if not entries:
            return [None] * len(questions)
        vectors = await self._vectors(questions)
        found: list[CuratedMatch | None] = []
        for question, vector in zip(questions, vectors, strict=True):
            terms = keyword_terms(question)
            score, entry = max(((self._score(terms, vector, e), e) for e in entries),
                               key=lambda s: s[0])
            found.append(CuratedMatch(answer=entry.answer, score=round(score, 4))
                         if score > 0 and question.strip() else None)
        return found

    async def _vectors(self, texts: list[str]) -> list[list[float] | None]:
        """The embedder's vectors of ``texts``; none when there is no embedder or it failed
        (the score is then the keyword cosine alone)."""
        if self._embedder is None or not texts:
            return [None] * len(texts)
        try:
            return [list(v) for v in await self._embedder.embed(texts)]
        except Exception:
            logger.warning("embedder failed; curated answers matched on keywords alone",
                           exc_info=True)
            return [None] * len(texts)

    def _score(self, terms: Counter[str], vector: list[float] | None, entry: _Entry) -> float:
        lexical = term_cosine(terms, entry.terms)
        if vector is None or entry.vector is None:
            return lexical
        semantic = max(sum(a * b for a, b in zip(vector, entry.vector, strict=True)), 0.0)
        return (lexical + semantic) / 2

    async def _entries(self, tenant_id: str) -> list[_Entry]:
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        answers = await self._store.active(tenant_id)
        vectors = await self._vectors([a.question for a in answers])
        entries = [_Entry(answer=a, terms=keyword_terms(a.question), vector=v)
                   for a, v in zip(answers, vectors, strict=True)]
        self._cache[tenant_id] = (time.monotonic() + TTL_S, entries)
        return entries


def term_cosine(a: Counter[str], b: Counter[str]) -> float:
    """The cosine of two term-frequency vectors."""
    dot = sum(count * b[term] for term, count in a.items() if term in b)
    if not dot:
        return 0.0
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm
