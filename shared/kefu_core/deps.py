"""The composition root: the clients, stores and services of one process (Lambda container or
gateway), built once by :func:`build_deps`.

Flows never build clients themselves: they get a :class:`Deps`, so the same flow runs on
Lambda (API Gateway management API, Lambda async invoke) and in the self-hosted gateway
(in-process delivery, background tasks), and tests inject real clients pointed at test services.
Every store is a typed field; a test replaces one by passing it to the constructor (or with
``dataclasses.replace``).

What only replies need (the LLM routers, the memory layer) is built on first use, so a function
that never needs it (``connect``, ``message``) never imports ``kefu_llm`` or ``kefu_memory``:
that keeps its cold start short. Their types are imported for the type checker only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from kefu_core.chat.connections import ConnectionRegistry
from kefu_core.chat.conversations import ConversationStore
from kefu_core.chat.images import ImageService, image_service_for
from kefu_core.chat.transport import Poster, StreamInvoker
from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.errors import StoreError
from kefu_core.infra.metrics import Metrics, NullMetrics
from kefu_core.infra.settings import Settings
from kefu_core.product.audit import AuditLog
from kefu_core.product.curated_answers import CuratedAnswerStore
from kefu_core.product.customer import CustomerContext, MemoryCustomerContext
from kefu_core.product.feedback import FeedbackStore
from kefu_core.product.handoff.repository import HandoffRepository
from kefu_core.product.learned_answers import LearnedAnswerStore
from kefu_core.product.learning_queue import LearningQueueStore
from kefu_core.product.service import ServiceStore
from kefu_core.product.tenants.agents import AgentStore
from kefu_core.product.tenants.engines import EngineStore
from kefu_core.product.tenants.settings import SettingsStore
from kefu_core.product.tenants.tenants import TenantStore
from kefu_core.product.tenants.widget_keys import WidgetKeyStore
from kefu_core.security.datakeys import data_keys_for

if TYPE_CHECKING:
    from kefu_core.answers.curated import CuratedMatcher
    from kefu_core.answers.memory import MemoryService
    from kefu_core.answers.tenant_engines import TenantRouters
    from kefu_llm import Router

__all__ = ["Deps", "build_deps", "redis_client"]

logger = logging.getLogger("kefu.deps")


@dataclass(kw_only=True)
class Deps:
    """Clients, stores and services of one process."""

    settings: Settings
    redis: aioredis.Redis
    pool: AsyncConnectionPool
    # Connections of their own for storing messages (``kefu run``), or None: ``pool``.
    ingress_pool: AsyncConnectionPool | None
    # Chat plumbing.
    poster: Poster
    invoker: StreamInvoker
    conversations: ConversationStore
    connections: ConnectionRegistry
    # The product's stores: tenants and their resources, the audit log, notes/ratings/offline
    # messages, handoff's shared state.
    tenants: TenantStore
    agents: AgentStore
    widget_keys: WidgetKeyStore
    tenant_settings: SettingsStore  # settings and prompts, with the cached per-reply lookup
    engines: EngineStore
    audit: AuditLog
    service: ServiceStore
    handoff: HandoffRepository
    # The learning loop: curated answers, visitors' feedback on replies (docs/console.md).
    curated: CuratedAnswerStore
    feedback: FeedbackStore
    learning_queue: LearningQueueStore
    # Answers learned from conversations agents resolved, waiting for an admin's review.
    learned: LearnedAnswerStore
    images: ImageService
    # Product metrics: EMF on Lambda, Prometheus in the gateway (kefu_core.infra.metrics).
    metrics: Metrics = field(default_factory=NullMetrics)
    # The deployment's LLM router (``ENGINES`` / ``OPENAI_*``): built on first use when not given.
    deployment_router: Router | None = None
    # What the console shows about a customer: built from the memory layer when not given.
    customer_context: CustomerContext | None = None
    # Built on first use (see the properties and methods below).
    _tenant_routers: TenantRouters | None = field(default=None, init=False, repr=False)
    _memory: MemoryService | None = field(default=None, init=False, repr=False)
    _memory_loaded: bool = field(default=False, init=False, repr=False)
    _curated_matcher: CuratedMatcher | None = field(default=None, init=False, repr=False)
    _memory_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    # -- answers -----------------------------------------------------------------------------
    @property
    def router(self) -> Router:
        """The deployment's router, built on first use, its breakers reporting openings to
        :attr:`metrics` (kefu_llm never imports kefu_core: it calls the hook it is given).
        Tenants' routers share these breakers."""
        if self.deployment_router is None:
            from kefu_llm import AdapterSettings, build_router

            router = build_router(settings=AdapterSettings(), redis=self.redis,
                                  key_prefix=self.settings.redis_prefix)
            router.breakers.on_open = self._breaker_opened
            self.deployment_router = router
        return self.deployment_router

    @property
    def tenant_routers(self) -> TenantRouters:
        """Every tenant's router (:mod:`kefu_core.answers.tenant_engines`), built on first use."""
        if self._tenant_routers is None:
            from kefu_core.answers.tenant_engines import TenantRouters

            self._tenant_routers = TenantRouters(pool=self.pool, settings=self.settings,
                                                 redis=self.redis, store=self.engines,
                                                 deployment=lambda: self.router)
        return self._tenant_routers

    async def router_for(self, tenant_id: str) -> Router:
        """The router answering ``tenant_id``: built from the tenant's own engine chain, or
        the deployment's."""
        return await self.tenant_routers.router_for(tenant_id)

    def _breaker_opened(self, level: str) -> None:
        self.metrics.breaker_opened(level=level)

    def engines_changed(self, tenant_id: str) -> None:
        """The tenant's engine chain or secrets changed: this process rebuilds its router
        before the next reply (other processes within ``TENANT_ENGINES_REFRESH_S``)."""
        if self._tenant_routers is not None:
            self._tenant_routers.changed(tenant_id)

    # -- memory ------------------------------------------------------------------------------
    @property
    def memory(self) -> MemoryService | None:
        """The memory service once :meth:`load_memory` built it (None before, or disabled)."""
        return self._memory

    async def load_memory(self) -> MemoryService | None:
        """The memory service (None when ``MEMORY_ENABLED`` is false), built once."""
        if not self._memory_loaded:
            async with self._memory_lock:
                if not self._memory_loaded:
                    if self.settings.memory_enabled:
                        from kefu_core.answers.memory import build_memory

                        self._memory = await build_memory(self.settings, pool=self.pool,
                                                          redis=self.redis)
                    self._memory_loaded = True
        return self._memory

    async def curated_matcher(self) -> CuratedMatcher:
        """What matches visitor questions to curated answers, with the knowledge base's
        embedder when memory is enabled (built once)."""
        if self._curated_matcher is None:
            from kefu_core.answers.curated import CuratedMatcher

            memory = await self.load_memory()
            self._curated_matcher = CuratedMatcher(
                self.curated, memory.knowledge.embedder if memory is not None else None)
        return self._curated_matcher

    def curated_changed(self, tenant_id: str) -> None:
        """The tenant's curated answers changed: this process matches the new ones at once
        (others within ``kefu_core.answers.curated.TTL_S``)."""
        if self._curated_matcher is not None:
            self._curated_matcher.changed(tenant_id)

    async def customer(self) -> CustomerContext:
        """The customer context: the one given, else the memory layer's CRM and long-term
        facts (either may be missing)."""
        if self.customer_context is None:
            memory = await self.load_memory()
            self.customer_context = MemoryCustomerContext(
                crm=memory.crm if memory else None,
                long_term=memory.long_term if memory else None)
        return self.customer_context

    async def aclose(self) -> None:
        if self._memory is not None:
            await self._memory.aclose()
        if self._tenant_routers is not None:
            await self._tenant_routers.aclose()
        if self.deployment_router is not None:
            await self.deployment_router.aclose()
        await self.pool.close()
        if self.ingress_pool is not None:
            await self.ingress_pool.close()
        await self.redis.aclose()


