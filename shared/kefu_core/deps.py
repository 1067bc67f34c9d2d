"""The dependencies every flow receives, built once per process (Lambda container or gateway).

Flows never build clients themselves: they get a :class:`Deps`, so the same flow runs on
Lambda (API Gateway management API, Lambda async invoke) and in the self-hosted gateway
(in-process delivery, background tasks), and tests inject real clients pointed at test services.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from .connections import ConnectionRegistry
from .conversations import ConversationStore
from .db import migrate, open_pool
from .errors import StoreError
from .memory import MemoryService, build_memory
from .settings import Settings
from .transport import Poster, StreamInvoker

__all__ = ["Deps", "build_deps"]

logger = logging.getLogger("kefu.deps")



@dataclass
class Deps:
    settings: Settings
    redis: aioredis.Redis
    pool: AsyncConnectionPool
    conversations: ConversationStore
    connections: ConnectionRegistry
    poster: Poster
    invoker: StreamInvoker
    router: Any  # kefu_llm.Router
    memory: MemoryService | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    async def aclose(self) -> None:
        if self.memory is not None:
            await self.memory.aclose()
        close = getattr(self.router, "aclose", None)
        if close is not None:
            await close()
        await self.pool.close()
        await self.redis.aclose()


async def build_deps(
    settings: Settings,
    *,
    poster: Poster,
    invoker: StreamInvoker,
    router: Any | None = None,
) -> Deps:
    """Connect to Redis and PostgreSQL, apply pending migrations, build the LLM router."""
    if not settings.database_url or not settings.redis_url:
        raise StoreError("DATABASE_URL and REDIS_URL must be set")
    redis = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )
    pool = await open_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    await migrate(pool)
    if router is None:
        from kefu_llm import AdapterSettings, build_router

        router = build_router(
            settings=AdapterSettings(), redis=redis, key_prefix=settings.redis_prefix
        )
    memory = (await build_memory(settings, pool=pool, redis=redis)
              if settings.memory_enabled else None)
    return Deps(
        memory=memory,
        settings=settings,
        redis=redis,
        pool=pool,
        conversations=ConversationStore(pool),
        connections=ConnectionRegistry(
            redis, prefix=settings.redis_prefix, ttl_s=settings.connection_ttl_s
        ),
        poster=poster,
        invoker=invoker,
        router=router,
    )
