"""``GET /v1/canned-replies``: the tenant's canned replies, for its agents' consoles (admins
manage them in the settings: ``canned_replies``)."""

from __future__ import annotations

from fastapi import APIRouter

from kefu_core.admin.dependencies import AgentId, DepsDep
from kefu_core.product.canned_replies import CannedReply

router = APIRouter(prefix="/v1/canned-replies", tags=["conversations"])


@router.get("", response_model=list[CannedReply], summary="Canned replies")
async def canned_replies(who: AgentId, deps: DepsDep) -> list[CannedReply]:
    """The tenant's ready answers, inserted in the console with `/shortcut`."""
    return (await deps.tenant_settings.get(who.tenant_id)).canned_replies
