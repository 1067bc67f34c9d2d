"""Whether a staff token (agent or admin) still grants access, and with which role.

A token alone is not enough: every agent row has a ``token_version`` (migration
``003_agent_auth.sql``), carried in its tokens as the ``ver`` claim and bumped when the agent is
deactivated, changes role or password, or signs out everywhere. Each admin request, the staff
``$connect`` and each staff WebSocket action compare the token's version with the row's and take
the role from the row, never from the token: a demoted admin's old token is an agent's at best,
and a revoked one is refused.

The row is cached in Redis for :data:`CACHE_TTL_S` seconds, shared by every process (Lambda
containers, gateway replicas), and the cache entry is deleted when the row changes, so a change
takes effect at once everywhere; the short lifetime bounds how long a lost deletion or a read
racing with the change can keep an old answer. When Redis fails, the database is read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from kefu_core.infra.errors import Unauthorized
from kefu_core.security.roles import StaffRole

if TYPE_CHECKING:
    from kefu_core.deps import Deps

__all__ = ["CACHE_TTL_S", "StaffAccess", "forget", "staff_access"]

logger = logging.getLogger("kefu.agent_auth")

CACHE_TTL_S = 5
_MISSING = b"-"


class StaffAccess(BaseModel):
    """What the database says about a staff member now."""

    agent_id: str
    tenant_id: str
    role: StaffRole
    name: str
    version: int


def _key(prefix: str, tenant_id: str, agent_id: str) -> str:
    return f"{prefix}agent-auth:{tenant_id}:{agent_id}"


async def _load(deps: Deps, tenant_id: str, agent_id: str) -> StaffAccess | None:
    """The agent's access from the database: None when it is unknown, inactive, or a demo
    account in production."""
    agent = await deps.agents.get(tenant_id=tenant_id, agent_id=agent_id)
    if agent is None or not agent.active:
        return None
    if agent.demo and deps.settings.kefu_env == "production":
        return None
    return StaffAccess(agent_id=agent.id, tenant_id=agent.tenant_id, role=agent.role,
                       name=agent.name, version=agent.token_version)


async def _cached(deps: Deps, tenant_id: str, agent_id: str) -> StaffAccess | None:
    key = _key(deps.settings.redis_prefix, tenant_id, agent_id)
    try:
        raw = await deps.redis.get(key)
    except RedisError:
        logger.warning("access cache unavailable; reading the database")
        return await _load(deps, tenant_id, agent_id)
    if raw == _MISSING:
        return None
    if raw:
        try:
            return StaffAccess.model_validate_json(raw)
        except ValidationError:
            pass
    access = await _load(deps, tenant_id, agent_id)
    try:
        await deps.redis.set(key, access.model_dump_json() if access else _MISSING,
                             ex=CACHE_TTL_S)
    except RedisError:
        pass
    return access


async def staff_access(
    deps: Deps, *, tenant_id: str, agent_id: str, version: int | None, fresh: bool = False
) -> StaffAccess:
    """The access a staff token of ``version`` grants now, or :class:`Unauthorized` when the
    agent is gone, inactive, a demo account in production, or the token is older than the
    agent's last access change. ``fresh`` skips the cache (token refresh)."""
    if version is None:
        raise Unauthorized("staff token without a version")
    access = (await _load(deps, tenant_id, agent_id) if fresh
              else await _cached(deps, tenant_id, agent_id))
    if access is None:
        raise Unauthorized("agent unknown or inactive")
    if access.version != version:
        raise Unauthorized("token revoked")
    return access


async def forget(redis: aioredis.Redis, prefix: str, *, tenant_id: str, agent_id: str) -> None:
    """Drop the cached access of an agent whose row just changed (best effort: the entry
    expires within :data:`CACHE_TTL_S` anyway)."""
    try:
        await redis.delete(_key(prefix, tenant_id, agent_id))
    except RedisError:
        logger.warning("could not drop a cached agent access; it expires in %ss", CACHE_TTL_S)
