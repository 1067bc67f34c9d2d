"""Business hours in handoff: whether the tenant's agents answer now, and acting on the
opening once it comes.

While the tenant is closed a handoff is queued but assigned to nobody (an agent in early may
still take it); the first console heartbeat after the opening assigns the queue as usual
(:func:`kefu_core.product.handoff.moves.dispatch_at_opening`). That the queue waited is kept in
Redis (``ho:{tenant}:closed``), so every process agrees and only one acts on the opening.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kefu_core.infra.errors import StoreError
from kefu_core.product.business_hours import HoursStatus, hours_status
from kefu_core.product.handoff.context import HandoffDeps

__all__ = ["hours_now"]


async def hours_now(deps: HandoffDeps, tenant_id: str) -> HoursStatus:
    """The tenant's hours at this moment (settings cached, see ``SettingsStore.current``); a
    closed tenant is remembered as waiting for its opening."""
    settings, _ = await deps.tenant_settings.current(tenant_id)
    status = hours_status(settings.business_hours, datetime.now(UTC))
    if not status.open:
        try:
            await deps.handoff.mark_closed(tenant_id)
        except StoreError:  # the opening is then acted on when an agent next goes online
            pass
    return status
