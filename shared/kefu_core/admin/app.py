"""Admin and public HTTP routes.

- ``GET /healthz``: liveness.
- ``POST /v1/visitor-token``: a widget key (public, per tenant) buys a short-lived visitor token
  for the WebSocket; the visitor id is kept by the widget so a returning visitor keeps the
  conversation.
"""

from __future__ import annotations

import secrets as _secrets

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from ..settings import Settings, get_settings
from ..tokens import issue_token

__all__ = ["create_admin_app"]


class VisitorTokenRequest(BaseModel):
    widget_key: str = Field(min_length=1, max_length=128)
    # The visitor id is a 128-bit random bearer value the widget keeps; it cannot be guessed.
    visitor_id: str | None = Field(default=None, pattern=r"^v-[0-9a-f]{32}$")


class VisitorToken(BaseModel):
    token: str
    visitor_id: str
    tenant_id: str
    expires_in: int


def create_admin_app(settings: Settings | None = None) -> FastAPI:
    config = settings or get_settings()
    app = FastAPI(title="Kefu admin API", version="0.1.0", docs_url="/docs")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/visitor-token", response_model=VisitorToken)
    async def visitor_token(body: VisitorTokenRequest) -> VisitorToken:
        tenant = config.widget_tenants().get(body.widget_key)
        if tenant is None:
            raise HTTPException(status_code=403, detail="unknown widget key")
        visitor_id = body.visitor_id or f"v-{_secrets.token_hex(16)}"
        token = issue_token(
            secrets=config.token_secrets, tenant_id=tenant, subject=visitor_id,
            role="visitor", ttl_s=config.token_ttl_s,
        )
        return VisitorToken(token=token, visitor_id=visitor_id, tenant_id=tenant,
                            expires_in=config.token_ttl_s)

    return app
