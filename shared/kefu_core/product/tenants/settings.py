"""Per-tenant settings (admin API ``/v1/admin/settings``) and prompts, and the lookup the flows
make on every reply (:meth:`SettingsStore.current`): cached in the store for a few seconds, so
a Lambda does not read PostgreSQL on every reply; a change made through the same store is
seen at once, one made elsewhere within the cache's time to live."""

from __future__ import annotations

import logging
from typing import Literal

from cachetools import TTLCache
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from kefu_core.infra.errors import StoreError
from kefu_core.infra.single_flight import SingleFlight
from kefu_core.product.business_hours import BusinessHours
from kefu_core.product.canned_replies import MAX_CANNED_REPLIES, CannedReply
from kefu_core.product.tenants.rows import Rows

__all__ = ["RetentionSettings", "SettingsStore", "TenantSettings"]

logger = logging.getLogger("kefu.tenants")

CACHE_TTL_S = 10.0
CACHE_TENANTS = 10_000


class RetentionSettings(BaseModel):
    """How long a tenant keeps personal data, in days (1 to 3650); the retention job
    (:mod:`kefu_core.flows.personal_data.retention`) deletes what is older. Defaults in
    docs/data-protection.md."""

    # A conversation with its messages, notes and rating, counted from its last activity.
    transcripts_days: int = Field(default=365, ge=1, le=3650)
    # A long-term fact, counted from when it was last seen (or, superseded, replaced).
    facts_days: int = Field(default=365, ge=1, le=3650)
    # An offline message, counted from when it was left.
    offline_messages_days: int = Field(default=90, ge=1, le=3650)


class TenantSettings(BaseModel):
    """Per-tenant knobs (admin API ``/v1/admin/settings``)."""

    context_window: int = Field(default=10, ge=1, le=100)
    enable_fallback: bool = True
    # Humanisation: replies are paced at about this many characters per second (0 = as fast
    # as the model streams), with a short "thinking" pause before the first delta, and emoji
    # used at this frequency.
    reply_pacing_cps: int = Field(default=0, ge=0, le=1000)
    reply_first_delay_ms: int = Field(default=0, ge=0, le=5000)
    emoji_frequency: Literal["none", "low", "medium", "high"] = "low"
    # Handoff.
    handoff_keywords: list[str] = Field(default_factory=lambda: [
        "转人工", "人工客服", "人工服务", "找人工", "真人", "human", "agent", "real person",
        "talk to a person",
    ])
    handoff_after_failures: int = Field(default=2, ge=0, le=20)
    # Widget defaults (a page's data- attributes override them).
    greeting_zh: str = "您好！我是智能客服，有什么可以帮您？"
    greeting_en: str = "Hi! I'm the virtual assistant. How can I help?"
    color: str = Field(default="#2f6fed", pattern=r"^#[0-9a-fA-F]{3,8}$")
    avatar_url: str | None = Field(default=None, max_length=500)
    offline_message_enabled: bool = True
    # A visitor's picture goes to the model with the question (as an image part) when this is
    # on and an engine of the chain reads images (``images: true``); otherwise the model reads
    # "[image]" in its place (docs/protocol.md "Images"). Off by default: a picture can show
    # what PII redaction cannot remove (an ID card, an address label).
    images_to_model: bool = False
    # The learning loop (docs/console.md): what a reply with a sentence found in no source does
    # (mark it in the final frame, replace it with a refusal offering a human, or hand off).
    grounding_action: Literal["off", "mark", "refuse", "handoff"] = "mark"
    # The first engine of the chain takes a second look at flagged sentences (it may clear
    # them), within GROUNDING_ENGINE_BUDGET_MS: one short request per flagged reply.
    grounding_engine_check: bool = False
    # A visitor question scoring at least this against a curated answer is answered with it,
    # without a model call (kefu_core.answers.curated); agents may edit curated answers too.
    curated_answer_threshold: float = Field(default=0.75, ge=0.3, le=1.0)
    agents_curate: bool = False
    # Ready answers agents insert with "/shortcut" in the console (product.canned_replies).
    canned_replies: list[CannedReply] = Field(default_factory=list,
                                              max_length=MAX_CANNED_REPLIES)
    # When human agents answer (product.business_hours); off = around the clock.
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    # Personal data retention (docs/data-protection.md).
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


class SettingsStore:
    def __init__(self, pool: AsyncConnectionPool, *, cache_ttl_s: float = CACHE_TTL_S) -> None:
        self._rows = Rows(pool)
        # tenant -> (settings, system prompt override)
        self._cache: TTLCache[str, tuple[TenantSettings, str | None]] = TTLCache(
            maxsize=CACHE_TENANTS, ttl=cache_ttl_s)
        self._reading: SingleFlight[tuple[TenantSettings, str | None]] = SingleFlight()

    async def current(self, tenant_id: str) -> tuple[TenantSettings, str | None]:
        """The tenant's settings and its system prompt override (``None`` = the global one).

        Cached; falls back to defaults when the store fails, so a reply is never refused
        because the settings could not be read.
        """
        hit = self._cache.get(tenant_id)
        if hit is not None:
            return hit
        try:
            # One read per tenant at a time, shared by the replies that start meanwhile.
            value, prompt = await self._reading.run(tenant_id, lambda: self._read(tenant_id))
        except StoreError:
            logger.warning("tenant settings unavailable; using defaults",
                           extra={"tenant": tenant_id})
            return TenantSettings(), None
        self._cache[tenant_id] = (value, prompt)
        return value, prompt

    async def _read(self, tenant_id: str) -> tuple[TenantSettings, str | None]:
        return await self.get(tenant_id), (await self.prompts(tenant_id)).get("system")

    def forget(self, tenant_id: str) -> None:
        """Drop the tenant's cached settings and prompt (after writing them elsewhere)."""
        self._cache.pop(tenant_id, None)

    async def get(self, tenant_id: str) -> TenantSettings:
        row = await self._rows.one("SELECT settings FROM tenant_settings WHERE tenant_id = %s",
                                   (tenant_id,))
        return TenantSettings.model_validate(row["settings"] if row else {})

    async def put(self, tenant_id: str, value: TenantSettings) -> TenantSettings:
        await self._rows.one(
            "INSERT INTO tenant_settings (tenant_id, settings) VALUES (%s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings,"
            " updated_at = now() RETURNING tenant_id",
            (tenant_id, Jsonb(value.model_dump(mode="json"))),
        )
        self.forget(tenant_id)
        return value

    async def prompts(self, tenant_id: str) -> dict[str, str]:
        rows = await self._rows.all("SELECT name, text FROM prompts WHERE tenant_id = %s"
                                    " ORDER BY name", (tenant_id,))
        return {str(r["name"]): str(r["text"]) for r in rows}

    async def put_prompt(self, *, tenant_id: str, name: str, text: str) -> None:
        await self._rows.one(
            "INSERT INTO prompts (tenant_id, name, text) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, name) DO UPDATE SET text = EXCLUDED.text,"
            " updated_at = now() RETURNING name", (tenant_id, name, text))
        self.forget(tenant_id)

    async def delete_prompt(self, *, tenant_id: str, name: str) -> bool:
        row = await self._rows.one("DELETE FROM prompts WHERE tenant_id = %s AND name = %s"
                                   " RETURNING name", (tenant_id, name))
        self.forget(tenant_id)
        return row is not None
