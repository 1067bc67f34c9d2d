"""Sending frames to connections; a gone connection is forgotten, never the sender's by mistake."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..deps import Deps
from ..errors import GoneError, KefuError
from ..protocol import encode

__all__ = ["broadcast", "send"]

logger = logging.getLogger("kefu.fanout")


async def send(
    deps: Deps, connection_id: str, frame: dict[str, Any], *, conversation_id: str | None = None
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
    deps: Deps, conversation_id: str, frame: dict[str, Any], *, exclude: str | None = None
) -> int:
    """Post a frame to every connection watching a conversation; return how many got it."""
    targets = [c for c in await deps.connections.watchers(conversation_id) if c != exclude]
    if not targets:
        return 0
    results = await asyncio.gather(
        *(send(deps, target, frame, conversation_id=conversation_id) for target in targets)
    )
    return sum(results)
