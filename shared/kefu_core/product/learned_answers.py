"""The review list of answers learned from human agents (migration 010).

When an agent resolves a handed-off conversation, :mod:`kefu_core.flows.learn` proposes a
question/answer pair from it (PII redacted) as a ``pending`` row. An admin edits, approves
(the pair becomes a curated answer or a knowledge-base entry; the row names which) or rejects
it. A pending row is never shown to a visitor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.infra.db import fetch_rows

__all__ = ["MAX_PENDING", "LearnedAnswer", "LearnedAnswerStore", "Method", "Status", "Target"]

MAX_PENDING = 1000  # pending proposals a tenant may have; later ones are not made

Method = Literal["engine", "extractive"]
Status = Literal["pending", "approved", "rejected"]
Target = Literal["curated", "knowledge"]

_COLS = ("id, tenant_id, conversation_id::text AS conversation_id, agent_id, question, answer,"
         " method, status, target, target_ref, edited, created_at, reviewed_by, reviewed_at")


class LearnedAnswer(BaseModel):
    id: int
    tenant_id: str
    conversation_id: str
    agent_id: str | None
    question: str
    answer: str
    method: Method
    status: Status
    target: Target | None
    target_ref: str | None
    edited: bool
    created_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None


class LearnedAnswerStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return await fetch_rows(self._pool, sql, params, failure="learned answer store failed")

    async def propose(self, *, tenant_id: str, conversation_id: str, agent_id: str | None,
                      question: str, answer: str, method: Method) -> LearnedAnswer | None:
        """Add a pending proposal; None when the conversation already has one (a retried
        invocation) or the tenant has :data:`MAX_PENDING` pending proposals."""
        rows = await self._rows(
            "INSERT INTO learned_answers (tenant_id, conversation_id, agent_id, question,"
            " answer, method) SELECT %s, %s, %s, %s, %s, %s WHERE (SELECT count(*) FROM"
            " learned_answers WHERE tenant_id = %s AND status = 'pending') < %s"
            f" ON CONFLICT (conversation_id) DO NOTHING RETURNING {_COLS}",
            (tenant_id, conversation_id, agent_id, question, answer, method, tenant_id,
             MAX_PENDING))
        return LearnedAnswer.model_validate(rows[0]) if rows else None

    async def list(self, *, tenant_id: str, status: Status, limit: int,
                   before: int | None = None) -> list[LearnedAnswer]:
        """The tenant's proposals of ``status``, newest first (ids below ``before``)."""
        rows = await self._rows(
            f"SELECT {_COLS} FROM learned_answers WHERE tenant_id = %s AND status = %s"
            " AND id < %s ORDER BY id DESC LIMIT %s",
            (tenant_id, status, before or 2**62, limit))
        return [LearnedAnswer.model_validate(r) for r in rows]

    async def get(self, *, tenant_id: str, learned_id: int) -> LearnedAnswer | None:
        rows = await self._rows(f"SELECT {_COLS} FROM learned_answers WHERE tenant_id = %s"
                                " AND id = %s", (tenant_id, learned_id))
        return LearnedAnswer.model_validate(rows[0]) if rows else None

    async def edit(self, *, tenant_id: str, learned_id: int, question: str | None,
                   answer: str | None) -> LearnedAnswer | None:
        """Change a pending proposal's texts; None when the tenant has no such pending one."""
        rows = await self._rows(
            "UPDATE learned_answers SET question = coalesce(%s, question),"
            " answer = coalesce(%s, answer), edited = true"
            f" WHERE tenant_id = %s AND id = %s AND status = 'pending' RETURNING {_COLS}",
            (question, answer, tenant_id, learned_id))
        return LearnedAnswer.model_validate(rows[0]) if rows else None

    async def review(self, *, tenant_id: str, learned_id: int, status: Status,
                     by: str) -> LearnedAnswer | None:
        """Take a pending proposal out of the list (``approved`` or ``rejected``); None when
        the tenant has no such pending proposal (another admin reviewed it first)."""
        rows = await self._rows(
            "UPDATE learned_answers SET status = %s, reviewed_by = %s, reviewed_at = now()"
            f" WHERE tenant_id = %s AND id = %s AND status = 'pending' RETURNING {_COLS}",
            (status, by, tenant_id, learned_id))
        return LearnedAnswer.model_validate(rows[0]) if rows else None

    async def applied(self, *, tenant_id: str, learned_id: int, target: Target,
                      target_ref: str) -> None:
        """Record what an approved proposal became."""
        await self._rows(
            "UPDATE learned_answers SET target = %s, target_ref = %s WHERE tenant_id = %s"
            " AND id = %s RETURNING id", (target, target_ref, tenant_id, learned_id))

    async def reopen(self, *, tenant_id: str, learned_id: int) -> None:
        """Put an approval that could not be applied back into the list."""
        await self._rows(
            "UPDATE learned_answers SET status = 'pending', reviewed_by = NULL,"
            " reviewed_at = NULL WHERE tenant_id = %s AND id = %s RETURNING id",
            (tenant_id, learned_id))
