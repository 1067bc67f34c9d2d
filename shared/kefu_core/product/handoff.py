"""Handoff between the assistant and human agents.

A conversation is owned by the bot, waits in the queue, or is owned by a human
(``conversations.owner``: ``bot`` | ``queue`` | ``human``, plus ``assigned_agent``). It moves to
the queue when the visitor presses the button, writes a handoff keyword, when the assistant
fails to answer ``handoff_after_failures`` times in a row, or when the model's final event
carries a structured handoff flag. Queued conversations are assigned to online agents with
free capacity, round-robin, by one Lua script in Redis, so every Lambda container and every
gateway replica agrees on who gets what. The visitor sees each step as a ``state`` frame
(and a persisted ``system`` message, so a reconnect replays it): ``queued`` (with position),
``agent_joined`` (with the agent's name), ``bot`` (returned to the assistant), ``closed``.

Redis keys (under the configured prefix):

- ``ho:{tenant}:online`` hash agent id -> capacity; ``ho:{tenant}:names`` agent id -> name;
- ``ho:{tenant}:agent:{agent}:alive`` heartbeat (expires; refreshed by the console's pings);
- ``ho:{tenant}:agent:{agent}:convs`` set of conversations assigned to the agent (its load);
- ``ho:{tenant}:queue`` sorted set of waiting conversations by queue time;
- ``ho:{tenant}:rr`` the round-robin cursor; ``ho:conv:{id}:fails`` consecutive failures.

An agent is online when it is in the ``online`` hash, its heartbeat is alive and it has at
least one live connection (see :mod:`kefu_core.chat.connections`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import RedisError

from kefu_core.chat.conversations import Conversation
from kefu_core.deps import Deps
from kefu_core.infra.errors import KefuError, StoreError
from kefu_core.product.audit import ActorType
from kefu_core.product.stores import stores
from kefu_core.product.tenants import TenantSettings, tenant_settings

__all__ = [
    "HandoffError",
    "HandoffState",
    "OnlineAgent",
    "after_reply",
    "close_conversation",
    "dispatch",
    "matches_keyword",
    "notify_staff",
    "release_to_bot",
    "request_handoff",
    "requeue_if_agent_gone",
    "state_frame",
    "take_over",
    "transfer",
]

logger = logging.getLogger("kefu.handoff")

HEARTBEAT_TTL_S = 90
FAILURES_TTL_S = 3600
HandoffReason = Literal["button", "keyword", "failures", "llm", "agent", "admin",
                        "agent_offline"]


class HandoffError(KefuError):
    """The move is not possible in the conversation's current state (code says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class HandoffState:
    """The shared (Redis) side of handoff: presence, load, queue, round-robin, failures."""

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

    async def set_online(self, *, tenant_id: str, agent_id: str, name: str, capacity: int) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._k(tenant_id, "online"), agent_id, capacity)
                pipe.hset(self._k(tenant_id, "names"), agent_id, name)
                pipe.set(self._agent(tenant_id, agent_id, "alive"), 1, ex=HEARTBEAT_TTL_S)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError("cannot record presence") from exc

    async def set_away(self, *, tenant_id: str, agent_id: str) -> None:
        try:
            await self._redis.hdel(self._k(tenant_id, "online"), agent_id)
        except RedisError as exc:
            raise StoreError("cannot record presence") from exc

    async def heartbeat(self, *, tenant_id: str, agent_id: str) -> None:
        try:
            await self._redis.set(self._agent(tenant_id, agent_id, "alive"), 1,
                                  ex=HEARTBEAT_TTL_S)
        except RedisError as exc:
            raise StoreError("cannot record presence") from exc

    async def online_agents(self, tenant_id: str) -> list[OnlineAgent]:
        try:
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
        except RedisError as exc:
            raise StoreError("cannot read presence") from exc
        return result

    async def is_connected(self, *, tenant_id: str, agent_id: str) -> bool:
        """Whether the agent has a live console (heartbeat alive, a connection open)."""
        try:
            alive = await self._redis.exists(self._agent(tenant_id, agent_id, "alive"))
            conns = await self._redis.scard(self._conns_key(tenant_id, agent_id))
        except RedisError as exc:
            raise StoreError("cannot read presence") from exc
        return bool(alive) and bool(conns)

    async def enqueue(self, *, tenant_id: str, conversation_id: str) -> None:
        try:
            await self._redis.zadd(self._k(tenant_id, "queue"), {conversation_id: time.time()},
                                   nx=True)
        except RedisError as exc:
            raise StoreError("cannot queue") from exc

    async def dequeue(self, *, tenant_id: str, conversation_id: str) -> None:
        try:
            await self._redis.zrem(self._k(tenant_id, "queue"), conversation_id)
        except RedisError as exc:
            raise StoreError("cannot dequeue") from exc

    async def queued(self, tenant_id: str, *, limit: int = 200) -> list[str]:
        try:
            return [_text(m) for m in
                    await self._redis.zrange(self._k(tenant_id, "queue"), 0, limit - 1)]
        except RedisError as exc:
            raise StoreError("cannot read the queue") from exc

    async def position(self, *, tenant_id: str, conversation_id: str) -> int | None:
        try:
            rank = await self._redis.zrank(self._k(tenant_id, "queue"), conversation_id)
        except RedisError as exc:
            raise StoreError("cannot read the queue") from exc
        return None if rank is None else int(rank) + 1  # type: ignore[arg-type]

    async def assign_next(self, tenant_id: str) -> tuple[str, str] | None:
        """Atomically pop the oldest waiting conversation for the next agent with capacity."""
        try:
            result = await self._assign(
                keys=[self._k(tenant_id, "queue"), self._k(tenant_id, "online"),
                      self._k(tenant_id, "rr")],
                args=[f"{self._p}ho:{tenant_id}:agent:",
                      self._conns_key(tenant_id, "\x00").removesuffix("\x00:conns")],
            )
        except RedisError as exc:
            raise StoreError("cannot assign") from exc
        if not result:
            return None
        return _text(result[0]), _text(result[1])

    async def bind(self, *, tenant_id: str, agent_id: str, conversation_id: str) -> None:
        try:
            await self._redis.sadd(self._agent(tenant_id, agent_id, "convs"), conversation_id)
        except RedisError as exc:
            raise StoreError("cannot assign") from exc

    async def unbind(self, *, tenant_id: str, agent_id: str, conversation_id: str) -> None:
        try:
            await self._redis.srem(self._agent(tenant_id, agent_id, "convs"), conversation_id)
        except RedisError as exc:
            raise StoreError("cannot unassign") from exc

    async def assigned(self, *, tenant_id: str, agent_id: str) -> list[str]:
        try:
            members = await self._redis.smembers(self._agent(tenant_id, agent_id, "convs"))
        except RedisError as exc:
            raise StoreError("cannot read assignments") from exc
        return sorted(_text(m) for m in members)

    async def record_failure(self, conversation_id: str) -> int:
        key = f"{self._p}ho:conv:{conversation_id}:fails"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, FAILURES_TTL_S)
                count, _ = await pipe.execute()
        except RedisError as exc:
            raise StoreError("cannot count failures") from exc
        return int(count)

    async def reset_failures(self, conversation_id: str) -> None:
        try:
            await self._redis.delete(f"{self._p}ho:conv:{conversation_id}:fails")
        except RedisError as exc:
            raise StoreError("cannot reset failures") from exc


