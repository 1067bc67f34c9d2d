"""Curated answers: a tenant's questions with their approved answers (migration 007).

Every change writes a new version (``curated_answer_versions``, never changed or deleted): a
deletion is a version with ``active = false``, so the answer a visitor got (a reply's meta
names the id and version) can always be read back. Matching a visitor's question against them
is :mod:`kefu_core.answers.curated`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.infra.db import fetch_rows
from kefu_core.infra.errors import StoreError

__all__ = ["MAX_PER_TENANT", "CuratedAnswer", "CuratedAnswerStore", "CuratedVersion"]

MAX_PER_TENANT = 5000  # active answers a tenant may keep (each is compared with every question)

_COLS = ("id, tenant_id, question, answer, version, active, created_by, created_at,"
         " updated_by, updated_at")


class CuratedAnswer(BaseModel):
    id: int
    tenant_id: str
    question: str
    answer: str
    version: int
    active: bool
    created_by: str | None
    created_at: datetime
    updated_by: str | None
    updated_at: datetime


class CuratedVersion(BaseModel):
    version: int
    question: str
    answer: str
    active: bool
    changed_by: str | None
    changed_at: datetime


class CuratedAnswerStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return await fetch_rows(self._pool, sql, params, failure="curated answer store failed")

    async def active(self, tenant_id: str) -> list[CuratedAnswer]:
        """The tenant's current answers, newest first."""
        rows = await self._rows(
            f"SELECT {_COLS} FROM curated_answers WHERE tenant_id = %s AND active"
            " ORDER BY id DESC LIMIT %s", (tenant_id, MAX_PER_TENANT))
        return [CuratedAnswer.model_validate(r) for r in rows]

    async def get(self, *, tenant_id: str, answer_id: int) -> CuratedAnswer | None:
        rows = await self._rows(f"SELECT {_COLS} FROM curated_answers WHERE tenant_id = %s"
                                " AND id = %s AND active", (tenant_id, answer_id))
        return CuratedAnswer.model_validate(rows[0]) if rows else None

    async def count(self, tenant_id: str) -> int:
        rows = await self._rows("SELECT count(*) AS n FROM curated_answers WHERE tenant_id = %s"
                                " AND active", (tenant_id,))
        return int(rows[0]["n"])

    async def create(self, *, tenant_id: str, question: str, answer: str,
                     by: str) -> CuratedAnswer:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "INSERT INTO curated_answers (tenant_id, question, answer, created_by,"
                    f" updated_by) VALUES (%s, %s, %s, %s, %s) RETURNING {_COLS}",
                    (tenant_id, question, answer, by, by))
                row = await cur.fetchone()
                assert row is not None
                await _version(conn, row, by)
        except psycopg.Error as exc:
            raise StoreError("cannot save the curated answer") from exc
        return CuratedAnswer.model_validate(row)

    async def update(self, *, tenant_id: str, answer_id: int, question: str | None,
                     answer: str | None, active: bool = True, by: str) -> CuratedAnswer | None:
        """A new version of an active answer (``active=False``: deleted); None when the tenant
        has no such active answer."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "UPDATE curated_answers SET question = coalesce(%s, question),"
                    " answer = coalesce(%s, answer), active = %s, version = version + 1,"
                    " updated_by = %s, updated_at = now()"
                    f" WHERE tenant_id = %s AND id = %s AND active RETURNING {_COLS}",
                    (question, answer, active, by, tenant_id, answer_id))
                row = await cur.fetchone()
                if row is None:
                    return None
                await _version(conn, row, by)
        except psycopg.Error as exc:
            raise StoreError("cannot save the curated answer") from exc
        return CuratedAnswer.model_validate(row)

    async def versions(self, *, tenant_id: str, answer_id: int) -> list[CuratedVersion]:
        """Every version of the tenant's answer ``answer_id`` (a deleted one too), oldest
        first; empty when the tenant has no such answer."""
        rows = await self._rows(
            "SELECT v.version, v.question, v.answer, v.active, v.changed_by, v.changed_at"
            " FROM curated_answer_versions v JOIN curated_answers a ON a.id = v.answer_id"
            " WHERE a.tenant_id = %s AND a.id = %s ORDER BY v.version", (tenant_id, answer_id))
        return [CuratedVersion.model_validate(r) for r in rows]


async def _version(conn: psycopg.AsyncConnection[Any], row: dict[str, Any], by: str) -> None:
    await conn.execute(
        "INSERT INTO curated_answer_versions (answer_id, version, question, answer, active,"
        " changed_by) VALUES (%s, %s, %s, %s, %s, %s)",
        (row["id"], row["version"], row["question"], row["answer"], row["active"], by))
