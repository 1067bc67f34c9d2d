"""PostgreSQL access: the async pool and the core schema migrations.

Migrations are plain SQL files in ``kefu_core/infra/migrations`` applied in order under an advisory
lock, recorded in ``kefu_core_migrations``; applying them twice changes nothing.
"""

from __future__ import annotations

import logging
import time
import weakref
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from kefu_core.infra.errors import StoreError

__all__ = ["fetch_rows", "migrate", "open_pool"]

logger = logging.getLogger("kefu.db")
_LOCK_ID = 0x6B656675  # "kefu"


# A connection given back to the pool this recently worked then: it is lent again without the
# check's round trip (under load every message takes several connections from the pool, and a
# ping each time was as many round trips as the work itself). An idle one is checked, so a
# database restart while Kefu is quiet costs no request; one in the middle of traffic costs at
# most the requests already on the connections it broke (they fail with StoreError and the
# client resends).
FRESH_S = 2.0
_returned: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
    weakref.WeakKeyDictionary()
)


async def check_if_idle(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check: ping a connection unless it was returned less than FRESH_S ago."""
    returned = _returned.get(conn)
    if returned is not None and time.monotonic() - returned < FRESH_S and not conn.broken:
        return
    await AsyncConnectionPool.check_connection(conn)


async def _mark_returned(conn: psycopg.AsyncConnection[Any]) -> None:
    _returned[conn] = time.monotonic()


async def open_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, timeout_s: float = 3.0
) -> AsyncConnectionPool:
    """``timeout_s`` bounds the wait for a free connection: a request then fails fast (and the
    client is told to retry) instead of hanging through a database outage."""
    pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        kwargs={"autocommit": True},
        check=check_if_idle,
        reset=_mark_returned,
        reconnect_timeout=30,
    )
    try:
        await pool.open(wait=True, timeout=15)
    except psycopg.Error as exc:
        raise StoreError("cannot open the database pool") from exc
    return pool


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("kefu_core.infra") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return files


async def migrate(pool: AsyncConnectionPool) -> list[str]:
    """Apply pending core migrations; return the names applied now."""
    applied_now: list[str] = []
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS kefu_core_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT name FROM kefu_core_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for name, sql in _migration_files():
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO kefu_core_migrations (name) VALUES (%s)", (name,)
                    )
                applied_now.append(name)
                logger.info("applied migration %s", name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


async def fetch_rows(pool: AsyncConnectionPool, sql: str,
                     params: tuple[Any, ...] | list[Any], *, failure: str) -> list[dict[str, Any]]:
    """The rows of one statement as dicts (none for a statement that returns no rows); a
    database failure becomes :class:`StoreError` with ``failure`` as its message (the
    database's own text, which may quote values, never reaches a client)."""
    try:
        async with pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
            return await cur.fetchall() if cur.description else []
    except psycopg.Error as exc:
        raise StoreError(failure) from exc