# -- delivery (imported lazily: the flows package imports this module) ----------------------
async def broadcast(
    deps: Deps, conversation_id: str, frame: dict[str, Any], *, exclude: str | None = None
) -> int:
    from kefu_core.flows.fanout import broadcast as _broadcast

    return await _broadcast(deps, conversation_id, frame, exclude=exclude)


async def send(deps: Deps, connection_id: str, frame: dict[str, Any]) -> bool:
    from kefu_core.flows.fanout import send as _send

    return await _send(deps, connection_id, frame)


# -- keywords ----------------------------------------------------------------------------------
def matches_keyword(text: str, keywords: list[str]) -> bool:
    """Whether ``text`` asks for a human: CJK keywords as substrings, Latin ones as words."""
    lowered = text.casefold()
    for keyword in keywords:
        word = keyword.strip().casefold()
        if not word:
            continue
        if word.isascii():
            if re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", lowered):
                return True
        elif word in lowered:
            return True
    return False


# -- frames ------------------------------------------------------------------------------------
async def state_frame(deps: Deps, conversation: Conversation) -> dict[str, Any]:
    """The ``state`` frame that describes a conversation's current ownership to its visitor."""
    frame: dict[str, Any] = {"type": "state", "conversation_id": conversation.id}
    product = stores(deps)
    if conversation.status == "closed":
        frame["state"] = "closed"
    elif conversation.owner == "queue":
        frame["state"] = "queued"
        frame["position"] = await product.handoff.position(
            tenant_id=conversation.tenant_id, conversation_id=conversation.id)
        frame["agents_online"] = bool(await product.handoff.online_agents(conversation.tenant_id))
    elif conversation.owner == "human":
        frame["state"] = "agent_joined"
        frame["agent_id"] = conversation.assigned_agent
        frame["agent_name"] = await _agent_name(deps, conversation.tenant_id,
                                                conversation.assigned_agent)
    else:
        frame["state"] = "bot"
    return frame


