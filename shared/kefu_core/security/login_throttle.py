"""Sign-in throttling that slows a password guesser down without locking the owner out.

Two limits, both in Redis (shared by every process), both answered with 429 and Retry-After:

- per (tenant, e-mail, source address): the first :data:`FREE_FAILURES` wrong passwords cost
  nothing; after that each failure makes the next attempt from that address wait twice as long
  (1 s, 2 s, 4 s ... up to :data:`MAX_DELAY_S`). The count is forgotten after
  :data:`FORGET_AFTER_S` without a failure, and a successful sign-in clears it.
- per source address: at most :data:`ADDRESS_MAX_FAILURES` wrong passwords in
  :data:`ADDRESS_WINDOW_S`, whatever the accounts, so one address cannot guess its way through
  many accounts.

Nothing is counted per e-mail address alone: a third party guessing from its own address never
delays the owner signing in from theirs. The source address is the request's client address
(:func:`client_address`); the request's own ``X-Forwarded-For`` is never read here. When Redis
fails, sign-in is not throttled (and says so in the log)
rather than refused: scrypt still makes each guess expensive.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request

from kefu_core.infra.errors import RateLimited, answers
from kefu_core.security.rate_limits import address_bucket

__all__ = [
    "ADDRESS_MAX_FAILURES",
    "ADDRESS_WINDOW_S",
    "FREE_FAILURES",
    "MAX_DELAY_S",
    "LoginThrottle",
    "Throttled",
    "client_address",
    "delay_after",
]

logger = logging.getLogger("kefu.login_throttle")

FREE_FAILURES = 3
MAX_DELAY_S = 900
FORGET_AFTER_S = 3600
ADDRESS_MAX_FAILURES = 50
ADDRESS_WINDOW_S = 900


@answers(detail="too many attempts; try again later")
class Throttled(RateLimited):
    """Too many failures: try again in ``retry_after`` seconds."""


def delay_after(failures: int) -> int:
    """Seconds the next attempt must wait after ``failures`` consecutive failures."""
    if failures <= FREE_FAILURES:
        return 0
    return int(min(MAX_DELAY_S, 2 ** min(failures - FREE_FAILURES - 1, 20)))


def client_address(request: Request) -> str:
    """Whom an attempt is counted against: the client address (the socket peer, which uvicorn
    takes from ``X-Forwarded-For`` only for the proxies in ``FORWARDED_ALLOW_IPS``, or API
    Gateway's ``sourceIp``, which Mangum puts in the ASGI scope), an IPv6 client as its /64."""
    return address_bucket(request.client.host if request.client and request.client.host
                          else "unknown")


class LoginThrottle:
    def __init__(self, redis: aioredis.Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _pair(self, tenant_id: str, email: str, address: str) -> str:
        digest = hashlib.sha256(
            f"{tenant_id}\x00{email.strip().lower()}\x00{address}".encode()).hexdigest()[:32]
        return f"{self._prefix}login:pair:{digest}"

    def _address(self, address: str) -> str:
        digest = hashlib.sha256(address.encode()).hexdigest()[:32]
        return f"{self._prefix}login:addr:{digest}"

    async def check(self, *, tenant_id: str, email: str, address: str) -> None:
        """Raise :class:`Throttled` when this attempt must wait."""
        try:
            until, count, ttl = await self._read(tenant_id, email, address)
        except RedisError:
            logger.warning("sign-in throttle unavailable: attempts are not limited")
            return
        now = time.time()
        if until > now:
            raise Throttled(math.ceil(until - now))
        if count >= ADDRESS_MAX_FAILURES:
            raise Throttled(ttl if ttl > 0 else ADDRESS_WINDOW_S)

    async def _read(self, tenant_id: str, email: str, address: str) -> tuple[float, int, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._pair(tenant_id, email, address), "until")
            pipe.get(self._address(address))
            pipe.ttl(self._address(address))
            until, count, ttl = await pipe.execute()
        return float(until or 0), int(count or 0), int(ttl)

    async def failed(self, *, tenant_id: str, email: str, address: str) -> None:
        pair, per_address = self._pair(tenant_id, email, address), self._address(address)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(pair, "failures", 1)
                pipe.expire(pair, FORGET_AFTER_S)
                pipe.set(per_address, 0, ex=ADDRESS_WINDOW_S, nx=True)  # a fixed window
                pipe.incr(per_address)
                failures, *_ = await pipe.execute()
            wait = delay_after(int(failures))
            if wait:
                await self._redis.hset(pair, "until", str(time.time() + wait))
        except RedisError:
            logger.warning("sign-in throttle unavailable: a failure was not counted")

    async def succeeded(self, *, tenant_id: str, email: str, address: str) -> None:
        try:
            await self._redis.delete(self._pair(tenant_id, email, address))
        except RedisError:
            logger.warning("sign-in throttle unavailable: a success was not recorded")
