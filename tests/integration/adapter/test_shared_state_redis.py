"""Breakers, rate limits and the cache shared through real Redis by several routers.

Each router stands for one Lambda container or gateway replica: they share nothing but Redis.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from kefu_llm import Busy, Final, build_router
from tests.support.fake_openai import FakeOpenAI

from .conftest import collect, engine, request, settings


async def test_a_breaker_opened_by_one_container_is_seen_by_another(
    fake: FakeOpenAI, aredis: aioredis.Redis, redis_prefix: str
) -> None:
    cfg = settings(
        engine(fake, "primary", "fake-primary"), engine(fake, "backup"), breaker_cache_s=0.05
    )
    a = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    b = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    # GIVEN container A sees five provider failures
    fake.push(*[{"status": 502}] * 5, model="fake-primary")
    for _ in range(5):
        _, final = await collect(a.stream(request("x")))
        assert final.engine == "backup"
    # WHEN container B, which never saw a failure, gets a request
    calls = sum(r["model"] == "fake-primary" for r in fake.requests)
    _, final = await collect(b.stream(request("y")))
    # THEN it skips the primary without calling it
    assert final.engine == "backup"
    assert sum(r["model"] == "fake-primary" for r in fake.requests) == calls
    assert await aredis.exists(f"{redis_prefix}br:{{p:primary}}")
    await a.aclose()
    await b.aclose()


async def test_half_open_admits_one_probe_across_containers(
    fake: FakeOpenAI, aredis: aioredis.Redis, redis_prefix: str
) -> None:
    cfg = settings(engine(fake, "primary"), engine(fake, "backup"), breaker_open_s=0.01)
    routers = [build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix) for _ in range(3)]
    store = routers[0].breakers.store
    # GIVEN an open breaker whose open time is over
    for _ in range(5):
        await store.record(
            "p:primary", routers[0].breakers.cfg, ok=False, extra_ok=0, open_for=None
        )
    await asyncio.sleep(0.05)
    # WHEN three containers ask at once THEN exactly one gets the probe
    grants = await asyncio.gather(
        *(r.breakers.store.acquire_probe("p:primary", r.breakers.cfg) for r in routers)
    )
    assert sorted(g for g, _ in grants) == [False, False, True]
    for r in routers:
        await r.aclose()


async def test_tenant_rate_limit_is_shared(
    fake: FakeOpenAI, aredis: aioredis.Redis, redis_prefix: str
) -> None:
    cfg = settings(engine(fake, "primary"), tenant_rpm=2)
    a = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    b = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    assert isinstance([e async for e in a.stream(request("1"))][-1], Final)
    assert isinstance([e async for e in b.stream(request("2"))][-1], Final)
    third = [e async for e in a.stream(request("3"))]
    assert len(third) == 1 and isinstance(third[0], Busy)
    assert third[0].scope == "tenant" and 0 < third[0].retry_after_s <= 30.1
    # another tenant is not affected
    assert isinstance([e async for e in b.stream(request("4", tenant="t2"))][-1], Final)
    await a.aclose()
    await b.aclose()


async def test_cached_answer_is_shared(
    fake: FakeOpenAI, aredis: aioredis.Redis, redis_prefix: str
) -> None:
    cfg = settings(engine(fake, "primary"), cache_ttl_s=30)
    a = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    b = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    _, first = await collect(a.stream(request("what is the refund policy?")))
    await a.flush()  # the shared copy is written just after the reply
    n = fake.stats["requests"]
    _, second = await collect(b.stream(request("what is the refund policy?")))
    assert second.cached and second.text == first.text and fake.stats["requests"] == n
    ttl = await aredis.pttl(next(iter(await aredis.keys(f"{redis_prefix}rc:*"))))
    assert 0 < ttl <= 30_000
    await a.aclose()
    await b.aclose()


async def test_key_limits_are_shared_and_charge_only_the_key_used(
    fake: FakeOpenAI, aredis: aioredis.Redis, redis_prefix: str
) -> None:
    # GIVEN two keys allowed one request a minute each, and two containers
    cfg = settings(
        engine(fake, "only", keys=["sk-1", "sk-2"], key_rpm=1), offline_last_resort=False
    )
    a = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    b = build_router(settings=cfg, redis=aredis, key_prefix=redis_prefix)
    # WHEN three requests come THEN two are answered, one per key, and the third is told to wait
    assert isinstance([e async for e in a.stream(request("1"))][-1], Final)
    assert isinstance([e async for e in b.stream(request("2"))][-1], Final)
    third = [e async for e in a.stream(request("3"))]
    assert len(third) == 1 and isinstance(third[0], Busy) and third[0].scope == "key"
    assert sorted(r["key"] for r in fake.requests) == ["sk-1", "sk-2"]
    await a.aclose()
    await b.aclose()


async def test_lua_token_bucket(aredis: aioredis.Redis, redis_prefix: str) -> None:
    from kefu_llm._ratelimit import Limit, RedisRateLimiter

    lim = RedisRateLimiter(aredis, redis_prefix)
    rules = [Limit("req", 60, 1), Limit("tok", 600, 300)]
    assert await lim.acquire("s", rules) == 0
    assert await lim.acquire("s", rules) == 0
    # both buckets are taken from or neither: tokens are out, requests are not charged
    wait = await lim.acquire("s", rules)
    assert 29 < wait <= 30
    raw = await aredis.hget(f"{redis_prefix}rl:{{s}}", "req")
    assert 57.9 < float(raw) < 58.1
    # a forced charge goes negative; 0 per minute means no limit
    assert await lim.acquire("f", [Limit("tok", 100, 250)], force=True) == 0
    assert float(await aredis.hget(f"{redis_prefix}rl:{{f}}", "tok")) == -150
    assert await lim.acquire("u", [Limit("req", 0, 5)]) == 0


async def test_lua_breaker_full_cycle(aredis: aioredis.Redis, redis_prefix: str) -> None:
    from kefu_llm._breaker import BreakerConfig, RedisBreakerStore

    cfg = BreakerConfig(open_s=0.2, half_open_successes=2, failure_threshold=3)
    store = RedisBreakerStore(aredis, redis_prefix)
    for _ in range(2):
        snap = await store.record("b", cfg, ok=False, extra_ok=0, open_for=None)
    assert snap.state == "closed" and snap.consecutive == 2
    snap = await store.record("b", cfg, ok=False, extra_ok=0, open_for=None)
    assert snap.state == "open"
    assert (await store.acquire_probe("b", cfg))[0] is False
    await asyncio.sleep(0.25)
    assert (await store.acquire_probe("b", cfg))[0] is True
    assert (await store.acquire_probe("b", cfg))[0] is False  # one probe at a time
    snap = await store.record("b", cfg, ok=False, extra_ok=0, open_for=None)
    assert snap.state == "open"  # the probe failed: open again, for twice as long
    await asyncio.sleep(0.25)
    assert (await store.acquire_probe("b", cfg))[0] is False
    await asyncio.sleep(0.2)
    for _ in range(2):
        assert (await store.acquire_probe("b", cfg))[0] is True
        snap = await store.record("b", cfg, ok=True, extra_ok=0, open_for=None)
    assert snap.state == "closed"
    snap = await store.record("b", cfg, ok=False, extra_ok=0, open_for=12.5)  # Retry-After
    assert snap.state == "open"
    server_now = float((await aredis.time())[0])
    assert 11 < snap.open_until - server_now < 14