async def _agent_name(deps: Deps, tenant_id: str, agent_id: str | None) -> str | None:
    if agent_id is None:
        return None
    try:
        names = await deps.redis.hget(f"{deps.settings.redis_prefix}ho:{tenant_id}:names",
                                      agent_id)
    except RedisError:
        names = None
    if names:
        return _text(names)
    agent = await stores(deps).tenants.get_agent(tenant_id=tenant_id, agent_id=agent_id)
    return agent.name if agent else None


async def notify_staff(deps: Deps, tenant_id: str, frame: dict[str, Any]) -> None:
    """Post a frame to every connected console of the tenant (queue changes and the like)."""
    for connection_id in await deps.connections.agents(tenant_id):
        await send(deps, connection_id, frame)


async def _notify_agent(deps: Deps, tenant_id: str, agent_id: str, frame: dict[str, Any],
                        *, watch: str | None = None) -> None:
    for connection_id in await deps.connections.agent_connections(tenant_id, agent_id):
        if watch:
            await deps.connections.watch(connection_id, watch)
        await send(deps, connection_id, frame)


async def _system_message(deps: Deps, conversation: Conversation, event: str, text: str,
                          **meta: Any) -> int:
    stored = await deps.conversations.append(
        tenant_id=conversation.tenant_id, conversation_id=conversation.id, role="system",
        text=text, meta={"event": event, **meta},
    )
    return stored.seq


async def _announce(deps: Deps, conversation: Conversation, event: str, text: str,
                    **meta: Any) -> None:
    seq = await _system_message(deps, conversation, event, text, **meta)
    fresh = await deps.conversations.get(tenant_id=conversation.tenant_id,
                                         conversation_id=conversation.id) or conversation
    frame = await state_frame(deps, fresh)
    frame["seq"] = seq
    await broadcast(deps, conversation.id, frame)
    await notify_staff(deps, conversation.tenant_id, {
        "type": "queue_changed", "conversation_id": conversation.id, "event": event})


async def _broadcast_positions(deps: Deps, tenant_id: str) -> None:
    product = stores(deps)
    agents_online = bool(await product.handoff.online_agents(tenant_id))
    for index, conversation_id in enumerate(await product.handoff.queued(tenant_id, limit=50)):
        await broadcast(deps, conversation_id, {
            "type": "state", "state": "queued", "conversation_id": conversation_id,
            "position": index + 1, "agents_online": agents_online,
        })


