"""Staff accounts for tests: a real agent row and a token carrying its current version.

Staff tokens are checked against the agent's row on every use (kefu_core.product.agent_auth), so a
test token must name an agent that exists, is active and has that token version.
"""

from __future__ import annotations

import uuid

from psycopg_pool import AsyncConnectionPool

from kefu_core.product.tenants.agents import Agent, AgentStore
from kefu_core.product.tenants.tenants import TenantStore
from kefu_core.security.roles import StaffRole
from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET


async def make_staff(
    pool: AsyncConnectionPool, *, tenant_id: str, role: StaffRole = "agent",
    name: str | None = None, password: str = "p" * 12, email: str | None = None,
) -> Agent:
    await TenantStore(pool).ensure(tenant_id=tenant_id, name=tenant_id)
    return await AgentStore(pool).create(
        tenant_id=tenant_id, email=email or f"{role}-{uuid.uuid4().hex[:8]}@{tenant_id}.test",
        name=name or role.title(), password=password, role=role)


def token_for(agent: Agent, *, secret: str = SECRET, ttl_s: int = 600) -> str:
    return issue_token(secrets=[secret], tenant_id=agent.tenant_id, subject=agent.id,
                       role=agent.role, ttl_s=ttl_s, name=agent.name,
                       version=agent.token_version)
