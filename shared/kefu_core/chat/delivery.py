"""Sending frames to connections; a gone connection is forgotten, never the sender's by mistake.

Every function takes the process's :class:`~kefu_core.deps.Deps` (anything with a poster and a
connection registry), so delivery sits below everything that announces something: the flows
and the handoff notifications.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from kefu_core.chat.connections import ConnectionRegistry
from kefu_core.chat.protocol import ServerFrame, encode
from kefu_core.chat.transport import Poster
from kefu_core.infra.errors import GoneError, KefuError

__all__ = ["Audience", "Outbox", "broadcast", "send"]

logger = logging.getLogger("kefu.fanout")


class Outbox(Protocol):
    """What delivery needs: where frames are posted and who is connected."""

    @property
    def poster(self) -> Poster: ...

    @property
    def connections(self) -> ConnectionRegistry: ...


async def send(
    deps: Outbox, connection_id: str, frame: ServerFrame, *,
    conversation_id: str | None = None,
) -> bool:
    """Post one frame; on 410 drop *that* connection's record. True when delivered."""
    try:
        await deps.poster.post(connection_id, encode(frame))
        return True
    except GoneError as exc:
        logger.info("connection gone", extra={"connection_id": exc.connection_id})
        await deps.connections.remove(exc.connection_id, conversation_id=conversation_id)
        return False
    except KefuError:
        logger.warning("post failed", extra={"connection_id": connection_id}, exc_info=True)
        return False


async def broadcast(
    deps: Outbox, conversation_id: str, frame: ServerFrame, *, exclude: str | None = None
) -> int:
    """Post a frame to every connection watching a conversation; return how many got it."""
    targets = [c for c in await deps.connections.watchers(conversation_id) if c != exclude]
    if not targets:
        return 0
    return sum(await _send_each(deps, targets, frame, conversation_id))


async def _send_each(
    deps: Outbox, targets: list[str], frame: ServerFrame, conversation_id: str
) -> list[bool]:
    """``send`` to every target at once; a single target (the usual case: the visitor's one
    tab) without the task gathering several would cost."""
    if len(targets) == 1:
        return [await send(deps, targets[0], frame, conversation_id=conversation_id)]
    return await asyncio.gather(
        *(send(deps, target, frame, conversation_id=conversation_id) for target in targets)
    )


class Audience:
    """The connections watching one conversation while a reply streams.

    The watcher set is read from Redis at most every ``refresh_s`` for deltas (not once per
    delta), and again right after a target turned out gone (the visitor's tab reconnecting
    mid-reply), so a reply costs a few Redis reads; a tab that joins mid-reply gets the deltas
    that follow the next read, and the final frame, which ``send(..., fresh=True)`` sends to
    the set as it is then (a client that misses deltas relies on the final frame).
    """

    def __init__(self, deps: Outbox, conversation_id: str, *, refresh_s: float = 1.0) -> None:
        self._deps = deps
        self._conversation_id = conversation_id
        self._refresh_s = refresh_s
        self._targets: list[str] = []
        self._read_at = float("-inf")

    async def send(self, frame: ServerFrame, *, fresh: bool = False) -> int:
        now = asyncio.get_running_loop().time()
        if fresh or now - self._read_at >= self._refresh_s:
            self._targets = await self._deps.connections.watchers(self._conversation_id)
            self._read_at = now
        if not self._targets:
            return 0
        results = await _send_each(self._deps, self._targets, frame, self._conversation_id)
        gone = {t for t, ok in zip(self._targets, results, strict=True) if not ok}
        if gone:
            self._targets = [t for t in self._targets if t not in gone]
            self._read_at = float("-inf")  # a gone tab may be back on a new connection
        return sum(results)