# -- moves -------------------------------------------------------------------------------------
async def request_handoff(
    deps: Deps, *, tenant_id: str, conversation_id: str, reason: HandoffReason,
    actor_type: ActorType, actor_id: str | None,
) -> Conversation:
    """Move a bot-owned conversation to the queue and try to assign it at once."""
    product = stores(deps)
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation_id, owner="queue",
        assigned_agent=None, from_owners=("bot",), reason=reason,
    )
    if moved is None:
        current = await deps.conversations.get(tenant_id=tenant_id,
                                               conversation_id=conversation_id)
        if current is None:
            raise HandoffError("not_found", "no such conversation")
        if current.status != "open":
            raise HandoffError("conversation_closed", "this conversation is closed")
        await broadcast(deps, conversation_id, await state_frame(deps, current))
        return current
    deps.metrics.handoff(reason=reason)
    await product.handoff.enqueue(tenant_id=tenant_id, conversation_id=conversation_id)
    await product.handoff.reset_failures(conversation_id)
    await product.audit.safe_record(
        tenant_id=tenant_id, actor_type=actor_type, actor_id=actor_id,
        action="conversation.handoff_requested", target_type="conversation",
        target_id=conversation_id, detail={"reason": reason})
    await _announce(deps, moved, "queued", "Waiting for a human agent", reason=reason)
    await dispatch(deps, tenant_id=tenant_id)
    return moved


async def requeue_if_agent_gone(deps: Deps, *, conversation: Conversation) -> bool:
    """A visitor wrote to a conversation whose agent has no live console any more: put it
    back in the queue (first in line by its original time) so another agent gets it."""
    agent_id = conversation.assigned_agent
    if conversation.owner != "human" or agent_id is None or conversation.status != "open":
        return False
    product = stores(deps)
    tenant_id = conversation.tenant_id
    if await product.handoff.is_connected(tenant_id=tenant_id, agent_id=agent_id):
        return False
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation.id, owner="queue",
        assigned_agent=None, from_owners=("human",), from_agent=agent_id,
        reason="agent_offline",
    )
    if moved is None:
        return False
    deps.metrics.handoff(reason="agent_offline")
    await product.handoff.unbind(tenant_id=tenant_id, agent_id=agent_id,
                                 conversation_id=conversation.id)
    await product.handoff.enqueue(tenant_id=tenant_id, conversation_id=conversation.id)
    await product.audit.safe_record(
        tenant_id=tenant_id, actor_type="system", actor_id=None,
        action="conversation.requeued", target_type="conversation",
        target_id=conversation.id, detail={"reason": "agent_offline", "agent_id": agent_id})
    await _announce(deps, moved, "queued", "Waiting for a human agent", reason="agent_offline")
    await dispatch(deps, tenant_id=tenant_id)
    return True


async def dispatch(deps: Deps, *, tenant_id: str) -> int:
    """Assign queued conversations to online agents with capacity; return how many."""
    product = stores(deps)
    assigned = 0
    while True:
        pick = await product.handoff.assign_next(tenant_id)
        if pick is None:
            break
        conversation_id, agent_id = pick
        moved = await deps.conversations.transition(
            tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
            assigned_agent=agent_id, from_owners=("queue",),
        )
        if moved is None:  # closed or taken meanwhile: give the capacity back
            await product.handoff.unbind(tenant_id=tenant_id, agent_id=agent_id,
                                         conversation_id=conversation_id)
            continue
        assigned += 1
        await _joined(deps, moved, agent_id, actor_type="system", actor_id=None,
                      action="conversation.assigned")
    await _broadcast_positions(deps, tenant_id)
    return assigned


