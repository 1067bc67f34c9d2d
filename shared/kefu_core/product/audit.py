"""The audit log: who (visitor, agent, admin, system) did what to which target, and when.

Append-only: this module has no update or delete path, and the database refuses them anyway
(a trigger raises on UPDATE, DELETE and TRUNCATE of ``audit_log``). Every free-text value is
PII-redacted with :func:`kefu_llm.redact_text` before it is written; redaction fails closed
(a value that cannot be checked is stored as ``[REDACTED]``). Callers put ids, scores and
counts in the detail, never what a customer or an agent wrote: the log cannot be erased, so
it must hold nothing an erasure would have to remove (docs/data-protection.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.infra.errors import StoreError
from kefu_core.product.csv_export import to_csv
from kefu_core.security.roles import ActorType

__all__ = ["ActorType", "AuditEntry", "AuditLog", "entries_to_csv", "redact_value"]

logger = logging.getLogger("kefu.audit")

REDACTED = "[REDACTED]"


def _default_redactor(text: str) -> str:
    from kefu_llm import redact_text

    return redact_text(text)


def redact_value(value: Any, redactor: Callable[[str], str] = _default_redactor) -> Any:
    """``value`` with every string inside it redacted; fails closed on any redactor error."""
    if isinstance(value, str):
        try:
            return redactor(value)
        except Exception:
            return REDACTED
    if isinstance(value, dict):
        return {str(k): redact_value(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, redactor) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_value(str(value), redactor)


class AuditEntry(BaseModel):
    id: int
    tenant_id: str
    at: datetime
    actor_type: ActorType
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]


_COLUMNS = "id, tenant_id, at, actor_type, actor_id, action, target_type, target_id, detail"


class AuditLog:
    def __init__(
        self, pool: AsyncConnectionPool, *, redactor: Callable[[str], str] = _default_redactor
    ) -> None:
        self._pool = pool
        self._redactor = redactor

    async def record(
        self,
        *,
        tenant_id: str,
        actor_type: ActorType,
        actor_id: str | None,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry; returns its id. Raises :class:`StoreError` when it cannot."""
        clean = redact_value(detail or {}, self._redactor)
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO audit_log (tenant_id, actor_type, actor_id, action,"
                    " target_type, target_id, detail) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " RETURNING id",
                    (tenant_id, actor_type, actor_id, action, target_type, target_id,
                     Jsonb(clean)),
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StoreError("cannot write the audit log") from exc
        assert row is not None
        return int(row[0])

    async def safe_record(self, **kwargs: Any) -> None:
        """Record, logging (not raising) a failure: for paths where the action already happened."""
        try:
            await self.record(**kwargs)
        except StoreError:
            logger.error("audit entry lost", extra={"action": kwargs.get("action")})

    async def query(
        self,
        *,
        tenant_id: str,
        actor_type: str | None = None,
        actor_id: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        where = ["tenant_id = %s"]
        params: list[Any] = [tenant_id]
        for column, value in (("actor_type", actor_type), ("actor_id", actor_id),
                              ("action", action), ("target_type", target_type),
                              ("target_id", target_id)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            where.append("at >= %s")
            params.append(since)
        if until is not None:
            where.append("at < %s")
            params.append(until)
        if before_id is not None:
            where.append("id < %s")
            params.append(before_id)
        params.append(max(1, min(limit, 10_000)))
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(where)}"
                    " ORDER BY id DESC LIMIT %s",
                    params,
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError("cannot read the audit log") from exc
        return [AuditEntry.model_validate(row) for row in rows]


def entries_to_csv(entries: list[AuditEntry]) -> str:
    """The entries as CSV; cells a spreadsheet would evaluate are escaped (csv_export)."""
    return to_csv(
        ["id", "at", "actor_type", "actor_id", "action", "target_type", "target_id", "detail"],
        ([e.id, e.at.isoformat(), e.actor_type, e.actor_id, e.action, e.target_type,
          e.target_id, json.dumps(e.detail, ensure_ascii=False, sort_keys=True)]
         for e in entries),
    )
