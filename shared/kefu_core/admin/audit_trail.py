"""What an admin route writes to the tenant's audit log (:mod:`kefu_core.product.audit`)."""

from __future__ import annotations

from typing import Any

from kefu_core.admin.auth import actor_type
from kefu_core.deps import Deps
from kefu_core.security.tokens import Identity

__all__ = ["record"]


async def record(deps: Deps, who: Identity, action: str,
                 target_type: str | None = None, target_id: str | None = None,
                 **detail: Any) -> None:
    """One entry by the caller in its own tenant; a lost entry is logged, never raised (the
    action already happened)."""
    await deps.audit.safe_record(
        tenant_id=who.tenant_id, actor_type=actor_type(who), actor_id=who.subject,
        action=action, target_type=target_type, target_id=target_id, detail=detail)
