"""The admin HTTP API (FastAPI, OpenAPI docs at ``/docs``).

Public: ``GET /healthz``; ``POST /v1/visitor-token`` (a widget key, optionally with the signed
identity of a logged-in customer, buys a visitor token); ``POST /v1/agent/login`` (tenant,
e-mail and password buy a short-lived agent token, throttled per e-mail and source address).
Signed-in staff: ``POST /v1/agent/refresh`` (a fresh token while access is unchanged) and
``POST /v1/agent/sign-out`` (revokes every token of the caller).

Agents and admins of a tenant (``/v1/me``, ``/v1/conversations...``, ``/v1/offline-messages``)
and admins only (``/v1/admin/...``: agents, widget keys, identity secret, settings, prompts,
engines, knowledge base, CSAT, audit log). The super-admin creates tenants (``/v1/tenants``).
Every route is tenant-scoped by the caller's token and every change is audited.
"""


import contextlib
import json
import logging
import re
import secrets as _secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import jwt
import psycopg
import psycopg.errors
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kefu_core.admin.auth import ADMIN, AGENT, STAFF, SUPER, actor_type, require, signing_secrets
from kefu_core.admin.cors import SplitCorsMiddleware
from kefu_core.answers.tenant_engines import EngineEntry
from kefu_core.chat.conversations import CUSTOMER_PREFIX
from kefu_core.deps import Deps
from kefu_core.infra.errors import StoreError, Unauthorized
from kefu_core.infra.secret_settings import get_settings
from kefu_core.infra.settings import Settings
from kefu_core.product.agent_auth import forget, staff_access
from kefu_core.product.audit import ActorType, AuditEntry, entries_to_csv
from kefu_core.product.csv_export import to_csv
from kefu_core.product.service import CsatFigures, Note, OfflineMessage, Rating
from kefu_core.product.tenants import (
    ROOT_TENANT,
    Agent,
    Conflict,
    Tenant,
    TenantSettings,
    WidgetKey,
    ensure_bootstrap,
)
from kefu_core.product.widget_origins import forget_widget_key, normalise_origins, origin_allowed
from kefu_core.security.datakeys import DataKeyError, DataKeyUnavailable
from kefu_core.security.http_limits import KIB, BodyLimit, BodyLimitMiddleware
from kefu_core.security.login_throttle import LoginThrottle, Throttled, client_address
from kefu_core.security.rate_limits import address_bucket, counter_key, hit
from kefu_core.security.tokens import Identity, issue_token
from kefu_llm.netguard import OutboundPolicy, UnsafeURL, check_url

__all__ = ["DepsProvider", "create_admin_app"]

logger = logging.getLogger("kefu.admin")

DepsProvider = Callable[[], Awaitable[Deps]]
# Agent tokens are short-lived; the console refreshes them (POST /v1/agent/refresh) while the
# agent's access is unchanged. Revocation itself does not wait for expiry (agent_auth).
AGENT_TOKEN_TTL_S = 15 * 60
# A prompt is up to 20,000 characters: 120 KB as JSON even when every one is \u-escaped.
PROMPT_MAX_BODY_BYTES = 128 * KIB
_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
# A prompt or secret name in a path: the pattern is enforced and published in the schema.
ResourceName = Annotated[str, Path(pattern=_NAME, max_length=64)]


# -- models ------------------------------------------------------------------------------------
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


class LoginRequest(BaseModel):
    # E-mail addresses are unique per tenant, so the tenant (organisation id) names the account.
    tenant: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
    email: str = Field(min_length=3, max_length=200)
    password: str = Field(min_length=1, max_length=200)


class AgentToken(BaseModel):
    token: str
    expires_in: int
    agent: Agent


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


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=10, max_length=200)
    role: Literal["agent", "admin"] = "agent"
    capacity: int = Field(default=5, ge=0, le=100)


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    role: Literal["agent", "admin"] | None = None
    capacity: int | None = Field(default=None, ge=0, le=100)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=200)


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


class PromptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=20_000)


class EngineChain(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: list[EngineEntry] = Field(max_length=10)


class EngineView(BaseModel):
    chain: list[EngineEntry]
    secrets: list[dict[str, Any]]
    # key_refs of the chain that name no stored secret: those engines are skipped (the chain
    # goes on without them) until the secret is stored.
    missing_secrets: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, chain: list[EngineEntry], secrets: list[dict[str, Any]]) -> "EngineView":
        stored = {str(s["name"]) for s in secrets}
        missing = sorted({e.key_ref for e in chain if e.key_ref and e.key_ref not in stored})
        return cls(chain=chain, secrets=secrets, missing_secrets=missing)


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str = Field(min_length=1, max_length=4000)


class DocumentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/\\]+$")
    content: str = Field(min_length=1, max_length=2_000_000)
    content_type: str = Field(default=".md", pattern=r"^\.(md|markdown|txt|csv)$")


class ConversationView(BaseModel):
    id: str
    visitor_id: str
    customer_id: str | None
    status: str
    owner: str
    assigned_agent: str | None
    handoff_reason: str | None
    last_seq: int
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    last_text: str | None = None


class Transcript(BaseModel):
    conversation: ConversationView
    messages: list[dict[str, Any]]
    notes: list[Note]
    csat: Rating | None


# -- helpers -----------------------------------------------------------------------------------
def _view(conversation: Any) -> ConversationView:
    return ConversationView(
        id=conversation.id, visitor_id=conversation.visitor_id,
        customer_id=conversation.customer_id, status=conversation.status,
        owner=conversation.owner, assigned_agent=conversation.assigned_agent,
        handoff_reason=conversation.handoff_reason, last_seq=conversation.last_seq,
        created_at=conversation.created_at, updated_at=conversation.updated_at,
        closed_at=conversation.closed_at, last_text=getattr(conversation, "last_text", None),
    )


_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


def _check_uuid(value: str) -> str:
    if not _UUID.match(value):
        raise HTTPException(status_code=404, detail="not found")
    return value


def _verify_identity(token: str, secret: str) -> tuple[str, str | None]:
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


