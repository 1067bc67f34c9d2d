"""The product layer's stores, built once per :class:`~kefu_core.deps.Deps` from its pool/redis.

Tests inject their own by putting a :class:`ProductStores` in ``deps.extras["product"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kefu_core.deps import Deps
from kefu_core.product.audit import AuditLog
from kefu_core.product.service import ServiceStore
from kefu_core.product.tenants import TenantStore
from kefu_core.security.datakeys import data_keys_for

__all__ = ["ProductStores", "memory_of", "stores"]


@dataclass
class ProductStores:
    tenants: TenantStore
    audit: AuditLog
    service: ServiceStore
    handoff: Any  # kefu_core.product.handoff.HandoffState (imported lazily: it imports this module)


def stores(deps: Deps) -> ProductStores:
    found = deps.extras.get("product")
    if isinstance(found, ProductStores):
        return found
    from kefu_core.product.handoff import HandoffState

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
    """The memory service (``answers.memory.MemoryService``) or None, built on first use."""
    load = getattr(deps, "load_memory", None)
    if load is not None:
        return await load()
    return getattr(deps, "memory", None)
