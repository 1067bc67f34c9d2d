"""Per-tenant engine chains: which router answers a tenant's visitors.

A tenant's chain (``PUT /v1/admin/engines``) and its engine secrets (``PUT
/v1/admin/engines/secrets/{name}``, decrypted by ``EngineStore``) make
the tenant's own router; a tenant without a chain is answered by the deployment's router
(``ENGINES`` / ``OPENAI_*``). Rules:

- The tenant's engines are tried in order, then the offline engine (the last resort, as for
  the deployment's chain). A tenant's engines never fall through to the deployment's remote
  engines: the tenant chose where its visitors' messages go.
- Keys come from the tenant's secrets only (never the deployment's keys); an engine whose
  ``key_ref`` names no stored secret, an entry that does not validate, or a base URL the
  outbound policy refuses (``OUTBOUND_ALLOW_PRIVATE`` / ``OUTBOUND_ALLOWED_HOSTS``; the
  resolved address is checked again on every connection) is skipped with a warning (no secret
  in the log). When no engine of the chain is left, the deployment's router answers.
- Breakers, rate limits and cached answers of a tenant's engine are keyed by the tenant and
  the engine's configuration (`EngineSlot.scope`), in the deployment's Redis; the tenant-wide
  rate limit is the same whichever router answers.
- Routers are cached per process. A cheap stamp of the tenant's chain and secrets (one indexed
  query) is checked at most every ``TENANT_ENGINES_REFRESH_S`` seconds, and at once in the
  process that served the admin change; a different stamp rebuilds the router. Every gateway
  replica and Lambda container thus sees a change within that interval; a reply costs no
  database read in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kefu_core.infra.errors import StoreError
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.engines import EngineStore
from kefu_core.security.datakeys import data_keys_for

if TYPE_CHECKING:
    from kefu_llm import AdapterSettings, EngineConfig, Router

__all__ = ["ENGINE_NAME", "EngineEntry", "TenantRouters"]

logger = logging.getLogger("kefu.tenant_engines")

ENGINE_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
# The OpenAI API, for a tenant engine given without a base URL (never the deployment's
# OPENAI_BASE_URL, which the SDK would otherwise read from the environment).
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Routers kept per process; the least recently used beyond that are closed.
MAX_TENANTS = 1024


class EngineEntry(BaseModel):
    """One engine of a tenant's chain. Secrets are referenced by name (``key_ref``), never
    inlined."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ENGINE_NAME)
    kind: Literal["openai", "offline"] = "openai"
    base_url: str | None = Field(default=None, max_length=500)
    model: str | None = Field(default=None, max_length=200)
    key_ref: str | None = Field(default=None, pattern=ENGINE_NAME)
    first_token_timeout_s: float | None = Field(default=None, gt=0, le=60)
    # The model reads images: a visitor's picture is sent to it when the tenant allows it
    # (settings ``images_to_model``).
    images: bool = False


_RETRY = "retry"  # never a stamp: the next check builds the router again


@dataclass
class _Build:
    transient: bool = False  # a failure that may be gone at the next check


@dataclass
class _Cached:
    router: Router  # the tenant's own, or the deployment's
    stamp: str
    checked_at: float
    own: bool  # built from the tenant's chain (closed when replaced)


