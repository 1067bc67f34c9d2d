"""The per-tenant router cache (kefu_core.answers.tenant_engines) on real PostgreSQL and Redis, with
OpenAI-compatible fakes over real HTTP/SSE: what a change costs and when it is seen, what an
unusable entry does, and breakers that are never shared between tenants' servers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from kefu_core.answers.tenant_engines import TenantRouters
from kefu_core.infra.db import migrate, open_pool
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.engines import EngineStore
from kefu_core.product.tenants.tenants import TenantStore
from kefu_core.security.datakeys import DataKeys, DataKeyUnavailable
from kefu_llm import AdapterSettings, ChatMessage, ChatRequest, Final, build_router
from tests.support.fake_openai import FakeOpenAI

REFRESH_S = 5.0


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(EngineStore):
    """The real store, counting the stamp reads (the only read on the reply path), and able
    to fail secret reads as an unavailable data key does."""

    stamp_reads = 0
    secrets_unavailable = False

    async def stamp(self, tenant_id: str) -> str:
        self.stamp_reads += 1
        return await super().stamp(tenant_id)

    async def secret(self, *, tenant_id: str, name: str) -> str | None:
        if self.secrets_unavailable:
            raise DataKeyUnavailable("the data key could not be read")
        return await super().secret(tenant_id=tenant_id, name=name)


@dataclass
class World:
    pool: AsyncConnectionPool
    store: CountingStore
    settings: Settings
    redis: Any
    clock: Clock
    deployments: list[Any]

    def routers(self, **adapter: Any) -> TenantRouters:
        """The router cache of one process (a gateway replica, a Lambda container), whose
        deployment chain is the offline engine alone."""
        config = AdapterSettings(engines=[], **adapter)
        deployment = build_router(settings=config, redis=self.redis,
                                  key_prefix=self.settings.redis_prefix)
        self.deployments.append(deployment)
        return TenantRouters(pool=self.pool, settings=self.settings, redis=self.redis,
                             deployment=lambda: deployment, store=self.store,
                             adapter_settings=config, clock=self.clock)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI(first_token_ms=1) as a, FakeOpenAI(first_token_ms=1) as b:
        yield a, b


@pytest.fixture(scope="module")
def dsn(make_database: Callable[[], str]) -> str:
    """One database for the module: every test makes tenants of its own."""
    return make_database()


@pytest.fixture
async def world(dsn: str, redis_url: str, redis_prefix: str) -> AsyncIterator[World]:
    pool = await open_pool(dsn, min_size=1, max_size=4)
    await migrate(pool)
    settings = Settings(kefu_env="production", database_url=dsn, redis_url=redis_url,
                        redis_prefix=redis_prefix, outbound_allow_private=True,
                        data_encryption_key=["tenant-routers-test-key-0123456789-abcdef"],
                        tenant_engines_refresh_s=REFRESH_S)
    store = CountingStore(pool, DataKeys.from_settings(settings))
    client = aioredis.Redis.from_url(redis_url)
    world = World(pool=pool, store=store, settings=settings, redis=client, clock=Clock(),
                  deployments=[])
    yield world
    for deployment in world.deployments:
        await deployment.aclose()
    await client.aclose()
    await pool.close()


async def _tenant(world: World, chain: list[dict[str, Any]], **secrets: str) -> str:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await TenantStore(world.pool).ensure(tenant_id=tenant, name=tenant)
    for name, value in secrets.items():
        await world.store.put_secret(tenant_id=tenant, name=name, secret=value)
    await world.store.put_chain(tenant_id=tenant, chain=chain)
    return tenant


def _engine(fake: FakeOpenAI, *, name: str = "main", key_ref: str | None = "key",
            model: str = "m") -> dict[str, Any]:
    return {"name": name, "kind": "openai", "base_url": fake.base_url, "model": model,
            "key_ref": key_ref}


async def _reply(router: Any, tenant: str, text: str) -> Final:
    request = ChatRequest(tenant_id=tenant, conversation_id=f"c-{uuid.uuid4().hex[:8]}",
                          messages=[ChatMessage(role="user", content=text)])
    final = [e async for e in router.stream(request) if isinstance(e, Final)]
    await router.flush()
    return final[0]


async def test_a_change_made_elsewhere_is_seen_after_the_refresh_interval_only(
    world: World, fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = fakes
    replica = world.routers()
    # GIVEN a tenant on provider A, already answered once by this replica
    tenant = await _tenant(world, [_engine(a, model="model-a")], key="sk-a")
    first = await replica.router_for(tenant)
    assert (await _reply(first, tenant, "one")).engine == "main"
    reads = world.store.stamp_reads
    # WHEN more replies come within the refresh interval
    world.clock.now += REFRESH_S / 2
    for _ in range(3):
        assert await replica.router_for(tenant) is first
    # THEN they cost no database read
    assert world.store.stamp_reads == reads
    # WHEN another process (the admin function) moves the chain to provider B
    await world.store.put_secret(tenant_id=tenant, name="key", secret="sk-b")
    await world.store.put_chain(tenant_id=tenant, chain=[_engine(b, model="model-b")])
    # THEN this replica keeps its router until the interval is over
    assert await replica.router_for(tenant) is first
    world.clock.now += REFRESH_S
    # AND then answers from provider B with the new key, after one stamp read
    current = await replica.router_for(tenant)
    assert current is not first and world.store.stamp_reads == reads + 1
    await _reply(current, tenant, "two")
    assert [(r["model"], r["key"]) for r in b.requests] == [("model-b", "sk-b")]
    assert [r["key"] for r in a.requests] == ["sk-a"]
    # AND an unchanged stamp keeps the router (one read, no rebuild)
    world.clock.now += REFRESH_S
    assert await replica.router_for(tenant) is current
    await replica.aclose()


async def test_a_change_in_this_process_is_seen_at_once(
    world: World, fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = fakes
    replica = world.routers()
    tenant = await _tenant(world, [_engine(a)], key="sk-a")
    first = await replica.router_for(tenant)
    # WHEN the admin API of this process stores a new chain and says so
    await world.store.put_chain(tenant_id=tenant, chain=[_engine(b)])
    replica.changed(tenant)
    # THEN the next reply uses it, with no wait
    current = await replica.router_for(tenant)
    assert current is not first
    await _reply(current, tenant, "hello")
    assert len(b.requests) == 1 and a.requests == []
    await replica.aclose()


async def test_unusable_entries_are_skipped_and_logged_without_secrets(
    world: World, fakes: tuple[FakeOpenAI, FakeOpenAI], caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = fakes
    replica = world.routers()
    # GIVEN a stored chain with an entry that does not validate, an engine whose secret was
    # never stored, one with a URL that is not http(s), a usable one, and one repeating its name
    chain = [
        {"name": "bad name!", "base_url": a.base_url, "model": "m"},
        _engine(a, name="keyless", key_ref="missing"),
        {"name": "gopher", "base_url": "gopher://127.0.0.1:6379/_", "model": "m"},
        _engine(b, name="good"),
        _engine(a, name="good", key_ref="other"),
    ]
    tenant = await _tenant(world, chain, key="sk-good-secret-value", other="sk-other")
    # WHEN its router is built and a visitor asks
    with caplog.at_level(logging.INFO):
        router = await replica.router_for(tenant)
        final = await _reply(router, tenant, "hello")
    # THEN only the usable engine (and the offline last resort) is in the chain
    assert router.engine_names == ["good", "offline"]
    assert final.engine == "good" and a.requests == []
    assert [r["key"] for r in b.requests] == ["sk-good-secret-value"]
    # AND each skipped engine was logged, with no secret value
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret missing is not set" in logged and "not valid" in logged
    assert "gopher" in logged and "repeats the name good" in logged
    assert "sk-good-secret-value" not in logged
    await replica.aclose()


async def test_a_chain_with_nothing_usable_falls_back_to_the_deployment(
    world: World, fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, _ = fakes
    replica = world.routers()
    tenant = await _tenant(world, [_engine(a, key_ref="never-stored")])
    assert await replica.router_for(tenant) is world.deployments[-1]
    # AND a tenant with no chain at all uses it too
    assert await replica.router_for(f"none-{uuid.uuid4().hex[:6]}") is world.deployments[-1]
    await replica.aclose()


async def test_tenants_with_engines_of_the_same_name_never_share_a_breaker(
    world: World, fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = fakes
    # GIVEN breakers that open after one failure, and two tenants whose engine is named
    # "main" on two servers, the first of which fails
    replica = world.routers(breaker_failure_threshold=1, breaker_cache_s=0)
    tenant_a = await _tenant(world, [_engine(a)], key="sk-a")
    tenant_b = await _tenant(world, [_engine(b)], key="sk-b")
    a.configure(mode="error", status=500)
    router_a = await replica.router_for(tenant_a)
    # WHEN tenant A's server fails until its breaker opens
    assert (await _reply(router_a, tenant_a, "one")).engine == "offline"
    assert (await _reply(router_a, tenant_a, "two")).engine == "offline"
    assert len(a.requests) == 1  # the second reply skipped the open breaker
    # THEN tenant B's engine of the same name is still tried, and answers
    final = await _reply(await replica.router_for(tenant_b), tenant_b, "three")
    assert final.engine == "main" and len(b.requests) == 1
    await replica.aclose()


async def test_a_secret_that_could_not_be_read_is_tried_again_at_the_next_check(
    world: World, fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, _ = fakes
    replica = world.routers()
    tenant = await _tenant(world, [_engine(a)], key="sk-a")
    # GIVEN the data key is unavailable when the tenant's router is first built
    world.store.secrets_unavailable = True
    first = await replica.router_for(tenant)
    assert first is world.deployments[-1]  # nothing usable: the deployment's chain answers
    # WHEN the key is back and the refresh interval is over, nothing else having changed
    world.store.secrets_unavailable = False
    world.clock.now += REFRESH_S
    router = await replica.router_for(tenant)
    # THEN the tenant's engine is built and answers
    assert router.engine_names == ["main", "offline"]
    assert (await _reply(router, tenant, "hello")).engine == "main"
    assert [r["key"] for r in a.requests] == ["sk-a"]
    await replica.aclose()
