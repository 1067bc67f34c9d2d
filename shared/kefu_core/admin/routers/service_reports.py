"""``/v1/admin/reports``: the tenant's service figures over a period
(:mod:`kefu_core.product.reports`), as JSON for the admin console or as CSV, one row per day.

The period is ``since`` to ``until`` (default: the last 14 days), at most 366 days; days are
counted in the IANA time zone ``tz`` (default UTC). Exporting is audited; the figures carry
visitors' questions and comments, which go to the caller only, never to a log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from kefu_core.admin.audit_trail import record
from kefu_core.admin.dependencies import AdminId, DepsDep
from kefu_core.product.csv_export import to_csv
from kefu_core.product.reports import Report, ReportStore

router = APIRouter(prefix="/v1/admin/reports", tags=["reports"])

MAX_DAYS = 366
TimeZone = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$",
                                description="IANA time zone the days are counted in")]


def _period(since: datetime | None, until: datetime | None, tz: str) -> tuple[datetime, datetime]:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise HTTPException(status_code=422, detail="unknown time zone") from exc
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=14)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(status_code=422, detail="since and until need a UTC offset")
    if start >= end or end - start > timedelta(days=MAX_DAYS):
        raise HTTPException(status_code=422,
                            detail=f"the period must be positive and at most {MAX_DAYS} days")
    return start, end


async def _report(who: AdminId, deps: DepsDep, since: datetime | None,
                  until: datetime | None, tz: str) -> Report:
    start, end = _period(since, until, tz)
    return await ReportStore(deps.pool).report(tenant_id=who.tenant_id, since=start, until=end,
                                               time_zone=tz)


@router.get("", response_model=Report, summary="Service report",
            responses={422: {"description": "bad period or time zone"}})
async def report(who: AdminId, deps: DepsDep, since: datetime | None = None,
                 until: datetime | None = None, tz: TimeZone = "UTC") -> Report:
    """Conversations per day, deflection (the assistant alone) and handoff rates, handoff
    reasons, human first-response and resolution times (average and median seconds), CSAT
    per day and the latest comments, the questions most often left unanswered (the
    offline engine's refusals), and the resolution figures per day and per knowledge-base
    version (bot-resolved conversations, curated-answer hit rate, grounded-answer rate, 👎)."""
    return await _report(who, deps, since, until, tz)


@router.get("/export", summary="Service report as CSV",
            responses={200: {"content": {"text/csv": {}}},
                       422: {"description": "bad period or time zone"}})
async def export(who: AdminId, deps: DepsDep,
                 since: datetime | None = None, until: datetime | None = None,
                 tz: TimeZone = "UTC",
                 format: Annotated[Literal["csv"], Query()] = "csv") -> Response:
    """One row per day: conversations, handed off, deflected, ratings, CSAT average, and the
    resolution figures (bot-resolved conversations; bot replies, curated-answer hits, replies
    the grounding check looked at and passed, replies rated 👎)."""
    figures = await _report(who, deps, since, until, tz)
    await record(deps, who, "reports.exported", days=len(figures.days))
    rows = ([d.day.isoformat(), d.conversations, d.handed_off, d.deflected, d.ratings,
             "" if d.csat_average is None else d.csat_average, d.bot_resolved, d.bot_replies,
             d.curated_hits, d.grounding_checked, d.grounded, d.thumbs_down]
            for d in figures.days)
    text = to_csv(["day", "conversations", "handed_off", "deflected", "ratings",
                   "csat_average", "bot_resolved", "bot_replies", "curated_hits",
                   "grounding_checked", "grounded", "thumbs_down"], rows)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="report.csv"'})
