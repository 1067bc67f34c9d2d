"""Breaker state machine and token buckets, in-process, on a fake clock."""

from __future__ import annotations

import pytest

from kefu_llm._breaker import BreakerConfig, Breakers, MemoryBreakerStore
from kefu_llm._ratelimit import Limit, MemoryRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CFG = BreakerConfig(
    failure_threshold=5,
    failure_rate=0.5,
    min_samples=20,
    window_s=60,
    open_s=30,
    max_open_s=600,
    half_open_successes=2,
    half_open_probes=1,
    probe_lease_s=60,
    cache_s=0,
)


async def _fail(store: MemoryBreakerStore, n: int, **kw: object) -> None:
    for _ in range(n):
        await store.record("b", CFG, ok=False, extra_ok=0, open_for=kw.get("open_for"))  # type: ignore[arg-type]


async def test_opens_after_five_consecutive_failures_only() -> None:
    clock = Clock()
    store = MemoryBreakerStore(clock)
    await _fail(store, 4)
    await store.record("b", CFG, ok=True, extra_ok=0, open_for=None)  # resets the streak
    await _fail(store, 4)
    assert (await store.snapshots(["b"]))[0].state == "closed"
    await _fail(store, 1)
    snap = (await store.snapshots(["b"]))[0]
    assert snap.state == "open" and snap.open_until == pytest.approx(1030)


async def test_opens_on_failure_rate_over_the_minimum_sample() -> None:
    store = MemoryBreakerStore(Clock())
    for i in range(30):  # alternate: never 5 in a row, but 50%+ failures
        await store.record("b", CFG, ok=i % 3 == 0, extra_ok=0, open_for=None)
    assert (await store.snapshots(["b"]))[0].state == "open"


async def test_retry_after_sets_the_open_time() -> None:
    clock = Clock()
    store = MemoryBreakerStore(clock)
    await _fail(store, 1, open_for=7.0)
    snap = (await store.snapshots(["b"]))[0]
    assert snap.state == "open" and snap.open_until == pytest.approx(1007)


async def test_half_open_probes_then_closes_or_reopens_longer() -> None:
    clock = Clock()
    store = MemoryBreakerStore(clock)
    await _fail(store, 5)
    assert (await store.acquire_probe("b", CFG))[0] is False  # still open
    clock.now += 31
    assert (await store.acquire_probe("b", CFG))[0] is True  # the one probe
    assert (await store.acquire_probe("b", CFG))[0] is False  # a second one waits
    await store.record("b", CFG, ok=False, extra_ok=0, open_for=None)  # probe failed
    snap = (await store.snapshots(["b"]))[0]
    assert snap.state == "open" and snap.open_until == pytest.approx(clock.now + 60)  # doubled
    clock.now += 61
    for _ in range(2):
        granted, _ = await store.acquire_probe("b", CFG)
        assert granted
        await store.record("b", CFG, ok=True, extra_ok=0, open_for=None)
    assert (await store.snapshots(["b"]))[0].state == "closed"


async def test_a_lost_probe_lease_expires() -> None:
    clock = Clock()
    store = MemoryBreakerStore(clock)
    await _fail(store, 5)
    clock.now += 31
    assert (await store.acquire_probe("b", CFG))[0]
    clock.now += 61  # the probe's holder died
    assert (await store.acquire_probe("b", CFG))[0]


async def test_breakers_batch_healthy_successes_locally() -> None:
    class CountingStore(MemoryBreakerStore):
        writes = 0

        async def record(self, *a: object, **kw: object):  # type: ignore[no-untyped-def]
            CountingStore.writes += 1
            return await super().record(*a, **kw)  # type: ignore[arg-type]

    store = CountingStore(Clock())
    breakers = Breakers(store, BreakerConfig(cache_s=60))
    assert (await breakers.allow(["b"])) == (True, 0.0)
    for _ in range(50):
        await breakers.success("b")
    assert CountingStore.writes == 0  # no write per healthy call
    await breakers.failure("b")
    assert CountingStore.writes == 1
    assert store._states["b"].win_total == 51  # the batched successes came along


async def test_token_bucket_requests_and_tokens() -> None:
    clock = Clock()
    lim = MemoryRateLimiter(clock)
    rules = [Limit("req", 2, 1), Limit("tok", 1000, 100)]
    assert await lim.acquire("tenant:a", rules) == 0
    assert await lim.acquire("tenant:a", rules) == 0
    wait = await lim.acquire("tenant:a", rules)
    assert wait == pytest.approx(30.0)  # one request refills every 30 s
    assert await lim.acquire("tenant:b", rules) == 0  # other tenants unaffected
    clock.now += 30
    assert await lim.acquire("tenant:a", rules) == 0
    # tokens: a big charge after the fact may go negative, then callers wait
    assert await lim.acquire("tenant:c", [Limit("tok", 1000, 900)]) == 0
    assert await lim.acquire("tenant:c", [Limit("tok", 1000, 900)], force=True) == 0
    assert await lim.acquire("tenant:c", [Limit("tok", 1000, 10)]) == pytest.approx(48.6)
    # a cost above the capacity waits for a full bucket, not forever
    assert await lim.acquire("tenant:d", [Limit("tok", 100, 500)]) == 0
    assert await lim.acquire("tenant:e", [Limit("tok", 0, 10**9)]) == 0  # 0 = unlimited
