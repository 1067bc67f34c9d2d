"""Customer-service records around a conversation: private notes, satisfaction ratings
(CSAT 1-5 with a comment), offline messages left when no agent is online, and CSAT figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.infra.db import fetch_rows
from kefu_core.infra.errors import StoreError

__all__ = ["CsatFigures", "Note", "OfflineMessage", "Rating", "ServiceStore"]


class Note(BaseModel):
    id: int
    conversation_id: str
    agent_id: str
    agent_name: str | None
    text: str
    created_at: datetime


class Rating(BaseModel):
    conversation_id: str
    score: int
    comment: str
    agent_id: str | None
    created_at: datetime


class OfflineMessage(BaseModel):
    id: int
    visitor_id: str
    conversation_id: str | None
    name: str
    contact: str
    text: str
    created_at: datetime


class CsatFigures(BaseModel):
    count: int
    average: float | None
    distribution: dict[str, int]
    by_agent: list[dict[str, Any]]


class ServiceStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _rows(self, sql: str, params: list[Any] | tuple[Any, ...]) -> list[dict[str, Any]]:
        return await fetch_rows(self._pool, sql, params, failure="service store failed")

    async def add_note(
        self, *, tenant_id: str, conversation_id: str, agent_id: str, agent_name: str | None,
        text: str,
    ) -> Note:
        rows = await self._rows(
            "INSERT INTO conversation_notes (tenant_id, conversation_id, agent_id, agent_name,"
            " text) SELECT %s, c.id, %s, %s, %s FROM conversations c WHERE c.id = %s"
            " AND c.tenant_id = %s RETURNING id, conversation_id::text AS conversation_id,"
            " agent_id, agent_name, text, created_at",
            (tenant_id, agent_id, agent_name, text, conversation_id, tenant_id),
        )
        if not rows:
            raise StoreError("conversation not found")
        return Note.model_validate(rows[0])

    async def notes(self, *, tenant_id: str, conversation_id: str) -> list[Note]:
        rows = await self._rows(
            "SELECT id, conversation_id::text AS conversation_id, agent_id, agent_name, text,"
            " created_at FROM conversation_notes WHERE tenant_id = %s AND conversation_id = %s"
            " ORDER BY id", (tenant_id, conversation_id))
        return [Note.model_validate(r) for r in rows]

    async def rate(
        self, *, tenant_id: str, conversation_id: str, score: int, comment: str,
        agent_id: str | None,
    ) -> Rating:
        """One rating per conversation; rating again replaces it."""
        rows = await self._rows(
            "INSERT INTO csat (conversation_id, tenant_id, score, comment, agent_id)"
            " SELECT c.id, c.tenant_id, %s, %s, %s FROM conversations c WHERE c.id = %s"
            " AND c.tenant_id = %s ON CONFLICT (conversation_id) DO UPDATE SET"
            " score = EXCLUDED.score, comment = EXCLUDED.comment, created_at = now()"
            " RETURNING conversation_id::text AS conversation_id, score, comment, agent_id,"
            " created_at",
            (score, comment, agent_id, conversation_id, tenant_id),
        )
        if not rows:
            raise StoreError("conversation not found")
        return Rating.model_validate(rows[0])

    async def rating(self, *, tenant_id: str, conversation_id: str) -> Rating | None:
        rows = await self._rows(
            "SELECT conversation_id::text AS conversation_id, score, comment, agent_id,"
            " created_at FROM csat WHERE tenant_id = %s AND conversation_id = %s",
            (tenant_id, conversation_id))
        return Rating.model_validate(rows[0]) if rows else None

    async def figures(
        self, *, tenant_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> CsatFigures:
        where, params = "tenant_id = %s", [tenant_id]
        if since:
            where += " AND created_at >= %s"
            params.append(since)  # type: ignore[arg-type]
        if until:
            where += " AND created_at < %s"
            params.append(until)  # type: ignore[arg-type]
        rows = await self._rows(
            f"SELECT score, count(*) AS n FROM csat WHERE {where} GROUP BY score", params)
        agents = await self._rows(
            f"SELECT agent_id, count(*) AS count, round(avg(score)::numeric, 2)::float AS average"
            f" FROM csat WHERE {where} AND agent_id IS NOT NULL GROUP BY agent_id"
            f" ORDER BY agent_id", params)
        distribution = {str(s): 0 for s in range(1, 6)}
        for row in rows:
            distribution[str(row["score"])] = int(row["n"])
        count = sum(distribution.values())
        average = (round(sum(int(k) * v for k, v in distribution.items()) / count, 2)
                   if count else None)
        return CsatFigures(count=count, average=average, distribution=distribution,
                           by_agent=agents)

    async def leave_offline_message(
        self, *, tenant_id: str, visitor_id: str, conversation_id: str | None, name: str,
        contact: str, text: str,
    ) -> OfflineMessage:
        rows = await self._rows(
            "INSERT INTO offline_messages (tenant_id, visitor_id, conversation_id, name,"
            " contact, text) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id, visitor_id,"
            " conversation_id::text AS conversation_id, name, contact, text, created_at",
            (tenant_id, visitor_id, conversation_id, name, contact, text))
        return OfflineMessage.model_validate(rows[0])

    async def offline_messages(self, *, tenant_id: str, limit: int = 100) -> list[OfflineMessage]:
        rows = await self._rows(
            "SELECT id, visitor_id, conversation_id::text AS conversation_id, name, contact,"
            " text, created_at FROM offline_messages WHERE tenant_id = %s ORDER BY id DESC"
            " LIMIT %s", (tenant_id, max(1, min(limit, 1000))))
        return [OfflineMessage.model_validate(r) for r in rows]
