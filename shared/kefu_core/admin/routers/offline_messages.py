"""``GET /v1/offline-messages``: what visitors left while no agent was online."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kefu_core.admin.dependencies import AgentId, DepsDep
from kefu_core.product.service import OfflineMessage

router = APIRouter(prefix="/v1/offline-messages", tags=["conversations"])


@router.get("", response_model=list[OfflineMessage], summary="Offline messages")
async def offline_messages(
    who: AgentId, deps: DepsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[OfflineMessage]:
    """The messages visitors left while no agent was online, newest first."""
    return await deps.service.offline_messages(tenant_id=who.tenant_id, limit=limit)
