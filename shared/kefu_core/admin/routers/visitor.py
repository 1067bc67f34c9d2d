"""``POST /v1/visitor-token``: a widget key, optionally with the signed identity of a
logged-in customer, buys a visitor token (the widget's only call to this API)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import jwt
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from kefu_core.admin.auth import signing_secrets
from kefu_core.admin.dependencies import DepsDep, SettingsDep
from kefu_core.chat.conversations import CUSTOMER_PREFIX
from kefu_core.deps import Deps
from kefu_core.infra.settings import Settings
from kefu_core.product.business_hours import hours_status
from kefu_core.product.widget_origins import origin_allowed
from kefu_core.security.rate_limits import address_bucket, admit, counter_key
from kefu_core.security.tokens import issue_token

router = APIRouter(tags=["public"])


class VisitorTokenRequest(BaseModel):
    widget_key: str = Field(min_length=1, max_length=128)
    # The visitor id is a 128-bit random bearer value the widget keeps; it cannot be guessed.
    visitor_id: str | None = Field(default=None, pattern=r"^v-[0-9a-f]{32}$")
    # A logged-in customer's identity: a JWT (HS256) the company's backend signs with the
    # tenant's identity secret; claims ``sub`` (customer id), ``exp``, optional ``name``.
    identity: str | None = Field(default=None, max_length=4096)


class VisitorToken(BaseModel):
    token: str
    visitor_id: str
    tenant_id: str
    expires_in: int
    identified: bool = False
    widget: dict[str, Any] = Field(default_factory=dict)


def verify_identity(token: str, secret: str) -> tuple[str, str | None]:
    """The customer id and name a company's backend signed, or 403."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"require": ["sub", "exp"]}, leeway=5)
    except jwt.PyJWTError as exc:
        raise HTTPException(status_code=403, detail="invalid identity") from exc
    customer = str(claims["sub"])
    if not re.fullmatch(r"[\w.@:+-]{1,100}", customer):
        raise HTTPException(status_code=403, detail="invalid identity")
    name = claims.get("name")
    return customer, str(name)[:100] if isinstance(name, str) and name else None


async def _rate_limited(deps: Deps, settings: Settings, scope: str, value: str,
                        limit: int) -> None:
    await admit(deps.redis, counter_key(settings.redis_prefix, scope, value),
                limit=limit, window_s=settings.visitor_token_rate_window_s)


@router.post(
    "/v1/visitor-token", response_model=VisitorToken, summary="Get a visitor token",
    responses={403: {"description": "unknown widget key, origin not allowed for the key, or "
                                    "invalid identity"},
               429: {"description": "too many tokens from this address or for this widget "
                                    "key (Retry-After)"}})
async def visitor_token(body: VisitorTokenRequest, request: Request, deps: DepsDep,
                        settings: SettingsDep) -> VisitorToken:
    """A visitor token for the widget of `widget_key`, from a page the key allows, with the
    widget's look (greeting, colour, avatar), whether an agent is online and whether the
    tenant is within its business hours (else when it next opens). With `identity`
    (a JWT the company's backend signs with the tenant's identity secret) the visitor is the
    logged-in customer. Rate-limited per source address and per widget key."""
    address = address_bucket(request.client.host if request.client else "unknown")
    await _rate_limited(deps, settings, "visitor-token:address", address,
                        settings.visitor_token_rate_per_address)
    key = await deps.widget_keys.active(body.widget_key)
    if key is None:
        raise HTTPException(status_code=403, detail="unknown widget key")
    if not origin_allowed(request.headers.get("origin"), key.allowed_origins):
        raise HTTPException(status_code=403, detail="origin not allowed for this widget key")
    await _rate_limited(deps, settings, "visitor-token:key", key.key,
                        settings.visitor_token_rate_per_key)
    visitor_id, name = await _visitor(deps, key.tenant_id, body)
    token = issue_token(secrets=await signing_secrets(settings), tenant_id=key.tenant_id,
                        subject=visitor_id, role="visitor", ttl_s=settings.token_ttl_s,
                        name=name, widget_key=key.key)
    return VisitorToken(token=token, visitor_id=visitor_id, tenant_id=key.tenant_id,
                        expires_in=settings.token_ttl_s,
                        identified=bool(body.identity),
                        widget=await _widget(deps, key.tenant_id))


async def _visitor(deps: Deps, tenant: str,
                   body: VisitorTokenRequest) -> tuple[str, str | None]:
    """The visitor id and name: the logged-in customer's when ``identity`` is given."""
    if not body.identity:
        return body.visitor_id or f"v-{secrets.token_hex(16)}", None
    secret = await deps.tenants.identity_secret(tenant)
    if secret is None:
        raise HTTPException(status_code=403, detail="identity not enabled")
    customer, name = verify_identity(body.identity, secret)
    return CUSTOMER_PREFIX + customer, name


async def _widget(deps: Deps, tenant: str) -> dict[str, Any]:
    """What the widget shows before the first message (with whether agents answer now:
    ``hours``, see kefu_core.product.business_hours)."""
    conf = await deps.tenant_settings.get(tenant)
    online = await deps.handoff.online_agents(tenant)
    return {
        "greeting_zh": conf.greeting_zh, "greeting_en": conf.greeting_en, "color": conf.color,
        "avatar_url": conf.avatar_url, "offline_message_enabled": conf.offline_message_enabled,
        "agents_online": bool(online),
        "hours": hours_status(conf.business_hours, datetime.now(UTC)).public(),
        # whether the widget offers its image button (docs/protocol.md "Images")
        "images": {"enabled": deps.images.available,
                   "max_bytes": deps.settings.image_max_bytes},
    }
