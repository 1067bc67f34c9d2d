"""``/v1/admin/csat``: the tenant's satisfaction figures."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.product.service import CsatFigures

router = APIRouter(prefix="/v1/admin", tags=["reports"])


@router.get("/csat", response_model=CsatFigures, summary="CSAT figures")
async def csat_figures(who: AdminId, deps: DepsDep, since: datetime | None = None,
                       until: datetime | None = None) -> CsatFigures:
    """Count, average, distribution and per-agent figures of the visitors' ratings between
    `since` and `until`."""
    return await deps.service.figures(tenant_id=who.tenant_id, since=since, until=until)
