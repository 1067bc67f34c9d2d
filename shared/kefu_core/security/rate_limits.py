"""Fixed-window request counters in Redis, shared by every replica and Lambda container.

:func:`hit` counts one request against ``limit`` per ``window_s`` seconds and answers how long
the caller must wait (0: allowed). The counter and its expiry are set in one transaction, so
a counter never outlives its window. When Redis fails, the request is allowed and a warning is
logged: a limit must not take the widget down with the cache.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kefu_core.infra.errors import RateLimited

__all__ = ["address_bucket", "admit", "counter_key", "hit"]

logger = logging.getLogger("kefu.rate_limits")


def address_bucket(address: str) -> str:
    """What one client is counted as: its IPv4 address, or the /64 network of its IPv6
    address (one host is routinely given a whole /64, so single IPv6 addresses are free)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def counter_key(prefix: str, scope: str, value: str) -> str:
    """A Redis key for ``value`` (an address, a widget key) that does not store it in clear."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:24]
    return f"{prefix}rate:{scope}:{digest}"


async def hit(redis: aioredis.Redis, key: str, *, limit: int, window_s: int) -> int:
    """Count one request; 0 when it is within ``limit`` (0 = unlimited), else the seconds until
    the window ends (at least 1), to send as ``Retry-After``."""
    if limit <= 0:
        return 0
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window_s, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
            _, count, ttl = await pipe.execute()
    except RedisError:
        logger.warning("rate limit not checked: Redis unavailable", extra={"scope": key})
        return 0
    if int(count) <= limit:
        return 0
    return max(1, int(ttl)) if int(ttl) > 0 else window_s


async def admit(redis: aioredis.Redis, key: str, *, limit: int, window_s: int) -> None:
    """Count one request; :class:`RateLimited` (with its ``Retry-After``) past ``limit``."""
    wait = await hit(redis, key, limit=limit, window_s=window_s)
    if wait:
        raise RateLimited(wait)
