"""Retention: per tenant, delete what is older than its retention settings.

Each delete takes at most ``RETENTION_BATCH_SIZE`` rows chosen by a sub-select with
``FOR UPDATE SKIP LOCKED`` and commits on its own: no lock is held longer than one short batch,
and a conversation the chat path holds at that moment is simply left for the next run. A run
stops at its time budget (``RETENTION_RUN_BUDGET_S``) and reports itself incomplete; the next
run goes on. What each tenant lost is in its audit log (``retention.applied``, counts only).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from pydantic import BaseModel, Field

from kefu_core.deps import Deps
from kefu_core.infra.errors import StoreError
from kefu_core.product.tenants.settings import RetentionSettings, TenantSettings

__all__ = ["RetentionReport", "TenantRetention", "run_retention"]

logger = logging.getLogger("kefu.retention")

# (what, table, age expression): one batch deletes rows of one tenant older than a cutoff.
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("conversations", "conversations", "updated_at"),
    ("offline_messages", "offline_messages", "created_at"),
    ("facts", "mem_facts", "coalesce(valid_to, last_seen_at)"),
)
_DAYS = {"conversations": "transcripts_days", "offline_messages": "offline_messages_days",
         "facts": "facts_days"}


class TenantRetention(BaseModel):
    tenant_id: str
    conversations: int = 0
    offline_messages: int = 0
    facts: int = 0
    complete: bool = True


class RetentionReport(BaseModel):
    started_at: datetime
    tenants: list[TenantRetention] = Field(default_factory=list)
    complete: bool = True

    def totals(self) -> dict[str, int]:
        return {kind: sum(getattr(t, kind) for t in self.tenants) for kind in _DAYS}


async def run_retention(deps: Deps, *, now: datetime | None = None, batch: int | None = None,
                        budget_s: float | None = None) -> RetentionReport:
    """One pass over every tenant. ``now`` decides what is old (tests pass their own)."""
    settings = deps.settings
    started = now or datetime.now(UTC)
    deadline = time.monotonic() + (budget_s or settings.retention_run_budget_s)
    size = batch or settings.retention_batch_size
    report = RetentionReport(started_at=started)
    for tenant_id, policy in await _policies(deps):
        result = TenantRetention(tenant_id=tenant_id)
        for kind, table, age in _KINDS:
            cutoff = started - timedelta(days=getattr(policy, _DAYS[kind]))
            deleted, finished = await _expire(deps, table, age, tenant_id, cutoff, size,
                                              deadline)
            setattr(result, kind, deleted)
            result.complete = result.complete and finished
        report.tenants.append(result)
        report.complete = report.complete and result.complete
        await _audit(deps, result, policy)
        if time.monotonic() >= deadline:
            report.complete = False
            break
    logger.info("retention run", extra={**report.totals(), "complete": report.complete,
                                        "tenants": len(report.tenants)})
    return report


async def _policies(deps: Deps) -> list[tuple[str, RetentionSettings]]:
    try:
        async with deps.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT t.id, s.settings FROM tenants t"
                " LEFT JOIN tenant_settings s ON s.tenant_id = t.id ORDER BY t.id")
            rows = await cur.fetchall()
    except psycopg.Error as exc:
        raise StoreError("cannot read the tenants' retention settings") from exc
    return [(str(tenant_id), TenantSettings.model_validate(value or {}).retention)
            for tenant_id, value in rows]


async def _expire(deps: Deps, table: str, age: str, tenant_id: str, cutoff: datetime,
                  size: int, deadline: float) -> tuple[int, bool]:
    """Delete ``table``'s rows of the tenant older than ``cutoff``, batch by batch, until none
    is left (True) or the deadline passes (False). A conversation's images go first, in the
    batch's transaction: when deleting them fails, its rows stay for the next run."""
    select = (f"SELECT id FROM {table}"  # table, age: constants
              f" WHERE tenant_id = %s AND {age} < %s LIMIT %s FOR UPDATE SKIP LOCKED")
    deleted = 0
    while True:
        try:
            async with deps.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(select, (tenant_id, cutoff, size))
                ids = [row[0] for row in await cur.fetchall()]
                if table == "conversations" and ids:
                    await _forget_images(deps, conn, tenant_id, ids)
                cur = await conn.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", (ids,))
                count = int(cur.rowcount)
        except psycopg.errors.UndefinedTable:
            return deleted, True  # the memory layer's tables were never created here
        except psycopg.Error as exc:
            raise StoreError(f"retention of {table} failed") from exc
        deleted += count
        if count < size:
            return deleted, True
        if time.monotonic() >= deadline:
            return deleted, False


async def _forget_images(deps: Deps, conn: psycopg.AsyncConnection[Any], tenant_id: str,
                         ids: list[Any]) -> None:
    """Delete the images of those of ``ids`` that have any (chat.images)."""
    cur = await conn.execute(
        "SELECT DISTINCT conversation_id::text FROM messages"
        " WHERE conversation_id = ANY(%s) AND meta ? 'image'", (ids,))
    for (conversation_id,) in await cur.fetchall():
        await deps.images.forget_conversation(tenant_id=tenant_id,
                                              conversation_id=conversation_id)


async def _audit(deps: Deps, result: TenantRetention, policy: RetentionSettings) -> None:
    if not (result.conversations or result.offline_messages or result.facts) \
            and result.complete:
        return  # a run that deleted nothing only logs
    detail: dict[str, Any] = result.model_dump(exclude={"tenant_id"})
    detail["policy_days"] = policy.model_dump()
    await deps.audit.safe_record(
        tenant_id=result.tenant_id, actor_type="system", actor_id=None,
        action="retention.applied", target_type="tenant", target_id=result.tenant_id,
        detail=detail)
