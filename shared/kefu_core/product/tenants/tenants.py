"""The tenants, and each tenant's identity secret (which a company's backend uses to sign a
logged-in customer's identity for the widget)."""

from __future__ import annotations

import secrets
from datetime import datetime

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from kefu_core.product.tenants.rows import Rows
from kefu_core.product.tenants.sealing import Sealed
from kefu_core.security.datakeys import DataKeys

__all__ = ["ROOT_TENANT", "Tenant", "TenantStore"]

ROOT_TENANT = "_root"  # the super-admin's tenant; no tenant id may start with "_"

_COLS = "id, name, created_at, identity_secret IS NOT NULL AS identity_secret_set"
_RESEAL = ("UPDATE tenants SET identity_secret = %s"
           " WHERE id = %s AND identity_secret = %s RETURNING id")


class Tenant(BaseModel):
    id: str
    name: str
    created_at: datetime
    identity_secret_set: bool


def _context(tenant_id: str) -> str:
    return f"identity:{tenant_id}"


class TenantStore:
    def __init__(self, pool: AsyncConnectionPool, data_keys: DataKeys | None = None) -> None:
        self._rows = Rows(pool)
        self._sealed = Sealed(self._rows, data_keys)

    async def create(self, *, tenant_id: str, name: str) -> Tenant:
        row = await self._rows.one(
            f"INSERT INTO tenants (id, name) VALUES (%s, %s) RETURNING {_COLS}",
            (tenant_id, name))
        assert row is not None
        return Tenant.model_validate(row)

    async def ensure(self, *, tenant_id: str, name: str) -> None:
        await self._rows.one("INSERT INTO tenants (id, name) VALUES (%s, %s)"
                             " ON CONFLICT DO NOTHING RETURNING id", (tenant_id, name))

    async def get(self, tenant_id: str) -> Tenant | None:
        row = await self._rows.one(f"SELECT {_COLS} FROM tenants WHERE id = %s", (tenant_id,))
        return Tenant.model_validate(row) if row else None

    async def list(self) -> list[Tenant]:
        rows = await self._rows.all(f"SELECT {_COLS} FROM tenants WHERE id <> %s ORDER BY id",
                                    (ROOT_TENANT,))
        return [Tenant.model_validate(r) for r in rows]

    async def rotate_identity_secret(self, tenant_id: str) -> str:
        """A new identity secret (returned once, stored sealed)."""
        secret = "ids_" + secrets.token_urlsafe(32)
        sealed = await self._sealed.seal(secret, context=_context(tenant_id))
        await self._rows.one("UPDATE tenants SET identity_secret = %s WHERE id = %s"
                             " RETURNING id", (sealed, tenant_id))
        return secret

    async def identity_secret(self, tenant_id: str) -> str | None:
        """The identity secret, for verifying an identity (never for an API answer)."""
        row = await self._rows.one("SELECT identity_secret FROM tenants WHERE id = %s",
                                   (tenant_id,))
        if not row or not row["identity_secret"]:
            return None
        return await self._sealed.open(str(row["identity_secret"]), context=_context(tenant_id),
                                       reseal_sql=_RESEAL, where=(tenant_id,))

    async def reseal_identity_secrets(self) -> int:
        """Seal every identity secret not sealed with the current key; how many changed."""
        changed = 0
        for row in await self._rows.all("SELECT id, identity_secret FROM tenants"
                                        " WHERE identity_secret IS NOT NULL", ()):
            changed += await self._sealed.reseal(
                str(row["identity_secret"]), context=_context(row["id"]), reseal_sql=_RESEAL,
                where=(row["id"],))
        return changed
