"""Connection helpers over an injected psycopg pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

__all__ = ["read_connection"]


@contextlib.asynccontextmanager
async def read_connection(
    pool: AsyncConnectionPool[Any],
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection in autocommit mode for reads.

    A non-autocommit connection would open a transaction before the query and the pool would
    roll it back on return: two extra round trips per read. The connection's own mode is put
    back afterwards (a local flag change, no round trip), so the pool's owner sees no change.
    """
    async with pool.connection() as conn:
        if conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
            yield conn
            return
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            with contextlib.suppress(psycopg.Error):
                await conn.set_autocommit(False)
