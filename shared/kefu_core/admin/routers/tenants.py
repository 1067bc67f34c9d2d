"""``/v1/tenants``: the super-admin lists and creates tenants."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.dependencies import DepsDep, SuperId
from kefu_core.product.tenants.agents import Agent
from kefu_core.product.tenants.tenants import ROOT_TENANT, Tenant
from kefu_core.product.tenants.widget_keys import WidgetKey

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    admin_email: str = Field(min_length=3, max_length=200)
    admin_password: str = Field(min_length=10, max_length=200)
    admin_name: str = Field(default="Administrator", max_length=100)


class TenantCreated(BaseModel):
    tenant: Tenant
    admin: Agent
    widget_key: WidgetKey


@router.get("", response_model=list[Tenant], summary="List tenants")
async def list_tenants(who: SuperId, deps: DepsDep) -> list[Tenant]:
    """Every tenant of the deployment."""
    return await deps.tenants.list()


@router.post("", response_model=TenantCreated, status_code=201, summary="Create a tenant",
             responses={409: {"description": "the tenant id is taken"}})
async def create_tenant(body: TenantCreate, who: SuperId, deps: DepsDep) -> TenantCreated:
    """A new tenant with its first administrator and a default widget key; audited in the
    new tenant's log."""
    tenant = await deps.tenants.create(tenant_id=body.id, name=body.name)
    admin = await deps.agents.create(tenant_id=tenant.id, email=body.admin_email,
                                     name=body.admin_name,
                                     password=body.admin_password, role="admin")
    key = await deps.widget_keys.create(tenant_id=tenant.id, label="default")
    await deps.audit.safe_record(tenant_id=tenant.id, actor_type="admin",
                                 actor_id=f"{ROOT_TENANT}:{who.subject}",
                                 action="tenant.created", target_type="tenant",
                                 target_id=tenant.id, detail={"admin": admin.id})
    return TenantCreated(tenant=tenant, admin=admin, widget_key=key)
