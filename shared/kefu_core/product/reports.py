"""A tenant's service figures over a period, computed in PostgreSQL from what is stored anyway.

- Conversations per day (by creation, in the caller's time zone), how many a human was asked
  for (a ``queued`` system event: the visitor's button, a keyword, repeated failures, the
  model's handoff), and how many the assistant handled alone ("deflected": it completed a
  reply that had something to answer from, and nobody was asked for).
- Handoff reasons (the ``reason`` of each ``queued`` event).
- Human first response: from a conversation's first ``queued`` event to the first agent
  message after it; resolution: from that event to the conversation's closing. Average and
  median, in seconds, over the conversations that have them.
- CSAT per day (count and average) and the latest comments.
- Top unanswered questions: the visitor messages whose reply had nothing to answer from (the
  reply's ``answered: false``, recorded by the stream flow: the offline engine's refusal). A
  remote model's own "I don't know" is not detected.

Every query is bound to one tenant. Texts (questions, comments) go to the caller only, never
to a log.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.infra.errors import StoreError

__all__ = ["Day", "Durations", "Report", "ReportStore"]


class Day(BaseModel):
    day: date
    conversations: int
    handed_off: int
    deflected: int
    ratings: int
    csat_average: float | None


class Durations(BaseModel):
    count: int
    average_s: float | None
    median_s: float | None


class Report(BaseModel):
    since: datetime
    until: datetime
    time_zone: str
    conversations: int
    handed_off: int
    deflected: int
    handoff_rate: float | None
    deflection_rate: float | None
    days: list[Day]
    handoff_reasons: list[dict[str, Any]]
    first_response: Durations
    resolution: Durations
    csat_comments: list[dict[str, Any]]
    unanswered: list[dict[str, Any]]


# One row per conversation created in the period: handed off? deflected? first queued time.
_CONVERSATIONS = """
WITH c AS (
  SELECT c.id, c.created_at, c.closed_at,
         (c.created_at AT TIME ZONE %(tz)s)::date AS day,
         (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = c.id
            AND m.role = 'system' AND m.meta->>'event' = 'queued') AS queued_at,
         EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id
            AND m.role = 'assistant' AND m.status = 'complete'
            AND coalesce(m.meta->>'answered', 'true') <> 'false') AS bot_answered
  FROM conversations c
  WHERE c.tenant_id = %(tenant)s AND c.created_at >= %(since)s AND c.created_at < %(until)s
)
"""


class ReportStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _rows(self, conn: psycopg.AsyncConnection[Any], query: str,
                    params: dict[str, Any]) -> list[dict[str, Any]]:
        cur = await conn.cursor(row_factory=dict_row).execute(query, params)
        return await cur.fetchall()

    async def report(self, *, tenant_id: str, since: datetime, until: datetime,
                     time_zone: str = "UTC", top: int = 10) -> Report:
        params = {"tenant": tenant_id, "since": since, "until": until, "tz": time_zone,
                  "top": top}
        try:
            async with self._pool.connection() as conn:
                days = await self._rows(conn, _CONVERSATIONS + """
                    SELECT day, count(*) AS conversations,
                           count(*) FILTER (WHERE queued_at IS NOT NULL) AS handed_off,
                           count(*) FILTER (WHERE queued_at IS NULL AND bot_answered) AS deflected
                    FROM c GROUP BY day ORDER BY day""", params)
                durations = await self._rows(conn, _CONVERSATIONS + """
                    , d AS (
                      SELECT extract(epoch FROM (SELECT min(m.created_at) FROM messages m
                               WHERE m.conversation_id = c.id AND m.role = 'agent'
                                 AND m.created_at >= c.queued_at) - c.queued_at) AS first_s,
                             extract(epoch FROM c.closed_at - c.queued_at) AS resolved_s
                      FROM c WHERE c.queued_at IS NOT NULL)
                    SELECT count(first_s) AS first_n, avg(first_s) AS first_avg,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY first_s) AS first_median,
                           count(resolved_s) AS resolved_n, avg(resolved_s) AS resolved_avg,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY resolved_s)
                             AS resolved_median
                    FROM d""", params)
                reasons = await self._rows(conn, """
                    SELECT coalesce(m.meta->>'reason', 'unknown') AS reason, count(*) AS count
                    FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE c.tenant_id = %(tenant)s AND m.role = 'system'
                      AND m.meta->>'event' = 'queued'
                      AND m.created_at >= %(since)s AND m.created_at < %(until)s
                    GROUP BY 1 ORDER BY count DESC, reason""", params)
                csat = await self._rows(conn, """
                    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS ratings,
                           round(avg(score)::numeric, 2)::float AS average
                    FROM csat WHERE tenant_id = %(tenant)s
                      AND created_at >= %(since)s AND created_at < %(until)s
                    GROUP BY 1""", params)
                comments = await self._rows(conn, """
                    SELECT conversation_id::text AS conversation_id, score, comment, created_at
                    FROM csat WHERE tenant_id = %(tenant)s AND comment <> ''
                      AND created_at >= %(since)s AND created_at < %(until)s
                    ORDER BY created_at DESC LIMIT 20""", params)
                unanswered = await self._rows(conn, """
                    SELECT min(v.text) AS question, count(*) AS count,
                           max(a.created_at) AS last_asked
                    FROM messages a
                    JOIN conversations c ON c.id = a.conversation_id
                    JOIN messages v ON v.conversation_id = a.conversation_id
                                   AND v.seq = a.reply_to AND v.role = 'visitor'
                    WHERE c.tenant_id = %(tenant)s AND a.role = 'assistant'
                      AND a.meta->>'answered' = 'false'
                      AND a.created_at >= %(since)s AND a.created_at < %(until)s
                    GROUP BY lower(btrim(v.text)) ORDER BY count DESC, last_asked DESC
                    LIMIT %(top)s""", params)
        except psycopg.Error as exc:
            raise StoreError("report query failed") from exc
        return _assemble(since, until, time_zone, days, durations[0], reasons, csat, comments,
                         unanswered)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _assemble(since: datetime, until: datetime, time_zone: str, days: list[dict[str, Any]],
              durations: dict[str, Any], reasons: list[dict[str, Any]],
              csat: list[dict[str, Any]], comments: list[dict[str, Any]],
              unanswered: list[dict[str, Any]]) -> Report:
    by_day: dict[date, dict[str, Any]] = {d["day"]: d for d in days}
    ratings = {r["day"]: r for r in csat}
    rows = [Day(day=day, conversations=int(by_day.get(day, {}).get("conversations", 0)),
                handed_off=int(by_day.get(day, {}).get("handed_off", 0)),
                deflected=int(by_day.get(day, {}).get("deflected", 0)),
                ratings=int(ratings.get(day, {}).get("ratings", 0)),
                csat_average=ratings.get(day, {}).get("average"))
            for day in sorted(set(by_day) | set(ratings))]
    total = sum(d.conversations for d in rows)
    handed = sum(d.handed_off for d in rows)
    deflected = sum(d.deflected for d in rows)
    return Report(
        since=since, until=until, time_zone=time_zone, conversations=total, handed_off=handed,
        deflected=deflected, handoff_rate=_rate(handed, total),
        deflection_rate=_rate(deflected, total), days=rows,
        handoff_reasons=[{"reason": r["reason"], "count": int(r["count"])} for r in reasons],
        first_response=Durations(count=int(durations["first_n"]),
                                 average_s=_seconds(durations["first_avg"]),
                                 median_s=_seconds(durations["first_median"])),
        resolution=Durations(count=int(durations["resolved_n"]),
                             average_s=_seconds(durations["resolved_avg"]),
                             median_s=_seconds(durations["resolved_median"])),
        csat_comments=comments,
        unanswered=[{"question": u["question"], "count": int(u["count"]),
                     "last_asked": u["last_asked"]} for u in unanswered],
    )
