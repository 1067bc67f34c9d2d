"""The pool pings a connection only when it sat idle: a recently used one is lent as it is,
and one whose server process died while idle is replaced before anyone uses it."""

from __future__ import annotations

import psycopg
import pytest

from kefu_core.infra import db


async def _backend_pid(pool: object) -> int:
    async with pool.connection() as conn:  # type: ignore[attr-defined]
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        return int(row[0])


async def test_a_connection_killed_while_idle_is_replaced_before_use(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a pool of one connection that was used, then sat idle (FRESH_S elapsed)
    monkeypatch.setattr(db, "FRESH_S", 0.0)
    pool = await db.open_pool(pg_dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        first = await _backend_pid(pool)
        # WHEN its server process is terminated meanwhile
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        # THEN the next request gets a working, new connection
        assert await _backend_pid(pool) != first
    finally:
        await pool.close()


async def test_a_connection_returned_just_now_is_lent_without_a_ping(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a pool of one connection used a moment ago
    monkeypatch.setattr(db, "FRESH_S", 3600.0)
    pool = await db.open_pool(pg_dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        first = await _backend_pid(pool)
        # WHEN its server process is terminated right after
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        # THEN the next request is not pinged first: it meets the dead connection and fails
        # (the client resends), and the pool replaces the connection for the one after
        with pytest.raises(psycopg.OperationalError):
            await _backend_pid(pool)
        assert await _backend_pid(pool) != first
    finally:
        await pool.close()
