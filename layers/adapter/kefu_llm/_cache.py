"""Exact-match response cache: tenant + engine + knowledge-base version + prompt -> answer.

Keys are SHA-256 digests (no prompt text or PII in key names). A small in-process LRU with the
same TTL (`cachetools.TTLCache`) sits in front of Redis; several candidate keys (one per engine
of the chain) are read in one MGET.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from cachetools import TTLCache

from ._types import ChatRequest

__all__ = ["ResponseCache", "cache_key"]


def cache_key(request: ChatRequest, engine: str) -> str:
    payload = json.dumps(
        [
            request.tenant_id,
            engine,
            request.kb_version,
            [(m.role, m.content) for m in request.messages],
            request.passages,
            request.max_tokens,
            request.temperature,
            request.language,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    def __init__(
        self,
        *,
        ttl_s: float,
        lru_size: int = 512,
        redis: Any | None = None,
        prefix: str = "kefu:",
        clock: Any = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        # digest -> (engine, text); None when the cache is off or has no local part
        self._local: TTLCache[str, tuple[str, str]] | None = None
        if ttl_s > 0 and lru_size > 0:
            self._local = TTLCache(maxsize=lru_size, ttl=ttl_s, timer=clock)
        self._redis = redis
        self._prefix = prefix

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def _rkey(self, digest: str) -> str:
        return f"{self._prefix}rc:{digest}"

    @property
    def redis(self) -> Any:
        return self._redis

    def local_get(self, digests: list[tuple[str, str]]) -> tuple[str, str] | None:
        """The first in-process hit among ``(engine, digest)`` pairs, as ``(engine, text)``."""
        if self._local is None:
            return None
        for _engine, digest in digests:
            hit = self._local.get(digest)
            if hit is not None:
                return hit
        return None

    def queue_get(self, pipe: Any, digests: list[tuple[str, str]]) -> None:
        pipe.mget([self._rkey(d) for _, d in digests])

    def finish_get(
        self, digests: list[tuple[str, str]], values: list[Any]
    ) -> tuple[str, str] | None:
        for (engine, digest), raw in zip(digests, values, strict=True):
            if raw is not None:
                text = raw.decode() if isinstance(raw, bytes) else raw
                self.put_local(engine, digest, text)
                return engine, text
        return None

    async def get(self, digests: list[tuple[str, str]]) -> tuple[str, str] | None:
        """The first hit among ``(engine, digest)`` pairs, as ``(engine, text)``."""
        if not self.enabled or not digests:
            return None
        hit = self.local_get(digests)
        if hit is not None or self._redis is None:
            return hit
        values = await self._redis.mget([self._rkey(d) for _, d in digests])
        return self.finish_get(digests, values)

    def put_local(self, engine: str, digest: str, text: str) -> None:
        if self._local is not None:
            self._local[digest] = (engine, text)

    async def put_remote(self, digest: str, text: str) -> None:
        if self.enabled and self._redis is not None:
            await self._redis.set(self._rkey(digest), text, px=int(self.ttl_s * 1000))

    async def put(self, engine: str, digest: str, text: str) -> None:
        self.put_local(engine, digest, text)
        await self.put_remote(digest, text)