def create_admin_app(
    settings: Settings | None = None, *, deps_provider: DepsProvider | None = None
) -> FastAPI:
    config = settings or get_settings()
    app = FastAPI(
        title="Kefu admin API", version="0.2.0", docs_url="/docs",
        description="Tenants, agents, widget keys, settings, prompts, engines, knowledge base, "
                    "conversations, CSAT and the audit log. Bearer tokens from "
                    "/v1/agent/login; every route is scoped to the token's tenant.",
    )
    app.state.settings = config
    # Outermost last: CORS wraps the body limit, so a 413 carries the CORS headers too.
    app.add_middleware(BodyLimitMiddleware, **body_limits(config))
    app.add_middleware(SplitCorsMiddleware, staff_origins=config.admin_allowed_origins)

    async def default_provider() -> Deps:
        from kefu_core.lambda_runtime import get_deps

        return await get_deps()

    provide = deps_provider or default_provider

    async def get_deps_dep() -> Deps:
        try:
            deps = await provide()
            await ensure_bootstrap(deps.pool, config)
        except StoreError as exc:
            raise HTTPException(status_code=503, detail="temporarily unavailable") from exc
        return deps

    app.state.provide_deps = get_deps_dep  # the token check (auth.require) reads the agent row

    DepsDep = Annotated[Deps, Depends(get_deps_dep)]
    AgentId = Annotated[Identity, Depends(require(AGENT))]
    AdminId = Annotated[Identity, Depends(require(ADMIN))]
    SuperId = Annotated[Identity, Depends(require(SUPER))]
    StaffId = Annotated[Identity, Depends(require(STAFF))]

    async def audit(deps: Deps, who: Identity, action: str, target_type: str | None = None,
                    target_id: str | None = None, **detail: Any) -> None:
        kind: ActorType = actor_type(who)
        await deps.audit.safe_record(
            tenant_id=who.tenant_id, actor_type=kind, actor_id=who.subject, action=action,
            target_type=target_type, target_id=target_id, detail=detail)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        cause = exc.__cause__
        if isinstance(cause, psycopg.DataError):  # e.g. a NUL character: the client's error
            return JSONResponse({"detail": "invalid characters in the request"},
                                status_code=422)
        if isinstance(cause, psycopg.errors.ForeignKeyViolation):  # the token's tenant is gone
            return JSONResponse({"detail": "tenant not found"}, status_code=404)
        logger.warning("store error in admin API", exc_info=exc)
        return JSONResponse({"detail": "temporarily unavailable"}, status_code=503)

    @app.exception_handler(DataKeyUnavailable)
    async def data_key_unavailable(request: Request, exc: DataKeyUnavailable) -> JSONResponse:
        # datakeys logged why (no key in production, unreadable key secret)
        return JSONResponse({"detail": "data encryption key unavailable"}, status_code=503)

    @app.exception_handler(DataKeyError)
    async def data_key_error(request: Request, exc: DataKeyError) -> JSONResponse:
        logger.error("stored tenant secret unreadable: %s", exc)
        return JSONResponse({"detail": "a stored secret cannot be decrypted"}, status_code=503)

    @app.exception_handler(psycopg.DataError)
    async def data_error(request: Request, exc: psycopg.DataError) -> JSONResponse:
        return JSONResponse({"detail": "invalid characters in the request"}, status_code=422)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": "already exists"}, status_code=409)

    # -- public --------------------------------------------------------------------------
    @app.get("/healthz", tags=["public"])
    async def healthz() -> dict[str, str]:
        await signing_secrets(config)  # 503 while there is no usable token secret
        return {"status": "ok"}

    async def rate_limited(deps: Deps, scope: str, value: str, limit: int) -> None:
        window = config.visitor_token_rate_window_s
        wait = await hit(deps.redis, counter_key(config.redis_prefix, scope, value),
                         limit=limit, window_s=window)
        if wait:
            raise HTTPException(status_code=429, detail="too many requests; try again later",
                                headers={"Retry-After": str(wait)})

    @app.post("/v1/visitor-token", response_model=VisitorToken, tags=["public"],
              responses={403: {"description": "unknown widget key, origin not allowed for the "
                                              "key, or invalid identity"},
                         429: {"description": "too many tokens from this address or for this "
                                              "widget key (Retry-After)"}})
    async def visitor_token(body: VisitorTokenRequest, request: Request,
                            deps: DepsDep) -> VisitorToken:
        address = address_bucket(request.client.host if request.client else "unknown")
        await rate_limited(deps, "visitor-token:address", address,
                           config.visitor_token_rate_per_address)
        key = await deps.tenants.widget_key(body.widget_key)
        if key is None:
            raise HTTPException(status_code=403, detail="unknown widget key")
        if not origin_allowed(request.headers.get("origin"), key.allowed_origins):
            raise HTTPException(status_code=403, detail="origin not allowed for this widget key")
        await rate_limited(deps, "visitor-token:key", key.key, config.visitor_token_rate_per_key)
        tenant = key.tenant_id
        visitor_id = body.visitor_id or f"v-{_secrets.token_hex(16)}"
        name: str | None = None
        identified = False
        if body.identity:
            secret = await deps.tenants.identity_secret(tenant)
            if secret is None:
                raise HTTPException(status_code=403, detail="identity not enabled")
            customer, name = _verify_identity(body.identity, secret)
            visitor_id, identified = CUSTOMER_PREFIX + customer, True
        token = issue_token(secrets=await signing_secrets(config), tenant_id=tenant,
                            subject=visitor_id, role="visitor", ttl_s=config.token_ttl_s,
                            name=name, widget_key=key.key)
        tenant_conf = await deps.tenants.get_settings(tenant)
        online = await deps.handoff.online_agents(tenant)
        widget = {
            "greeting_zh": tenant_conf.greeting_zh, "greeting_en": tenant_conf.greeting_en,
            "color": tenant_conf.color, "avatar_url": tenant_conf.avatar_url,
            "offline_message_enabled": tenant_conf.offline_message_enabled,
            "agents_online": bool(online),
        }
        return VisitorToken(token=token, visitor_id=visitor_id, tenant_id=tenant,
                            expires_in=config.token_ttl_s, identified=identified, widget=widget)

    async def agent_token(agent: Agent) -> AgentToken:
        token = issue_token(secrets=await signing_secrets(config), tenant_id=agent.tenant_id,
                            subject=agent.id, role=agent.role, ttl_s=AGENT_TOKEN_TTL_S,
                            name=agent.name, version=agent.token_version)
        return AgentToken(token=token, expires_in=AGENT_TOKEN_TTL_S, agent=agent)

    async def access_changed(deps: Deps, agent: Agent) -> None:
        """After a token version bump: drop the cached access and the agent's presence, so
        nothing is assigned to a console that is about to be refused."""
        await forget(deps.redis, config.redis_prefix, tenant_id=agent.tenant_id,
                     agent_id=agent.id)
        with contextlib.suppress(StoreError):
            await deps.handoff.set_away(tenant_id=agent.tenant_id, agent_id=agent.id)

    @app.post("/v1/agent/login", response_model=AgentToken, tags=["public"], responses={
        401: {"description": "wrong tenant, e-mail or password"},
        429: {"description": "too many failures from this address; see Retry-After"}})
    async def agent_login(body: LoginRequest, request: Request, deps: DepsDep) -> AgentToken:
        throttle = LoginThrottle(deps.redis, prefix=config.redis_prefix)
        attempt = {"tenant_id": body.tenant, "email": body.email,
                   "address": client_address(request)}
        try:
            await throttle.check(**attempt)
        except Throttled as exc:
            raise HTTPException(status_code=429, detail="too many attempts; try again later",
                                headers={"Retry-After": str(exc.retry_after)}) from exc
        agent = await deps.tenants.authenticate(tenant_id=body.tenant, email=body.email,
                                                password=body.password,
                                             allow_demo=config.kefu_env != "production")
        if agent is None:
            await throttle.failed(**attempt)
            raise HTTPException(status_code=401, detail="wrong tenant, e-mail or password")
        await throttle.succeeded(**attempt)
        await deps.audit.safe_record(tenant_id=agent.tenant_id, actor_type=agent.role,
                                     actor_id=agent.id, action="agent.login",
                                  target_type="agent", target_id=agent.id)
        return await agent_token(agent)

    @app.post("/v1/agent/refresh", response_model=AgentToken, tags=["console"])
    async def agent_refresh(who: StaffId, deps: DepsDep) -> AgentToken:
        """A new short-lived token for a still-valid one, re-checked against the database
        (active, not a demo account in production, same token version)."""
        try:
            await staff_access(deps, tenant_id=who.tenant_id, agent_id=who.subject,
                               version=who.version, fresh=True)
        except Unauthorized as exc:
            raise HTTPException(status_code=401, detail="unauthorized",
                                headers={"WWW-Authenticate": "Bearer"}) from exc
        agent = await deps.tenants.get_agent(tenant_id=who.tenant_id,
                                                      agent_id=who.subject)
        if agent is None:
            raise HTTPException(status_code=401, detail="unauthorized")
        return await agent_token(agent)

    @app.post("/v1/agent/sign-out", status_code=204, tags=["console"])
    async def agent_sign_out(who: StaffId, deps: DepsDep) -> Response:
        """Sign out everywhere: every token of the caller stops working at once."""
        agent = await deps.tenants.revoke_tokens(tenant_id=who.tenant_id,
                                                          agent_id=who.subject)
        if agent is not None:
            await access_changed(deps, agent)
            await audit(deps, who, "agent.signed_out", "agent", agent.id)
        return Response(status_code=204)

    # -- super-admin ---------------------------------------------------------------------
    @app.get("/v1/tenants", response_model=list[Tenant], tags=["super-admin"])
    async def list_tenants(who: SuperId, deps: DepsDep) -> list[Tenant]:
        return await deps.tenants.list_tenants()

    @app.post("/v1/tenants", response_model=TenantCreated, status_code=201,
              tags=["super-admin"])
    async def create_tenant(body: TenantCreate, who: SuperId, deps: DepsDep) -> TenantCreated:
        tenant = await deps.tenants.create_tenant(tenant_id=body.id, name=body.name)
        admin = await deps.tenants.create_agent(tenant_id=tenant.id, email=body.admin_email,
                                                name=body.admin_name,
                                             password=body.admin_password, role="admin")
        key = await deps.tenants.create_widget_key(tenant_id=tenant.id, label="default")
        await deps.audit.safe_record(tenant_id=tenant.id, actor_type="admin",
                                     actor_id=f"{ROOT_TENANT}:{who.subject}",
                                  action="tenant.created", target_type="tenant",
                                  target_id=tenant.id, detail={"admin": admin.id})
        return TenantCreated(tenant=tenant, admin=admin, widget_key=key)

    # -- agents and admins ---------------------------------------------------------------
    @app.get("/v1/me", response_model=Agent, tags=["console"])
    async def me(who: AgentId, deps: DepsDep) -> Agent:
        agent = await deps.tenants.get_agent(tenant_id=who.tenant_id,
                                                      agent_id=who.subject)
        if agent is None:
            raise HTTPException(status_code=404, detail="not found")
        return agent

    def _filters(
        q: Annotated[str | None, Query(max_length=200)] = None,
        status: Annotated[Literal["open", "closed"] | None, Query()] = None,
        owner: Annotated[Literal["bot", "queue", "human"] | None, Query()] = None,
        agent: Annotated[str | None, Query(max_length=64)] = None,
        visitor_id: Annotated[str | None, Query(max_length=128)] = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        return {"text": q, "status": status, "owners": (owner,) if owner else None,
                "assigned_agent": agent, "visitor_id": visitor_id, "since": since,
                "until": until}

    Filters = Annotated[dict[str, Any], Depends(_filters)]

    @app.get("/v1/conversations", response_model=list[ConversationView], tags=["console"])
    async def search_conversations(
        who: AgentId, deps: DepsDep, filters: Filters,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[ConversationView]:
        found = await deps.conversations.search(tenant_id=who.tenant_id, limit=limit,
                                                offset=offset, **filters)
        return [_view(c) for c in found]

    @app.get("/v1/conversations/export", tags=["console"])
    async def export_conversations(
        who: AgentId, deps: DepsDep, filters: Filters,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> Response:
        found = await deps.conversations.search(tenant_id=who.tenant_id, limit=limit,
                                                **filters)
        transcripts = []
        for conversation in found:
            messages = await deps.conversations.recent(
                tenant_id=who.tenant_id, conversation_id=conversation.id, limit=10_000)
            transcripts.append((conversation, messages))
        await audit(deps, who, "conversations.exported", detail_format=format,
                    count=len(found))
        if format == "csv":
            rows = ([conversation.id, conversation.visitor_id, m.seq, m.role, m.author, m.text,
                     m.status, m.created_at.isoformat()]
                    for conversation, messages in transcripts for m in messages)
            text = to_csv(["conversation_id", "visitor_id", "seq", "role", "author", "text",
                           "status", "at"], rows)
            return Response(text, media_type="text/csv; charset=utf-8", headers={
                "content-disposition": 'attachment; filename="conversations.csv"'})
        body = [{"conversation": _view(c).model_dump(mode="json"),
                 "messages": [m.public() for m in messages]} for c, messages in transcripts]
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json",
                        headers={"content-disposition":
                                 'attachment; filename="conversations.json"'})

    @app.get("/v1/conversations/{conversation_id}", response_model=Transcript, tags=["console"])
    async def transcript(conversation_id: str, who: AgentId, deps: DepsDep) -> Transcript:
        _check_uuid(conversation_id)
        conversation = await deps.conversations.get(tenant_id=who.tenant_id,
                                                    conversation_id=conversation_id)
        if conversation is None:
            raise HTTPException(status_code=404, detail="not found")
        messages = await deps.conversations.recent(tenant_id=who.tenant_id,
                                                   conversation_id=conversation.id,
                                                   limit=10_000)
        return Transcript(
            conversation=_view(conversation), messages=[m.public() for m in messages],
            notes=await deps.service.notes(tenant_id=who.tenant_id,
                                           conversation_id=conversation.id),
            csat=await deps.service.rating(tenant_id=who.tenant_id,
                                           conversation_id=conversation.id),
        )

    @app.get("/v1/offline-messages", response_model=list[OfflineMessage], tags=["console"])
    async def offline_messages(
        who: AgentId, deps: DepsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[OfflineMessage]:
        return await deps.service.offline_messages(tenant_id=who.tenant_id,
                                                            limit=limit)

    # -- admins: agents ------------------------------------------------------------------
    @app.get("/v1/admin/agents", response_model=list[Agent], tags=["admin"])
    async def list_agents(who: AdminId, deps: DepsDep) -> list[Agent]:
        return await deps.tenants.list_agents(who.tenant_id)

    @app.post("/v1/admin/agents", response_model=Agent, status_code=201, tags=["admin"])
    async def create_agent(body: AgentCreate, who: AdminId, deps: DepsDep) -> Agent:
        agent = await deps.tenants.create_agent(
            tenant_id=who.tenant_id, email=body.email, name=body.name, password=body.password,
            role=body.role, capacity=body.capacity)
        await audit(deps, who, "agent.created", "agent", agent.id, role=agent.role,
                    email=agent.email)
        return agent

    @app.patch("/v1/admin/agents/{agent_id}", response_model=Agent, tags=["admin"])
    async def update_agent(agent_id: str, body: AgentUpdate, who: AdminId,
                           deps: DepsDep) -> Agent:
        agent = await deps.tenants.update_agent(
            tenant_id=who.tenant_id, agent_id=agent_id, **body.model_dump())
        if agent is None:
            raise HTTPException(status_code=404, detail="not found")
        changed = sorted(k for k, v in body.model_dump().items() if v is not None)
        if {"role", "active", "password"} & set(changed):  # the token version may have moved
            await access_changed(deps, agent)
        await audit(deps, who, "agent.updated", "agent", agent.id, fields=changed)
        return agent

    @app.post("/v1/admin/agents/{agent_id}/sign-out", status_code=204, tags=["admin"])
    async def sign_out_agent(agent_id: str, who: AdminId, deps: DepsDep) -> Response:
        """Sign an agent out everywhere (a lost laptop): every token it holds stops working."""
        agent = await deps.tenants.revoke_tokens(tenant_id=who.tenant_id,
                                                          agent_id=agent_id)
        if agent is None:
            raise HTTPException(status_code=404, detail="not found")
        await access_changed(deps, agent)
        await audit(deps, who, "agent.signed_out", "agent", agent.id)
        return Response(status_code=204)

    # -- admins: widget keys and identity ------------------------------------------------
    @app.get("/v1/admin/widget-keys", response_model=list[WidgetKey], tags=["admin"])
    async def list_widget_keys(who: AdminId, deps: DepsDep) -> list[WidgetKey]:
        return await deps.tenants.list_widget_keys(who.tenant_id)

    @app.post("/v1/admin/widget-keys", response_model=WidgetKey, status_code=201,
              tags=["admin"])
    async def create_widget_key(body: WidgetKeyCreate, who: AdminId,
                                deps: DepsDep) -> WidgetKey:
        key = await deps.tenants.create_widget_key(
            tenant_id=who.tenant_id, label=body.label, allowed_origins=body.allowed_origins)
        await audit(deps, who, "widget_key.created", "widget_key", key.key,
                    allowed_origins=key.allowed_origins)
        return key

    @app.patch("/v1/admin/widget-keys/{key}", response_model=WidgetKey, tags=["admin"])
    async def update_widget_key(key: str, body: WidgetKeyUpdate, who: AdminId,
                                deps: DepsDep) -> WidgetKey:
        updated = await deps.tenants.update_widget_key(
            tenant_id=who.tenant_id, key=key, label=body.label,
            allowed_origins=body.allowed_origins)
        if updated is None:
            raise HTTPException(status_code=404, detail="not found")
        forget_widget_key(key)
        changed = sorted(k for k, v in body.model_dump().items() if v is not None)
        await audit(deps, who, "widget_key.updated", "widget_key", key, fields=changed,
                    allowed_origins=updated.allowed_origins)
        return updated

    @app.delete("/v1/admin/widget-keys/{key}", status_code=204, tags=["admin"])
    async def revoke_widget_key(key: str, who: AdminId, deps: DepsDep) -> Response:
        if not await deps.tenants.revoke_widget_key(tenant_id=who.tenant_id, key=key):
            raise HTTPException(status_code=404, detail="not found")
        forget_widget_key(key)
        await audit(deps, who, "widget_key.revoked", "widget_key", key)
        return Response(status_code=204)

    @app.post("/v1/admin/identity-secret", response_model=IdentitySecret, tags=["admin"])
    async def rotate_identity_secret(who: AdminId, deps: DepsDep) -> IdentitySecret:
        secret = await deps.tenants.rotate_identity_secret(who.tenant_id)
        await audit(deps, who, "identity_secret.rotated", "tenant", who.tenant_id)
        return IdentitySecret(identity_secret=secret)

    # -- admins: settings, prompts, engines ----------------------------------------------
    @app.get("/v1/admin/settings", response_model=TenantSettings, tags=["admin"])
    async def get_tenant_settings(who: AdminId, deps: DepsDep) -> TenantSettings:
        return await deps.tenants.get_settings(who.tenant_id)

    @app.put("/v1/admin/settings", response_model=TenantSettings, tags=["admin"])
    async def put_tenant_settings(body: TenantSettings, who: AdminId,
                                  deps: DepsDep) -> TenantSettings:
        before = await deps.tenants.get_settings(who.tenant_id)
        saved = await deps.tenants.put_settings(who.tenant_id, body)
        changed = sorted(k for k, v in body.model_dump().items()
                         if before.model_dump().get(k) != v)
        await audit(deps, who, "settings.updated", "settings", who.tenant_id, fields=changed)
        return saved

    @app.get("/v1/admin/prompts", response_model=dict[str, str], tags=["admin"])
    async def list_prompts(who: AdminId, deps: DepsDep) -> dict[str, str]:
        return await deps.tenants.list_prompts(who.tenant_id)

    @app.put("/v1/admin/prompts/{name}", status_code=204, tags=["admin"])
    async def put_prompt(name: ResourceName, body: PromptBody,
                         who: AdminId, deps: DepsDep) -> Response:
        await deps.tenants.put_prompt(tenant_id=who.tenant_id, name=name,
                                               text=body.text)
        await audit(deps, who, "prompt.updated", "prompt", name, length=len(body.text))
        return Response(status_code=204)

    @app.delete("/v1/admin/prompts/{name}", status_code=204, tags=["admin"])
    async def delete_prompt(name: ResourceName, who: AdminId,
                            deps: DepsDep) -> Response:
        if not await deps.tenants.delete_prompt(tenant_id=who.tenant_id, name=name):
            raise HTTPException(status_code=404, detail="not found")
        await audit(deps, who, "prompt.deleted", "prompt", name)
        return Response(status_code=204)

    @app.get("/v1/admin/engines", response_model=EngineView, tags=["admin"])
    async def get_engines(who: AdminId, deps: DepsDep) -> EngineView:
        chain = [EngineEntry.model_validate(e)
                 for e in await deps.tenants.get_engine_chain(who.tenant_id)]
        return EngineView.of(chain, await deps.tenants.engine_secret_names(who.tenant_id))

    @app.put("/v1/admin/engines", response_model=EngineView, tags=["admin"])
    async def put_engines(body: EngineChain, who: AdminId, deps: DepsDep) -> EngineView:
        _check_engine_urls(body, config.outbound_policy())
        await deps.tenants.put_engine_chain(tenant_id=who.tenant_id,
                                            chain=[e.model_dump() for e in body.chain])
        deps.engines_changed(who.tenant_id)
        await audit(deps, who, "engines.updated", "engines", who.tenant_id,
                    chain=[e.name for e in body.chain])
        return EngineView.of(body.chain, await deps.tenants.engine_secret_names(who.tenant_id))

    @app.put("/v1/admin/engines/secrets/{name}", status_code=204, tags=["admin"])
    async def put_engine_secret(name: ResourceName, body: SecretBody,
                                who: AdminId, deps: DepsDep) -> Response:
        await deps.tenants.put_engine_secret(tenant_id=who.tenant_id, name=name,
                                                      secret=body.secret)
        deps.engines_changed(who.tenant_id)
        await audit(deps, who, "engine_secret.set", "engine_secret", name)
        return Response(status_code=204)

    @app.delete("/v1/admin/engines/secrets/{name}", status_code=204, tags=["admin"])
    async def delete_engine_secret(name: ResourceName, who: AdminId,
                                   deps: DepsDep) -> Response:
        if not await deps.tenants.delete_engine_secret(tenant_id=who.tenant_id,
                                                                name=name):
            raise HTTPException(status_code=404, detail="not found")
        deps.engines_changed(who.tenant_id)
        await audit(deps, who, "engine_secret.deleted", "engine_secret", name)
        return Response(status_code=204)

    # -- admins: knowledge base ----------------------------------------------------------
    async def _knowledge(deps: Deps) -> Any:
        memory = await deps.load_memory()  # built on first use
        knowledge = getattr(memory, "knowledge", None)
        if knowledge is None:
            raise HTTPException(status_code=503, detail="knowledge base not configured")
        return knowledge

    @app.get("/v1/admin/knowledge", tags=["admin"])
    async def list_documents(who: AdminId, deps: DepsDep) -> dict[str, Any]:
        kb = await _knowledge(deps)
        return {"documents": await kb.document_names(who.tenant_id),
                "version": await kb.kb_version(who.tenant_id)}

    @app.post("/v1/admin/knowledge", status_code=201, tags=["admin"])
    async def add_document(body: DocumentCreate, who: AdminId, deps: DepsDep) -> dict[str, Any]:
        kb = await _knowledge(deps)
        try:
            result = await kb.ingest_document(tenant_id=who.tenant_id, name=body.name,
                                              content=body.content,
                                              content_type=body.content_type)
        except Exception as exc:
            from kefu_memory import IngestError, UnsupportedContentType

            if isinstance(exc, IngestError | UnsupportedContentType):
                raise HTTPException(status_code=422, detail="document cannot be ingested") \
                    from exc
            raise
        await audit(deps, who, "knowledge.document_added", "document", body.name,
                    chunks=getattr(result, "chunks", None))
        return {"name": body.name, "chunks": getattr(result, "chunks", None),
                "version": await kb.kb_version(who.tenant_id)}

    @app.delete("/v1/admin/knowledge/{name}", status_code=204, tags=["admin"])
    async def delete_document(name: str, who: AdminId, deps: DepsDep) -> Response:
        kb = await _knowledge(deps)
        if not await kb.delete_document(tenant_id=who.tenant_id, name=name):
            raise HTTPException(status_code=404, detail="not found")
        await audit(deps, who, "knowledge.document_deleted", "document", name)
        return Response(status_code=204)

    # -- admins: CSAT and the audit log --------------------------------------------------
    @app.get("/v1/admin/csat", response_model=CsatFigures, tags=["admin"])
    async def csat_figures(who: AdminId, deps: DepsDep, since: datetime | None = None,
                           until: datetime | None = None) -> CsatFigures:
        return await deps.service.figures(tenant_id=who.tenant_id, since=since,
                                                   until=until)

    def _audit_filters(
        actor_type: Annotated[Literal["visitor", "agent", "admin", "system"] | None,
                              Query()] = None,
        actor_id: Annotated[str | None, Query(max_length=128)] = None,
        action: Annotated[str | None, Query(max_length=100)] = None,
        target_type: Annotated[str | None, Query(max_length=64)] = None,
        target_id: Annotated[str | None, Query(max_length=128)] = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        return {"actor_type": actor_type, "actor_id": actor_id, "action": action,
                "target_type": target_type, "target_id": target_id, "since": since,
                "until": until}

    AuditFilters = Annotated[dict[str, Any], Depends(_audit_filters)]

    @app.get("/v1/admin/audit", response_model=list[AuditEntry], tags=["admin"])
    async def audit_log(who: AdminId, deps: DepsDep, filters: AuditFilters,
                        before_id: int | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
        return await deps.audit.query(tenant_id=who.tenant_id, before_id=before_id,
                                               limit=limit, **filters)

    @app.get("/v1/admin/audit/export", tags=["admin"])
    async def audit_export(who: AdminId, deps: DepsDep, filters: AuditFilters,
                           format: Annotated[Literal["json", "csv"], Query()] = "csv",
                           limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000) -> Response:
        entries = await deps.audit.query(tenant_id=who.tenant_id, limit=limit,
                                                  **filters)
        await audit(deps, who, "audit.exported", detail_format=format, count=len(entries))
        if format == "csv":
            return Response(entries_to_csv(entries), media_type="text/csv; charset=utf-8",
                            headers={"content-disposition": 'attachment; filename="audit.csv"'})
        return Response(json.dumps([e.model_dump(mode="json") for e in entries],
                                   ensure_ascii=False), media_type="application/json",
                        headers={"content-disposition": 'attachment; filename="audit.json"'})

    return app




def _check_engine_urls(body: EngineChain, policy: OutboundPolicy) -> None:
    """A tenant's engine URL: http(s) only, and not an address the policy refuses (the
    resolved address is checked again on every connection, see kefu_llm.netguard)."""
    for entry in body.chain:
        if entry.base_url is not None:
            try:
                check_url(entry.base_url, policy)
            except UnsafeURL as exc:
                raise HTTPException(status_code=422,
                                    detail=f"engine {entry.name}: base_url: {exc}") from exc


def body_limits(config: Settings) -> dict[str, Any]:
    """The admin API's request body limits (security.http_limits): knowledge-base documents,
    prompts, and every other (JSON) route."""
    return {
        "default_max_bytes": config.http_max_body_bytes,
        "limits": [
            BodyLimit(path="/v1/admin/knowledge", methods=frozenset({"POST"}),
                      max_bytes=config.knowledge_max_body_bytes),
            BodyLimit(path="/v1/admin/prompts/[^/]+", methods=frozenset({"PUT"}),
                      max_bytes=max(PROMPT_MAX_BODY_BYTES, config.http_max_body_bytes)),
        ],
    }


def _secret_name(name: str) -> str:
    if not re.fullmatch(_NAME, name):
        raise HTTPException(status_code=422, detail="invalid secret name")
    return name
