"""A real gateway replica (uvicorn in a thread) on real PostgreSQL and Redis, for the fuzz tests.

The assistant answers through the offline engine. Each module gets its own database and Redis
key prefix. Connections come from their own 127.0.0.x source address per test, so the per-IP
connection limit of one test does not leak into another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET, core_settings
from tests.support.gateway import RunningGateway, run_gateway


@pytest.fixture(scope="module")
def fuzz_db(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="module")
def fuzz_gateway(fuzz_db: str, redis_url: str) -> Iterator[RunningGateway]:
    prefix = f"kefu-test:fuzz:{uuid.uuid4().hex[:8]}:"
    settings = core_settings(pg_dsn=fuzz_db, redis_url=redis_url, redis_prefix=prefix)
    with run_gateway(settings, replica_id="fuzz") as running:
        yield running
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def visitor_token(visitor: str | None = None) -> str:
    return issue_token(secrets=[SECRET], tenant_id="fuzz",
                       subject=visitor or f"v-{uuid.uuid4().hex}", role="visitor", ttl_s=600)


class Visitor:
    """A WebSocket client that keeps every frame it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.acks: dict[str, dict[str, Any]] = {}

    async def send(self, frame: dict[str, Any] | str | bytes, *, text: bool | None = None) -> None:
        if isinstance(frame, dict):
            frame = json.dumps(frame, ensure_ascii=False)
        await self.ws.send(frame, text=text)

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            frame: dict[str, Any] = json.loads(await self.ws.recv())
        self.frames.append(frame)
        if frame.get("type") == "ack":
            self.acks[frame["client_msg_id"]] = frame
        return frame

    async def until(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                if frame.get("type") == kind:
                    return frame

    async def ping(self) -> None:
        """The connection still works: a ping frame is answered with pong."""
        await self.send({"action": "ping"})
        await self.until("pong")


@contextlib.asynccontextmanager
async def connect(gw: RunningGateway, *, source: str = "127.0.0.1",
                  token: str | None = None) -> AsyncIterator[Visitor]:
    async with websockets.connect(f"{gw.ws}?token={token or visitor_token()}", open_timeout=10,
                                  local_addr=(source, 0), max_size=None) as ws:
        yield Visitor(ws)


def stored_visitor_messages(dsn: str, conversation_id: str) -> dict[str, int]:
    """client_msg_id -> seq of every visitor message PostgreSQL holds for the conversation."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT client_msg_id, seq FROM messages WHERE conversation_id = %s"
            " AND role = 'visitor'", (conversation_id,)).fetchall()
    return {r[0]: r[1] for r in rows}
