"""Staff sign-in: ``POST /v1/agent/login`` (public, throttled), ``/v1/agent/refresh`` and
``/v1/agent/sign-out`` (anyone signed in), ``GET /v1/me``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from kefu_core.admin.access import access_changed
from kefu_core.admin.audit_trail import record
from kefu_core.admin.auth import signing_secrets
from kefu_core.admin.dependencies import (
    AgentId,
    DepsDep,
    SettingsDep,
    StaffId,
    unauthorized,
)
from kefu_core.admin.errors import NOT_FOUND, found
from kefu_core.infra.errors import Unauthorized
from kefu_core.infra.settings import Settings
from kefu_core.product.agent_auth import staff_access
from kefu_core.product.tenants.agents import Agent
from kefu_core.security.login_throttle import LoginThrottle, client_address
from kefu_core.security.tokens import issue_token

router = APIRouter()

# Agent tokens are short-lived; the console refreshes them (POST /v1/agent/refresh) while the
# agent's access is unchanged. Revocation itself does not wait for expiry (agent_auth).
AGENT_TOKEN_TTL_S = 15 * 60


class LoginRequest(BaseModel):
    # E-mail addresses are unique per tenant, so the tenant (organisation id) names the account.
    tenant: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
    email: str = Field(min_length=3, max_length=200)
    password: str = Field(min_length=1, max_length=200)


class AgentToken(BaseModel):
    token: str
    expires_in: int
    agent: Agent


async def _token(settings: Settings, agent: Agent) -> AgentToken:
    token = issue_token(secrets=await signing_secrets(settings), tenant_id=agent.tenant_id,
                        subject=agent.id, role=agent.role, ttl_s=AGENT_TOKEN_TTL_S,
                        name=agent.name, version=agent.token_version)
    return AgentToken(token=token, expires_in=AGENT_TOKEN_TTL_S, agent=agent)


@router.post("/v1/agent/login", response_model=AgentToken, tags=["public"],
             summary="Sign in (agent or admin)", responses={
                 401: {"description": "wrong tenant, e-mail or password"},
                 429: {"description": "too many failures from this address; see Retry-After"}})
async def agent_login(body: LoginRequest, request: Request, deps: DepsDep,
                      settings: SettingsDep) -> AgentToken:
    """A short-lived staff token for the organisation id (`tenant`), e-mail and password.
    Failures are throttled per e-mail and per source address."""
    throttle = LoginThrottle(deps.redis, prefix=settings.redis_prefix)
    attempt = {"tenant_id": body.tenant, "email": body.email,
               "address": client_address(request)}
    await throttle.check(**attempt)  # Throttled: 429 with Retry-After
    agent = await deps.agents.authenticate(tenant_id=body.tenant, email=body.email,
                                           password=body.password,
                                           allow_demo=settings.kefu_env != "production")
    if agent is None:
        await throttle.failed(**attempt)
        raise HTTPException(status_code=401, detail="wrong tenant, e-mail or password")
    await throttle.succeeded(**attempt)
    await deps.audit.safe_record(tenant_id=agent.tenant_id, actor_type=agent.role,
                                 actor_id=agent.id, action="agent.login",
                                 target_type="agent", target_id=agent.id)
    return await _token(settings, agent)


@router.post("/v1/agent/refresh", response_model=AgentToken, tags=["session"],
             summary="Refresh the token")
async def agent_refresh(who: StaffId, deps: DepsDep,
                        settings: SettingsDep) -> AgentToken:
    """A new short-lived token for a still-valid one, re-checked against the database
    (active, not a demo account in production, same token version)."""
    try:
        await staff_access(deps, tenant_id=who.tenant_id, agent_id=who.subject,
                           version=who.version, fresh=True)
    except Unauthorized as exc:
        raise unauthorized() from exc
    agent = await deps.agents.get(tenant_id=who.tenant_id, agent_id=who.subject)
    if agent is None:
        raise HTTPException(status_code=Unauthorized.status, detail=Unauthorized.detail)
    return await _token(settings, agent)


@router.post("/v1/agent/sign-out", status_code=204, tags=["session"],
             summary="Sign out everywhere")
async def agent_sign_out(who: StaffId, deps: DepsDep,
                         settings: SettingsDep) -> Response:
    """Every token of the caller stops working at once (all its consoles and tabs)."""
    agent = await deps.agents.revoke_tokens(tenant_id=who.tenant_id, agent_id=who.subject)
    if agent is not None:
        await access_changed(deps, settings, agent)
        await record(deps, who, "agent.signed_out", "agent", agent.id)
    return Response(status_code=204)


@router.get("/v1/me", response_model=Agent, tags=["session"], summary="The signed-in agent",
            responses=NOT_FOUND)
async def me(who: AgentId, deps: DepsDep) -> Agent:
    """The caller's own agent record (name, role, capacity); agents and admins of a tenant."""
    return found(await deps.agents.get(tenant_id=who.tenant_id, agent_id=who.subject))
