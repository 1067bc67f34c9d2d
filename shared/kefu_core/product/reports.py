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
- Resolution (docs/console.md, "Resolution figures"): a conversation is **bot-resolved** when
  the assistant completed a reply that had something to answer from, nobody was asked for,
  no reply was rated 👎, and the same visitor did not start another conversation within 7
  days of its last activity (so the last 7 days' figure is provisional: it can still drop).
  Per reply: the curated-answer hit rate (replies a curated answer gave) and the
  grounded-answer rate (replies the grounding check passed, of those it checked). Each per day
  and per knowledge-base version (a reply's version; a conversation's is its last reply's).
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

__all__ = ["Day", "Durations", "KbVersion", "ReplyFigures", "Report", "ReportStore"]


class ReplyFigures(BaseModel):
    """The assistant's complete replies: how many, how many a curated answer gave, how many
    the grounding check looked at and passed, how many were rated 👎."""

    bot_replies: int = 0
    curated_hits: int = 0
    grounding_checked: int = 0
    grounded: int = 0
    thumbs_down: int = 0


class Day(ReplyFigures):
    day: date
    conversations: int
    handed_off: int
    deflected: int
    ratings: int
    csat_average: float | None
    bot_resolved: int = 0


class KbVersion(ReplyFigures):
    kb_version: str
    conversations: int = 0
    handed_off: int = 0
    bot_resolved: int = 0
    bot_resolved_rate: float | None = None
    curated_hit_rate: float | None = None
    grounded_rate: float | None = None


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
    bot_resolved: int = 0
    bot_resolved_rate: float | None = None
    curated_hit_rate: float | None = None
    grounded_rate: float | None = None
    thumbs_down: int = 0
    kb_versions: list[KbVersion] = []


# One row per conversation created in the period: handed off? deflected? first queued time.
_CONVERSATIONS = """
WITH c AS (
  SELECT c.id, c.created_at, c.closed_at,
         (c.created_at AT TIME ZONE %(tz)s)::date AS day,
         (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = c.id
            AND m.role = 'system' AND m.meta->>'event' = 'queued') AS queued_at,
         EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id
            AND m.role = 'assistant' AND m.status = 'complete'
            AND coalesce(m.meta->>'answered', 'true') <> 'false') AS bot_answered,
         EXISTS (SELECT 1 FROM reply_feedback f WHERE f.conversation_id = c.id
            AND f.rating = 'down') AS rated_down,
         EXISTS (SELECT 1 FROM conversations o WHERE o.tenant_id = c.tenant_id
            AND o.visitor_id = c.visitor_id AND o.id <> c.id AND o.created_at > c.created_at
            AND o.created_at <= coalesce(c.closed_at, c.updated_at) + interval '7 days')
            AS reopened,
         coalesce((SELECT m.meta->>'kb_version' FROM messages m WHERE m.conversation_id = c.id
            AND m.role = 'assistant' ORDER BY m.seq DESC LIMIT 1), '0') AS kb_version
  FROM conversations c
  WHERE c.tenant_id = %(tenant)s AND c.created_at >= %(since)s AND c.created_at < %(until)s
)
"""
_RESOLVED = "queued_at IS NULL AND bot_answered AND NOT rated_down AND NOT reopened"

# The assistant's complete replies in the period, per day and knowledge-base version.
_REPLIES = """
SELECT (m.created_at AT TIME ZONE %(tz)s)::date AS day,
       coalesce(m.meta->>'kb_version', '0') AS kb_version, count(*) AS bot_replies,
       count(*) FILTER (WHERE m.meta ? 'curated') AS curated_hits,
       count(*) FILTER (WHERE m.meta ? 'grounding') AS grounding_checked,
       count(*) FILTER (WHERE m.meta ? 'grounding'
                          AND m.meta #> '{grounding,unsupported}' = '[]'::jsonb) AS grounded,
       count(f.seq) FILTER (WHERE f.rating = 'down') AS thumbs_down
FROM messages m JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN reply_feedback f ON f.conversation_id = m.conversation_id AND f.seq = m.seq
WHERE c.tenant_id = %(tenant)s AND m.role = 'assistant' AND m.status = 'complete'
  AND m.created_at >= %(since)s AND m.created_at < %(until)s
GROUP BY 1, 2
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
                           count(*) FILTER (WHERE queued_at IS NULL AND bot_answered) AS deflected,
                           count(*) FILTER (WHERE """ + _RESOLVED + """) AS bot_resolved
                    FROM c GROUP BY day ORDER BY day""", params)
                versions = await self._rows(conn, _CONVERSATIONS + """
                    SELECT kb_version, count(*) AS conversations,
                           count(*) FILTER (WHERE queued_at IS NOT NULL) AS handed_off,
                           count(*) FILTER (WHERE """ + _RESOLVED + """) AS bot_resolved
                    FROM c GROUP BY kb_version""", params)
                replies = await self._rows(conn, _REPLIES, params)
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
        report = _assemble(since, until, time_zone, days, durations[0], reasons, csat,
                           comments, unanswered)
        return with_resolution(report, days, versions, replies)


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


def with_resolution(report: Report, days: list[dict[str, Any]], versions: list[dict[str, Any]],
                    replies: list[dict[str, Any]]) -> Report:
    """``report`` with the resolution figures, per day and per knowledge-base version."""
    resolved = {d["day"]: int(d["bot_resolved"]) for d in days}
    per_day: dict[date, ReplyFigures] = {}
    per_version: dict[str, KbVersion] = {
        v["kb_version"]: KbVersion(kb_version=v["kb_version"],
                                   conversations=int(v["conversations"]),
                                   handed_off=int(v["handed_off"]),
                                   bot_resolved=int(v["bot_resolved"])) for v in versions}
    for row in replies:
        for figures in (per_day.setdefault(row["day"], ReplyFigures()),
                        per_version.setdefault(row["kb_version"],
                                               KbVersion(kb_version=row["kb_version"]))):
            for name in ReplyFigures.model_fields:
                setattr(figures, name, getattr(figures, name) + int(row[name]))
    day_rows = [d.model_copy(update={"bot_resolved": resolved.get(d.day, 0),
                                     **per_day.get(d.day, ReplyFigures()).model_dump()})
                for d in report.days]
    known = {d.day for d in day_rows}
    day_rows += [Day(day=day, conversations=0, handed_off=0, deflected=0, ratings=0,
                     csat_average=None, **figures.model_dump())
                 for day, figures in per_day.items() if day not in known]
    for version in per_version.values():
        _rates(version, version.conversations)
    total = ReplyFigures(**{name: sum(getattr(d, name) for d in day_rows)
                            for name in ReplyFigures.model_fields})
    bot_resolved = sum(d.bot_resolved for d in day_rows)
    return report.model_copy(update={
        "days": sorted(day_rows, key=lambda d: d.day), "bot_resolved": bot_resolved,
        "bot_resolved_rate": _rate(bot_resolved, report.conversations),
        "curated_hit_rate": _rate(total.curated_hits, total.bot_replies),
        "grounded_rate": _rate(total.grounded, total.grounding_checked),
        "thumbs_down": total.thumbs_down,
        "kb_versions": sorted(per_version.values(),
                              key=lambda v: (len(v.kb_version), v.kb_version))})


def _rates(version: KbVersion, conversations: int) -> None:
    version.bot_resolved_rate = _rate(version.bot_resolved, conversations)
    version.curated_hit_rate = _rate(version.curated_hits, version.bot_replies)
    version.grounded_rate = _rate(version.grounded, version.grounding_checked)
