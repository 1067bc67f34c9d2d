"""What each handoff step tells the people involved.

The visitor sees each step as a ``state`` frame (and a persisted ``system`` message, so a
reconnect replays it): ``queued`` (with position, and outside business hours when agents are
back), ``agent_joined`` (with the agent's name),
``bot`` (returned to the assistant), ``closed``. Every console of the tenant hears that the
queue changed; an agent hears that a conversation was assigned to them or taken away.
"""

from __future__ import annotations

from typing import Any

from kefu_core.chat import protocol
from kefu_core.chat.conversations import Conversation
from kefu_core.chat.delivery import broadcast, send
from kefu_core.chat.protocol import ServerFrame, StateOut
from kefu_core.product.handoff.context import HandoffDeps
from kefu_core.product.handoff.opening import hours_now

__all__ = [
    "agent_name",
    "announce",
    "broadcast_positions",
    "notify_agent",
    "notify_staff",
    "state_frame",
]


async def state_frame(deps: HandoffDeps, conversation: Conversation,
                      *, seq: int | None = None) -> StateOut:
    """The ``state`` frame that describes a conversation's current ownership to its visitor
    (``seq``: the system message that announced it)."""
    tenant_id, conversation_id = conversation.tenant_id, conversation.id
    if conversation.status == "closed":
        return protocol.state_frame(conversation_id=conversation_id, state="closed", seq=seq)
    if conversation.owner == "queue":
        return protocol.state_frame(
            conversation_id=conversation_id, state="queued", seq=seq,
            position=await deps.handoff.position(tenant_id=tenant_id,
                                                 conversation_id=conversation_id),
            agents_online=bool(await deps.handoff.online_agents(tenant_id)),
            hours=(await hours_now(deps, tenant_id)).public())
    if conversation.owner == "human":
        return protocol.state_frame(
            conversation_id=conversation_id, state="agent_joined", seq=seq,
            agent_id=conversation.assigned_agent,
            agent_name=await agent_name(deps, tenant_id, conversation.assigned_agent))
    return protocol.state_frame(conversation_id=conversation_id, state="bot", seq=seq)


async def agent_name(deps: HandoffDeps, tenant_id: str, agent_id: str | None) -> str | None:
    """The name an agent went online with, else the one stored with the agent."""
    if agent_id is None:
        return None
    name = await deps.handoff.name_of(tenant_id=tenant_id, agent_id=agent_id)
    if name:
        return name
    agent = await deps.agents.get(tenant_id=tenant_id, agent_id=agent_id)
    return agent.name if agent else None


async def notify_staff(deps: HandoffDeps, tenant_id: str, frame: ServerFrame) -> None:
    """Post a frame to every connected console of the tenant (queue changes and the like)."""
    for connection_id in await deps.connections.agents(tenant_id):
        await send(deps, connection_id, frame)


async def notify_agent(deps: HandoffDeps, tenant_id: str, agent_id: str,
                       frame: ServerFrame,
                       *, watch: str | None = None) -> None:
    """Post a frame to each console of one agent (which then watches ``watch``)."""
    for connection_id in await deps.connections.agent_connections(tenant_id, agent_id):
        if watch:
            await deps.connections.watch(connection_id, watch)
        await send(deps, connection_id, frame)


async def announce(deps: HandoffDeps, conversation: Conversation, event: str, text: str,
                   **meta: Any) -> None:
    """Persist a ``system`` message for the step, show the visitor the new state, and tell
    the tenant's consoles that the queue changed."""
    stored = await deps.conversations.append(
        tenant_id=conversation.tenant_id, conversation_id=conversation.id, role="system",
        text=text, meta={"event": event, **meta},
    )
    fresh = await deps.conversations.get(tenant_id=conversation.tenant_id,
                                         conversation_id=conversation.id) or conversation
    await broadcast(deps, conversation.id, await state_frame(deps, fresh, seq=stored.seq))
    await notify_staff(deps, conversation.tenant_id, protocol.queue_changed_frame(
        conversation_id=conversation.id, event=event))


async def broadcast_positions(deps: HandoffDeps, tenant_id: str) -> None:
    """Tell every waiting visitor of the tenant their place in the queue (and, outside
    business hours, when agents are back)."""
    agents_online = bool(await deps.handoff.online_agents(tenant_id))
    hours = (await hours_now(deps, tenant_id)).public()
    for index, conversation_id in enumerate(await deps.handoff.queued(tenant_id, limit=50)):
        await broadcast(deps, conversation_id, protocol.queue_position_frame(
            conversation_id=conversation_id, position=index + 1, agents_online=agents_online,
            hours=hours))
