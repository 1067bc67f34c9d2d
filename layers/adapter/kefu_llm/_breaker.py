"""Circuit breakers at two levels (per key/deployment, per provider), shared through Redis.

State of one breaker: ``closed`` -> ``open`` (after ``failure_threshold`` consecutive counted
failures, or a failure rate above ``failure_rate`` over at least ``min_samples`` calls in the
current window, or at once when the caller forces it, e.g. a key answering 401 or 429 with
``Retry-After``) -> ``half_open`` when the open time is over (``probes`` concurrent trial calls,
each holding a lease) -> ``closed`` after ``half_open_successes`` successes, or ``open`` again
(open time doubling, capped) on a failure. The open time is the provider's ``Retry-After`` when
it gave one.

Every transition happens in one place: a Lua script in Redis (`RedisBreakerStore`), or the same
logic in Python for a single process (`MemoryBreakerStore`). `Breakers` reads states through a
short in-process cache (``cache_s``) and counts plain successes locally, flushing them with the
next write, so a healthy request costs no Redis round trip.

Why a Python twin of the Lua scripts: ``build_router(redis=None)`` is kefu_llm's documented
single-process mode (a program using the library without Redis, ``bench.offline_answers``,
the unit tests), and it needs breakers without Redis. Kefu itself always passes its Redis
(``kefu_core`` builds every router with one), so only the Lua scripts run in a deployment. The
two must change together: the unit tests (tests/unit/adapter/test_breaker_ratelimit.py) check
the twin, tests/integration/adapter/test_shared_state_redis.py the scripts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["BreakerConfig", "Breakers", "MemoryBreakerStore", "RedisBreakerStore", "Snapshot"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    failure_rate: float = 0.5
    min_samples: int = 20
    window_s: float = 60.0
    open_s: float = 30.0
    max_open_s: float = 600.0
    half_open_successes: int = 2
    half_open_probes: int = 1
    probe_lease_s: float = 60.0
    cache_s: float = 1.0


@dataclass(slots=True)
class Snapshot:
    state: str = "closed"  # closed | open | half_open
    open_until: float = 0.0  # epoch seconds
    consecutive: int = 0

    @staticmethod
    def parse(raw: Any) -> Snapshot:
        state, open_until, consecutive = raw
        return Snapshot(_s(state) or "closed", float(open_until or 0), int(consecutive or 0))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


class BreakerStore(Protocol):
    async def snapshots(self, ids: list[str]) -> list[Snapshot]: ...

    async def acquire_probe(self, bid: str, cfg: BreakerConfig) -> tuple[bool, Snapshot]: ...

    async def record(
        self, bid: str, cfg: BreakerConfig, *, ok: bool, extra_ok: int, open_for: float | None
    ) -> Snapshot: ...


# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    state: str = "closed"
    open_until: float = 0.0
    consecutive: int = 0
    win_start: float = 0.0
    win_total: int = 0
    win_fail: int = 0
    half_ok: int = 0
    probes: int = 0
    lease_until: float = 0.0
    open_count: int = 0


def _open_time(cfg: BreakerConfig, open_count: int, retry_after: float | None) -> float:
    if retry_after is not None and retry_after > 0:
        return min(retry_after, cfg.max_open_s)
    return min(cfg.open_s * 2.0 ** max(open_count - 1, 0), cfg.max_open_s)


class MemoryBreakerStore:
    """Breaker state in this process (unit tests, single-process runs)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._states: dict[str, _State] = {}
        self._clock = clock

    def _get(self, bid: str) -> _State:
        st = self._states.get(bid)
        if st is None:
            st = self._states[bid] = _State()
        return st

    async def snapshots(self, ids: list[str]) -> list[Snapshot]:
        out = []
        for bid in ids:
            st = self._states.get(bid)
            out.append(Snapshot(st.state, st.open_until, st.consecutive) if st else Snapshot())
        return out

    async def acquire_probe(self, bid: str, cfg: BreakerConfig) -> tuple[bool, Snapshot]:
        now = self._clock()
        st = self._get(bid)
        granted = False
        if st.state == "closed":
            granted = True
        else:
            if st.state == "open" and now >= st.open_until:
                st.state, st.half_ok, st.probes = "half_open", 0, 0
            if st.state == "half_open" and (
                st.probes < cfg.half_open_probes or now >= st.lease_until
            ):
                if now >= st.lease_until:
                    st.probes = 0
                st.probes += 1
                st.lease_until = now + cfg.probe_lease_s
                granted = True
        return granted, Snapshot(st.state, st.open_until, st.consecutive)

    async def record(
        self, bid: str, cfg: BreakerConfig, *, ok: bool, extra_ok: int, open_for: float | None
    ) -> Snapshot:
        now = self._clock()
        st = self._get(bid)
        if now - st.win_start > cfg.window_s:
            st.win_start, st.win_total, st.win_fail = now, 0, 0
        st.win_total += 1 + extra_ok
        if ok:
            st.consecutive = 0
            if st.state == "half_open":
                st.half_ok += 1
                st.probes = max(st.probes - 1, 0)
                if st.half_ok >= cfg.half_open_successes:
                    st.state, st.open_count, st.half_ok, st.probes = "closed", 0, 0, 0
                    st.win_start, st.win_total, st.win_fail = now, 0, 0
        else:
            st.win_fail += 1
            st.consecutive += 1
            trip = (
                open_for is not None
                or st.state == "half_open"
                or st.consecutive >= cfg.failure_threshold
                or (
                    st.win_total >= cfg.min_samples
                    and st.win_fail / st.win_total > cfg.failure_rate
                )
            )
            if st.state == "open":
                if open_for is not None:
                    st.open_until = max(st.open_until, now + min(open_for, cfg.max_open_s))
            elif trip:
                st.open_count += 1
                st.state, st.half_ok, st.probes = "open", 0, 0
                st.open_until = now + _open_time(cfg, st.open_count, open_for)
        return Snapshot(st.state, st.open_until, st.consecutive)


