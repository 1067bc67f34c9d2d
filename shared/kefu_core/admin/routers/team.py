"""``/v1/admin/agents``: a tenant's admins manage its agents. A new role, deactivation or a
new password revokes the agent's tokens at once (:mod:`kefu_core.product.agent_auth`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from kefu_core.admin.access import access_changed
from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep, SettingsDep
from kefu_core.admin.errors import NOT_FOUND, found
from kefu_core.product.tenants.agents import Agent
from kefu_core.security.roles import StaffRole

router = APIRouter(prefix="/v1/admin/agents", tags=["team"])

# Fields whose change bumps the agent's token version (its tokens stop working).
REVOKING = frozenset({"role", "active", "password"})


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=10, max_length=200)
    role: StaffRole = "agent"
    capacity: int = Field(default=5, ge=0, le=100)


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    role: StaffRole | None = None
    capacity: int | None = Field(default=None, ge=0, le=100)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=200)


@router.get("", response_model=list[Agent], summary="List agents")
async def list_agents(who: AdminId, deps: DepsDep) -> list[Agent]:
    """The tenant's agents and admins (never their password hashes)."""
    return await deps.agents.list(who.tenant_id)


@router.post("", response_model=Agent, status_code=201, summary="Invite an agent",
             responses={409: {"description": "the tenant already has that e-mail address"}})
async def create_agent(body: AgentCreate, who: AdminId, deps: DepsDep) -> Agent:
    """A new agent or admin with an initial password (at least 10 characters)."""
    agent = await deps.agents.create(
        tenant_id=who.tenant_id, email=body.email, name=body.name, password=body.password,
        role=body.role, capacity=body.capacity)
    await record(deps, who, "agent.created", "agent", agent.id, role=agent.role,
                 email=agent.email)
    return agent


@router.patch("/{agent_id}", response_model=Agent, summary="Change an agent",
              responses=NOT_FOUND)
async def update_agent(agent_id: str, body: AgentUpdate, who: AdminId, deps: DepsDep,
                       settings: SettingsDep) -> Agent:
    """Name, role, capacity, active, password. A new role, `active` or a new password
    signs the agent out everywhere."""
    agent = found(await deps.agents.update(
        tenant_id=who.tenant_id, agent_id=agent_id, **body.model_dump()))
    changed = sorted(k for k, v in body.model_dump().items() if v is not None)
    if REVOKING & set(changed):  # the token version may have moved
        await access_changed(deps, settings, agent)
    await record(deps, who, "agent.updated", "agent", agent.id, fields=changed)
    return agent


@router.post("/{agent_id}/sign-out", status_code=204, summary="Sign an agent out everywhere",
             responses=NOT_FOUND)
async def sign_out_agent(agent_id: str, who: AdminId, deps: DepsDep,
                         settings: SettingsDep) -> Response:
    """A lost laptop: every token the agent holds stops working."""
    agent = found(await deps.agents.revoke_tokens(tenant_id=who.tenant_id,
                                                   agent_id=agent_id))
    await access_changed(deps, settings, agent)
    await record(deps, who, "agent.signed_out", "agent", agent.id)
    return Response(status_code=204)
