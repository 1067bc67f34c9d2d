"""Flood limits of one gateway replica: frames per connection and new connections per IP.

Token buckets in memory: they protect this process. Tenant-wide limits on LLM use are the
adapter's (shared through Redis).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from cachetools import TTLCache

__all__ = ["Bucket", "FloodGuard"]


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FloodGuard:
    def __init__(
        self,
        *,
        frames_per_s: float = 10,
        frame_burst: float = 30,
        connects_per_s: float = 50,
        connect_burst: float = 200,
        max_ips: int = 100_000,
    ) -> None:
        self._frame = (frames_per_s, frame_burst)
        self._connect = (connects_per_s, connect_burst)
        self._frames: dict[str, Bucket] = {}
        # An address idle for burst/rate seconds has a full bucket again: forgetting it then
        # changes nothing. Past max_ips addresses, the least recently seen goes first.
        idle_s = connect_burst / connects_per_s if connects_per_s > 0 else math.inf
        self._ips: TTLCache[str, Bucket] = TTLCache(maxsize=max_ips, ttl=idle_s)

    def allow_message(self, connection_id: str) -> bool:
        now = time.monotonic()
        bucket = self._frames.get(connection_id)
        if bucket is None:
            rate, burst = self._frame
            bucket = self._frames[connection_id] = Bucket(rate, burst, burst, now)
        return bucket.take(now)

    def allow_connect(self, ip: str) -> bool:
        now = time.monotonic()
        bucket = self._ips.get(ip)
        if bucket is None:
            rate, burst = self._connect
            bucket = Bucket(rate, burst, burst, now)
        self._ips[ip] = bucket  # seen now: kept for another idle period
        return bucket.take(now)

    def forget(self, connection_id: str) -> None:
        self._frames.pop(connection_id, None)
