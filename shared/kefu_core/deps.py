"""The dependencies every flow receives, built once per process (Lambda container or gateway).

Flows never build clients themselves: they get a :class:`Deps`, so the same flow runs on
Lambda (API Gateway management API, Lambda async invoke) and in the self-hosted gateway
(in-process delivery, background tasks), and tests inject real clients pointed at test services.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from kefu_core.chat.connections import ConnectionRegistry
from kefu_core.chat.conversations import ConversationStore
from kefu_core.chat.transport import Poster, StreamInvoker
from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.errors import StoreError
from kefu_core.infra.metrics import Metrics, NullMetrics
from kefu_core.infra.settings import Settings

if TYPE_CHECKING:
    from kefu_core.answers.memory import MemoryService

__all__ = ["Deps", "build_deps", "redis_client"]

logger = logging.getLogger("kefu.deps")



@dataclass
class Deps:
    """Clients and services of one process. The LLM router and the memory layer are built on
    first use, so a function that never needs them (``connect``, ``message``) never imports
    them: that keeps its cold start short."""

    settings: Settings
    redis: aioredis.Redis
    pool: AsyncConnectionPool
    conversations: ConversationStore
    connections: ConnectionRegistry
    poster: Poster
    invoker: StreamInvoker
    _router: Any = None  # kefu_llm.Router: the deployment's chain
    _tenant_routers: Any = None  # kefu_core.answers.tenant_engines.TenantRouters
    memory: MemoryService | None = None  # set by load_memory()
    extras: dict[str, Any] = field(default_factory=dict)
    # Product metrics: EMF on Lambda, Prometheus in the gateway (kefu_core.infra.metrics).
    metrics: Metrics = field(default_factory=NullMetrics)
    _memory_loaded: bool = False
    _memory_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def router(self) -> Any:
        if self._router is None:
            from kefu_llm import AdapterSettings, build_router

            self._router = build_router(settings=AdapterSettings(), redis=self.redis,
                                        key_prefix=self.settings.redis_prefix)
        return self._router

    async def router_for(self, tenant_id: str) -> Any:
        """The router answering ``tenant_id``: built from the tenant's own engine chain, or
        the deployment's (:mod:`kefu_core.answers.tenant_engines`)."""
        if self._tenant_routers is None:
            from kefu_core.answers.tenant_engines import TenantRouters

            self._tenant_routers = TenantRouters(pool=self.pool, settings=self.settings,
                                                 redis=self.redis,
                                                 deployment=lambda: self.router)
        return self._watched(await self._tenant_routers.router_for(tenant_id))

    def _watched(self, router: Any) -> Any:
        """``router`` with its breakers reporting openings to :attr:`metrics` (kefu_llm never
        imports kefu_core: it calls the hook it is given)."""
        breakers = getattr(router, "breakers", None)
        if breakers is not None and breakers.on_open is None:
            breakers.on_open = self._breaker_opened
        return router

    def _breaker_opened(self, level: str) -> None:
        self.metrics.breaker_opened(level=level)

    def engines_changed(self, tenant_id: str) -> None:
        """The tenant's engine chain or secrets changed: this process rebuilds its router
        before the next reply (other processes within ``TENANT_ENGINES_REFRESH_S``)."""
        if self._tenant_routers is not None:
            self._tenant_routers.changed(tenant_id)

    async def load_memory(self) -> MemoryService | None:
        """The memory service (None when ``MEMORY_ENABLED`` is false), built once."""
        if not self._memory_loaded:
            async with self._memory_lock:
                if not self._memory_loaded:
                    if self.settings.memory_enabled:
                        from kefu_core.answers.memory import build_memory

                        self.memory = await build_memory(self.settings, pool=self.pool,
                                                         redis=self.redis)
                    self._memory_loaded = True
        return self.memory

    async def aclose(self) -> None:
        if self.memory is not None:
            await self.memory.aclose()
        if self._tenant_routers is not None:
            await self._tenant_routers.aclose()
        close = getattr(self._router, "aclose", None)
        if close is not None:
            await close()
        await self.pool.close()
        await self.redis.aclose()


def redis_client(settings: Settings) -> aioredis.Redis:
    """A Redis client whose pool makes callers wait (briefly) for a free connection instead of
    failing at once when every connection is busy, as the default pool does under load."""
    assert settings.redis_url
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


async def build_deps(
    settings: Settings,
    *,
    poster: Poster,
    invoker: StreamInvoker,
    router: Any | None = None,
) -> Deps:
    """Connect to Redis and PostgreSQL; apply pending core migrations
    (``SCHEMA_MIGRATIONS=apply``) or verify that none is pending (``verify``)."""
    if not settings.database_url or not settings.redis_url:
        raise StoreError("DATABASE_URL and REDIS_URL must be set")
    redis = redis_client(settings)
    pool = await open_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
        timeout_s=settings.db_pool_timeout_s,
    )
    if settings.schema_migrations == "apply":
        await migrate(pool)
    else:  # applied at deploy time: one cheap query says whether this code may run on it
        from kefu_core.infra.schema import verify_schema

        try:
            await verify_schema(pool)
        except BaseException:
            await pool.close()
            raise
    return Deps(
        settings=settings,
        redis=redis,
        pool=pool,
        conversations=ConversationStore(pool),
        connections=ConnectionRegistry(
            redis, prefix=settings.redis_prefix, ttl_s=settings.connection_ttl_s
        ),
        poster=poster,
        invoker=invoker,
        _router=router,
    )