class TenantRouters:
    """The router of each tenant, built from its chain, cached, rebuilt when it changes."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        settings: Settings,
        redis: Any,
        deployment: Callable[[], Router],
        adapter_settings: AdapterSettings | None = None,
        store: EngineStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._deployment = deployment
        self._adapter = adapter_settings
        self._store = store or EngineStore(pool, data_keys_for(settings))
        self._clock = clock
        self._cached: OrderedDict[str, _Cached] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def adapter_settings(self) -> AdapterSettings:
        if self._adapter is None:
            from kefu_llm import AdapterSettings

            self._adapter = AdapterSettings()
        return self._adapter

    async def router_for(self, tenant_id: str) -> Router:
        """The router answering ``tenant_id`` (its own, or the deployment's)."""
        cached = self._fresh(tenant_id)
        if cached is not None:
            return cached.router
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            cached = self._fresh(tenant_id)
            if cached is not None:
                return cached.router
            return await self._refresh(tenant_id)

    def changed(self, tenant_id: str) -> None:
        """The tenant's chain or a secret changed here: check its stamp on the next reply."""
        cached = self._cached.get(tenant_id)
        if cached is not None:
            cached.checked_at = float("-inf")

    async def aclose(self) -> None:
        retiring = list(self._closing)
        for task in retiring:
            task.cancel()  # each closes its router at once
        await asyncio.gather(*retiring, return_exceptions=True)
        for cached in self._cached.values():
            if cached.own:
                await _close(cached.router)
        self._cached.clear()

    @contextlib.asynccontextmanager
    async def trial(self, tenant_id: str, name: str) -> AsyncIterator[Router | None]:
        """A router of the tenant's engine ``name`` alone: no other engine and no offline last
        resort, so what answers is that engine or nothing (the admin console's "test this
        engine"). None when the chain has no usable engine of that name. Its breaker, limits
        and cache are the engine's own (the same scope as in the tenant's router); the router
        is closed on the way out."""
        stored = await self._store.chain(tenant_id)
        raw = next((r for r in stored if isinstance(r, dict) and r.get("name") == name), None)
        keys: dict[str, list[str]] = {}
        config = None if raw is None else await self._engine_config(
            tenant_id, 0, raw, keys, _Build())
        router = None
        if config is not None:
            from kefu_llm import ConfigurationError, StaticKeySource, build_router

            with contextlib.suppress(ConfigurationError):
                router = build_router(
                    settings=self.adapter_settings, redis=self._redis,
                    key_prefix=self._settings.redis_prefix, configs=[config],
                    key_sources=[StaticKeySource(keys)],
                    outbound_policy=self._settings.outbound_policy(),
                    scope_of=lambda engine: _scope(tenant_id, engine))
        try:
            yield router if router is not None and name in router.engine_names else None
        finally:
            if router is not None:
                await _close(router)

    # -- internals --------------------------------------------------------------------------
    def _fresh(self, tenant_id: str) -> _Cached | None:
        cached = self._cached.get(tenant_id)
        if cached is None:
            return None
        if self._clock() - cached.checked_at >= self._settings.tenant_engines_refresh_s:
            return None
        self._cached.move_to_end(tenant_id)
        return cached

    async def _refresh(self, tenant_id: str) -> Router:
        now = self._clock()
        cached = self._cached.get(tenant_id)
        try:
            stamp = await self._store.stamp(tenant_id)
        except StoreError:
            logger.warning("tenant engine chain unavailable; keeping the current router",
                           extra={"tenant": tenant_id})
            if cached is not None:
                cached.checked_at = now
                return cached.router
            return self._deployment()
        if cached is not None and cached.stamp == stamp:
            cached.checked_at = now
            self._cached.move_to_end(tenant_id)
            return cached.router
        build = _Build()
        try:
            own = await self._build(tenant_id, build)
        except Exception:  # a reply is never refused because a tenant's chain is broken
            logger.warning("tenant engine chain unusable; the current router answers",
                           extra={"tenant": tenant_id}, exc_info=True)
            if cached is not None:  # its old stamp makes the next check build again
                cached.checked_at = now
                return cached.router
            own, build.transient = None, True
        if build.transient:
            # Something may work on the next check (the database, the data key): build again
            # then, instead of keeping this router until the tenant changes something.
            stamp = _RETRY
        router = own if own is not None else self._deployment()
        self._cached[tenant_id] = _Cached(router=router, stamp=stamp, checked_at=now,
                                          own=own is not None)
        self._cached.move_to_end(tenant_id)
        if cached is not None and cached.own:
            self._retire(cached.router)
        while len(self._cached) > MAX_TENANTS:
            evicted_id, evicted = self._cached.popitem(last=False)
            self._locks.pop(evicted_id, None)
            if evicted.own:
                self._retire(evicted.router)
        return router

    async def _build(self, tenant_id: str, build: _Build) -> Router | None:
        """The tenant's own router, or None (no chain, or nothing usable in it)."""
        stored = await self._store.chain(tenant_id)
        if not stored:
            return None
        from kefu_llm import ConfigurationError, StaticKeySource, build_router

        configs: list[EngineConfig] = []
        keys: dict[str, list[str]] = {}
        for position, raw in enumerate(stored):
            name = raw.get("name") if isinstance(raw, dict) else None
            if any(c.name == name for c in configs):
                logger.warning("tenant engine %d repeats the name %s; skipped", position, name,
                               extra={"tenant": tenant_id})
                continue
            config = await self._engine_config(tenant_id, position, raw, keys, build)
            if config is not None:
                configs.append(config)
        if not configs:
            logger.warning("no usable engine in the tenant's chain; the deployment's engines "
                           "answer", extra={"tenant": tenant_id})
            return None
        adapter = self.adapter_settings
        deployment = self._deployment()
        from kefu_llm import Router

        try:
            router = build_router(
                settings=adapter, redis=self._redis, key_prefix=self._settings.redis_prefix,
                configs=adapter.with_last_resort(configs),
                key_sources=[StaticKeySource(keys)],
                outbound_policy=self._settings.outbound_policy(),
                scope_of=lambda config: _scope(tenant_id, config),
                share_with=deployment if isinstance(deployment, Router) else None,
            )
        except ConfigurationError:
            logger.warning("no usable engine in the tenant's chain; the deployment's engines "
                           "answer", extra={"tenant": tenant_id})
            return None
        own = {c.name for c in configs}
        if not own.intersection(router.engine_names):
            logger.warning("no usable engine in the tenant's chain; the deployment's engines "
                           "answer", extra={"tenant": tenant_id})
            await _close(router)
            return None
        logger.info("tenant engine chain loaded",
                    extra={"tenant": tenant_id, "engines": router.engine_names})
        return router

    async def _engine_config(
        self, tenant_id: str, position: int, raw: Any, keys: dict[str, list[str]],
        build: _Build,
    ) -> EngineConfig | None:
        """One stored entry as an engine configuration (its key put in ``keys``), or None
        when it cannot be used (logged without any secret)."""
        from kefu_llm import EngineConfig

        try:
            entry = EngineEntry.model_validate(raw)
        except ValidationError as exc:
            logger.warning("tenant engine %d is not valid; skipped (%s)", position,
                           ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()),
                           extra={"tenant": tenant_id})
            return None
        if entry.kind == "offline":
            return EngineConfig(name=entry.name, kind="offline", provider="offline", local=True)
        if not entry.model:
            logger.warning("tenant engine %s has no model; skipped", entry.name,
                           extra={"tenant": tenant_id})
            return None
        secret = "none"  # servers without keys (Ollama, vLLM); the SDK needs a value
        if entry.key_ref:
            try:
                found = await self._store.secret(tenant_id=tenant_id, name=entry.key_ref)
            except StoreError as exc:  # a data key missing, or a value that does not decrypt
                build.transient = True
                logger.warning("tenant engine %s: secret %s unreadable (%s); skipped",
                               entry.name, entry.key_ref, type(exc).__name__,
                               extra={"tenant": tenant_id})
                return None
            if found is None:
                logger.warning("tenant engine %s: secret %s is not set; skipped",
                               entry.name, entry.key_ref, extra={"tenant": tenant_id})
                return None
            secret = found
        group = f"tenant-engine:{entry.name}"
        keys[group] = [secret]
        return EngineConfig(
            name=entry.name, provider="openai", base_url=entry.base_url or DEFAULT_BASE_URL,
            model=entry.model, keys_name=group,
            first_token_timeout_s=entry.first_token_timeout_s, images=entry.images,
        )

    def _retire(self, router: Router) -> None:
        """Close a replaced router once the replies it may still be streaming are over."""
        grace = self.adapter_settings.total_timeout_s + 5.0

        async def later() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(grace)
            await _close(router)

        task = asyncio.get_running_loop().create_task(later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _scope(tenant_id: str, config: EngineConfig) -> str:
    """Breaker, limit and cache id prefix of a tenant's engine: the tenant and what the engine
    is (its server and model), so a changed engine starts with a fresh breaker and cache."""
    what = json.dumps([config.name, config.kind, config.base_url, config.model])
    return f"t:{tenant_id}:{hashlib.sha256(what.encode()).hexdigest()[:12]}:"


async def _close(router: Router) -> None:
    try:
        await router.aclose()
    except Exception:  # closing is best effort
        logger.debug("closing a tenant router failed", exc_info=True)
