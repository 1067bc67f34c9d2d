"""Agents (staff) of a tenant, and signing in.

E-mail addresses are unique per tenant (migration ``003_agent_auth.sql``) and sign-in names the
tenant, so nothing reveals another tenant's addresses. Each agent has a ``token_version``
(revocation, :mod:`kefu_core.product.agent_auth`) and a ``demo`` flag (the development demo
administrator, refused in production).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from kefu_core.product.tenants.passwords import DUMMY_HASH, hash_password, verify_password
from kefu_core.product.tenants.rows import Rows
from kefu_core.security.roles import StaffRole

__all__ = ["Agent", "AgentStore"]

_COLS = ("id, tenant_id, email, name, role, capacity, active, created_at, token_version,"
         " demo")


class Agent(BaseModel):
    id: str
    tenant_id: str
    email: str
    name: str
    role: StaffRole
    capacity: int
    active: bool
    created_at: datetime
    # Never in an API answer: the version carried in this agent's tokens (bumped to revoke
    # them) and the demo flag (a demo account is refused in production).
    token_version: int = Field(default=1, exclude=True)
    demo: bool = Field(default=False, exclude=True)


class AgentStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._rows = Rows(pool)

    async def create(
        self, *, tenant_id: str, email: str, name: str, password: str, role: StaffRole = "agent",
        capacity: int = 5, demo: bool = False,
    ) -> Agent:
        """Create an agent; ``Conflict`` when the tenant already has that e-mail address
        (addresses are unique per tenant only, so another tenant's agents are never revealed)."""
        hashed = await asyncio.to_thread(hash_password, password)
        row = await self._rows.one(
            f"INSERT INTO agents (id, tenant_id, email, name, role, password_hash, capacity,"
            f" demo) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLS}",
            (f"a-{uuid.uuid4().hex[:16]}", tenant_id, email.strip(), name, role, hashed,
             capacity, demo),
        )
        assert row is not None
        return Agent.model_validate(row)

    async def update(
        self, *, tenant_id: str, agent_id: str, name: str | None = None,
        role: StaffRole | None = None, capacity: int | None = None, active: bool | None = None,
        password: str | None = None,
    ) -> Agent | None:
        """Change an agent. A new role, a change of ``active`` or a new password bumps the
        token version, which revokes every token the agent holds."""
        hashed = await asyncio.to_thread(hash_password, password) if password else None
        row = await self._rows.one(
            f"UPDATE agents SET name = coalesce(%s, name), role = coalesce(%s, role),"
            f" capacity = coalesce(%s, capacity), active = coalesce(%s, active),"
            f" password_hash = coalesce(%s, password_hash),"
            f" token_version = token_version + CASE WHEN coalesce(%s, role) <> role"
            f" OR coalesce(%s, active) <> active OR %s::text IS NOT NULL THEN 1 ELSE 0 END,"
            f" updated_at = now()"
            f" WHERE id = %s AND tenant_id = %s RETURNING {_COLS}",
            (name, role, capacity, active, hashed, role, active, hashed, agent_id, tenant_id),
        )
        return Agent.model_validate(row) if row else None

    async def revoke_tokens(self, *, tenant_id: str, agent_id: str) -> Agent | None:
        """Sign the agent out everywhere: every token issued before stops working."""
        row = await self._rows.one(
            f"UPDATE agents SET token_version = token_version + 1, updated_at = now()"
            f" WHERE id = %s AND tenant_id = %s RETURNING {_COLS}", (agent_id, tenant_id))
        return Agent.model_validate(row) if row else None

    async def get(self, *, tenant_id: str, agent_id: str) -> Agent | None:
        row = await self._rows.one(f"SELECT {_COLS} FROM agents WHERE id = %s"
                                   " AND tenant_id = %s", (agent_id, tenant_id))
        return Agent.model_validate(row) if row else None

    async def list(self, tenant_id: str) -> list[Agent]:
        rows = await self._rows.all(f"SELECT {_COLS} FROM agents WHERE tenant_id = %s"
                                    " ORDER BY created_at", (tenant_id,))
        return [Agent.model_validate(r) for r in rows]

    async def authenticate(
        self, *, tenant_id: str, email: str, password: str, allow_demo: bool = True
    ) -> Agent | None:
        """The active agent of ``tenant_id`` with this e-mail and password, else None (the
        same work and the same answer whether the address exists or not). Demo accounts are
        refused unless ``allow_demo`` (never in production)."""
        row = await self._rows.one(f"SELECT {_COLS}, password_hash FROM agents"
                                   " WHERE tenant_id = %s AND lower(email) = lower(%s)",
                                   (tenant_id, email.strip()))
        stored = str(row["password_hash"]) if row else DUMMY_HASH  # same work either way
        ok = await asyncio.to_thread(verify_password, password, stored)
        if not ok or row is None or not row["active"] or (row["demo"] and not allow_demo):
            return None
        return Agent.model_validate(row)
