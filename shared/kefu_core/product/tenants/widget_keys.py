"""Widget keys: the public key a page embeds the chat with, naming its tenant, with the
origins whose pages may use it (:mod:`kefu_core.product.widget_origins`)."""

from __future__ import annotations

import secrets
from datetime import datetime

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from kefu_core.product.tenants.rows import Rows

__all__ = ["WidgetKey", "WidgetKeyStore"]

_COLS = "key, tenant_id, label, created_at, revoked_at, allowed_origins"


class WidgetKey(BaseModel):
    key: str
    tenant_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None = None
    # Origins whose pages may use the key; empty: every origin.
    allowed_origins: list[str] = Field(default_factory=list)


class WidgetKeyStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._rows = Rows(pool)

    async def create(
        self, *, tenant_id: str, label: str = "", key: str | None = None,
        allowed_origins: list[str] | None = None,
    ) -> WidgetKey:
        row = await self._rows.one(
            "INSERT INTO widget_keys (key, tenant_id, label, allowed_origins)"
            f" VALUES (%s, %s, %s, %s) RETURNING {_COLS}",
            (key or "wk_" + secrets.token_urlsafe(18), tenant_id, label,
             list(allowed_origins or [])),
        )
        assert row is not None
        return WidgetKey.model_validate(row)

    async def ensure(self, *, tenant_id: str, key: str, label: str) -> None:
        """The key exists (as it was, when it already did)."""
        await self._rows.one("INSERT INTO widget_keys (key, tenant_id, label) VALUES (%s, %s,"
                             " %s) ON CONFLICT DO NOTHING RETURNING key", (key, tenant_id, label))

    async def update(
        self, *, tenant_id: str, key: str, label: str | None = None,
        allowed_origins: list[str] | None = None,
    ) -> WidgetKey | None:
        """Change an active key's label and/or allowed origins; None when there is no such key."""
        row = await self._rows.one(
            "UPDATE widget_keys SET label = coalesce(%s, label),"
            " allowed_origins = coalesce(%s, allowed_origins) WHERE key = %s"
            f" AND tenant_id = %s AND revoked_at IS NULL RETURNING {_COLS}",
            (label, allowed_origins, key, tenant_id),
        )
        return WidgetKey.model_validate(row) if row else None

    async def list(self, tenant_id: str) -> list[WidgetKey]:
        rows = await self._rows.all(f"SELECT {_COLS} FROM widget_keys"
                                    " WHERE tenant_id = %s ORDER BY created_at", (tenant_id,))
        return [WidgetKey.model_validate(r) for r in rows]

    async def revoke(self, *, tenant_id: str, key: str) -> bool:
        row = await self._rows.one("UPDATE widget_keys SET revoked_at = now() WHERE key = %s"
                                   " AND tenant_id = %s AND revoked_at IS NULL RETURNING key",
                                   (key, tenant_id))
        return row is not None

    async def active(self, key: str) -> WidgetKey | None:
        """An active (not revoked) key, whichever tenant it belongs to."""
        row = await self._rows.one(f"SELECT {_COLS} FROM widget_keys WHERE key = %s"
                                   " AND revoked_at IS NULL", (key,))
        return WidgetKey.model_validate(row) if row else None

    async def tenant_of(self, key: str) -> str | None:
        found = await self.active(key)
        return found.tenant_id if found else None
