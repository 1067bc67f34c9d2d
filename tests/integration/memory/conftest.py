"""Fixtures for kefu_memory integration tests: a migrated database, a pool, a Redis client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from kefu_memory import OfflineEmbedder, migrate


@pytest.fixture(scope="session")
def memory_dsn(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="session")
async def memory_pool(memory_dsn: str) -> AsyncIterator[AsyncConnectionPool]:
    await migrate(memory_dsn)
    pool = AsyncConnectionPool(memory_dsn, min_size=1, max_size=6, open=False)
    await pool.open(wait=True)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def embedder() -> OfflineEmbedder:
    return OfflineEmbedder()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
