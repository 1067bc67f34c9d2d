"""What the tenant stores share: one row or all rows of a query, database failures mapped to
:class:`~kefu_core.infra.errors.StoreError` and a unique-key violation to
:class:`~kefu_core.infra.errors.Conflict`."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from kefu_core.infra.db import fetch_rows
from kefu_core.infra.errors import Conflict, StoreError

__all__ = ["Rows"]

Params = tuple[Any, ...] | list[Any]


class Rows:
    """Queries on the pool, as dictionaries."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def one(self, sql: str, params: Params) -> dict[str, Any] | None:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
                return await cur.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("already exists") from exc
        except psycopg.Error as exc:
            raise StoreError("tenant store failed") from exc

    async def all(self, sql: str, params: Params) -> list[dict[str, Any]]:
        return await fetch_rows(self.pool, sql, params, failure="tenant store failed")
