"""What the agent console shows about a customer: business memory (the CRM's orders and
tickets) and long-term facts, behind one small interface that degrades gracefully.

Each source answers under a deadline; one that is not configured, fails or is late is reported
as unavailable (with a reason code), never as an error to the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kefu_memory import CrmClient
    from kefu_memory.long_term import LongTermMemory

__all__ = ["CustomerContext", "MemoryCustomerContext", "customer_view"]

logger = logging.getLogger("kefu.customer")


class CustomerContext(Protocol):
    async def business(self, *, tenant_id: str, customer_id: str) -> dict[str, Any] | None:
        """Customer record, recent orders and tickets; ``None`` when not configured."""

    async def facts(self, *, tenant_id: str, customer_id: str) -> list[dict[str, Any]] | None:
        """Current long-term facts; ``None`` when not configured."""


class MemoryCustomerContext:
    """kefu_memory's ``CrmClient`` and ``LongTermMemory`` (either may be missing)."""

    def __init__(self, *, crm: CrmClient | None, long_term: LongTermMemory | None) -> None:
        self._crm = crm
        self._long_term = long_term

    async def business(self, *, tenant_id: str, customer_id: str) -> dict[str, Any] | None:
        if self._crm is None:
            return None
        profile = await self._crm.profile(customer_id)
        result: dict[str, Any] = profile.model_dump(mode="json")
        return result

    async def facts(self, *, tenant_id: str, customer_id: str) -> list[dict[str, Any]] | None:
        if self._long_term is None:
            return None
        found = await self._long_term.facts(tenant_id=tenant_id, customer_id=customer_id)
        return [
            {"kind": f.kind, "key": f.key, "value": f.value,
             "since": f.valid_from.isoformat() if f.valid_from else None}
            for f in found
        ]


async def customer_view(
    context: CustomerContext, *, tenant_id: str, visitor_id: str, customer_id: str | None,
    deadline_s: float = 1.5,
) -> dict[str, Any]:
    """``{"customer_id", "business": {...}|None, "facts": [...]|None, "unavailable": {...}}``.

    The CRM is asked only for identified customers (``customer_id``); long-term facts are keyed
    like the memory layer writes them (by the conversation's visitor id).
    """
    # Imported here: connect, disconnect and message import this module but ship without the
    # memory layer (the agent console's functions that call this have it).
    from kefu_memory import gather_within

    unavailable: dict[str, str] = {}
    calls: dict[str, Awaitable[Any]] = {}
    if customer_id:
        calls["business"] = context.business(tenant_id=tenant_id, customer_id=customer_id)
    else:
        unavailable["business"] = "anonymous_visitor"
    calls["facts"] = context.facts(tenant_id=tenant_id, customer_id=visitor_id)
    gathered = await gather_within(deadline_s, **calls)
    for name in gathered.late:
        unavailable[name] = "timeout"
    for name, exc in gathered.failed.items():
        logger.warning("customer source failed", extra={"source": name}, exc_info=exc)
        unavailable[name] = "error"
    for name, value in gathered.values.items():
        if value is None:
            unavailable[name] = "not_configured"
    business, facts = gathered.values.get("business"), gathered.values.get("facts")
    return {"customer_id": customer_id, "business": business, "facts": facts,
            "unavailable": unavailable}
