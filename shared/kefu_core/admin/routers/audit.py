"""``/v1/admin/audit``: the tenant's audit log, searched and exported."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.product.audit import AuditEntry, entries_to_csv
from kefu_core.security.roles import ActorType

router = APIRouter(prefix="/v1/admin/audit", tags=["audit"])


def audit_filters(
    actor_type: Annotated[ActorType | None,
                          Query()] = None,
    actor_id: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    target_type: Annotated[str | None, Query(max_length=64)] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The query parameters as arguments of ``AuditLog.query``."""
    return {"actor_type": actor_type, "actor_id": actor_id, "action": action,
            "target_type": target_type, "target_id": target_id, "since": since,
            "until": until}


AuditFilters = Annotated[dict[str, Any], Depends(audit_filters)]


@router.get("", response_model=list[AuditEntry], summary="Search the audit log")
async def audit_log(who: AdminId, deps: DepsDep, filters: AuditFilters,
                    before_id: int | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
    """Entries newest first, by actor, action, target and time; page with `before_id`."""
    return await deps.audit.query(tenant_id=who.tenant_id, before_id=before_id,
                                  limit=limit, **filters)


@router.get("/export", summary="Export the audit log",
            response_description="an attachment: audit.csv or audit.json")
async def audit_export(who: AdminId, deps: DepsDep, filters: AuditFilters,
                       format: Annotated[Literal["json", "csv"], Query()] = "csv",
                       limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000) -> Response:
    """The entries the filters find, as CSV (formula cells escaped) or JSON. The export
    itself is audited."""
    entries = await deps.audit.query(tenant_id=who.tenant_id, limit=limit, **filters)
    await record(deps, who, "audit.exported", detail_format=format, count=len(entries))
    if format == "csv":
        return Response(entries_to_csv(entries), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="audit.csv"'})
    return Response(json.dumps([e.model_dump(mode="json") for e in entries],
                               ensure_ascii=False), media_type="application/json",
                    headers={"content-disposition": 'attachment; filename="audit.json"'})
