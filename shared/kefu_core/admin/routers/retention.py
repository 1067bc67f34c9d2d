"""``/v1/admin/retention``: how many days the tenant keeps transcripts, long-term facts and
offline messages (the ``retention`` part of its settings; docs/data-protection.md)."""

from __future__ import annotations

from fastapi import APIRouter

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.product.tenants.settings import RetentionSettings

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/retention", tags=["personal data"])


@router.get("", response_model=RetentionSettings,
            summary="The tenant's retention settings")
async def get_retention(who: AdminId, deps: DepsDep) -> RetentionSettings:
    """How many days the tenant keeps transcripts, long-term facts and offline messages."""
    return (await deps.tenant_settings.get(who.tenant_id)).retention


@router.put("", response_model=RetentionSettings,
            summary="Change the tenant's retention settings")
async def put_retention(body: RetentionSettings, who: AdminId,
                        deps: DepsDep) -> RetentionSettings:
    """Days kept (1 to 3650 each); the tenant's other settings are kept, and the next
    retention run applies them. Audited (`retention.updated`)."""
    current = await deps.tenant_settings.get(who.tenant_id)
    await deps.tenant_settings.put(who.tenant_id, current.model_copy(update={"retention": body}))
    await record(deps, who, "retention.updated", "settings", who.tenant_id,
                 **body.model_dump())
    return body
