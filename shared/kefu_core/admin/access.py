"""After an agent's access changed (role, deactivation, password, sign-out everywhere)."""

from __future__ import annotations

import contextlib

from kefu_core.deps import Deps
from kefu_core.infra.errors import StoreError
from kefu_core.infra.settings import Settings
from kefu_core.product.agent_auth import forget
from kefu_core.product.tenants.agents import Agent

__all__ = ["access_changed"]


async def access_changed(deps: Deps, settings: Settings, agent: Agent) -> None:
    """After a token version bump: drop the cached access and the agent's presence, so
    nothing is assigned to a console that is about to be refused."""
    await forget(deps.redis, settings.redis_prefix, tenant_id=agent.tenant_id,
                 agent_id=agent.id)
    with contextlib.suppress(StoreError):
        await deps.handoff.set_away(tenant_id=agent.tenant_id, agent_id=agent.id)
