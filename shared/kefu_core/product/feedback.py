"""Feedback on bot replies: a visitor's 👍/👎 with an optional reason (migration 008).

Only the visitor of the conversation, only on a finished assistant reply, one row per reply:
sending again changes it (at most ``MAX_CHANGES`` times, so a script cannot churn the row).
The row keeps what the reply was made from (engine, passages, knowledge-base version), read
from the reply itself, never from the client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.infra.errors import BadFrame, StoreError

__all__ = ["MAX_CHANGES", "REASON_MAX", "Feedback", "FeedbackStore", "Rating"]

Rating = Literal["up", "down"]
REASON_MAX = 500
MAX_CHANGES = 10


class Feedback(BaseModel):
    conversation_id: str
    seq: int
    rating: Rating
    reason: str
    engine: str | None
    updated_at: datetime


class FeedbackStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def rate(self, *, tenant_id: str, conversation_id: str, visitor_id: str, seq: int,
                   rating: Rating, reason: str) -> Feedback:
        """Save (or change) the visitor's feedback on reply ``seq``. :class:`BadFrame`
        ``not_found`` when ``seq`` is no finished assistant reply of this visitor's
        conversation in this tenant; ``too_many_changes`` after ``MAX_CHANGES`` changes."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "INSERT INTO reply_feedback (conversation_id, seq, tenant_id, visitor_id,"
                    " rating, reason, engine, passages, kb_version)"
                    " SELECT m.conversation_id, m.seq, c.tenant_id, c.visitor_id, %s, %s,"
                    " m.engine, coalesce(m.meta -> 'passages', '[]'::jsonb),"
                    " m.meta ->> 'kb_version'"
                    " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                    " WHERE c.tenant_id = %s AND c.id = %s AND c.visitor_id = %s AND m.seq = %s"
                    " AND m.role = 'assistant' AND m.status <> 'streaming'"
                    " ON CONFLICT (conversation_id, seq) DO UPDATE SET rating = EXCLUDED.rating,"
                    " reason = EXCLUDED.reason, changes = reply_feedback.changes + 1,"
                    " updated_at = now() WHERE reply_feedback.changes < %s"
                    " RETURNING conversation_id::text, seq, rating, reason, engine, updated_at",
                    (rating, reason, tenant_id, conversation_id, visitor_id, seq, MAX_CHANGES))
                row = await cur.fetchone()
                if row is None:
                    await _explain(conn, conversation_id, seq)
        except psycopg.Error as exc:
            raise StoreError("cannot save the feedback") from exc
        assert row is not None
        return Feedback.model_validate(row)

    async def of_conversation(self, *, tenant_id: str, conversation_id: str) -> list[Feedback]:
        """The ratings of the tenant's conversation, by seq."""
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "SELECT conversation_id::text AS conversation_id, seq, rating, reason, engine,"
                    " updated_at FROM reply_feedback WHERE tenant_id = %s"
                    " AND conversation_id = %s ORDER BY seq", (tenant_id, conversation_id))
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("cannot read the feedback") from exc
        return [Feedback.model_validate(r) for r in rows]


async def _explain(conn: psycopg.AsyncConnection[Any], conversation_id: str, seq: int) -> None:
    cur = await conn.execute("SELECT 1 FROM reply_feedback WHERE conversation_id = %s"
                             " AND seq = %s", (conversation_id, seq))
    if await cur.fetchone() is not None:
        raise BadFrame("too_many_changes", "this feedback cannot be changed again")
    raise BadFrame("not_found", "no bot reply of this conversation has that seq")