# ---------------------------------------------------------------------------------------------

_LUA_COMMON = """
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function load(key)
  local v = redis.call('HMGET', key, 'state', 'open_until', 'consec', 'win_start', 'win_total',
    'win_fail', 'half_ok', 'probes', 'lease_until', 'open_count')
  return {state = v[1] or 'closed', open_until = tonumber(v[2] or '0'),
    consec = tonumber(v[3] or '0'), win_start = tonumber(v[4] or '0'),
    win_total = tonumber(v[5] or '0'), win_fail = tonumber(v[6] or '0'),
    half_ok = tonumber(v[7] or '0'), probes = tonumber(v[8] or '0'),
    lease_until = tonumber(v[9] or '0'), open_count = tonumber(v[10] or '0')}
end
local function save(key, st, ttl)
  redis.call('HSET', key, 'state', st.state, 'open_until', tostring(st.open_until),
    'consec', st.consec,
    'win_start', tostring(st.win_start), 'win_total', st.win_total, 'win_fail', st.win_fail,
    'half_ok', st.half_ok, 'probes', st.probes, 'lease_until', tostring(st.lease_until),
    'open_count', st.open_count)
  redis.call('EXPIRE', key, ttl)
end
"""

# KEYS[1] breaker; ARGV: probes, lease_s, ttl
_LUA_PROBE = (
    _LUA_COMMON
    + """
local now = now_s()
local st = load(KEYS[1])
local granted = 0
if st.state == 'closed' then
  granted = 1
else
  if st.state == 'open' and now >= st.open_until then
    st.state = 'half_open'; st.half_ok = 0; st.probes = 0
  end
  if st.state == 'half_open' and (st.probes < tonumber(ARGV[1]) or now >= st.lease_until) then
    if now >= st.lease_until then st.probes = 0 end
    st.probes = st.probes + 1
    st.lease_until = now + tonumber(ARGV[2])
    granted = 1
  end
  save(KEYS[1], st, tonumber(ARGV[3]))
end
return {granted, st.state, tostring(st.open_until), st.consec}
"""
)

# KEYS[1] breaker; ARGV: ok, extra_ok, open_for ('' = none), threshold, rate, min_samples,
# window_s, open_s, max_open_s, half_open_successes, ttl
_LUA_RECORD = (
    _LUA_COMMON
    + """
local now = now_s()
local st = load(KEYS[1])
local ok = ARGV[1] == '1'
local open_for = tonumber(ARGV[3])
local max_open = tonumber(ARGV[9])
if now - st.win_start > tonumber(ARGV[7]) then
  st.win_start = now; st.win_total = 0; st.win_fail = 0
end
st.win_total = st.win_total + 1 + tonumber(ARGV[2])
if ok then
  st.consec = 0
  if st.state == 'half_open' then
    st.half_ok = st.half_ok + 1
    st.probes = math.max(st.probes - 1, 0)
    if st.half_ok >= tonumber(ARGV[10]) then
      st.state = 'closed'; st.open_count = 0; st.half_ok = 0; st.probes = 0
      st.win_start = now; st.win_total = 0; st.win_fail = 0
    end
  end
else
  st.win_fail = st.win_fail + 1
  st.consec = st.consec + 1
  local trip = open_for ~= nil or st.state == 'half_open' or st.consec >= tonumber(ARGV[4])
    or (st.win_total >= tonumber(ARGV[6]) and st.win_fail / st.win_total > tonumber(ARGV[5]))
  if st.state == 'open' then
    if open_for ~= nil then
      st.open_until = math.max(st.open_until, now + math.min(open_for, max_open))
    end
  elseif trip then
    st.open_count = st.open_count + 1
    st.state = 'open'; st.half_ok = 0; st.probes = 0
    local dur
    if open_for ~= nil and open_for > 0 then
      dur = math.min(open_for, max_open)
    else
      dur = math.min(tonumber(ARGV[8]) * (2 ^ math.max(st.open_count - 1, 0)), max_open)
    end
    st.open_until = now + dur
  end
end
save(KEYS[1], st, tonumber(ARGV[11]))
return {st.state, tostring(st.open_until), st.consec}
"""
)