async def _joined(deps: Deps, conversation: Conversation, agent_id: str, *,
                  actor_type: ActorType, actor_id: str | None, action: str) -> None:
    product = stores(deps)
    name = await _agent_name(deps, conversation.tenant_id, agent_id) or agent_id
    await _notify_agent(deps, conversation.tenant_id, agent_id, {
        "type": "assigned", "conversation_id": conversation.id,
        "visitor_id": conversation.visitor_id}, watch=conversation.id)
    await product.audit.safe_record(
        tenant_id=conversation.tenant_id, actor_type=actor_type, actor_id=actor_id,
        action=action, target_type="conversation", target_id=conversation.id,
        detail={"agent_id": agent_id})
    await _announce(deps, conversation, "agent_joined", f"{name} joined the conversation",
                    agent_name=name, agent_id=agent_id)


async def take_over(
    deps: Deps, *, tenant_id: str, conversation_id: str, agent_id: str,
    actor_type: ActorType = "agent",
) -> Conversation:
    """An agent takes a conversation from the bot or the queue."""
    product = stores(deps)
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
        assigned_agent=agent_id, from_owners=("bot", "queue"), reason="agent",
    )
    if moved is None:
        current = await deps.conversations.get(tenant_id=tenant_id,
                                               conversation_id=conversation_id)
        if current is None:
            raise HandoffError("not_found", "no such conversation")
        if current.owner == "human" and current.assigned_agent == agent_id \
                and current.status == "open":
            return current
        raise HandoffError("not_available", "this conversation is not available to take")
    await product.handoff.dequeue(tenant_id=tenant_id, conversation_id=conversation_id)
    await product.handoff.bind(tenant_id=tenant_id, agent_id=agent_id,
                               conversation_id=conversation_id)
    await _joined(deps, moved, agent_id, actor_type=actor_type, actor_id=agent_id,
                  action="conversation.taken_over")
    await _broadcast_positions(deps, tenant_id)
    return moved


async def transfer(
    deps: Deps, *, tenant_id: str, conversation_id: str, from_agent: str, to_agent: str,
    actor_type: ActorType = "agent",
) -> Conversation:
    """Give a conversation to another agent: the assigned agent may, an admin always may."""
    product = stores(deps)
    target = await product.tenants.get_agent(tenant_id=tenant_id, agent_id=to_agent)
    if target is None or not target.active:
        raise HandoffError("unknown_agent", "no such agent")
    current = await deps.conversations.get(tenant_id=tenant_id, conversation_id=conversation_id)
    if current is None:
        raise HandoffError("not_found", "no such conversation")
    if actor_type == "admin":
        moved = await deps.conversations.transition(
            tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
            assigned_agent=to_agent, from_owners=("human", "queue", "bot"),
            from_agent=current.assigned_agent)
    else:
        moved = await deps.conversations.transition(
            tenant_id=tenant_id, conversation_id=conversation_id, owner="human",
            assigned_agent=to_agent, from_owners=("human",), from_agent=from_agent)
    if moved is None:
        raise HandoffError("not_yours", "only the assigned agent can transfer it")
    previous = current.assigned_agent
    if previous:
        await product.handoff.unbind(tenant_id=tenant_id, agent_id=previous,
                                     conversation_id=conversation_id)
        await _notify_agent(deps, tenant_id, previous, {
            "type": "unassigned", "conversation_id": conversation_id, "reason": "transferred"})
    await product.handoff.dequeue(tenant_id=tenant_id, conversation_id=conversation_id)
    await product.handoff.bind(tenant_id=tenant_id, agent_id=to_agent,
                               conversation_id=conversation_id)
    await _joined(deps, moved, to_agent, actor_type=actor_type, actor_id=from_agent,
                  action="conversation.transferred")
    return moved


