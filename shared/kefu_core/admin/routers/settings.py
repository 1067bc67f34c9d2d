"""``/v1/admin/settings``: the tenant's knobs (context window, fallback, pacing, emoji,
handoff keywords, greeting, colour, avatar, offline messages, business hours, retention)."""

from __future__ import annotations

from fastapi import APIRouter

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.product.tenants.settings import TenantSettings

# Settings a body may leave out to keep them as they are.
KEPT_WHEN_ABSENT = ("retention", "canned_replies", "business_hours")

router = APIRouter(prefix="/v1/admin/settings", tags=["settings"])


@router.get("", response_model=TenantSettings, summary="The tenant's settings")
async def get_tenant_settings(who: AdminId, deps: DepsDep) -> TenantSettings:
    """The tenant's settings, defaults filled in."""
    return await deps.tenant_settings.get(who.tenant_id)


@router.put("", response_model=TenantSettings, summary="Replace the tenant's settings")
async def put_tenant_settings(body: TenantSettings, who: AdminId,
                              deps: DepsDep) -> TenantSettings:
    """Every setting at once (a body without `retention`, `canned_replies` or
    `business_hours` keeps them); the audit entry names the fields that changed."""
    current = await deps.tenant_settings.get(who.tenant_id)
    for kept in KEPT_WHEN_ABSENT:  # a client that does not know them
        if kept not in body.model_fields_set:
            body = body.model_copy(update={kept: getattr(current, kept)})
    before = current.model_dump()
    saved = await deps.tenant_settings.put(who.tenant_id, body)
    changed = sorted(k for k, v in body.model_dump().items() if before.get(k) != v)
    await record(deps, who, "settings.updated", "settings", who.tenant_id, fields=changed)
    return saved
