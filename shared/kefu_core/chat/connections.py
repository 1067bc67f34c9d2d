"""The connection registry in Redis: connection id -> who and which conversation, with a TTL.

Keys (all under the configured prefix):
- ``conn:{connection_id}``: JSON record, expires with the connection's maximum lifetime;
- ``conv:{conversation_id}:conns``: set of connection ids watching a conversation;
- ``tenant:{tenant_id}:agents``: set of staff (agent and admin) connection ids;
- ``tenant:{tenant_id}:agent:{agent_id}:conns``: set of one agent's connection ids (the console
  may be open in several tabs); the handoff module reads it to know who is online;
- ``tenant:{tenant_id}:visitor:{visitor_id}:waiting``: a visitor's connections that have no
  conversation yet (a page view starts none), attached all at once when one starts.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import RedisError

from kefu_core.infra.errors import StoreError
from kefu_core.security.roles import STAFF_ROLES, TokenRole

__all__ = ["ConnectionRecord", "ConnectionRegistry"]


class ConnectionRecord(BaseModel):
    connection_id: str
    tenant_id: str
    subject: str
    role: TokenRole
    name: str | None = None
    conversation_id: str | None = None
    connected_at: float
    source_ip: str | None = None
    domain_name: str | None = None
    stage: str | None = None
    token_version: int | None = None  # staff: the agent token version (agent_auth)
    browser: str | None = None  # visitors: from the handshake's User-Agent (visitor_context)
    country: str | None = None  # visitors: from a CDN's country header, when there is one


class ConnectionRegistry:
    def __init__(self, redis: aioredis.Redis, *, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s

    def _conn(self, connection_id: str) -> str:
        return f"{self._prefix}conn:{connection_id}"

    def _watchers(self, conversation_id: str) -> str:
        return f"{self._prefix}conv:{conversation_id}:conns"

    def _agents(self, tenant_id: str) -> str:
        return f"{self._prefix}tenant:{tenant_id}:agents"

    def agent_conns_key(self, tenant_id: str, agent_id: str) -> str:
        return f"{self._prefix}tenant:{tenant_id}:agent:{agent_id}:conns"

    def _waiting(self, tenant_id: str, visitor_id: str) -> str:
        return f"{self._prefix}tenant:{tenant_id}:visitor:{visitor_id}:waiting"

    async def add(self, record: ConnectionRecord) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._conn(record.connection_id), record.model_dump_json(), ex=self._ttl)
                if record.role == "visitor" and not record.conversation_id:
                    waiting = self._waiting(record.tenant_id, record.subject)
                    pipe.sadd(waiting, record.connection_id)
                    pipe.expire(waiting, self._ttl)
                if record.conversation_id:
                    key = self._watchers(record.conversation_id)
                    pipe.sadd(key, record.connection_id)
                    pipe.expire(key, self._ttl)
                if record.role in STAFF_ROLES:
                    pipe.sadd(self._agents(record.tenant_id), record.connection_id)
                    own = self.agent_conns_key(record.tenant_id, record.subject)
                    pipe.sadd(own, record.connection_id)
                    pipe.expire(own, self._ttl)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError("cannot record connection") from exc

    async def attach(self, record: ConnectionRecord) -> None:
        """Store a visitor connection's record again, now with its conversation, and let it
        watch that conversation; the record keeps its expiry."""
        assert record.conversation_id is not None
        try:
            key = self._watchers(record.conversation_id)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._conn(record.connection_id), record.model_dump_json(),
                         keepttl=True)
                pipe.srem(self._waiting(record.tenant_id, record.subject), record.connection_id)
                pipe.sadd(key, record.connection_id)
                pipe.expire(key, self._ttl)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError("cannot attach connection") from exc

    async def waiting(self, tenant_id: str, visitor_id: str) -> list[str]:
        """A visitor's connections that have no conversation yet."""
        try:
            members = await self._redis.smembers(self._waiting(tenant_id, visitor_id))
        except RedisError as exc:
            raise StoreError("cannot read connections") from exc
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        try:
            raw = await self._redis.get(self._conn(connection_id))
        except RedisError as exc:
            raise StoreError("cannot read connection") from exc
        return ConnectionRecord.model_validate_json(raw) if raw else None

    async def remove(
        self, connection_id: str, *, conversation_id: str | None = None
    ) -> ConnectionRecord | None:
        """Forget a connection; ``conversation_id`` also clears a watcher whose record expired."""
        record = await self.get(connection_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._conn(connection_id))
                for conv in {conversation_id, record.conversation_id if record else None} - {None}:
                    pipe.srem(self._watchers(str(conv)), connection_id)
                if record and record.role == "visitor":
                    pipe.srem(self._waiting(record.tenant_id, record.subject), connection_id)
                if record and record.role in STAFF_ROLES:
                    pipe.srem(self._agents(record.tenant_id), connection_id)
                    pipe.srem(self.agent_conns_key(record.tenant_id, record.subject),
                              connection_id)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError("cannot remove connection") from exc
        return record

    async def _members(self, key: str, what: str) -> list[str]:
        """The members of the set at ``key``, sorted (``what`` names it in the error)."""
        try:
            members = await self._redis.smembers(key)
        except RedisError as exc:
            raise StoreError(f"cannot read {what}") from exc
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def watchers(self, conversation_id: str) -> list[str]:
        return await self._members(self._watchers(conversation_id), "watchers")

    async def watch(self, connection_id: str, conversation_id: str) -> None:
        """Let a connection (an agent's) follow a conversation."""
        try:
            key = self._watchers(conversation_id)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(key, connection_id)
                pipe.expire(key, self._ttl)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError("cannot record watcher") from exc

    async def agents(self, tenant_id: str) -> list[str]:
        return await self._members(self._agents(tenant_id), "agents")

    async def agent_connections(self, tenant_id: str, agent_id: str) -> list[str]:
        """The live connections of one agent (every open console tab)."""
        return await self._members(self.agent_conns_key(tenant_id, agent_id),
                                   "agent connections")

    async def unwatch(self, connection_id: str, conversation_id: str) -> None:
        try:
            await self._redis.srem(self._watchers(conversation_id), connection_id)
        except RedisError as exc:
            raise StoreError("cannot remove watcher") from exc

    @staticmethod
    def now() -> float:
        return time.time()
