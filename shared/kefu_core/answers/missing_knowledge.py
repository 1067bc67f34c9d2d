"""The missing-knowledge queue: the questions the bot refused, answered unsupported, was rated
👎 on, or handed off after failing (:mod:`kefu_core.product.learning_queue`), clustered by
similarity and ranked by how many conversations asked them.

Clustering is Chinese-aware and model-free: each question becomes the knowledge base's
keyword terms (kefu_memory ``keyword_terms``: jieba words and CJK bigrams, stop terms
removed, and bigrams of question particles such as "款吗"); a question joins the cluster
whose terms (summed) it is closest to, by cosine, when that is at least ``JOIN_AT``, and
starts a new cluster otherwise (newest questions first). A cluster whose question a curated
answer now answers (score at least the tenant's threshold) is left out: the loop closed on it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from kefu_core.answers.curated import CuratedMatcher, term_cosine
from kefu_core.product.learning_queue import QueueItem
from kefu_memory import keyword_terms, normalize

__all__ = ["JOIN_AT", "Cluster", "cluster_items", "open_clusters", "question_terms"]

JOIN_AT = 0.4
# Question particles and pronouns: a bigram holding one ("款吗", "票怎") says how a question is
# asked, not what about, and would join unrelated questions.
_PARTICLES = frozenset("吗呢吧么怎啥了的我你您们是什哪个")
EXAMPLES = 5
CLUSTERS_MATCHED = 300  # the top clusters compared with curated answers (one embedder call)


class Cluster(BaseModel):
    """Questions about one thing: the most frequent wording, how many conversations asked,
    by kind, when last, and a few examples (newest first)."""

    id: str
    question: str
    conversations: int
    kinds: dict[str, int]
    last_at: datetime
    examples: list[QueueItem]


@dataclass
class _Group:
    terms: Counter[str]
    items: list[QueueItem] = field(default_factory=list)


def cluster_items(items: list[QueueItem]) -> list[Cluster]:
    """Group ``items`` (newest first) and rank the groups by conversations, then recency."""
    groups: list[_Group] = []
    for item in items:
        terms = question_terms(item.question)
        best = max(groups, key=lambda g: term_cosine(terms, g.terms), default=None)
        if best is not None and terms and term_cosine(terms, best.terms) >= JOIN_AT:
            best.terms.update(terms)
            best.items.append(item)
        else:
            groups.append(_Group(terms=Counter(terms), items=[item]))
    clusters = [_cluster(g) for g in groups]
    return sorted(clusters, key=lambda c: (c.conversations, c.last_at), reverse=True)


async def open_clusters(items: list[QueueItem], *, matcher: CuratedMatcher, tenant_id: str,
                        threshold: float, top: int) -> list[Cluster]:
    """The ``top`` clusters no curated answer answers yet (clustered off the event loop)."""
    clusters = (await asyncio.to_thread(cluster_items, items))[:CLUSTERS_MATCHED]
    matches = await matcher.best_of(tenant_id, [c.question for c in clusters])
    open_ones = [c for c, m in zip(clusters, matches, strict=True)
                 if m is None or m.score < threshold]
    return open_ones[:top]


def question_terms(question: str) -> Counter[str]:
    """The keyword index's terms of a question, without bigrams of question particles."""
    return Counter({t: n for t, n in keyword_terms(question).items()
                    if not (t.startswith("b:") and set(t[2:]) & _PARTICLES)})


def _cluster(group: _Group) -> Cluster:
    wordings = Counter(normalize(i.question) for i in group.items)
    top = wordings.most_common(1)[0][0]
    question = next(i.question for i in group.items if normalize(i.question) == top)
    return Cluster(
        id=hashlib.sha256(top.encode()).hexdigest()[:16], question=question,
        conversations=len({i.conversation_id for i in group.items}),
        kinds=dict(Counter(i.kind for i in group.items)),
        last_at=max(i.at for i in group.items), examples=group.items[:EXAMPLES])
