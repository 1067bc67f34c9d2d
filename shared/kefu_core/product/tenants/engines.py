"""A tenant's engine chain (``PUT /v1/admin/engines``) and its engine secrets, stored sealed
and read back only to build the tenant's engines (:mod:`kefu_core.answers.tenant_engines`)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from kefu_core.product.tenants.rows import Rows
from kefu_core.product.tenants.sealing import Sealed
from kefu_core.security.datakeys import DataKeys

__all__ = ["EngineStore"]

_RESEAL = ("UPDATE engine_secrets SET secret = %s"
           " WHERE tenant_id = %s AND name = %s AND secret = %s RETURNING name")


def _context(tenant_id: str, name: str) -> str:
    return f"engine:{tenant_id}:{name}"


class EngineStore:
    def __init__(self, pool: AsyncConnectionPool, data_keys: DataKeys | None = None) -> None:
        self._rows = Rows(pool)
        self._sealed = Sealed(self._rows, data_keys)

    async def chain(self, tenant_id: str) -> list[dict[str, Any]]:
        row = await self._rows.one("SELECT chain FROM engine_config WHERE tenant_id = %s",
                                   (tenant_id,))
        return list(row["chain"]) if row else []

    async def put_chain(self, *, tenant_id: str, chain: list[dict[str, Any]]) -> None:
        await self._rows.one(
            "INSERT INTO engine_config (tenant_id, chain) VALUES (%s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET chain = EXCLUDED.chain, updated_at = now()"
            " RETURNING tenant_id", (tenant_id, Jsonb(chain)))

    async def put_secret(self, *, tenant_id: str, name: str, secret: str) -> None:
        sealed = await self._sealed.seal(secret, context=_context(tenant_id, name))
        await self._rows.one(
            "INSERT INTO engine_secrets (tenant_id, name, secret) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, name) DO UPDATE SET secret = EXCLUDED.secret,"
            " updated_at = now() RETURNING name", (tenant_id, name, sealed))

    async def secret(self, *, tenant_id: str, name: str) -> str | None:
        """A tenant's engine secret, for building its engine (never for an API answer)."""
        row = await self._rows.one("SELECT secret FROM engine_secrets WHERE tenant_id = %s"
                                   " AND name = %s", (tenant_id, name))
        if row is None:
            return None
        return await self._sealed.open(str(row["secret"]), context=_context(tenant_id, name),
                                       reseal_sql=_RESEAL, where=(tenant_id, name))

    async def delete_secret(self, *, tenant_id: str, name: str) -> bool:
        row = await self._rows.one("DELETE FROM engine_secrets WHERE tenant_id = %s"
                                   " AND name = %s RETURNING name", (tenant_id, name))
        return row is not None

    async def secret_names(self, tenant_id: str) -> list[dict[str, Any]]:
        """Names and update times only: secrets are never read back through the API."""
        return await self._rows.all("SELECT name, updated_at FROM engine_secrets"
                                    " WHERE tenant_id = %s ORDER BY name", (tenant_id,))

    async def stamp(self, tenant_id: str) -> str:
        """Changes whenever the tenant's chain or one of its engine secrets is set or deleted
        (one indexed read; :mod:`kefu_core.answers.tenant_engines` checks it every few seconds)."""
        row = await self._rows.one(
            "SELECT (SELECT updated_at FROM engine_config WHERE tenant_id = %s) AS chain_at,"
            " count(*) AS secrets, max(updated_at) AS secrets_at"
            " FROM engine_secrets WHERE tenant_id = %s", (tenant_id, tenant_id))
        assert row is not None
        return f"{row['chain_at']}|{row['secrets']}|{row['secrets_at']}"

    async def reseal_secrets(self) -> int:
        """Seal every engine secret not sealed with the current key; how many changed."""
        changed = 0
        for row in await self._rows.all("SELECT tenant_id, name, secret FROM engine_secrets", ()):
            changed += await self._sealed.reseal(
                str(row["secret"]), context=_context(row["tenant_id"], row["name"]),
                reseal_sql=_RESEAL, where=(row["tenant_id"], row["name"]))
        return changed
