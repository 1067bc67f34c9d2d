"""The 话术 tuning workbench's store: a tenant's draft tuning, its published versions, publish and
roll back.

A :class:`Tuning` is the system prompt and the humanisation knobs of
:class:`~kefu_core.product.tenants.settings.TenantSettings` (context window, fallback, reply pacing,
emoji frequency, handoff keywords and failure threshold). What replies use is the tenant's
``system`` prompt and its settings; publishing writes both, in one transaction with a new row in
``prompt_versions`` (numbered 1, 2, 3... per tenant), and clears the draft. A rollback publishes
an earlier version's tuning as a new version, so the history only grows. An empty prompt means
the deployment's default prompt (``SYSTEM_PROMPT``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kefu_core.infra.db import fetch_rows
from kefu_core.infra.errors import StoreError
from kefu_core.product.tenants.settings import SettingsStore, TenantSettings

__all__ = ["KNOBS", "PromptVersion", "PromptWorkbench", "Tuning"]

KNOBS = ("context_window", "enable_fallback", "reply_pacing_cps", "reply_first_delay_ms",
         "emoji_frequency", "handoff_keywords", "handoff_after_failures")


class Tuning(BaseModel):
    """A system prompt and the knobs that shape how the assistant talks."""

    model_config = ConfigDict(extra="forbid")
    system_prompt: str = Field(default="", max_length=20_000)
    context_window: int = Field(default=10, ge=1, le=100)
    enable_fallback: bool = True
    reply_pacing_cps: int = Field(default=0, ge=0, le=1000)
    reply_first_delay_ms: int = Field(default=0, ge=0, le=5000)
    emoji_frequency: Literal["none", "low", "medium", "high"] = "low"
    handoff_keywords: list[str] = Field(default_factory=list, max_length=50)
    handoff_after_failures: int = Field(default=2, ge=0, le=20)

    @field_validator("handoff_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value if k.strip()]
        if any(len(k) > 50 for k in cleaned):
            raise ValueError("a handoff keyword is at most 50 characters")
        return list(dict.fromkeys(cleaned))

    @classmethod
    def of(cls, settings: TenantSettings, prompt: str | None) -> Tuning:
        return cls(system_prompt=prompt or "",
                   **{k: getattr(settings, k) for k in KNOBS})

    def settings(self, base: TenantSettings) -> TenantSettings:
        """``base`` with this tuning's knobs."""
        return base.model_copy(update={k: getattr(self, k) for k in KNOBS})


class PromptVersion(BaseModel):
    version: int
    tuning: Tuning
    note: str
    published_by: str | None
    published_at: datetime


class PromptWorkbench:
    def __init__(self, pool: AsyncConnectionPool, settings: SettingsStore) -> None:
        self._pool = pool
        self._settings = settings  # the process's: publishing drops its cached settings

    async def published(self, tenant_id: str) -> Tuning:
        """What replies use now."""
        settings = await self._settings.get(tenant_id)
        prompt = (await self._settings.prompts(tenant_id)).get("system")
        return Tuning.of(settings, prompt)

    async def draft(self, tenant_id: str) -> Tuning | None:
        rows = await self._rows("SELECT tuning FROM prompt_drafts WHERE tenant_id = %s",
                                (tenant_id,))
        return Tuning.model_validate(rows[0]["tuning"]) if rows else None

    async def save_draft(self, tenant_id: str, tuning: Tuning, *, by: str) -> None:
        await self._rows(
            "INSERT INTO prompt_drafts (tenant_id, tuning, updated_by) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET tuning = EXCLUDED.tuning,"
            " updated_by = EXCLUDED.updated_by, updated_at = now()",
            (tenant_id, Jsonb(tuning.model_dump()), by))

    async def discard_draft(self, tenant_id: str) -> bool:
        rows = await self._rows("DELETE FROM prompt_drafts WHERE tenant_id = %s RETURNING 1",
                                (tenant_id,))
        return bool(rows)

    async def versions(self, tenant_id: str, *, limit: int = 50) -> list[PromptVersion]:
        rows = await self._rows(
            "SELECT version, tuning, note, published_by, published_at FROM prompt_versions"
            " WHERE tenant_id = %s ORDER BY version DESC LIMIT %s", (tenant_id, limit))
        return [PromptVersion.model_validate(r) for r in rows]

    async def version(self, tenant_id: str, version: int) -> PromptVersion | None:
        rows = await self._rows(
            "SELECT version, tuning, note, published_by, published_at FROM prompt_versions"
            " WHERE tenant_id = %s AND version = %s", (tenant_id, version))
        return PromptVersion.model_validate(rows[0]) if rows else None

    async def publish(self, tenant_id: str, tuning: Tuning, *, by: str,
                      note: str = "") -> PromptVersion:
        """Make ``tuning`` what replies use, as the next version; the draft is cleared."""
        base = await self._settings.get(tenant_id)
        settings = tuning.settings(base)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                # one publisher at a time per tenant: version numbers stay gapless and unique
                await conn.execute("SELECT 1 FROM tenants WHERE id = %s FOR UPDATE",
                                   (tenant_id,))
                if tuning.system_prompt:
                    await conn.execute(
                        "INSERT INTO prompts (tenant_id, name, text) VALUES (%s, 'system', %s)"
                        " ON CONFLICT (tenant_id, name) DO UPDATE SET text = EXCLUDED.text,"
                        " updated_at = now()", (tenant_id, tuning.system_prompt))
                else:
                    await conn.execute("DELETE FROM prompts WHERE tenant_id = %s"
                                       " AND name = 'system'", (tenant_id,))
                await conn.execute(
                    "INSERT INTO tenant_settings (tenant_id, settings) VALUES (%s, %s)"
                    " ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings,"
                    " updated_at = now()", (tenant_id, Jsonb(settings.model_dump(mode="json"))))
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "INSERT INTO prompt_versions (tenant_id, version, tuning, note, published_by)"
                    " SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s FROM prompt_versions"
                    " WHERE tenant_id = %s"
                    " RETURNING version, tuning, note, published_by, published_at",
                    (tenant_id, Jsonb(tuning.model_dump()), note, by, tenant_id))
                row = await cur.fetchone()
                await conn.execute("DELETE FROM prompt_drafts WHERE tenant_id = %s",
                                   (tenant_id,))
        except psycopg.Error as exc:
            raise StoreError("publishing the tuning failed") from exc
        finally:
            self._settings.forget(tenant_id)
        assert row is not None
        return PromptVersion.model_validate(row)

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return await fetch_rows(self._pool, sql, params, failure="prompt workbench store failed")
