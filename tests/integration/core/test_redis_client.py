"""The core's Redis client (kefu_core.deps.redis_client) on a real Redis."""

from __future__ import annotations

import asyncio
from importlib import metadata

import pytest

from kefu_core.deps import redis_client
from kefu_core.infra.settings import Settings


async def test_new_connections_do_not_read_package_metadata(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the core's client, and a count of package-metadata look-ups (a scan of sys.path)
    looked_up: list[str] = []
    real = metadata.version

    def counting(name: str) -> str:
        looked_up.append(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", counting)
    client = redis_client(Settings(redis_url=redis_url))
    # WHEN twenty commands at once open twenty connections
    try:
        answers = await asyncio.gather(*(client.ping() for _ in range(20)))
    finally:
        await client.aclose()
    # THEN every one was answered and none of the connections looked its version up
    assert all(answers)
    assert looked_up == []