def _redis_driver() -> dict[str, Any]:
    """The client's name and version for ``CLIENT SETINFO``, resolved once per process."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py before 7: the version alone
        return {"lib_version": redis.__version__}
    return {"driver_info": DriverInfo(lib_version=redis.__version__)}


_REDIS_DRIVER = _redis_driver()


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
        # redis-py otherwise reads its own version from the installed packages' metadata
        # (a scan of sys.path) for every new connection, on the event loop.
        **_REDIS_DRIVER,
    )
    return aioredis.Redis(connection_pool=pool)


async def build_deps(
    settings: Settings,
    *,
    poster: Poster,
    invoker: StreamInvoker,
    router: Router | None = None,
    ingress_pool_max: int = 0,
) -> Deps:
    """Connect to Redis and PostgreSQL; apply pending core migrations
    (``SCHEMA_MIGRATIONS=apply``) or verify that none is pending (``verify``).
    ``ingress_pool_max``: a pool of that many connections of their own for storing messages
    (a long-running gateway: ``DB_INGRESS_POOL_MAX``); 0: they share the main pool."""
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
    ingress = await open_pool(
        settings.database_url, min_size=1, max_size=ingress_pool_max,
        timeout_s=settings.db_pool_timeout_s,
    ) if ingress_pool_max > 0 else None
    data_keys = data_keys_for(settings)
    connections = ConnectionRegistry(
        redis, prefix=settings.redis_prefix, ttl_s=settings.connection_ttl_s
    )
    return Deps(
        settings=settings,
        redis=redis,
        pool=pool,
        poster=poster,
        invoker=invoker,
        ingress_pool=ingress,
        conversations=ConversationStore(pool, ingress=ingress),
        connections=connections,
        tenants=TenantStore(pool, data_keys),
        agents=AgentStore(pool),
        widget_keys=WidgetKeyStore(pool),
        tenant_settings=SettingsStore(pool),
        engines=EngineStore(pool, data_keys),
        audit=AuditLog(pool),
        service=ServiceStore(pool),
        handoff=HandoffRepository(redis, prefix=settings.redis_prefix,
                                  conns_key=connections.agent_conns_key),
        curated=CuratedAnswerStore(pool),
        feedback=FeedbackStore(pool),
        learning_queue=LearningQueueStore(pool),
        learned=LearnedAnswerStore(pool),
        images=image_service_for(settings, redis),
        deployment_router=router,
    )