async def release_to_bot(
    deps: Deps, *, tenant_id: str, conversation_id: str, agent_id: str,
    actor_type: ActorType = "agent",
) -> Conversation:
    """Hand a conversation back to the assistant."""
    product = stores(deps)
    current = await deps.conversations.get(tenant_id=tenant_id, conversation_id=conversation_id)
    if current is None:
        raise HandoffError("not_found", "no such conversation")
    moved = await deps.conversations.transition(
        tenant_id=tenant_id, conversation_id=conversation_id, owner="bot", assigned_agent=None,
        from_owners=("human", "queue"),
        from_agent=current.assigned_agent if actor_type == "admin" else agent_id,
    )
    if moved is None:
        raise HandoffError("not_yours", "only the assigned agent can hand it back")
    if current.assigned_agent:
        await product.handoff.unbind(tenant_id=tenant_id, agent_id=current.assigned_agent,
                                     conversation_id=conversation_id)
    await product.handoff.dequeue(tenant_id=tenant_id, conversation_id=conversation_id)
    await product.handoff.reset_failures(conversation_id)
    await product.audit.safe_record(
        tenant_id=tenant_id, actor_type=actor_type, actor_id=agent_id,
        action="conversation.returned_to_bot", target_type="conversation",
        target_id=conversation_id)
    await _announce(deps, moved, "returned_to_bot", "The assistant is back")
    await dispatch(deps, tenant_id=tenant_id)
    return moved


async def close_conversation(
    deps: Deps, *, tenant_id: str, conversation_id: str, actor_type: ActorType,
    actor_id: str | None, agent_id: str | None = None,
) -> Conversation:
    """Close a conversation. An agent (``agent_id``) may close only a conversation assigned to
    them, never one the bot or the queue holds; admins and visitors pass no ``agent_id``."""
    product = stores(deps)
    current = await deps.conversations.get(tenant_id=tenant_id, conversation_id=conversation_id)
    if current is None:
        raise HandoffError("not_found", "no such conversation")
    if agent_id is not None and (current.owner != "human" or current.assigned_agent != agent_id):
        raise HandoffError("not_yours", "this conversation is not assigned to you")
    closed = await deps.conversations.close(tenant_id=tenant_id, conversation_id=conversation_id)
    if closed is None:
        raise HandoffError("conversation_closed", "this conversation is already closed")
    if current.assigned_agent:
        await product.handoff.unbind(tenant_id=tenant_id, agent_id=current.assigned_agent,
                                     conversation_id=conversation_id)
    await product.handoff.dequeue(tenant_id=tenant_id, conversation_id=conversation_id)
    await product.audit.safe_record(
        tenant_id=tenant_id, actor_type=actor_type, actor_id=actor_id,
        action="conversation.closed", target_type="conversation", target_id=conversation_id)
    await _announce(deps, closed, "closed", "The conversation was closed")
    await dispatch(deps, tenant_id=tenant_id)
    return closed


async def after_reply(
    deps: Deps, *, tenant_id: str, conversation_id: str, final: Any
) -> bool:
    """Called by the stream flow after a reply: hand off on the model's structured signal or
    after too many failed replies in a row. True when the conversation was queued."""
    product = stores(deps)
    settings: TenantSettings
    settings, _ = await tenant_settings(deps.pool, tenant_id)
    wants_human = bool(getattr(final, "handoff", False))
    failed = (getattr(final, "status", "complete") != "complete"
              or getattr(final, "answered", True) is False)
    reason: HandoffReason | None = "llm" if wants_human else None
    if reason is None and failed and settings.handoff_after_failures > 0:
        if await product.handoff.record_failure(conversation_id) >= \
                settings.handoff_after_failures:
            reason = "failures"
    elif not failed:
        await product.handoff.reset_failures(conversation_id)
    if reason is None:
        return False
    try:
        await request_handoff(deps, tenant_id=tenant_id, conversation_id=conversation_id,
                              reason=reason, actor_type="system", actor_id=None)
    except HandoffError:
        return False
    return True
