"""The product layer's stores, built once per :class:`~kefu_core.deps.Deps` from its pool/redis.

Tests inject their own by putting a :class:`ProductStores` in ``deps.extras["product"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .audit import AuditLog
from .datakeys import data_keys_for
from .deps import Deps
from .service import ServiceStore
from .tenants import TenantStore

__all__ = ["ProductStores", "memory_of", "stores"]


@dataclass
class ProductStores:
    tenants: TenantStore
    audit: AuditLog
    service: ServiceStore
    handoff: Any  # kefu_core.handoff.HandoffState (imported lazily: it imports this module)


def stores(deps: Deps) -> ProductStores:
    found = deps.extras.get("product")
    if isinstance(found, ProductStores):
        return found
    from .handoff import HandoffState

    built = ProductStores(
        tenants=TenantStore(deps.pool, data_keys_for(deps.settings)),
        audit=AuditLog(deps.pool),
        service=ServiceStore(deps.pool),
        handoff=HandoffState(deps.redis, prefix=deps.settings.redis_prefix,
                             conns_key=deps.connections.agent_conns_key),
    )
    deps.extras["product"] = built
    return built


async def memory_of(deps: Deps) -> Any:
    """The memory service (``kefu_core.memory.MemoryService``) or None, built on first use."""
    load = getattr(deps, "load_memory", None)
    if load is not None:
        return await load()
    return getattr(deps, "memory", None)
