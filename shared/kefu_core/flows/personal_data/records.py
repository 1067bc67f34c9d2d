"""A customer's rows in PostgreSQL: read for an export, deleted for an erasure.

Everything is keyed by the tenant and the customer's subject (``conversations.visitor_id``,
``offline_messages.visitor_id``; messages, notes, ratings and visitor contexts hang off the
conversations and go with them, ``ON DELETE CASCADE``). Long-term facts belong to kefu_memory
(its export/erase).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from kefu_core.infra.db import fetch_rows
from kefu_core.infra.errors import StoreError
from kefu_core.product.audit import AuditEntry

__all__ = ["CustomerRecords"]

AUDIT_LIMIT = 10_000


class CustomerRecords:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return await fetch_rows(self._pool, sql, params,
                                failure="cannot read the customer's records")

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        """One statement in its own short transaction; the rows it touched."""
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql, params)
                return int(cur.rowcount)
        except psycopg.Error as exc:
            raise StoreError("cannot delete the customer's records") from exc

    # -- read ------------------------------------------------------------------------------
    async def conversations(self, *, tenant_id: str, subject: str,
                            limit: int) -> list[dict[str, Any]]:
        return await self._rows(  # with where the visitor was (product.visitor_context)
            "SELECT c.id::text AS id, c.status, c.owner, c.assigned_agent, c.handoff_reason,"
            " c.created_at, c.updated_at, c.closed_at, v.context AS visitor_context"
            " FROM conversations c LEFT JOIN visitor_contexts v ON v.conversation_id = c.id"
            " WHERE c.tenant_id = %s AND c.visitor_id = %s"
            " ORDER BY c.created_at, c.id LIMIT %s", (tenant_id, subject, limit))

    async def conversation_ids(self, *, tenant_id: str, subject: str) -> list[str]:
        rows = await self._rows(
            "SELECT id::text AS id FROM conversations WHERE tenant_id = %s AND visitor_id = %s",
            (tenant_id, subject))
        return [str(r["id"]) for r in rows]

    async def message_count(self, ids: list[str]) -> int:
        rows = await self._rows("SELECT count(*) AS n FROM messages"
                                " WHERE conversation_id = ANY(%s::uuid[])", (ids,))
        return int(rows[0]["n"]) if rows else 0

    async def text_bytes(self, *, tenant_id: str, subject: str, ids: list[str]) -> int:
        """How many bytes of text the customer's messages, notes and offline messages hold."""
        rows = await self._rows(
            "SELECT (SELECT coalesce(sum(octet_length(text)), 0) FROM messages"
            "  WHERE conversation_id = ANY(%s::uuid[]))"
            " + (SELECT coalesce(sum(octet_length(text)), 0) FROM conversation_notes"
            "  WHERE conversation_id = ANY(%s::uuid[]))"
            " + (SELECT coalesce(sum(octet_length(text) + octet_length(contact)), 0)"
            "  FROM offline_messages WHERE tenant_id = %s AND visitor_id = %s) AS n",
            (ids, ids, tenant_id, subject))
        return int(rows[0]["n"]) if rows else 0

    async def messages(self, ids: list[str]) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT conversation_id::text AS conversation_id, seq, role, author, text, status,"
            " meta ->> 'event' AS event, meta ->> 'agent_name' AS agent_name,"
            " meta -> 'image' AS image, created_at"
            " FROM messages WHERE conversation_id = ANY(%s::uuid[])"
            " ORDER BY conversation_id, seq", (ids,))

    async def texts(self, ids: list[str], *, visitor_limit: int) -> tuple[set[str], set[str]]:
        """The assistant's replies in the conversations, and the customer's most recent
        ``visitor_limit`` messages (to find cached copies of either)."""
        replies = await self._rows(
            "SELECT DISTINCT text FROM messages WHERE conversation_id = ANY(%s::uuid[])"
            " AND role = 'assistant' AND text <> ''", (ids,))
        written = await self._rows(
            "SELECT text FROM messages WHERE conversation_id = ANY(%s::uuid[])"
            " AND role = 'visitor' AND text <> '' ORDER BY created_at DESC LIMIT %s",
            (ids, visitor_limit))
        return {str(r["text"]) for r in replies}, {str(r["text"]) for r in written}

    async def notes(self, ids: list[str]) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT id, conversation_id::text AS conversation_id, agent_id, agent_name, text,"
            " created_at FROM conversation_notes WHERE conversation_id = ANY(%s::uuid[])"
            " ORDER BY id", (ids,))

    async def ratings(self, ids: list[str]) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT conversation_id::text AS conversation_id, score, comment, agent_id,"
            " created_at FROM csat WHERE conversation_id = ANY(%s::uuid[])"
            " ORDER BY created_at", (ids,))

    async def reply_feedback(self, ids: list[str]) -> list[dict[str, Any]]:
        """The customer's 👍/👎 on bot replies (what the reply was made from is left out)."""
        return await self._rows(
            "SELECT conversation_id::text AS conversation_id, seq, rating, reason, updated_at"
            " FROM reply_feedback WHERE conversation_id = ANY(%s::uuid[])"
            " ORDER BY conversation_id, seq", (ids,))

    async def learned_answers(self, ids: list[str]) -> list[dict[str, Any]]:
        """Pairs proposed from these conversations for the admins' review (PII redacted)."""
        return await self._rows(
            "SELECT conversation_id::text AS conversation_id, question, answer, status,"
            " created_at FROM learned_answers WHERE conversation_id = ANY(%s::uuid[])", (ids,))

    async def offline_messages(self, *, tenant_id: str, subject: str,
                               ids: list[str]) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT id, conversation_id::text AS conversation_id, name, contact, text,"
            " created_at FROM offline_messages WHERE tenant_id = %s"
            " AND (visitor_id = %s OR conversation_id = ANY(%s::uuid[])) ORDER BY id",
            (tenant_id, subject, ids))

    async def audit_entries(self, *, tenant_id: str, subject: str, conversation_ids: list[str],
                            offline_ids: list[str]) -> list[AuditEntry]:
        """Entries whose actor or target is the customer, one of their conversations or one
        of their offline messages (newest first, at most AUDIT_LIMIT)."""
        rows = await self._rows(
            "SELECT id, tenant_id, at, actor_type, actor_id, action, target_type, target_id,"
            " detail FROM audit_log WHERE tenant_id = %s AND (actor_id = %s"
            " OR (target_type = 'customer' AND target_id = %s)"
            " OR (target_type = 'conversation' AND target_id = ANY(%s))"
            " OR (target_type = 'offline_message' AND target_id = ANY(%s)))"
            " ORDER BY id DESC LIMIT %s",
            (tenant_id, subject, subject, conversation_ids, offline_ids, AUDIT_LIMIT))
        return [AuditEntry.model_validate(r) for r in rows]

    # -- delete ----------------------------------------------------------------------------
    async def delete_offline_messages(self, *, tenant_id: str, subject: str,
                                      ids: list[str]) -> int:
        return await self._execute(
            "DELETE FROM offline_messages WHERE tenant_id = %s"
            " AND (visitor_id = %s OR conversation_id = ANY(%s::uuid[]))",
            (tenant_id, subject, ids))

    async def delete_conversations(self, *, tenant_id: str, ids: list[str],
                                   batch: int) -> int:
        """Delete the conversations (their messages, notes and rating cascade), ``batch`` at a
        time, each batch its own transaction."""
        deleted = 0
        for start in range(0, len(ids), batch):
            deleted += await self._execute(
                "DELETE FROM conversations WHERE tenant_id = %s AND id = ANY(%s::uuid[])",
                (tenant_id, ids[start:start + batch]))
        return deleted
