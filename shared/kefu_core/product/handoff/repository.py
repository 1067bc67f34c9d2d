"""The shared (Redis) side of handoff: presence, load, queue, round-robin, failures.

Redis keys (under the configured prefix):

- ``ho:{tenant}:online`` hash agent id -> capacity; ``ho:{tenant}:names`` agent id -> name;
- ``ho:{tenant}:agent:{agent}:alive`` heartbeat (expires; refreshed by the console's pings);
- ``ho:{tenant}:agent:{agent}:convs`` set of conversations assigned to the agent (its load);
- ``ho:{tenant}:queue`` sorted set of waiting conversations by queue time;
- ``ho:{tenant}:rr`` the round-robin cursor; ``ho:conv:{id}:fails`` consecutive failures;
- ``ho:{tenant}:closed`` set while the tenant was seen outside its business hours.

An agent is online when it is in the ``online`` hash, its heartbeat is alive and it has at
least one live connection (see :mod:`kefu_core.chat.connections`). A Redis failure is a
:class:`~kefu_core.infra.errors.StoreError` saying what could not be done.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import RedisError

from kefu_core.infra.errors import StoreError

__all__ = ["FAILURES_TTL_S", "HEARTBEAT_TTL_S", "HandoffRepository", "OnlineAgent"]

HEARTBEAT_TTL_S = 90
FAILURES_TTL_S = 3600
CLOSED_TTL_S = 31 * 86_400


class OnlineAgent(BaseModel):
    id: str
    name: str
    capacity: int
    load: int


# Pops the oldest queued conversation for the next online agent (round-robin) with capacity.
_ASSIGN = """
local agents = redis.call('HKEYS', KEYS[2])
if #agents == 0 then return false end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if #head == 0 then return false end
table.sort(agents)
local start = tonumber(redis.call('GET', KEYS[3]) or '0')
for i = 1, #agents do
  local idx = ((start + i - 1) % #agents) + 1
  local a = agents[idx]
  local alive = redis.call('EXISTS', ARGV[1] .. a .. ':alive') == 1
  local conns = redis.call('SCARD', ARGV[2] .. a .. ':conns')
  if alive and conns > 0 then
    local cap = tonumber(redis.call('HGET', KEYS[2], a) or '0')
    if redis.call('SCARD', ARGV[1] .. a .. ':convs') < cap then
      redis.call('ZREM', KEYS[1], head[1])
      redis.call('SADD', ARGV[1] .. a .. ':convs', head[1])
      redis.call('SET', KEYS[3], idx)
      return {head[1], a}
    end
  elseif not alive then
    redis.call('HDEL', KEYS[2], a)
  end
end
return false
"""


P = ParamSpec("P")
T = TypeVar("T")


def _failing_as(what: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """A Redis failure in the decorated call becomes ``StoreError(what)``."""

    def decorate(call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(call)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await call(*args, **kwargs)
            except RedisError as exc:
                raise StoreError(what) from exc

        return guarded

    return decorate


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class HandoffRepository:
    """Presence, load, queue, round-robin and failure counts of every tenant, in Redis."""

    def __init__(
        self, redis: aioredis.Redis, *, prefix: str, conns_key: Callable[[str, str], str]
    ) -> None:
        self._redis = redis
        self._p = prefix
        self._conns_key = conns_key
        self._assign = redis.register_script(_ASSIGN)

    def _k(self, tenant_id: str, name: str) -> str:
        return f"{self._p}ho:{tenant_id}:{name}"

    def _agent(self, tenant_id: str, agent_id: str, name: str) -> str:
        return f"{self._p}ho:{tenant_id}:agent:{agent_id}:{name}"

    def _fails(self, conversation_id: str) -> str:
        return f"{self._p}ho:conv:{conversation_id}:fails"

    # -- presence ------------------------------------------------------------------------------
    @_failing_as("cannot record presence")
    async def set_online(self, *, tenant_id: str, agent_id: str, name: str, capacity: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k(tenant_id, "online"), agent_id, capacity)
            pipe.hset(self._k(tenant_id, "names"), agent_id, name)
            pipe.set(self._agent(tenant_id, agent_id, "alive"), 1, ex=HEARTBEAT_TTL_S)
            await pipe.execute()

    @_failing_as("cannot record presence")
    async def set_away(self, *, tenant_id: str, agent_id: str) -> None:
        await self._redis.hdel(self._k(tenant_id, "online"), agent_id)

    @_failing_as("cannot record presence")
    async def heartbeat(self, *, tenant_id: str, agent_id: str) -> None:
        await self._redis.set(self._agent(tenant_id, agent_id, "alive"), 1, ex=HEARTBEAT_TTL_S)

    @_failing_as("cannot read presence")
    async def online_agents(self, tenant_id: str) -> list[OnlineAgent]:
        online = await self._redis.hgetall(self._k(tenant_id, "online"))
        names = await self._redis.hgetall(self._k(tenant_id, "names"))
        result = []
        for raw_id, capacity in sorted(online.items()):
            agent_id = _text(raw_id)
            alive = await self._redis.exists(self._agent(tenant_id, agent_id, "alive"))
            conns = await self._redis.scard(self._conns_key(tenant_id, agent_id))
            if not alive or not conns:
                continue
            load = await self._redis.scard(self._agent(tenant_id, agent_id, "convs"))
            name = names.get(raw_id) or names.get(agent_id.encode())
            result.append(OnlineAgent(id=agent_id, name=_text(name or agent_id),
                                      capacity=int(capacity), load=int(load)))
        return result

    @_failing_as("cannot read presence")
    async def is_connected(self, *, tenant_id: str, agent_id: str) -> bool:
        """Whether the agent has a live console (heartbeat alive, a connection open)."""
        alive = await self._redis.exists(self._agent(tenant_id, agent_id, "alive"))
        conns = await self._redis.scard(self._conns_key(tenant_id, agent_id))
        return bool(alive) and bool(conns)

    async def name_of(self, *, tenant_id: str, agent_id: str) -> str | None:
        """The name the agent went online with; None when unknown or Redis fails."""
        try:
            name = await self._redis.hget(self._k(tenant_id, "names"), agent_id)
        except RedisError:
            return None
        return _text(name) if name else None

    # -- queue ---------------------------------------------------------------------------------
    @_failing_as("cannot queue")
    async def enqueue(self, *, tenant_id: str, conversation_id: str) -> None:
        await self._redis.zadd(self._k(tenant_id, "queue"), {conversation_id: time.time()},
                               nx=True)

    @_failing_as("cannot dequeue")
    async def dequeue(self, *, tenant_id: str, conversation_id: str) -> None:
        await self._redis.zrem(self._k(tenant_id, "queue"), conversation_id)

    @_failing_as("cannot read the queue")
    async def queued(self, tenant_id: str, *, limit: int = 200) -> list[str]:
        return [_text(m) for m in
                await self._redis.zrange(self._k(tenant_id, "queue"), 0, limit - 1)]

    @_failing_as("cannot read the queue")
    async def position(self, *, tenant_id: str, conversation_id: str) -> int | None:
        rank = await self._redis.zrank(self._k(tenant_id, "queue"), conversation_id)
        return None if rank is None else int(rank) + 1  # type: ignore[arg-type]

    # -- business hours ------------------------------------------------------------------------
    @_failing_as("cannot record the business hours")
    async def mark_closed(self, tenant_id: str) -> None:
        """The tenant was seen outside its business hours (kept a month at most)."""
        await self._redis.set(self._k(tenant_id, "closed"), 1, ex=CLOSED_TTL_S)

    @_failing_as("cannot read the business hours")
    async def reopened(self, tenant_id: str) -> bool:
        """Whether the tenant had been seen closed; clears it, so one caller gets true."""
        return bool(await self._redis.getdel(self._k(tenant_id, "closed")))

    # -- assignments ---------------------------------------------------------------------------
    @_failing_as("cannot assign")
    async def assign_next(self, tenant_id: str) -> tuple[str, str] | None:
        """Atomically pop the oldest waiting conversation for the next agent with capacity."""
        result = await self._assign(
            keys=[self._k(tenant_id, "queue"), self._k(tenant_id, "online"),
                  self._k(tenant_id, "rr")],
            args=[f"{self._p}ho:{tenant_id}:agent:",
                  self._conns_key(tenant_id, "\x00").removesuffix("\x00:conns")],
        )
        if not result:
            return None
        return _text(result[0]), _text(result[1])

    @_failing_as("cannot assign")
    async def bind(self, *, tenant_id: str, agent_id: str, conversation_id: str) -> None:
        await self._redis.sadd(self._agent(tenant_id, agent_id, "convs"), conversation_id)

    @_failing_as("cannot unassign")
    async def unbind(self, *, tenant_id: str, agent_id: str, conversation_id: str) -> None:
        await self._redis.srem(self._agent(tenant_id, agent_id, "convs"), conversation_id)

    @_failing_as("cannot read assignments")
    async def assigned(self, *, tenant_id: str, agent_id: str) -> list[str]:
        members = await self._redis.smembers(self._agent(tenant_id, agent_id, "convs"))
        return sorted(_text(m) for m in members)

    # -- failed replies ------------------------------------------------------------------------
    @_failing_as("cannot count failures")
    async def record_failure(self, conversation_id: str) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._fails(conversation_id))
            pipe.expire(self._fails(conversation_id), FAILURES_TTL_S)
            count, _ = await pipe.execute()
        return int(count)

    @_failing_as("cannot reset failures")
    async def reset_failures(self, conversation_id: str) -> None:
        await self._redis.delete(self._fails(conversation_id))

    def queue_reset_failures(self, pipe: Any, conversation_id: str) -> None:
        """:meth:`reset_failures` on the caller's pipeline (sent with its other writes)."""
        pipe.delete(self._fails(conversation_id))
