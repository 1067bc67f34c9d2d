"""``/v1/admin/personal-data``: a customer's export (access request) and erasure (deletion
request), docs/data-protection.md; the super-admin's under ``/v1/tenants/{tenant_id}/``.

Tenant administrators act on their own tenant; the super-admin names the tenant in the path.
Customer ids travel in request bodies, never in URLs (access logs keep URLs). Exports and
erasures are counted per tenant (:data:`REQUESTS_PER_HOUR`) and audited; the exported content
is never logged. An erasure repeats the customer's id in ``confirm``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response
from pydantic import Field

from kefu_core.admin.auth import actor_type
from kefu_core.admin.dependencies import AdminId, DepsDep, SuperId
from kefu_core.admin.errors import NOT_FOUND, Responses, found
from kefu_core.deps import Deps
from kefu_core.flows.personal_data import (
    CustomerExport,
    CustomerRef,
    ErasureReport,
    erase_customer,
    export_customer,
)
from kefu_core.product.tenants.tenants import ROOT_TENANT
from kefu_core.security.rate_limits import admit, counter_key
from kefu_core.security.tokens import Identity

__all__ = ["REQUESTS_PER_HOUR", "ErasureRequest", "router", "super_router"]

REQUESTS_PER_HOUR = 60  # exports and erasures per tenant
TenantId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]

router = APIRouter(prefix="/v1/admin/personal-data", tags=["personal data"])
# The super-admin's requests name the tenant in the path.
super_router = APIRouter(prefix="/v1/tenants/{tenant_id}/personal-data", tags=["personal data"])


class ErasureRequest(CustomerRef):
    # The customer's id once more (the visitor_id or customer_id above): an erasure cannot be
    # undone, so a console makes the administrator type it.
    confirm: str = Field(min_length=1, max_length=100)


_LIMITED: Responses = {429: {"description": "more than 60 exports and erasures "
                                            "for the tenant this hour (Retry-After)"},
                       503: {"description": "a store is unavailable; retrying is safe"}}
_EXPORT: Responses = {**_LIMITED, 413: {"description": "more data than one export carries"}}
_ERASE: Responses = {**_LIMITED, 422: {"description": "an invalid id, or confirm does not "
                                                      "repeat it"}}


async def _limited(deps: Deps, tenant_id: str) -> None:
    await admit(deps.redis, counter_key(deps.settings.redis_prefix, "personal-data",
                                        tenant_id), limit=REQUESTS_PER_HOUR, window_s=3600)


def _actor(who: Identity) -> tuple[Any, str]:
    """The audit actor: a tenant admin, or the super-admin as ``_root:<id>``."""
    if who.tenant_id == ROOT_TENANT:
        return "admin", f"{ROOT_TENANT}:{who.subject}"
    return actor_type(who), who.subject


async def _export(deps: Deps, who: Identity, tenant_id: str,
                  ref: CustomerRef, response: Response) -> CustomerExport:
    await _limited(deps, tenant_id)
    exported = await export_customer(deps, tenant_id=tenant_id, ref=ref)
    kind, actor = _actor(who)
    await deps.audit.record(
        tenant_id=tenant_id, actor_type=kind, actor_id=actor, action="customer.exported",
        target_type="customer", target_id=ref.subject,
        detail=exported.summary.model_dump(include={"conversations", "messages", "facts",
                                                    "offline_messages", "audit_entries"}))
    response.headers["content-disposition"] = 'attachment; filename="personal-data.json"'
    response.headers["cache-control"] = "no-store"
    return exported


async def _erase(deps: Deps, who: Identity, tenant_id: str,
                 body: ErasureRequest) -> ErasureReport:
    if body.confirm not in (body.visitor_id, body.customer_id):
        raise HTTPException(status_code=422, detail="confirm must repeat the customer's id")
    await _limited(deps, tenant_id)
    kind, actor = _actor(who)
    ref = CustomerRef(visitor_id=body.visitor_id, customer_id=body.customer_id)
    return await erase_customer(deps, tenant_id=tenant_id, ref=ref, actor_type=kind,
                                actor_id=actor)


@router.post("/export", response_model=CustomerExport,
             responses=_EXPORT, summary="Export a customer's data (access request)")
async def export_for_admin(body: CustomerRef, who: AdminId, deps: DepsDep,
                           response: Response) -> CustomerExport:
    """Everything Kefu holds about one visitor or signed-in customer of the caller's tenant, as
    one JSON document with a readable summary; audited (`customer.exported`, counts only)."""
    return await _export(deps, who, who.tenant_id, body, response)


@router.post("/erase", response_model=ErasureReport, responses=_ERASE,
             summary="Erase a customer (deletion request)")
async def erase_for_admin(body: ErasureRequest, who: AdminId, deps: DepsDep) -> ErasureReport:
    """Remove the customer's messages, facts, offline messages, ratings, short-term memory and
    cached data from PostgreSQL and Redis; idempotent, safe to retry after a 503."""
    return await _erase(deps, who, who.tenant_id, body)


@super_router.post("/export", response_model=CustomerExport,
             responses={**_EXPORT, **NOT_FOUND}, summary="Export a customer's data (any tenant)")
async def export_for_super(tenant_id: TenantId, body: CustomerRef, who: SuperId,
                           deps: DepsDep, response: Response) -> CustomerExport:
    """The super-admin's access request for a customer of the named tenant."""
    found(await deps.tenants.get(tenant_id))
    return await _export(deps, who, tenant_id, body, response)


@super_router.post("/erase", response_model=ErasureReport,
             responses={**_ERASE, **NOT_FOUND}, summary="Erase a customer (any tenant)")
async def erase_for_super(tenant_id: TenantId, body: ErasureRequest, who: SuperId,
                          deps: DepsDep) -> ErasureReport:
    """The super-admin's deletion request for a customer of the named tenant."""
    found(await deps.tenants.get(tenant_id))
    return await _erase(deps, who, tenant_id, body)
