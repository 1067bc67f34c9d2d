"""Token-bucket rate limits (requests and tokens per minute) per tenant and per key.

One scope (``tenant:<id>`` or ``key:<engine>:<key id>``) has up to two buckets, each holding a
minute's worth and refilling continuously. `acquire` takes from all buckets of a scope or from
none, and says how long to wait when it cannot: atomically in Redis (one Lua script on one hash,
server clock) or in this process. A scope found empty is remembered locally until it refills,
so a flood of refused requests does not hit Redis either. ``force`` takes even past zero (used
to charge the completion tokens after the answer).

Why a Python twin of the Lua script (`MemoryRateLimiter`): ``build_router(redis=None)`` is
kefu_llm's documented single-process mode (a program using the library without Redis,
``bench.offline_answers``, the unit tests), and it needs rate limits without Redis. Kefu
itself always passes its Redis, so only the Lua script runs in a deployment. The two must
change together: tests/unit/adapter/test_breaker_ratelimit.py checks the twin,
tests/integration/adapter/test_shared_state_redis.py the script.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import TLRUCache
from redis.exceptions import NoScriptError

__all__ = ["Limit", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]


@dataclass(frozen=True, slots=True)
class Limit:
    """``per_minute`` units a minute; ``cost`` units for this call."""

    name: str  # "req" | "tok"
    per_minute: int
    cost: float


class RateLimiter(Protocol):
    async def acquire(self, scope: str, limits: list[Limit], *, force: bool = False) -> float:
        """0.0 when granted, else the seconds to wait before the call could be granted."""
        ...


def _bucket_math(tokens: float, last: float, now: float, per_minute: int) -> float:
    rate = per_minute / 60.0
    return min(float(per_minute), tokens + max(now - last, 0.0) * rate)


def _refused_until(_scope: str, until: float, _now: float) -> float:
    return until


class MemoryRateLimiter:
    """Buckets in this process: the twin of `_LUA_ACQUIRE` for ``build_router(redis=None)``."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._clock = clock

    async def acquire(self, scope: str, limits: list[Limit], *, force: bool = False) -> float:
        now = self._clock()
        levels = []
        wait = 0.0
        for lim in limits:
            if lim.per_minute <= 0:
                continue
            tokens, last = self._buckets.get((scope, lim.name), (float(lim.per_minute), now))
            tokens = _bucket_math(tokens, last, now, lim.per_minute)
            cost = min(lim.cost, float(lim.per_minute))
            if tokens < cost:
                wait = max(wait, (cost - tokens) * 60.0 / lim.per_minute)
            levels.append((lim, tokens))
        if wait > 0 and not force:
            return wait
        for lim, tokens in levels:
            self._buckets[(scope, lim.name)] = (tokens - lim.cost, now)
        return 0.0


# KEYS[1]: the scope hash. ARGV: force, then triples (name, per_minute, cost).
_LUA_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local force = ARGV[1] == '1'
local n = (#ARGV - 1) / 3
local levels = {}
local wait = 0
for i = 0, n - 1 do
  local name = ARGV[2 + i * 3]
  local per_min = tonumber(ARGV[3 + i * 3])
  local cost = tonumber(ARGV[4 + i * 3])
  local v = redis.call('HMGET', KEYS[1], name, name .. ':ts')
  local tokens = tonumber(v[1] or per_min)
  local last = tonumber(v[2] or now)
  local rate = per_min / 60.0
  tokens = math.min(per_min, tokens + math.max(now - last, 0) * rate)
  local need = math.min(cost, per_min)
  if tokens < need then
    wait = math.max(wait, (need - tokens) / rate)
  end
  levels[#levels + 1] = {name, tokens - cost}
end
if wait > 0 and not force then
  return tostring(wait)
end
for _, lv in ipairs(levels) do
  redis.call('HSET', KEYS[1], lv[1], tostring(lv[2]), lv[1] .. ':ts', tostring(now))
end
redis.call('EXPIRE', KEYS[1], 120)
return '0'
"""


class RedisRateLimiter:
    """Buckets in Redis, one hash per scope, so every container and replica shares them."""

    def __init__(self, redis: Any, prefix: str, *, clock: Any = time.monotonic) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_LUA_ACQUIRE)
        # Scopes Redis refused lately -> when they could be granted again (each its own expiry).
        self._refused: TLRUCache[str, float] = TLRUCache(
            maxsize=10_000, ttu=_refused_until, timer=clock
        )
        self._clock = clock

    @property
    def redis(self) -> Any:
        return self._redis

    def prepare(
        self, scope: str, limits: list[Limit], *, force: bool = False
    ) -> float | list[Any] | None:
        """Local part of `acquire`: a wait (refused from the local copy), ``None`` (nothing to
        check) or the script arguments to send (see `queue` / `finish`)."""
        active = [lim for lim in limits if lim.per_minute > 0]
        if not active:
            return None
        if not force:
            now: float = self._clock()
            until = self._refused.get(scope)
            if until is not None and until > now:
                return until - now
        args: list[Any] = ["1" if force else "0"]
        for lim in active:
            args += [lim.name, lim.per_minute, repr(float(lim.cost))]
        return args

    def queue(self, pipe: Any, scope: str, args: list[Any]) -> None:
        """Add the script call to a pipeline (one round trip with other commands).

        By its SHA alone: a registered `Script` would make the pipeline ask ``SCRIPT EXISTS``
        first, a second round trip. Execute the pipeline with ``raise_on_error=False`` and pass
        its result to `finish`, which loads the script when Redis does not know it yet.
        """
        pipe.evalsha(self._script.sha, 1, self._key(scope), *args)

    async def finish(self, scope: str, raw: Any, args: list[Any]) -> float:
        if isinstance(raw, Exception):
            if not isinstance(raw, NoScriptError):
                raise raw
            raw = await self._script(keys=[self._key(scope)], args=args)
        wait = float(raw.decode() if isinstance(raw, bytes) else raw)
        if wait > 0:
            self._refused[scope] = self._clock() + wait
        return wait

    def _key(self, scope: str) -> str:
        return f"{self._prefix}rl:{{{scope}}}"

    async def acquire(self, scope: str, limits: list[Limit], *, force: bool = False) -> float:
        prepared = self.prepare(scope, limits, force=force)
        if prepared is None:
            return 0.0
        if isinstance(prepared, float):
            return prepared
        raw = await self._script(keys=[self._key(scope)], args=prepared)
        return await self.finish(scope, raw, prepared)