class RedisBreakerStore:
    """Breaker state in Redis hashes, changed only by Lua scripts (atomic across containers)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._probe = redis.register_script(_LUA_PROBE)
        self._record = redis.register_script(_LUA_RECORD)

    def _key(self, bid: str) -> str:
        return f"{self._prefix}br:{{{bid}}}"

    @staticmethod
    def _ttl(cfg: BreakerConfig) -> int:
        return int(max(cfg.max_open_s, cfg.window_s, cfg.probe_lease_s) * 4) + 60

    async def snapshots(self, ids: list[str]) -> list[Snapshot]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for bid in ids:
                pipe.hmget(self._key(bid), "state", "open_until", "consec")
            rows = await pipe.execute()
        return [Snapshot.parse(r) for r in rows]

    async def acquire_probe(self, bid: str, cfg: BreakerConfig) -> tuple[bool, Snapshot]:
        raw = await self._probe(
            keys=[self._key(bid)], args=[cfg.half_open_probes, cfg.probe_lease_s, self._ttl(cfg)]
        )
        return bool(int(raw[0])), Snapshot.parse(raw[1:])

    async def record(
        self, bid: str, cfg: BreakerConfig, *, ok: bool, extra_ok: int, open_for: float | None
    ) -> Snapshot:
        raw = await self._record(
            keys=[self._key(bid)],
            args=[
                "1" if ok else "0",
                extra_ok,
                "" if open_for is None else repr(float(open_for)),
                cfg.failure_threshold,
                repr(float(cfg.failure_rate)),
                cfg.min_samples,
                repr(float(cfg.window_s)),
                repr(float(cfg.open_s)),
                repr(float(cfg.max_open_s)),
                cfg.half_open_successes,
                self._ttl(cfg),
            ],
        )
        return Snapshot.parse(raw)


# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Cached:
    snap: Snapshot
    fetched: float
    pending_ok: int = 0


class Breakers:
    """The breakers of one router: cached reads, batched successes, decisions."""

    def __init__(
        self, store: BreakerStore, cfg: BreakerConfig, *, clock: Any = time.monotonic
    ) -> None:
        self.store = store
        self.cfg = cfg
        self._cache: dict[str, _Cached] = {}
        self._clock = clock
        self._wall = time.time
        # Called with ``"provider"`` or ``"key"`` when a failure opens a breaker this process
        # last saw closed or half-open (metrics; never given the breaker's id). Must not raise.
        self.on_open: Callable[[str], None] | None = None

    async def _snapshots(self, ids: list[str]) -> list[_Cached]:
        now = self._clock()
        stale = [
            b
            for b in ids
            if (c := self._cache.get(b)) is None or now - c.fetched > self.cfg.cache_s
        ]
        if stale:
            snaps = await self.store.snapshots(stale)
            for bid, snap in zip(stale, snaps, strict=True):
                c = self._cache.get(bid)
                if c is None:
                    self._cache[bid] = _Cached(snap, now)
                else:
                    c.snap, c.fetched = snap, now
        return [self._cache[b] for b in ids]

    async def allow(self, ids: list[str]) -> tuple[bool, float]:
        """Whether a call may go through every breaker in ``ids``; else seconds until it may.

        A breaker whose open time is over grants a half-open probe (at most ``probes`` at once
        across all processes).
        """
        cached = await self._snapshots(ids)
        wall = self._wall()
        wait = 0.0
        for c in cached:
            if c.snap.state == "open" and wall < c.snap.open_until:
                wait = max(wait, c.snap.open_until - wall)
        if wait > 0:
            return False, wait
        for bid, c in zip(ids, cached, strict=True):
            if c.snap.state != "closed":
                granted, snap = await self.store.acquire_probe(bid, self.cfg)
                self._remember(bid, snap)
                if not granted:
                    return False, max(snap.open_until - wall, 0.5)
        return True, 0.0

    def _remember(self, bid: str, snap: Snapshot) -> None:
        c = self._cache.get(bid)
        if c is None:
            self._cache[bid] = _Cached(snap, self._clock())
        else:
            c.snap, c.fetched = snap, self._clock()

    async def success(self, bid: str) -> None:
        c = self._cache.get(bid)
        if c is not None and c.snap.state == "closed" and c.snap.consecutive == 0:
            c.pending_ok += 1  # flushed with the next write: no round trip for a healthy call
            if c.pending_ok < 1000:
                return
            extra = c.pending_ok - 1
        else:
            extra = c.pending_ok if c is not None else 0
        if c is not None:
            c.pending_ok = 0
        snap = await self.store.record(bid, self.cfg, ok=True, extra_ok=extra, open_for=None)
        self._remember(bid, snap)

    async def failure(self, bid: str, *, open_for: float | None = None) -> Snapshot:
        c = self._cache.get(bid)
        extra = 0
        before = "closed"
        if c is not None:
            extra, c.pending_ok = c.pending_ok, 0
            before = c.snap.state
        snap = await self.store.record(bid, self.cfg, ok=False, extra_ok=extra, open_for=open_for)
        self._remember(bid, snap)
        if snap.state == "open" and before != "open" and self.on_open is not None:
            self.on_open("key" if bid.startswith("k:") else "provider")
        return snap
