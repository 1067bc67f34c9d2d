"""What the bot could not answer well, read from what is stored anyway: the raw items of the
missing-knowledge queue (clustered by :mod:`kefu_core.answers.missing_knowledge`).

Four kinds, each with the visitor question it is about:

- ``refused``: a reply that had nothing to answer from (the reply's ``answered: false``);
- ``unsupported``: a reply the grounding check found unsupported (marked, or replaced by a
  refusal: ``meta.grounding.unsupported`` not empty);
- ``down``: a reply the visitor rated 👎 (with the visitor's reason);
- ``handoff``: a conversation queued for a human because the bot failed (handoff reason
  ``failures`` or ``ungrounded``), with the visitor's last message before it.

Bound to one tenant; the texts go to the caller only, never to a log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.infra.errors import StoreError

__all__ = ["BOT_FAILURE_REASONS", "LearningQueueStore", "QueueItem"]

BOT_FAILURE_REASONS = ("failures", "ungrounded")
Kind = Literal["refused", "unsupported", "down", "handoff"]

_ITEMS = """
SELECT * FROM (
  SELECT CASE WHEN coalesce(a.meta #> '{grounding,unsupported}', '[]'::jsonb) <> '[]'::jsonb
              THEN 'unsupported' ELSE 'refused' END AS kind,
         a.conversation_id::text AS conversation_id, a.seq, v.text AS question,
         left(a.text, 300) AS reply, '' AS detail, a.created_at AS at
  FROM messages a
  JOIN conversations c ON c.id = a.conversation_id
  JOIN messages v ON v.conversation_id = a.conversation_id AND v.seq = a.reply_to
                 AND v.role = 'visitor'
  WHERE c.tenant_id = %(tenant)s AND a.role = 'assistant' AND a.created_at >= %(since)s
    AND (a.meta->>'answered' = 'false'
         OR coalesce(a.meta #> '{grounding,unsupported}', '[]'::jsonb) <> '[]'::jsonb)
  UNION ALL
  SELECT 'down', a.conversation_id::text, a.seq, v.text, left(a.text, 300), f.reason,
         f.updated_at
  FROM reply_feedback f
  JOIN messages a ON a.conversation_id = f.conversation_id AND a.seq = f.seq
  JOIN messages v ON v.conversation_id = a.conversation_id AND v.seq = a.reply_to
                 AND v.role = 'visitor'
  WHERE f.tenant_id = %(tenant)s AND f.rating = 'down' AND f.updated_at >= %(since)s
  UNION ALL
  SELECT 'handoff', s.conversation_id::text, s.seq, v.text, '', s.meta->>'reason',
         s.created_at
  FROM messages s
  JOIN conversations c ON c.id = s.conversation_id
  JOIN LATERAL (SELECT text FROM messages v WHERE v.conversation_id = s.conversation_id
                  AND v.role = 'visitor' AND v.seq < s.seq ORDER BY v.seq DESC LIMIT 1) v
    ON true
  WHERE c.tenant_id = %(tenant)s AND s.role = 'system' AND s.meta->>'event' = 'queued'
    AND s.meta->>'reason' = ANY(%(reasons)s) AND s.created_at >= %(since)s
) items ORDER BY at DESC LIMIT %(limit)s
"""


class QueueItem(BaseModel):
    kind: Kind
    conversation_id: str
    seq: int
    question: str
    reply: str
    detail: str  # the 👎 reason, or the handoff reason
    at: datetime


class LearningQueueStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def items(self, *, tenant_id: str, since: datetime, limit: int) -> list[QueueItem]:
        """The tenant's items since ``since``, newest first, at most ``limit``."""
        params: dict[str, Any] = {"tenant": tenant_id, "since": since, "limit": limit,
                                  "reasons": list(BOT_FAILURE_REASONS)}
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(_ITEMS, params)
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("missing-knowledge query failed") from exc
        return [QueueItem.model_validate({**r, "detail": r["detail"] or ""}) for r in rows]
