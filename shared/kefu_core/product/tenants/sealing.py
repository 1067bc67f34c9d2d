"""Secrets stored sealed (:mod:`kefu_core.security.datakeys`), opened for the server's own use
and sealed again with the current key when they were stored in plaintext or with an older one."""

from __future__ import annotations

from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.rows import Params, Rows
from kefu_core.security.datakeys import DataKeys, data_keys_for

__all__ = ["Sealed"]


class Sealed:
    """Sealing and opening of one kind of stored secret."""

    def __init__(self, rows: Rows, data_keys: DataKeys | None) -> None:
        self._rows = rows
        self._data_keys = data_keys

    @property
    def data_keys(self) -> DataKeys:
        """The keys sealing secrets (by default those the environment configures)."""
        if self._data_keys is None:
            self._data_keys = data_keys_for(Settings())
        return self._data_keys

    async def seal(self, secret: str, *, context: str) -> str:
        return await self.data_keys.seal(secret, context=context)

    async def open(self, stored: str, *, context: str, reseal_sql: str, where: Params) -> str:
        """The plaintext of ``stored``; sealed again with the current key when it is not (the
        ``reseal_sql`` update takes the new value, then ``where``, then the old value)."""
        secret = await self.data_keys.open(stored, context=context)
        await self.reseal(stored, secret, context=context, reseal_sql=reseal_sql, where=where)
        return secret

    async def reseal(self, stored: str, secret: str | None = None, *, context: str,
                     reseal_sql: str, where: Params) -> bool:
        """Seal ``stored`` again with the current key unless it already is, or the row changed
        meanwhile. True when the row was updated."""
        if await self.data_keys.is_current(stored):
            return False
        if secret is None:
            secret = await self.data_keys.open(stored, context=context)
        sealed = await self.data_keys.seal(secret, context=context)
        return await self._rows.one(reseal_sql, (sealed, *where, stored)) is not None
