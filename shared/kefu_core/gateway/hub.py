"""Connections held by this replica, and delivery to those held by the others.

Each local connection has a bounded outbound queue drained by its own writer task, so a slow
client never holds up a reply streaming to the others; a client that falls too far behind is
disconnected (it resumes with ``sync``). Each replica subscribes to its own Redis channel; the
owner of every connection is recorded in Redis, and a post for a connection held elsewhere is
published to the owner's channel. No subscriber on that channel means the owner is gone: the
post fails with :class:`GoneError` exactly as API Gateway answers 410.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketState

from kefu_core.infra.errors import GoneError, TransportError

__all__ = ["Hub", "LocalConnection"]

logger = logging.getLogger("kefu.gateway.hub")
_CLOSE = object()


@dataclass
class LocalConnection:
    connection_id: str
    websocket: WebSocket
    connected_at: float
    source_ip: str
    user_agent: str | None
    last_active_at: float = field(default_factory=time.time)
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    writer: asyncio.Task[None] | None = None


class Hub:
    """The gateway's poster: in-process delivery plus the Redis pub/sub bridge."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, replica_id: str, ttl_s: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.replica_id = replica_id
        self._ttl = ttl_s
        self.local: dict[str, LocalConnection] = {}
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: Any = None

    # -- keys -------------------------------------------------------------------------------
    def _owner_key(self, connection_id: str) -> str:
        return f"{self._prefix}gw:owner:{connection_id}"

    def _channel(self, replica_id: str) -> str:
        return f"{self._prefix}gw:replica:{replica_id}"

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._channel(self.replica_id))
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(RedisError):
                await self._pubsub.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        self._on_remote(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                logger.warning("pub/sub listener lost Redis; resubscribing", exc_info=True)
                await asyncio.sleep(0.5)
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.subscribe(self._channel(self.replica_id))

    def _on_remote(self, raw: bytes | str) -> None:
        try:
            envelope = json.loads(raw)
        except ValueError:
            return
        conn = self.local.get(envelope.get("id", ""))
        if conn is None:
            return
        if envelope.get("op") == "close":
            self._enqueue(conn, _CLOSE)
        elif envelope.get("op") == "post":
            self._enqueue(conn, envelope.get("data", ""))

    # -- local connections ------------------------------------------------------------------
    async def register(self, conn: LocalConnection) -> None:
        self.local[conn.connection_id] = conn
        conn.writer = asyncio.create_task(self._write(conn))
        try:
            await self._redis.set(
                self._owner_key(conn.connection_id), self.replica_id, ex=self._ttl
            )
        except RedisError:
            logger.warning("cannot record connection owner", exc_info=True)

    async def unregister(self, connection_id: str) -> None:
        conn = self.local.pop(connection_id, None)
        if conn and conn.writer:
            conn.writer.cancel()
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._owner_key(connection_id))

    def _enqueue(self, conn: LocalConnection, item: Any) -> None:
        try:
            conn.queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("slow consumer", extra={"connection_id": conn.connection_id})
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    conn.queue.get_nowait()
            conn.queue.put_nowait(_CLOSE)

    async def _write(self, conn: LocalConnection) -> None:
        ws = conn.websocket
        try:
            while True:
                item = await conn.queue.get()
                if item is _CLOSE:
                    with contextlib.suppress(Exception):
                        await ws.close(code=1000)
                    return
                if ws.application_state != WebSocketState.CONNECTED:
                    return
                await ws.send_text(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.info("write failed; closing", extra={"connection_id": conn.connection_id})
            with contextlib.suppress(Exception):
                await ws.close(code=1011)

    # -- the Poster protocol ----------------------------------------------------------------
    async def post(self, connection_id: str, data: str) -> None:
        conn = self.local.get(connection_id)
        if conn is not None:
            self._enqueue(conn, data)
            return
        await self._remote(connection_id, {"op": "post", "id": connection_id, "data": data})

    async def close(self, connection_id: str) -> None:
        conn = self.local.get(connection_id)
        if conn is not None:
            self._enqueue(conn, _CLOSE)
            return
        with contextlib.suppress(GoneError):
            await self._remote(connection_id, {"op": "close", "id": connection_id})

    async def owner(self, connection_id: str) -> str | None:
        if connection_id in self.local:
            return self.replica_id
        try:
            raw = await self._redis.get(self._owner_key(connection_id))
        except RedisError as exc:
            raise TransportError("cannot look up the connection owner") from exc
        return raw.decode() if isinstance(raw, bytes) else raw

    async def _remote(self, connection_id: str, envelope: dict[str, str]) -> None:
        owner = await self.owner(connection_id)
        if owner is None or owner == self.replica_id:
            raise GoneError(connection_id)
        try:
            receivers = await self._redis.publish(self._channel(owner), json.dumps(envelope))
        except RedisError as exc:
            raise TransportError("cannot reach the owning replica") from exc
        if receivers == 0:  # the owning replica is gone, and so is the connection
            with contextlib.suppress(RedisError):
                await self._redis.delete(self._owner_key(connection_id))
            raise GoneError(connection_id)
