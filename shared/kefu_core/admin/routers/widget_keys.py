"""``/v1/admin/widget-keys`` and ``/v1/admin/identity-secret``: how a tenant's pages embed
the widget, and how its backend signs logged-in customers."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.admin.errors import NOT_FOUND, done, found
from kefu_core.product.tenants.widget_keys import WidgetKey
from kefu_core.product.widget_origins import forget_widget_key, normalise_origins

router = APIRouter(prefix="/v1/admin", tags=["widget"])


class _WidgetKeyOrigins(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Pages allowed to use the key: "https://shop.example.com", "https://*.example.com";
    # empty (the default): every origin.
    allowed_origins: list[str] | None = Field(default=None, max_length=20)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_origins(value)


class WidgetKeyCreate(_WidgetKeyOrigins):
    label: str = Field(default="", max_length=100)


class WidgetKeyUpdate(_WidgetKeyOrigins):
    label: str | None = Field(default=None, max_length=100)


class IdentitySecret(BaseModel):
    identity_secret: str
    note: str = "Shown once. Sign customer identities with it (JWT HS256, claims sub and exp)."


@router.get("/widget-keys", response_model=list[WidgetKey], summary="List widget keys")
async def list_widget_keys(who: AdminId, deps: DepsDep) -> list[WidgetKey]:
    """The tenant's widget keys with their labels and allowed origins."""
    return await deps.widget_keys.list(who.tenant_id)


@router.post("/widget-keys", response_model=WidgetKey, status_code=201,
             summary="Create a widget key")
async def create_widget_key(body: WidgetKeyCreate, who: AdminId,
                            deps: DepsDep) -> WidgetKey:
    """A new public key for the widget, usable from `allowed_origins` (every origin when
    empty)."""
    key = await deps.widget_keys.create(
        tenant_id=who.tenant_id, label=body.label, allowed_origins=body.allowed_origins)
    await record(deps, who, "widget_key.created", "widget_key", key.key,
                 allowed_origins=key.allowed_origins)
    return key


@router.patch("/widget-keys/{key}", response_model=WidgetKey, summary="Change a widget key",
              responses=NOT_FOUND)
async def update_widget_key(key: str, body: WidgetKeyUpdate, who: AdminId,
                            deps: DepsDep) -> WidgetKey:
    """A new label or allowed origins; new visitor tokens follow at once."""
    updated = found(await deps.widget_keys.update(
        tenant_id=who.tenant_id, key=key, label=body.label,
        allowed_origins=body.allowed_origins))
    forget_widget_key(key)
    changed = sorted(k for k, v in body.model_dump().items() if v is not None)
    await record(deps, who, "widget_key.updated", "widget_key", key, fields=changed,
                 allowed_origins=updated.allowed_origins)
    return updated


@router.delete("/widget-keys/{key}", status_code=204, summary="Revoke a widget key",
               responses=NOT_FOUND)
async def revoke_widget_key(key: str, who: AdminId, deps: DepsDep) -> Response:
    """The key buys no more visitor tokens."""
    done(await deps.widget_keys.revoke(tenant_id=who.tenant_id, key=key))
    forget_widget_key(key)
    await record(deps, who, "widget_key.revoked", "widget_key", key)
    return Response(status_code=204)


@router.post("/identity-secret", response_model=IdentitySecret,
             summary="Rotate the identity secret")
async def rotate_identity_secret(who: AdminId, deps: DepsDep) -> IdentitySecret:
    """A new secret to sign logged-in customers' identities with (shown once); identities
    signed with the previous one are refused from now on."""
    secret = await deps.tenants.rotate_identity_secret(who.tenant_id)
    await record(deps, who, "identity_secret.rotated", "tenant", who.tenant_id)
    return IdentitySecret(identity_secret=secret)
